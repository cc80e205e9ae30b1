/* Bounded growable buffers with a sticky status (STYLE rules 7 and 13). */
#include <stdio.h>
#include <string.h>

#include "core.h"

void core_buf_init(core_buf_t *b, size_t max)
{
    b->ptr = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
    b->status = CORE_OK;
}

void core_buf_init_over(core_buf_t *b, char *mem, size_t cap)
{
    /* max = cap - 1 keeps len + n + 1 <= cap, so reserve() never reallocates mem */
    b->ptr = mem;
    b->len = 0;
    b->cap = cap;
    b->max = cap - 1;
    b->status = CORE_OK;
    mem[0] = '\0';
}

void core_buf_free(core_buf_t *b)
{
    core_free(b->ptr);
    b->ptr = NULL;
    b->len = b->cap = 0;
}

void core_buf_reset(core_buf_t *b)
{
    b->len = 0;
    b->status = CORE_OK;
    if (b->ptr) b->ptr[0] = '\0';
}

/* Makes room for n more bytes plus the NUL; false (and sticky status) on failure. */
static bool reserve(core_buf_t *b, size_t n)
{
    if (b->status != CORE_OK) return false;
    if (n > b->max || b->len > b->max - n) {
        b->status = CORE_ELIMIT;
        return false;
    }
    size_t need = b->len + n + 1;
    if (need <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 1024; /* most statements and JSON texts fit at once */
    while (cap < need) cap *= 2;
    if (cap > b->max + 1) cap = b->max + 1;
    char *p = core_realloc(b->ptr, cap);
    if (!p) {
        b->status = CORE_ENOMEM;
        return false;
    }
    b->ptr = p;
    b->cap = cap;
    return true;
}

size_t core_u64_str(char *out, uint64_t v)
{
    char d[20];
    size_t n = 0;
    do {
        d[sizeof(d) - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v && n < sizeof(d));
    memcpy(out, d + sizeof(d) - n, n);
    out[n] = '\0';
    return n;
}

void core_buf_append_u64(core_buf_t *b, uint64_t v)
{
    char d[21];
    size_t n = core_u64_str(d, v);
    core_buf_append(b, d, n);
}

void core_buf_truncate(core_buf_t *b, size_t len)
{
    if (len < b->len) b->len = len;
    b->status = CORE_OK;
    if (b->ptr) b->ptr[b->len] = '\0';
}

void core_buf_append(core_buf_t *b, const void *data, size_t n)
{
    if (!reserve(b, n)) return;
    if (n) memcpy(b->ptr + b->len, data, n);
    b->len += n;
    b->ptr[b->len] = '\0';
}

void core_buf_append_str(core_buf_t *b, str_t s) { core_buf_append(b, s.ptr, s.len); }

void core_buf_append_cstr(core_buf_t *b, const char *s) { core_buf_append(b, s, strlen(s)); }

void core_buf_append_char(core_buf_t *b, char c) { core_buf_append(b, &c, 1); }

void core_buf_appendf(core_buf_t *b, const char *fmt, ...)
{
    if (b->status != CORE_OK) return;
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->status = CORE_EINVAL;
        return;
    }
    if ((size_t)n < sizeof(small)) {
        core_buf_append(b, small, (size_t)n);
        return;
    }
    if (!reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    (void)vsnprintf(b->ptr + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at s[0..len), or 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t len)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t cp;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        cp = c & 0x1Fu;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        cp = c & 0x0Fu;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        cp = c & 0x07u;
    } else {
        return 0;
    }
    if (len < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3Fu);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

/* Whether any of the 8 bytes at p is a control character, '"', '\\' or not ASCII (the
 * bit tricks of "Bit Twiddling Hacks": a byte below n, a zero byte after an xor). Exact
 * for "any", which is all the caller needs. */
static inline bool word_needs_escape(const unsigned char *p)
{
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    uint64_t w;
    memcpy(&w, p, 8);
    uint64_t ctl = (w - 0x20 * ones) & ~w;
    uint64_t q = w ^ (0x22 * ones), bs = w ^ (0x5C * ones);
    q = (q - ones) & ~q;
    bs = (bs - ones) & ~bs;
    return ((w | ctl | q | bs) & high) != 0;
}

void core_buf_append_json(core_buf_t *b, str_t s)
{
    static const char hex[] = "0123456789abcdef";
    core_buf_append_char(b, '"');
    const unsigned char *p = (const unsigned char *)s.ptr;
    size_t i = 0, run = 0;
    while (i < s.len) {
        /* fast path: printable ASCII other than '"' and '\\' is copied as it is, eight
         * bytes at a time while no byte of the word can need escaping */
        size_t j = i;
        while (j + 8 <= s.len && !word_needs_escape(p + j)) j += 8;
        while (j < s.len && p[j] >= 0x20 && p[j] < 0x80 && p[j] != '"' && p[j] != '\\') j++;
        run += j - i;
        i = j;
        if (i == s.len) break;
        unsigned char c = p[i];
        size_t n = 1;
        const char *esc = NULL;
        char u[6];
        if (c == '"') esc = "\\\"";
        else if (c == '\\') esc = "\\\\";
        else if (c == '\n') esc = "\\n";
        else if (c == '\r') esc = "\\r";
        else if (c == '\t') esc = "\\t";
        else if (c < 0x20) {
            u[0] = '\\';
            u[1] = 'u';
            u[2] = '0';
            u[3] = '0';
            u[4] = hex[c >> 4];
            u[5] = hex[c & 15];
        } else if (c >= 0x80) {
            n = utf8_seq(p + i, s.len - i);
            if (n == 0) esc = "\xEF\xBF\xBD"; /* U+FFFD for a byte that is not UTF-8 */
        }
        if (esc || c < 0x20) {
            core_buf_append(b, p + i - run, run);
            run = 0;
            if (esc) core_buf_append_cstr(b, esc);
            else core_buf_append(b, u, 6);
            i += n ? n : 1;
            continue;
        }
        run += n;
        i += n;
    }
    core_buf_append(b, p + i - run, run);
    core_buf_append_char(b, '"');
}

void core_buf_append_json_or_null(core_buf_t *b, str_t s)
{
    if (!s.ptr) core_buf_append_cstr(b, "null");
    else core_buf_append_json(b, s);
}
