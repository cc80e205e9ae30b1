/*
 * Query-string parser: raw "a=b&c=d" → rest_query_t in the request arena. Every syntax error
 * is a 400 PGRST100 with a details line saying what was expected. Inputs are bounded by the
 * HTTP header limit; recursion (logic trees, embeds) is bounded by REST_MAX_DEPTH.
 */
#include <string.h>

#include "rest/rest.h"

#define REST_MAX_DEPTH 16
#define REST_MAX_ITEMS 4096

static int parse_err(core_arena_t *a, core_err_t *err, const char *msg, str_t input, const char *details)
{
    *err = (core_err_t){0};
    err->status = 400;
    err->code = "PGRST100";
    core_buf_t b;
    core_buf_init(&b, 4096);
    core_buf_appendf(&b, "%s", msg);
    if (input.ptr) core_buf_appendf(&b, " (%.*s)", (int)(input.len > 200 ? 200 : input.len), input.ptr);
    char *m = core_buf_status(&b) == CORE_OK ? core_arena_strdup(a, core_buf_str(&b)) : NULL;
    core_buf_free(&b);
    err->message = m ? str_from_cstr(m) : str_from_cstr(msg);
    err->details = str_from_cstr(details);
    return CORE_EINVAL;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int rest_url_decode(core_arena_t *a, str_t s, str_t *out)
{
    if (str_find_char(s, '%') < 0 && str_find_char(s, '+') < 0) {
        *out = s;
        return CORE_OK;
    }
    char *d = core_arena_alloc(a, s.len + 1);
    if (!d) return CORE_ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.ptr[i];
        if (c == '+') {
            d[n++] = ' ';
        } else if (c == '%') {
            if (i + 2 >= s.len) return CORE_EINVAL;
            int h = hexval(s.ptr[i + 1]), l = hexval(s.ptr[i + 2]);
            if (h < 0 || l < 0) return CORE_EINVAL;
            char v = (char)(h * 16 + l);
            if (v == '\0') return CORE_EINVAL;
            d[n++] = v;
            i += 2;
        } else {
            d[n++] = c;
        }
    }
    d[n] = '\0';
    *out = (str_t){d, n};
    return CORE_OK;
}

/* ---- small cursor helpers ------------------------------------------------------------ */

static bool is_ident_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '$' || (unsigned char)c >= 0x80;
}

/* A name: a run of identifier characters or spaces/dashes inside; or a "quoted" name. */
static str_t trim(str_t s)
{
    while (s.len && (s.ptr[0] == ' ')) {
        s.ptr++;
        s.len--;
    }
    while (s.len && s.ptr[s.len - 1] == ' ') s.len--;
    return s;
}

/* Splits s on `sep` at parenthesis depth 0 and outside double quotes. */
static int split_top(core_arena_t *a, str_t s, char sep, str_t **out, size_t *n)
{
    size_t cap = 1;
    int depth = 0;
    bool q = false;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.ptr[i];
        if (q) {
            if (c == '\\' && i + 1 < s.len) i++;
            else if (c == '"') q = false;
        } else if (c == '"') q = true;
        else if (c == '(') depth++;
        else if (c == ')') depth--;
        else if (c == sep && depth == 0) cap++;
    }
    if (cap > REST_MAX_ITEMS) return CORE_ELIMIT;
    str_t *v = core_arena_alloc(a, cap * sizeof(str_t));
    if (!v) return CORE_ENOMEM;
    size_t cnt = 0, start = 0;
    depth = 0;
    q = false;
    for (size_t i = 0; i <= s.len; i++) {
        char c = i < s.len ? s.ptr[i] : sep;
        if (i < s.len && q) {
            if (c == '\\' && i + 1 < s.len) i++;
            else if (c == '"') q = false;
            continue;
        }
        if (i < s.len && c == '"') q = true;
        else if (i < s.len && c == '(') depth++;
        else if (i < s.len && c == ')') depth--;
        else if (c == sep && (depth == 0 || i == s.len)) {
            v[cnt++] = (str_t){s.ptr + start, i - start};
            start = i + 1;
        }
    }
    *out = v;
    *n = cnt;
    return CORE_OK;
}

