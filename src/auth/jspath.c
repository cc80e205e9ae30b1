/*
 * jwt-role-claim-key: where the role sits in the claims. Two spellings are accepted.
 *
 * PostgREST's JSPath DSL (its only syntax up to v14, still accepted after):
 *   path   := step+
 *   step   := "." key | "." '"' any-but-quote* '"' | "[" digits "]" | filter (last only)
 *   key    := (letter | digit | "_" | "$" | "@")+       (bytes >= 0x80 count as letters)
 *   filter := "[?(@" sp* op sp* '"' any-but-quote* '"' ")]"
 *   op     := "==" | "!=" | "^==" (starts with) | "==^" (ends with) | "*==" (contains)
 *   A filter picks the first array element that is a string and matches.
 *
 * The simple part of RFC 9535 (PostgREST 15's syntax): "$" then ".name", "['name']" /
 * "[\"name\"]", "[n]" (negative n counts from the end) and a final "[?@ == 'x']" or
 * "[?(@ != 'x')]". Wildcards, descendants, slices, unions and functions are refused at
 * startup rather than half-supported.
 *
 * Parsing happens once per config; evaluation walks the claims with no allocation.
 */
#include <string.h>

#include "auth/auth_int.h"

#define JSP_MAX_STEPS 64

typedef struct {
    const char *p;
    size_t len, pos;
    auth_jsp_step_t *steps;
    size_t n;
    char *msg;
    size_t msglen;
} jsp_parser_t;

static int fail(jsp_parser_t *ps, const char *what)
{
    if (ps->msg && ps->msglen) {
        int n = snprintf(ps->msg, ps->msglen, "%s at offset %zu", what, ps->pos);
        if (n < 0) ps->msg[0] = '\0';
    }
    return CORE_EINVAL;
}

static bool at_end(const jsp_parser_t *ps) { return ps->pos >= ps->len; }
static char peek(const jsp_parser_t *ps) { return at_end(ps) ? '\0' : ps->p[ps->pos]; }

