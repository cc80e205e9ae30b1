/* Length-carrying strings (STYLE rule 12). */
#include <limits.h>
#include <string.h>

#include "core.h"

str_t str_from_cstr(const char *s)
{
    if (!s) return STR_NULL;
    return (str_t){s, strlen(s)};
}

bool str_eq(str_t a, str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static char lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : c; }

bool str_eq_nocase(str_t a, str_t b)
{
    if (a.len != b.len) return false;
    for (size_t i = 0; i < a.len; i++)
        if (lower(a.ptr[i]) != lower(b.ptr[i])) return false;
    return true;
}

bool str_starts_with(str_t s, str_t prefix)
{
    return s.len >= prefix.len && (prefix.len == 0 || memcmp(s.ptr, prefix.ptr, prefix.len) == 0);
}

long str_find_char(str_t s, char c)
{
    if (s.len == 0) return -1;
    const char *p = memchr(s.ptr, c, s.len);
    return p ? (long)(p - s.ptr) : -1;
}

int str_to_u64(str_t s, uint64_t *out)
{
    if (s.len == 0 || s.len > 20) return CORE_EINVAL;
    uint64_t v = 0;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.ptr[i];
        if (c < '0' || c > '9') return CORE_EINVAL;
        uint64_t d = (uint64_t)(c - '0');
        if (v > (UINT64_MAX - d) / 10) return CORE_EINVAL;
        v = v * 10 + d;
    }
    *out = v;
    return CORE_OK;
}

int str_to_long(str_t s, long *out)
{
    bool neg = false;
    if (s.len && (s.ptr[0] == '-' || s.ptr[0] == '+')) {
        neg = s.ptr[0] == '-';
        s.ptr++;
        s.len--;
    }
    uint64_t v;
    if (str_to_u64(s, &v) != CORE_OK) return CORE_EINVAL;
    if (!neg && v > (uint64_t)LONG_MAX) return CORE_EINVAL;
    if (neg && v > (uint64_t)LONG_MAX + 1) return CORE_EINVAL;
    *out = neg ? (v == (uint64_t)LONG_MAX + 1 ? LONG_MIN : -(long)v) : (long)v;
    return CORE_OK;
}
