#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "test.h"

static void test_str(void)
{
    uint64_t u = 0;
    long l = 0;
    CHECK(str_eq(STR_LIT("abc"), str_from_cstr("abc")));
    CHECK(!str_eq(STR_LIT("abc"), STR_LIT("abd")));
    CHECK(str_eq_nocase(STR_LIT("Content-Type"), STR_LIT("content-type")));
    CHECK_INT(str_to_u64(STR_LIT("18446744073709551615"), &u), CORE_OK);
    CHECK(u == UINT64_MAX);
    CHECK_INT(str_to_u64(STR_LIT("18446744073709551616"), &u), CORE_EINVAL);
    CHECK_INT(str_to_u64(STR_LIT(""), &u), CORE_EINVAL);
    CHECK_INT(str_to_u64(STR_LIT("1a"), &u), CORE_EINVAL);
    CHECK_INT(str_to_long(STR_LIT("-42"), &l), CORE_OK);
    CHECK_INT(l, -42);
    CHECK_INT(str_find_char(STR_LIT("a=b"), '='), 1);
    CHECK_INT(str_find_char(STR_LIT("ab"), '='), -1);
}

static void test_buf(void)
{
    core_buf_t b;
    core_buf_init(&b, 16);
    core_buf_append_cstr(&b, "hello ");
    core_buf_appendf(&b, "%d", 42);
    CHECK_INT(core_buf_status(&b), CORE_OK);
    CHECK_STR(core_buf_str(&b), "hello 42");
    core_buf_append_cstr(&b, "this is far too long");
    CHECK_INT(core_buf_status(&b), CORE_ELIMIT);
    core_buf_append_cstr(&b, "x"); /* sticky: stays failed */
    CHECK_INT(core_buf_status(&b), CORE_ELIMIT);
    core_buf_free(&b);

    core_buf_init(&b, 1024);
    core_buf_append_json(&b, (str_t){"a\"b\\c\n\x01\xff\xc3\xa9", 10});
    CHECK_STR(core_buf_str(&b), "\"a\\\"b\\\\c\\n\\u0001\xEF\xBF\xBD\xc3\xa9\"");
    core_buf_free(&b);
    core_buf_init(&b, 1024); /* long plain runs around escapes, and numbers */
    core_buf_append_json(&b, STR_LIT("Bearer abc.def-ghi_jkl \"q\" tail"));
    core_buf_append_char(&b, ' ');
    core_buf_append_u64(&b, 0);
    core_buf_append_char(&b, ' ');
    core_buf_append_u64(&b, 18446744073709551615u);
    CHECK_STR(core_buf_str(&b), "\"Bearer abc.def-ghi_jkl \\\"q\\\" tail\" 0 18446744073709551615");
    core_buf_free(&b);
    char d[21];
    CHECK(core_u64_str(d, 0) == 1 && strcmp(d, "0") == 0);
    CHECK(core_u64_str(d, 18446744073709551615u) == 20 && strcmp(d, "18446744073709551615") == 0);
    CHECK(core_u64_str(d, 1000) == 4 && strcmp(d, "1000") == 0);
}

/* Every byte value at every offset of a 19-byte plain-ASCII string (so each lands in the
 * word-at-a-time fast path, in its tail, and across word edges): the escaped text must be
 * the plain text with just that byte escaped as a one-byte-at-a-time escaper would. */
static void test_json_escape_every_byte(void)
{
    static const char plain[] = "abcdefghijklmnopqrs";
    const size_t len = sizeof(plain) - 1;
    int bad = 0;
    for (unsigned v = 0; v < 256; v++) {
        char esc[8];
        if (v == '"') memcpy(esc, "\\\"", 3);
        else if (v == '\\') memcpy(esc, "\\\\", 3);
        else if (v == '\n') memcpy(esc, "\\n", 3);
        else if (v == '\r') memcpy(esc, "\\r", 3);
        else if (v == '\t') memcpy(esc, "\\t", 3);
        else if (v < 0x20) snprintf(esc, sizeof(esc), "\\u%04x", v);
        else if (v >= 0x80) memcpy(esc, "\xEF\xBF\xBD", 4); /* a lone byte is not UTF-8 */
        else {
            esc[0] = (char)v;
            esc[1] = '\0';
        }
        for (size_t at = 0; at < len; at++) {
            char in[32], want[64];
            memcpy(in, plain, len);
            in[at] = (char)v;
            int n = snprintf(want, sizeof(want), "\"%.*s%s%s\"", (int)at, plain, esc, plain + at + 1);
            core_buf_t b;
            core_buf_init(&b, 1024);
            core_buf_append_json(&b, (str_t){in, len});
            if (n <= 0 || core_buf_status(&b) != CORE_OK || !str_eq(core_buf_str(&b), (str_t){want, (size_t)n})) bad++;
            core_buf_free(&b);
        }
    }
    CHECK_INT(bad, 0);
}

static void test_arena(void)
{
    core_arena_t *a = core_arena_create(64);
    CHECK(a != NULL);
    if (!a) return;
    for (int i = 0; i < 1000; i++) {
        char *p = core_arena_alloc(a, (size_t)(i % 100) + 1);
        CHECK(p != NULL);
        CHECK(((uintptr_t)p & 15u) == 0);
    }
    char *big = core_arena_alloc(a, 1u << 20);
    CHECK(big != NULL);
    char *d = core_arena_strdup(a, STR_LIT("xyz"));
    CHECK(d && strcmp(d, "xyz") == 0);
    void *heap = malloc(10);
    CHECK_INT(core_arena_defer(a, free, heap), CORE_OK);
    core_arena_destroy(a); /* frees heap through the cleanup; ASan catches a leak */
}

static void test_alloc_failure(void)
{
    core_alloc_fail_after(2);
    void *p1 = core_malloc(8);
    void *p2 = core_malloc(8);
    void *p3 = core_malloc(8);
    CHECK(p1 != NULL);
    CHECK(p2 == NULL);
    CHECK(p3 == NULL);
    core_alloc_fail_after(0);
    core_free(p1);
    core_free(p3);

    /* A buffer whose allocation fails keeps a sticky ENOMEM instead of crashing. */
    core_buf_t b;
    core_buf_init(&b, 100);
    core_alloc_fail_after(1);
    core_buf_append_cstr(&b, "x");
    core_alloc_fail_after(0);
    CHECK_INT(core_buf_status(&b), CORE_ENOMEM);
    core_buf_free(&b);
}

static void test_err(void)
{
    core_buf_t b;
    core_buf_init(&b, 1024);
    core_err_t e = core_err_make(404, "PGRST205", "Could not find the table", STR_NULL);
    core_err_write_json(&b, &e);
    CHECK_STR(core_buf_str(&b),
              "{\"code\":\"PGRST205\",\"details\":null,\"hint\":null,\"message\":\"Could not find the table\"}");
    core_buf_free(&b);
}

int main(void)
{
    test_str();
    test_buf();
    test_json_escape_every_byte();
    test_arena();
    test_alloc_failure();
    test_err();
    TEST_MAIN_END();
}
