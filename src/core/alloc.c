/* The one allocation hook (STYLE rule 11): tests make the n-th allocation fail. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

static atomic_long fail_countdown; /* 0: off; k > 0: the k-th next allocation fails */
static atomic_bool failing;

void core_alloc_fail_after(long n)
{
    atomic_store(&failing, false);
    atomic_store(&fail_countdown, n > 0 ? n : 0);
}

static bool should_fail(void)
{
    if (atomic_load(&failing)) return true;
    long left = atomic_load(&fail_countdown);
    if (left <= 0) return false;
    if (atomic_fetch_sub(&fail_countdown, 1) == 1) {
        atomic_store(&failing, true);
        return true;
    }
    return false;
}

void *core_malloc(size_t n)
{
    if (should_fail()) return NULL;
    return malloc(n ? n : 1);
}

void *core_calloc(size_t n, size_t size)
{
    if (should_fail()) return NULL;
    return calloc(n ? n : 1, size ? size : 1);
}

void *core_realloc(void *p, size_t n)
{
    if (should_fail()) return NULL;
    return realloc(p, n ? n : 1);
}

void core_free(void *p) { free(p); }

char *core_strndup(const char *s, size_t n)
{
    char *d = core_malloc(n + 1);
    if (!d) return NULL;
    if (n) memcpy(d, s, n);
    d[n] = '\0';
    return d;
}