/* Removes surrounding double quotes and backslash escapes from a value. */
static int unquote(core_arena_t *a, str_t s, str_t *out)
{
    if (s.len < 2 || s.ptr[0] != '"' || s.ptr[s.len - 1] != '"') {
        *out = s;
        return CORE_OK;
    }
    char *d = core_arena_alloc(a, s.len);
    if (!d) return CORE_ENOMEM;
    size_t n = 0;
    for (size_t i = 1; i + 1 < s.len; i++) {
        if (s.ptr[i] == '\\' && i + 2 < s.len) i++;
        d[n++] = s.ptr[i];
    }
    d[n] = '\0';
    *out = (str_t){d, n};
    return CORE_OK;
}

/* ---- filters ---------------------------------------------------------------------------- */

static const struct {
    const char *name;
    rest_op_t op;
} OPS[] = {
    {"eq", REST_OP_EQ},       {"neq", REST_OP_NEQ},     {"gt", REST_OP_GT},
    {"gte", REST_OP_GTE},     {"lt", REST_OP_LT},       {"lte", REST_OP_LTE},
    {"like", REST_OP_LIKE},   {"ilike", REST_OP_ILIKE}, {"match", REST_OP_MATCH},
    {"imatch", REST_OP_IMATCH}, {"in", REST_OP_IN},     {"is", REST_OP_IS},
    {"isdistinct", REST_OP_ISDISTINCT}, {"fts", REST_OP_FTS}, {"plfts", REST_OP_PLFTS},
    {"phfts", REST_OP_PHFTS}, {"wfts", REST_OP_WFTS},   {"cs", REST_OP_CS},
    {"cd", REST_OP_CD},       {"ov", REST_OP_OV},       {"sl", REST_OP_SL},
    {"sr", REST_OP_SR},       {"nxr", REST_OP_NXR},     {"nxl", REST_OP_NXL},
    {"adj", REST_OP_ADJ},
};

static bool op_takes_quant(rest_op_t op)
{
    return op == REST_OP_EQ || op == REST_OP_NEQ || op == REST_OP_GT || op == REST_OP_GTE ||
           op == REST_OP_LT || op == REST_OP_LTE || op == REST_OP_LIKE || op == REST_OP_ILIKE ||
           op == REST_OP_MATCH || op == REST_OP_IMATCH;
}

static bool op_is_fts(rest_op_t op)
{
    return op == REST_OP_FTS || op == REST_OP_PLFTS || op == REST_OP_PHFTS || op == REST_OP_WFTS;
}