static bool eat(jsp_parser_t *ps, const char *lit)
{
    size_t n = strlen(lit);
    if (ps->len - ps->pos < n || memcmp(ps->p + ps->pos, lit, n) != 0) return false;
    ps->pos += n;
    return true;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static void skip_space(jsp_parser_t *ps)
{
    while (!at_end(ps) && is_space(peek(ps))) ps->pos++;
}

static bool is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* Appends a step; s (may be NULL) is copied. */
static int add_step(jsp_parser_t *ps, auth_jsp_kind_t kind, auth_jsp_op_t op, const char *s,
                    size_t len, long index)
{
    if (ps->n == JSP_MAX_STEPS) return fail(ps, "path too long");
    auth_jsp_step_t *st = &ps->steps[ps->n];
    memset(st, 0, sizeof(*st));
    st->kind = kind;
    st->op = op;
    st->index = index;
    if (s) {
        st->s = core_strndup(s, len);
        if (!st->s) return CORE_ENOMEM;
        st->len = len;
    }
    ps->n++;
    return CORE_OK;
}

static int parse_index(jsp_parser_t *ps, bool allow_negative, long *out)
{
    bool neg = false;
    if (allow_negative && peek(ps) == '-') {
        neg = true;
        ps->pos++;
    }
    size_t start = ps->pos;
    while (!at_end(ps) && is_digit(peek(ps))) ps->pos++;
    str_t digits = {ps->p + start, ps->pos - start};
    uint64_t v;
    if (digits.len == 0) return fail(ps, "expected an array index");
    if (digits.len > 9 || str_to_u64(digits, &v) != CORE_OK) return fail(ps, "index too large");
    /* RFC 9535: no leading zeros, no "-0". The DSL was always lenient about zeros. */
    if (allow_negative && (digits.len > 1 && digits.ptr[0] == '0')) return fail(ps, "bad index");
    if (neg && v == 0) return fail(ps, "bad index");
    *out = neg ? -(long)v : (long)v;
    return CORE_OK;
}

/* ---- PostgREST DSL ------------------------------------------------------------------ */

/* A '"'-quoted DSL string (no escapes): returns its bounds. */
static int dsl_quoted(jsp_parser_t *ps, size_t *start, size_t *len)
{
    if (!eat(ps, "\"")) return fail(ps, "expected '\"'");
    *start = ps->pos;
    while (!at_end(ps) && peek(ps) != '"') ps->pos++;
    if (at_end(ps)) return fail(ps, "unterminated string");
    *len = ps->pos - *start;
    ps->pos++;
    return CORE_OK;
}

static int dsl_filter(jsp_parser_t *ps)
{
    size_t s, n;
    auth_jsp_op_t op;
    if (!eat(ps, "@")) return fail(ps, "expected '@'");
    skip_space(ps);
    if (eat(ps, "==^")) op = AUTH_JSP_SUFFIX;
    else if (eat(ps, "==")) op = AUTH_JSP_EQ;
    else if (eat(ps, "!=")) op = AUTH_JSP_NE;
    else if (eat(ps, "^==")) op = AUTH_JSP_PREFIX;
    else if (eat(ps, "*==")) op = AUTH_JSP_CONTAINS;
    else return fail(ps, "expected ==, !=, ^==, ==^ or *==");
    skip_space(ps);
    int rc = dsl_quoted(ps, &s, &n);
    if (rc != CORE_OK) return rc;
    if (!eat(ps, ")]")) return fail(ps, "expected ')]'");
    if (!at_end(ps)) return fail(ps, "a filter must be the last step");
    return add_step(ps, AUTH_JSP_FILTER, op, ps->p + s, n, 0);
}

static int parse_dsl(jsp_parser_t *ps)
{
    while (!at_end(ps)) {
        int rc;
        if (eat(ps, ".")) {
            size_t start = ps->pos, len;
            if (peek(ps) == '"') {
                if ((rc = dsl_quoted(ps, &start, &len)) != CORE_OK) return rc;
            } else {
                while (!at_end(ps)) {
                    unsigned char c = (unsigned char)peek(ps);
                    if (!is_alpha(c) && !is_digit((char)c) && c != '_' && c != '$' && c != '@')
                        break;
                    ps->pos++;
                }
                len = ps->pos - start;
                if (len == 0) return fail(ps, "expected a key");
            }
            rc = add_step(ps, AUTH_JSP_KEY, AUTH_JSP_EQ, ps->p + start, len, 0);
        } else if (eat(ps, "[?(")) {
            rc = dsl_filter(ps);
        } else if (eat(ps, "[")) {
            long idx;
            if ((rc = parse_index(ps, false, &idx)) != CORE_OK) return rc;
            if (!eat(ps, "]")) return fail(ps, "expected ']'");
            rc = add_step(ps, AUTH_JSP_INDEX, AUTH_JSP_EQ, NULL, 0, idx);
        } else {
            return fail(ps, "expected '.' or '['");
        }
        if (rc != CORE_OK) return rc;
    }
    return ps->n ? CORE_OK : fail(ps, "empty path");
}

/* ---- RFC 9535 subset ---------------------------------------------------------------- */

static int hex4(jsp_parser_t *ps, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = peek(ps);
        unsigned d;
        if (c >= '0' && c <= '9') d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') d = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') d = (unsigned)(c - 'A' + 10);
        else return fail(ps, "bad \\u escape");
        v = v * 16 + d;
        ps->pos++;
    }
    *out = v;
    return CORE_OK;
}

/* An RFC 9535 string literal in ' or " with JSON-style escapes, unescaped into buf (which
 * holds at least the rest of the input: unescaping never grows the text). */
