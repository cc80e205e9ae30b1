/* Tiny typed asserts for unit tests: each failure prints both values and the location. */
#ifndef STRATA_TEST_H
#define STRATA_TEST_H
#include <stdio.h>
#include <string.h>

static int test_failures;
static int test_checks;

#define CHECK(cond)                                                                        \
    do {                                                                                   \
        test_checks++;                                                                     \
        if (!(cond)) {                                                                     \
            test_failures++;                                                               \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);       \
        }                                                                                  \
    } while (0)

#define CHECK_INT(a, b)                                                                    \
    do {                                                                                   \
        long long va_ = (long long)(a), vb_ = (long long)(b);                              \
        test_checks++;                                                                     \
        if (va_ != vb_) {                                                                  \
            test_failures++;                                                               \
            fprintf(stderr, "%s:%d: %s == %lld, expected %lld\n", __FILE__, __LINE__, #a,  \
                    va_, vb_);                                                             \
        }                                                                                  \
    } while (0)

#define CHECK_STR(s, lit)                                                                  \
    do {                                                                                   \
        str_t vs_ = (s);                                                                   \
        const char *vl_ = (lit);                                                           \
        test_checks++;                                                                     \
        if (vs_.len != strlen(vl_) || (vs_.len && memcmp(vs_.ptr, vl_, vs_.len) != 0)) {   \
            test_failures++;                                                               \
            fprintf(stderr, "%s:%d: %s == \"%.*s\", expected \"%s\"\n", __FILE__,          \
                    __LINE__, #s, (int)vs_.len, vs_.ptr ? vs_.ptr : "", vl_);              \
        }                                                                                  \
    } while (0)

#define TEST_MAIN_END()                                                                    \
    do {                                                                                   \
        printf("%d checks, %d failures\n", test_checks, test_failures);                    \
        return test_failures ? 1 : 0;                                                      \
    } while (0)

#endif