/* Parses "[not.]op[(mod)].value" into f (column already set). */
static int parse_op_value(core_arena_t *a, str_t s, rest_filter_t *f, core_err_t *err)
{
    str_t orig = s;
    if (str_starts_with(s, STR_LIT("not."))) {
        f->negate = true;
        s.ptr += 4;
        s.len -= 4;
    }
    size_t i = 0;
    while (i < s.len && s.ptr[i] >= 'a' && s.ptr[i] <= 'z') i++;
    str_t opname = {s.ptr, i};
    bool found = false;
    for (size_t k = 0; k < sizeof(OPS) / sizeof(OPS[0]); k++) {
        if (str_eq(opname, str_from_cstr(OPS[k].name))) {
            f->op = OPS[k].op;
            found = true;
            break;
        }
    }
    if (!found)
        return parse_err(a, err, "failed to parse filter", orig,
                         "unknown operator: expected eq, neq, gt, gte, lt, lte, like, ilike, match, "
                         "imatch, in, is, isdistinct, fts, plfts, phfts, wfts, cs, cd, ov, sl, sr, "
                         "nxr, nxl or adj, optionally after not.");
    if (i < s.len && s.ptr[i] == '(') {
        long close = str_find_char((str_t){s.ptr + i, s.len - i}, ')');
        if (close < 0) return parse_err(a, err, "failed to parse filter", orig, "unclosed modifier: expected \")\"");
        str_t mod = {s.ptr + i + 1, (size_t)close - 1};
        if (op_takes_quant(f->op) && str_eq(mod, STR_LIT("any"))) f->quant = REST_QUANT_ANY;
        else if (op_takes_quant(f->op) && str_eq(mod, STR_LIT("all"))) f->quant = REST_QUANT_ALL;
        else if (op_is_fts(f->op) && mod.len > 0 && mod.len < 64) {
            for (size_t k = 0; k < mod.len; k++)
                if (!is_ident_char(mod.ptr[k]))
                    return parse_err(a, err, "failed to parse filter", orig, "invalid full-text search language");
            f->lang = mod;
        } else
            return parse_err(a, err, "failed to parse filter", orig,
                             "unexpected modifier: expected (any) or (all), or a language for fts operators");
        i += (size_t)close + 1;
    }
    if (i >= s.len || s.ptr[i] != '.')
        return parse_err(a, err, "failed to parse filter", orig, "expected \".\" and a value after the operator");
    str_t value = {s.ptr + i + 1, s.len - i - 1};

    if (f->op == REST_OP_IS) {
        static const char *const ok[] = {"null", "not_null", "true", "false", "unknown"};
        bool valid = false;
        for (size_t k = 0; k < 5; k++)
            if (str_eq_nocase(value, str_from_cstr(ok[k]))) valid = true;
        if (!valid)
            return parse_err(a, err, "failed to parse filter", orig,
                             "is accepts null, not_null, true, false or unknown");
        f->value = value;
        return CORE_OK;
    }
    if (f->op == REST_OP_IN || f->quant != REST_QUANT_NONE) {
        bool paren = f->op == REST_OP_IN;
        char open = paren ? '(' : '{', shut = paren ? ')' : '}';
        if (value.len < 2 || value.ptr[0] != open || value.ptr[value.len - 1] != shut)
            return parse_err(a, err, "failed to parse filter", orig,
                             paren ? "in expects a list in parentheses: in.(a,b,c)"
                                   : "(any)/(all) expect a list in braces: eq(any).{a,b}");
        str_t inner = {value.ptr + 1, value.len - 2};
        if (inner.len == 0) {
            f->list = NULL;
            f->nlist = 0;
        } else {
            int rc = split_top(a, inner, ',', &f->list, &f->nlist);
            if (rc == CORE_ELIMIT) return parse_err(a, err, "too many list items", STR_NULL, NULL);
            if (rc != CORE_OK) return rc;
            for (size_t k = 0; k < f->nlist; k++) {
                rc = unquote(a, trim(f->list[k]), &f->list[k]);
                if (rc != CORE_OK) return rc;
            }
        }
        f->value = value;
        return CORE_OK;
    }
    return unquote(a, value, &f->value);
}

static bool valid_field_name(str_t s)
{
    if (!s.ptr || s.len == 0 || s.len > (size_t)63 * 4) return false;
    for (size_t i = 0; i < s.len; i++)
        if (s.ptr[i] == '(' || s.ptr[i] == ')' || s.ptr[i] == ',' || s.ptr[i] == '"' ||
            s.ptr[i] == ':')
            return false;
    return true;
}


/* ---- JSON paths: col->key->>key, col->0, col->>-1 ------------------------------------------ */

static bool is_index(str_t k)
{
    size_t i = k.len && k.ptr[0] == '-' ? 1 : 0;
    if (i == k.len || k.len > 12) return false;
    for (; i < k.len; i++)
        if (k.ptr[i] < '0' || k.ptr[i] > '9') return false;
    return true;
}

/* Splits "col->a->>b" into the column and its path. Keys may hold any character but the
 * arrows themselves; an empty key is an error. */