static int rfc_string(jsp_parser_t *ps, char *buf, size_t *len)
{
    char q = peek(ps);
    if (q != '\'' && q != '"') return fail(ps, "expected a quoted name");
    ps->pos++;
    size_t o = 0;
    for (;;) {
        if (at_end(ps)) return fail(ps, "unterminated string");
        char c = ps->p[ps->pos++];
        if (c == q) break;
        if ((unsigned char)c < 0x20) return fail(ps, "control character in string");
        if (c != '\\') {
            buf[o++] = c;
            continue;
        }
        if (at_end(ps)) return fail(ps, "unterminated string");
        c = ps->p[ps->pos++];
        switch (c) {
        case 'b': buf[o++] = '\b'; break;
        case 'f': buf[o++] = '\f'; break;
        case 'n': buf[o++] = '\n'; break;
        case 'r': buf[o++] = '\r'; break;
        case 't': buf[o++] = '\t'; break;
        case '/': buf[o++] = '/'; break;
        case '\\': buf[o++] = '\\'; break;
        case '\'':
        case '"':
            if (c != q) return fail(ps, "bad escape");
            buf[o++] = c;
            break;
        case 'u': {
            unsigned cp = 0;
            int rc = hex4(ps, &cp);
            if (rc != CORE_OK) return rc;
            if (cp >= 0xD800 && cp <= 0xDFFF) {
                unsigned lo = 0;
                if (cp >= 0xDC00 || !eat(ps, "\\u")) return fail(ps, "bad surrogate pair");
                if ((rc = hex4(ps, &lo)) != CORE_OK) return rc;
                if (lo < 0xDC00 || lo > 0xDFFF) return fail(ps, "bad surrogate pair");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            if (cp == 0) return fail(ps, "NUL in string");
            /* UTF-8; never longer than the 6 or 12 escape bytes it replaces. */
            if (cp < 0x80) {
                buf[o++] = (char)cp;
            } else if (cp < 0x800) {
                buf[o++] = (char)(0xC0 | (cp >> 6));
                buf[o++] = (char)(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                buf[o++] = (char)(0xE0 | (cp >> 12));
                buf[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                buf[o++] = (char)(0x80 | (cp & 0x3F));
            } else {
                buf[o++] = (char)(0xF0 | (cp >> 18));
                buf[o++] = (char)(0x80 | ((cp >> 12) & 0x3F));
                buf[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                buf[o++] = (char)(0x80 | (cp & 0x3F));
            }
            break;
        }
        default: return fail(ps, "bad escape");
        }
    }
    *len = o;
    return CORE_OK;
}

static int rfc_filter(jsp_parser_t *ps, char *buf)
{
    bool paren = eat(ps, "(");
    auth_jsp_op_t op;
    size_t len;
    skip_space(ps);
    if (!eat(ps, "@")) return fail(ps, "only [?@ == 'x'] and [?@ != 'x'] filters are supported");
    skip_space(ps);
    if (eat(ps, "==")) op = AUTH_JSP_EQ;
    else if (eat(ps, "!=")) op = AUTH_JSP_NE;
    else return fail(ps, "only [?@ == 'x'] and [?@ != 'x'] filters are supported");
    skip_space(ps);
    int rc = rfc_string(ps, buf, &len);
    if (rc != CORE_OK) return rc;
    skip_space(ps);
    if (paren && !eat(ps, ")")) return fail(ps, "expected ')'");
    skip_space(ps);
    if (!eat(ps, "]")) return fail(ps, "expected ']'");
    if (!at_end(ps)) return fail(ps, "a filter must be the last step");
    return add_step(ps, AUTH_JSP_FILTER, op, buf, len, 0);
}

static int parse_rfc(jsp_parser_t *ps, char *buf)
{
    while (!at_end(ps)) {
        int rc;
        if (eat(ps, "..")) return fail(ps, "descendant segments (..) are not supported");
        if (eat(ps, ".")) {
            size_t start = ps->pos;
            unsigned char c = (unsigned char)peek(ps);
            if (c == '*') return fail(ps, "wildcards are not supported");
            if (!is_alpha(c) && c != '_') return fail(ps, "expected a member name");
            while (!at_end(ps)) {
                c = (unsigned char)peek(ps);
                if (!is_alpha(c) && !is_digit((char)c) && c != '_') break;
                ps->pos++;
            }
            rc = add_step(ps, AUTH_JSP_KEY, AUTH_JSP_EQ, ps->p + start, ps->pos - start, 0);
        } else if (eat(ps, "[")) {
            skip_space(ps);
            char c = peek(ps);
            if (c == '?') {
                ps->pos++;
                skip_space(ps);
                return rfc_filter(ps, buf);
            }
            if (c == '\'' || c == '"') {
                size_t len;
                if ((rc = rfc_string(ps, buf, &len)) != CORE_OK) return rc;
                rc = add_step(ps, AUTH_JSP_KEY, AUTH_JSP_EQ, buf, len, 0);
            } else if (c == '-' || is_digit(c)) {
                long idx;
                if ((rc = parse_index(ps, true, &idx)) != CORE_OK) return rc;
                rc = add_step(ps, AUTH_JSP_INDEX, AUTH_JSP_EQ, NULL, 0, idx);
            } else {
                return fail(ps, "only names, indexes and a final filter are supported");
            }
            if (rc != CORE_OK) return rc;
            skip_space(ps);
            if (!eat(ps, "]")) return fail(ps, "expected ']' (unions and slices are not supported)");
            continue;
        } else {
            return fail(ps, "expected '.' or '['");
        }
        if (rc != CORE_OK) return rc;
    }
    return CORE_OK; /* "$" alone selects the claims object itself */
}

int auth_jspath_parse(str_t text, auth_jspath_t *out, char *msg, size_t msglen)
{
    memset(out, 0, sizeof(*out));
    if (msg && msglen) msg[0] = '\0';
    jsp_parser_t ps = {.p = text.ptr, .len = text.len, .msg = msg, .msglen = msglen};
    ps.steps = core_calloc(JSP_MAX_STEPS, sizeof(auth_jsp_step_t));
    char *buf = core_malloc(text.len + 1);
    int rc = CORE_ENOMEM;
    if (!ps.steps || !buf) goto out;
    if (text.len && memchr(text.ptr, '\0', text.len)) {
        rc = fail(&ps, "NUL byte");
    } else if (eat(&ps, "$$") || eat(&ps, "$")) {
        out->rfc = true;
        rc = parse_rfc(&ps, buf);
    } else {
        rc = parse_dsl(&ps);
    }
out:
    core_free(buf);
    if (rc == CORE_ENOMEM && msg && msglen) {
        int n = snprintf(msg, msglen, "out of memory");
        if (n < 0) msg[0] = '\0';
    }
    out->steps = ps.steps;
    out->n = ps.n;
    if (rc != CORE_OK) auth_jspath_free(out);
    return rc;
}

void auth_jspath_free(auth_jspath_t *p)
{
    if (p->steps)
        for (size_t i = 0; i < p->n; i++) core_free(p->steps[i].s);
    core_free(p->steps);
    memset(p, 0, sizeof(*p));
}

static bool filter_match(const auth_jsp_step_t *st, bool rfc, json_t *el)
{
    if (!json_is_string(el)) return rfc && st->op == AUTH_JSP_NE;
    const char *s = json_string_value(el);
    size_t n = json_string_length(el);
    bool eq = n == st->len && memcmp(s, st->s, n) == 0;
    switch (st->op) {
    case AUTH_JSP_EQ: return eq;
    case AUTH_JSP_NE: return !eq;
    case AUTH_JSP_PREFIX: return n >= st->len && memcmp(s, st->s, st->len) == 0;
    case AUTH_JSP_SUFFIX: return n >= st->len && memcmp(s + n - st->len, st->s, st->len) == 0;
    case AUTH_JSP_CONTAINS:
        return st->len == 0 || (n >= st->len && memmem(s, n, st->s, st->len) != NULL);
    }
    return false;
}

json_t *auth_jspath_eval(const auth_jspath_t *p, json_t *root)
{
    json_t *cur = root;
    for (size_t i = 0; i < p->n && cur; i++) {
        const auth_jsp_step_t *st = &p->steps[i];
        switch (st->kind) {
        case AUTH_JSP_KEY:
            cur = json_is_object(cur) ? json_object_getn(cur, st->s, st->len) : NULL;
            break;
        case AUTH_JSP_INDEX: {
            if (!json_is_array(cur)) return NULL;
            size_t n = json_array_size(cur);
            long idx = st->index;
            if (idx < 0) idx += (long)n;
            cur = (idx < 0 || (size_t)idx >= n) ? NULL : json_array_get(cur, (size_t)idx);
            break;
        }
        case AUTH_JSP_FILTER: {
            if (!json_is_array(cur)) return NULL;
            json_t *found = NULL;
            size_t j;
            json_t *el;
            json_array_foreach(cur, j, el) {
                if (filter_match(st, p->rfc, el)) {
                    found = el;
                    break;
                }
            }
            cur = found;
            break;
        }
        }
    }
    return cur;
}