static int split_json(core_arena_t *a, str_t s, str_t *column, rest_json_op_t **ops, size_t *nops,
                      const char *what, core_err_t *err)
{
    *ops = NULL;
    *nops = 0;
    size_t n = 0;
    for (size_t i = 0; i + 1 < s.len; i++)
        if (s.ptr[i] == '-' && s.ptr[i + 1] == '>') n++;
    if (n == 0) {
        *column = s;
        return CORE_OK;
    }
    if (n > 64) return parse_err(a, err, what, s, "JSON path too deep");
    rest_json_op_t *v = core_arena_zalloc(a, n * sizeof(*v));
    if (!v) return CORE_ENOMEM;
    size_t k = 0, i = 0;
    while (i + 1 < s.len && !(s.ptr[i] == '-' && s.ptr[i + 1] == '>')) i++;
    *column = trim((str_t){s.ptr, i});
    if (column->len == 0) return parse_err(a, err, what, s, "expected a column before \"->\"");
    while (i < s.len) {
        i += 2; /* "->" */
        bool text = i < s.len && s.ptr[i] == '>';
        if (text) i++;
        size_t start = i;
        while (i < s.len && !(i + 1 < s.len && s.ptr[i] == '-' && s.ptr[i + 1] == '>')) i++;
        str_t key = {s.ptr + start, i - start};
        if (key.len == 0) return parse_err(a, err, what, s, "expected a key or an index after \"->\"");
        if (key.ptr[0] == '-' && !is_index(key))
            return parse_err(a, err, what, s, "unexpected \"-\": expected a digit after it");
        v[k++] = (rest_json_op_t){key, text, is_index(key)};
    }
    *ops = v;
    *nops = k;
    return CORE_OK;
}

/* ---- logic trees: or=(a.eq.1,and(b.gt.2,c.is.null)) ------------------------------------- */

static int parse_logic_body(core_arena_t *a, str_t body, rest_logic_t *l, int depth, core_err_t *err);

static int parse_cond(core_arena_t *a, str_t s, rest_cond_t *c, int depth, core_err_t *err)
{
    s = trim(s);
    bool neg = false;
    str_t t = s;
    if (str_starts_with(t, STR_LIT("not."))) {
        neg = true;
        t.ptr += 4;
        t.len -= 4;
    }
    bool is_and = str_starts_with(t, STR_LIT("and("));
    bool is_or = str_starts_with(t, STR_LIT("or("));
    if (is_and || is_or) {
        size_t skip = is_and ? 3 : 2;
        str_t body = {t.ptr + skip, t.len - skip};
        rest_logic_t *l = core_arena_zalloc(a, sizeof(*l));
        if (!l) return CORE_ENOMEM;
        l->is_and = is_and;
        l->negate = neg;
        c->is_logic = true;
        c->logic = l;
        return parse_logic_body(a, body, l, depth + 1, err);
    }
    long dot = str_find_char(s, '.');
    if (dot <= 0) return parse_err(a, err, "failed to parse logic tree", s, "expected a filter like col.eq.value");
    c->is_logic = false;
    int rc = split_json(a, trim((str_t){s.ptr, (size_t)dot}), &c->filter.column, &c->filter.json,
                        &c->filter.njson, "failed to parse logic tree", err);
    if (rc != CORE_OK) return rc;
    if (!valid_field_name(c->filter.column))
        return parse_err(a, err, "failed to parse logic tree", s, "invalid column name");
    return parse_op_value(a, (str_t){s.ptr + dot + 1, s.len - (size_t)dot - 1}, &c->filter, err);
}

static int parse_logic_body(core_arena_t *a, str_t body, rest_logic_t *l, int depth, core_err_t *err)
{
    if (depth > REST_MAX_DEPTH) return parse_err(a, err, "logic tree nested too deeply", STR_NULL, NULL);
    if (body.len < 2 || body.ptr[0] != '(' || body.ptr[body.len - 1] != ')')
        return parse_err(a, err, "failed to parse logic tree", body, "expected a list in parentheses: (a.eq.1,b.eq.2)");
    str_t inner = {body.ptr + 1, body.len - 2};
    str_t *parts;
    size_t n;
    int rc = split_top(a, inner, ',', &parts, &n);
    if (rc == CORE_ELIMIT) return parse_err(a, err, "too many conditions", STR_NULL, NULL);
    if (rc != CORE_OK) return rc;
    l->conds = core_arena_zalloc(a, n * sizeof(rest_cond_t));
    if (!l->conds) return CORE_ENOMEM;
    l->nconds = n;
    for (size_t i = 0; i < n; i++) {
        rc = parse_cond(a, parts[i], &l->conds[i], depth, err);
        if (rc != CORE_OK) return rc;
    }
    return CORE_OK;
}

/* ---- select ------------------------------------------------------------------------------ */

static bool valid_cast(str_t s)
{
    if (s.len == 0 || s.len > 64) return false;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.ptr[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == ' ' || c == '[' || c == ']'))
            return false;
    }
    return true;
}

static int parse_select_list(core_arena_t *a, str_t s, rest_select_t **out, size_t *n, int depth,
                             core_err_t *err);

static const char *const AGG_NAMES[] = {NULL, "count", "sum", "avg", "min", "max"};

/* "field.sum()", "count()", optionally followed by "::cast": sets it->agg, it->agg_cast and
 * shortens *s to the field (empty for a bare count()). */
static int parse_aggregate(core_arena_t *a, str_t *s, rest_select_t *it, str_t orig, core_err_t *err)
{
    str_t t = *s;
    long p = -1;
    for (size_t i = 0; i + 1 < t.len; i++)
        if (t.ptr[i] == '(' && t.ptr[i + 1] == ')') p = (long)i;
    if (p < 0 || str_find_char(t, '(') != p) return CORE_OK; /* "()" inside an embed */
    str_t after = {t.ptr + p + 2, t.len - (size_t)p - 2};
    str_t before = {t.ptr, (size_t)p};
    for (int k = REST_AGG_COUNT; k <= REST_AGG_MAX; k++) {
        str_t name = str_from_cstr(AGG_NAMES[k]);
        if (before.len < name.len || memcmp(before.ptr + before.len - name.len, name.ptr, name.len) != 0) continue;
        size_t flen = before.len - name.len;
        if (flen > 0 && before.ptr[flen - 1] != '.') continue;
        if (flen == 0 && k != REST_AGG_COUNT) continue;
        if (after.len > 0) {
            if (!str_starts_with(after, STR_LIT("::")))
                return parse_err(a, err, "failed to parse select parameter", orig, "expected \"::type\" after an aggregate");
            it->agg_cast = trim((str_t){after.ptr + 2, after.len - 2});
            if (!valid_cast(it->agg_cast))
                return parse_err(a, err, "failed to parse select parameter", orig, "invalid cast type");
        }
        it->agg = k;
        *s = trim((str_t){before.ptr, flen ? flen - 1 : 0});
        return CORE_OK;
    }
    return CORE_OK;
}

static int parse_select_item(core_arena_t *a, str_t s, rest_select_t *it, int depth, core_err_t *err)
{
    str_t orig = s;
    s = trim(s);
    if (s.len == 0) return parse_err(a, err, "failed to parse select parameter", orig, "empty select item");
    if (str_eq(s, STR_LIT("*"))) {
        it->star = true;
        return CORE_OK;
    }
    if (str_starts_with(s, STR_LIT("..."))) {
        it->spread = true;
        s = trim((str_t){s.ptr + 3, s.len - 3});
        if (str_find_char(s, '(') < 0)
            return parse_err(a, err, "failed to parse select parameter", orig, "expected an embed after \"...\": ...rel(cols)");
    }
    /* alias:  — a ':' not followed by ':' before any '(' */
    for (size_t i = 0; i + 1 < s.len; i++) {
        if (s.ptr[i] == '(') break;
        if (s.ptr[i] == ':' && s.ptr[i + 1] != ':' && (i == 0 || s.ptr[i - 1] != ':')) {
            it->alias = trim((str_t){s.ptr, i});
            if (!valid_field_name(it->alias))
                return parse_err(a, err, "failed to parse select parameter", orig, "invalid alias");
            s = trim((str_t){s.ptr + i + 1, s.len - i - 1});
            break;
        }
    }
    if (!it->spread) {
        int rc = parse_aggregate(a, &s, it, orig, err);
        if (rc != CORE_OK) return rc;
        if (it->agg && s.len == 0) return CORE_OK; /* count() */
    }
    long paren = str_find_char(s, '(');
    if (paren >= 0 && it->agg)
        return parse_err(a, err, "failed to parse select parameter", orig, "aggregates apply to columns, not embeds");
    if (paren >= 0) {
        if (s.ptr[s.len - 1] != ')')
            return parse_err(a, err, "failed to parse select parameter", orig, "expected \")\" to close an embed");
        str_t head = trim((str_t){s.ptr, (size_t)paren});
        str_t body = {s.ptr + paren + 1, s.len - (size_t)paren - 2};
        long bang = str_find_char(head, '!');
        if (bang >= 0) {
            it->hint = (str_t){head.ptr + bang + 1, head.len - (size_t)bang - 1};
            head.len = (size_t)bang;
            /* the join type comes last: rel!inner, rel!fk!inner, rel!left */
            str_t h = it->hint;
            long b2 = str_find_char(h, '!');
            str_t last = b2 >= 0 ? (str_t){h.ptr + b2 + 1, h.len - (size_t)b2 - 1} : h;
            if (str_eq(last, STR_LIT("inner")) || str_eq(last, STR_LIT("left"))) {
                it->inner = str_eq(last, STR_LIT("inner"));
                it->hint = b2 >= 0 ? (str_t){h.ptr, (size_t)b2} : STR_NULL;
            }
            if (it->hint.ptr && (it->hint.len == 0 || str_find_char(it->hint, '!') >= 0))
                return parse_err(a, err, "failed to parse select parameter", orig, "expected rel!hint!inner");
        }
        it->is_embed = true;
        it->name = head;
        if (!valid_field_name(head))
            return parse_err(a, err, "failed to parse select parameter", orig, "invalid relation name");
        if (depth + 1 > REST_MAX_DEPTH) return parse_err(a, err, "select nested too deeply", STR_NULL, NULL);
        if (trim(body).len == 0) return CORE_OK;
        return parse_select_list(a, body, &it->children, &it->nchildren, depth + 1, err);
    }
    /* name::cast */
    for (size_t i = 0; i + 1 < s.len; i++) {
        if (s.ptr[i] == ':' && s.ptr[i + 1] == ':') {
            it->cast = trim((str_t){s.ptr + i + 2, s.len - i - 2});
            if (!valid_cast(it->cast))
                return parse_err(a, err, "failed to parse select parameter", orig, "invalid cast type");
            s = trim((str_t){s.ptr, i});
            break;
        }
    }
    if (s.len >= 2 && s.ptr[0] == '"' && s.ptr[s.len - 1] == '"') {
        int rc = unquote(a, s, &it->name);
        if (rc != CORE_OK) return rc;
    } else {
        int rc = split_json(a, s, &it->name, &it->json, &it->njson, "failed to parse select parameter", err);
        if (rc != CORE_OK) return rc;
        s = it->name;
    }
    if (!valid_field_name(it->name) && !(s.len >= 2 && s.ptr[0] == '"'))
        return parse_err(a, err, "failed to parse select parameter", orig, "invalid column name");
    return CORE_OK;
}

static int parse_select_list(core_arena_t *a, str_t s, rest_select_t **out, size_t *n, int depth,
                             core_err_t *err)
{
    str_t *parts;
    size_t cnt;
    int rc = split_top(a, s, ',', &parts, &cnt);
    if (rc == CORE_ELIMIT) return parse_err(a, err, "too many select items", STR_NULL, NULL);
    if (rc != CORE_OK) return rc;
    rest_select_t *items = core_arena_zalloc(a, cnt * sizeof(rest_select_t));
    if (!items) return CORE_ENOMEM;
    for (size_t i = 0; i < cnt; i++) {
        rc = parse_select_item(a, parts[i], &items[i], depth, err);
        if (rc != CORE_OK) return rc;
    }
    *out = items;
    *n = cnt;
    return CORE_OK;
}

static bool any_aggregate(const rest_select_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].agg || any_aggregate(v[i].children, v[i].nchildren)) return true;
    return false;
}

/* ---- order ------------------------------------------------------------------------------- */

static int parse_order(core_arena_t *a, str_t embed, str_t s, rest_query_t *q, core_err_t *err)
{
    str_t *parts;
    size_t cnt;
    int rc = split_top(a, s, ',', &parts, &cnt);
    if (rc == CORE_ELIMIT) return parse_err(a, err, "too many order terms", STR_NULL, NULL);
    if (rc != CORE_OK) return rc;
    rest_order_t *o = core_arena_zalloc(a, (q->norder + cnt) * sizeof(rest_order_t));
    if (!o) return CORE_ENOMEM;
    if (q->norder) memcpy(o, q->order, q->norder * sizeof(rest_order_t));
    for (size_t i = 0; i < cnt; i++) {
        str_t t = trim(parts[i]);
        rest_order_t *r = &o[q->norder + i];
        r->embed = embed;
        /* modifiers are the trailing .asc/.desc/.nullsfirst/.nullslast */
        for (int k = 0; k < 2; k++) {
            long dot = -1;
            for (size_t j = t.len; j > 0; j--)
                if (t.ptr[j - 1] == '.') {
                    dot = (long)j - 1;
                    break;
                }
            if (dot < 0) break;
            str_t mod = {t.ptr + dot + 1, t.len - (size_t)dot - 1};
            if (str_eq(mod, STR_LIT("asc"))) r->desc = false;
            else if (str_eq(mod, STR_LIT("desc"))) r->desc = true;
            else if (str_eq(mod, STR_LIT("nullsfirst"))) r->nulls = 1;
            else if (str_eq(mod, STR_LIT("nullslast"))) r->nulls = 2;
            else break;
            t.len = (size_t)dot;
        }
        long open = str_find_char(t, '(');
        if (open > 0 && t.ptr[t.len - 1] == ')') { /* rel(col): a to-one embed's column */
            r->rel = trim((str_t){t.ptr, (size_t)open});
            t = trim((str_t){t.ptr + open + 1, t.len - (size_t)open - 2});
            if (!valid_field_name(r->rel))
                return parse_err(a, err, "failed to parse order", parts[i], "expected rel(column)");
        }
        rc = split_json(a, t, &r->column, &r->json, &r->njson, "failed to parse order", err);
        if (rc != CORE_OK) return rc;
        t = r->column;
        if (!valid_field_name(t) || str_find_char(t, '.') >= 0)
            return parse_err(a, err, "failed to parse order", parts[i],
                             "expected column[.asc|.desc][.nullsfirst|.nullslast]");
    }
    q->order = o;
    q->norder += cnt;
    return CORE_OK;
}

/* ---- the query string ----------------------------------------------------------------------- */

static int add_filter(core_arena_t *a, rest_query_t *q, rest_filter_t *f)
{
    rest_filter_t *v = core_arena_alloc(a, (q->nfilters + 1) * sizeof(*v));
    if (!v) return CORE_ENOMEM;
    if (q->nfilters) memcpy(v, q->filters, q->nfilters * sizeof(*v));
    v[q->nfilters++] = *f;
    q->filters = v;
    return CORE_OK;
}

static int add_logic(core_arena_t *a, rest_query_t *q, rest_logic_t *l)
{
    rest_logic_t **v = core_arena_alloc(a, (q->nlogic + 1) * sizeof(rest_logic_t *));
    if (!v) return CORE_ENOMEM;
    if (q->nlogic) memcpy(v, q->logic, q->nlogic * sizeof(rest_logic_t *));
    v[q->nlogic++] = l;
    q->logic = v;
    return CORE_OK;
}

static int parse_nonneg(core_arena_t *a, str_t key, str_t v, long *out, core_err_t *err)
{
    long n;
    if (str_to_long(v, &n) != CORE_OK || n < 0 || v.ptr[0] == '+' || v.ptr[0] == '-')
        return parse_err(a, err, "failed to parse", key, "expected a non-negative integer");
    *out = n;
    return CORE_OK;
}

int rest_parse_query(core_arena_t *a, str_t qs, rest_query_t *q, core_err_t *err)
{
    memset(q, 0, sizeof(*q));
    q->limit = -1;
    size_t start = 0, nparams = 0;
    bool seen_select = false;
    for (size_t i = 0; i <= qs.len; i++) {
        if (i < qs.len && qs.ptr[i] != '&') continue;
        str_t part = {qs.ptr + start, i - start};
        start = i + 1;
        if (part.len == 0) continue;
        if (++nparams > REST_MAX_ITEMS) return parse_err(a, err, "too many query parameters", STR_NULL, NULL);
        long eq = str_find_char(part, '=');
        str_t rk = eq < 0 ? part : (str_t){part.ptr, (size_t)eq};
        str_t rv = eq < 0 ? STR_NULL : (str_t){part.ptr + eq + 1, part.len - (size_t)eq - 1};
        str_t key, val;
        int rc = rest_url_decode(a, rk, &key);
        if (rc == CORE_OK) rc = rest_url_decode(a, rv, &val);
        if (rc == CORE_EINVAL) return parse_err(a, err, "invalid percent-encoding in the query string", STR_NULL, NULL);
        if (rc != CORE_OK) return rc;
        if (!val.ptr) val = (str_t){"", 0};

        /* Embedded parameters "rel.order", "rel.limit", "rel.col" carry the embed path. */
        str_t embed = STR_NULL, name = key;
        long dot = -1;
        for (size_t j = key.len; j > 0; j--)
            if (key.ptr[j - 1] == '.') {
                dot = (long)j - 1;
                break;
            }
        if (dot > 0 && !str_starts_with(key, STR_LIT("not."))) {
            embed = (str_t){key.ptr, (size_t)dot};
            name = (str_t){key.ptr + dot + 1, key.len - (size_t)dot - 1};
        }

        if (str_eq(key, STR_LIT("select"))) {
            if (seen_select) return parse_err(a, err, "select given more than once", STR_NULL, NULL);
            seen_select = true;
            if (trim(val).len == 0) continue; /* select= means all columns, as in PostgREST */
            rc = parse_select_list(a, val, &q->select, &q->nselect, 0, err);
            if (rc == CORE_OK) q->aggregates = any_aggregate(q->select, q->nselect);
        } else if (str_eq(name, STR_LIT("order"))) {
            rc = parse_order(a, embed, val, q, err);
        } else if (str_eq(key, STR_LIT("limit"))) {
            rc = parse_nonneg(a, key, val, &q->limit, err);
        } else if (str_eq(key, STR_LIT("offset"))) {
            rc = parse_nonneg(a, key, val, &q->offset, err);
        } else if (embed.ptr && (str_eq(name, STR_LIT("limit")) || str_eq(name, STR_LIT("offset")))) {
            long n = 0;
            rc = parse_nonneg(a, key, val, &n, err);
            if (rc == CORE_OK) {
                rest_embed_page_t *pg = NULL;
                for (size_t k = 0; k < q->npages; k++)
                    if (str_eq(q->pages[k].embed, embed)) pg = &q->pages[k];
                if (!pg) {
                    rest_embed_page_t *v = core_arena_alloc(a, (q->npages + 1) * sizeof(*v));
                    if (!v) return CORE_ENOMEM;
                    if (q->npages) memcpy(v, q->pages, q->npages * sizeof(*v));
                    q->pages = v;
                    pg = &v[q->npages++];
                    pg->embed = embed;
                    pg->limit = -1;
                    pg->offset = 0;
                }
                if (str_eq(name, STR_LIT("limit"))) pg->limit = n;
                else pg->offset = n;
            }
        } else if (str_eq(key, STR_LIT("columns"))) {
            q->columns = val; /* write parameters: ignored on reads, as PostgREST does */
        } else if (str_eq(key, STR_LIT("on_conflict"))) {
            q->on_conflict = val;
        } else if (str_eq(name, STR_LIT("or")) || str_eq(name, STR_LIT("and")) ||
                   str_eq(key, STR_LIT("not.or")) || str_eq(key, STR_LIT("not.and"))) {
            rest_logic_t *l = core_arena_zalloc(a, sizeof(*l));
            if (!l) return CORE_ENOMEM;
            l->negate = str_starts_with(key, STR_LIT("not."));
            l->is_and = str_eq(name, STR_LIT("and")) || str_eq(key, STR_LIT("not.and"));
            l->embed = l->negate ? STR_NULL : embed;
            rc = parse_logic_body(a, val, l, 1, err);
            if (rc == CORE_OK) rc = add_logic(a, q, l);
        } else {
            rest_filter_t f = {0};
            f.embed = embed;
            rc = split_json(a, name, &f.column, &f.json, &f.njson, "failed to parse filter", err);
            if (rc != CORE_OK) return rc;
            if (!valid_field_name(f.column))
                return parse_err(a, err, "failed to parse filter", key, "invalid column name");
            rc = parse_op_value(a, val, &f, err);
            if (rc == CORE_OK) rc = add_filter(a, q, &f);
        }
        if (rc != CORE_OK) return rc;
    }
    return CORE_OK;
}
