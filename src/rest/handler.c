/*
 * The REST request path: route → negotiate → parse → plan/sql → db pool → response.
 * The request arena owns everything, including the PGresult whose body bytes are sent as
 * they are (no re-serialisation).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "rest/rest_int.h"

#define JSON_CT "application/json; charset=utf-8"


typedef struct {
    http_req_t *req;
    rest_env_t *env;
    int accept;
    int count;
    long offset;
} rest_call_t;

/* server-cors-allowed-origins: a comma list compared exactly (a "*" item allows any);
 * unset allows every origin. */
static bool origin_allowed(const core_config_t *cfg, str_t origin)
{
    if (!cfg || !cfg->server_cors_allowed_origins) return true;
    if (!origin.ptr) return false;
    str_t all = str_from_cstr(cfg->server_cors_allowed_origins);
    size_t start = 0;
    for (size_t i = 0; i <= all.len; i++) {
        if (i < all.len && all.ptr[i] != ',') continue;
        str_t item = {all.ptr + start, i - start};
        start = i + 1;
        while (item.len && (item.ptr[0] == ' ' || item.ptr[0] == '\t')) {
            item.ptr++;
            item.len--;
        }
        while (item.len && (item.ptr[item.len - 1] == ' ' || item.ptr[item.len - 1] == '\t')) item.len--;
        if (str_eq(item, origin) || str_eq(item, STR_LIT("*"))) return true;
    }
    return false;
}

size_t rest_cors_headers(const http_req_t *req, http_header_t *h)
{
    str_t origin = http_req_header(req, STR_LIT("Origin"));
    const rest_auth_t *au = req->user;
    const core_config_t *cfg = au && au->env ? au->env->cfg : NULL;
    size_t n = 0;
    if (cfg && cfg->server_cors_allowed_origins) {
        /* Restricted: only a listed Origin gets CORS headers (with credentials allowed, as
         * PostgREST's CORS policy does); others are answered without them, so the browser
         * refuses the response. The answer depends on Origin either way. */
        if (!origin_allowed(cfg, origin)) {
            h[n++] = (http_header_t){STR_LIT("Vary"), STR_LIT("Origin, Accept, Prefer, Range")};
            return n;
        }
        h[n++] = (http_header_t){STR_LIT("Access-Control-Allow-Origin"), origin};
        h[n++] = (http_header_t){STR_LIT("Access-Control-Allow-Credentials"), STR_LIT("true")};
    } else {
        h[n++] = (http_header_t){STR_LIT("Access-Control-Allow-Origin"), origin.ptr ? origin : STR_LIT("*")};
    }
    h[n++] = (http_header_t){STR_LIT("Access-Control-Expose-Headers"),
                             STR_LIT("Content-Encoding, Content-Location, Content-Range, Content-Type, "
                                     "Date, Location, Server, Transfer-Encoding, Range-Unit, "
                                     "Preference-Applied, Server-Timing")};
    if (origin.ptr) h[n++] = (http_header_t){STR_LIT("Vary"), STR_LIT("Origin, Accept, Prefer, Range")};
    return n;
}

/* http_req_t.extra_headers for REST requests: Preference-Applied for an applied
 * Prefer: timezone=, and Server-Timing when enabled (successful responses only, as in
 * PostgREST). Durations in milliseconds. */
static size_t rest_extra_headers(http_req_t *req, int status, http_header_t *out, size_t cap)
{
    const rest_auth_t *au = req->user;
    size_t n = 0;
    if (!au || !au->env || status >= 400) return 0;
    if (au->timezone.ptr && n < cap) {
        str_t v = rest_arena_printf(req->arena, "timezone=%.*s", STR_FMT(au->timezone));
        if (v.ptr) out[n++] = (http_header_t){STR_LIT("Preference-Applied"), v};
    }
    if (au->env->cfg->server_timing_enabled && n < cap) {
        uint64_t now = core_now_ns();
        uint64_t auth = au->t_auth ? au->t_auth : now;
        uint64_t parsed = au->t_parsed ? au->t_parsed : au->t_submit ? au->t_submit : now;
        uint64_t submit = au->t_submit ? au->t_submit : parsed;
        uint64_t db = au->t_db ? au->t_db : submit;
#define MS(a, b) ((b) > (a) ? (double)((b) - (a)) / 1e6 : 0.0)
        str_t v = rest_arena_printf(req->arena,
                                    "jwt;dur=%.1f, parse;dur=%.1f, plan;dur=%.1f, transaction;dur=%.1f, response;dur=%.1f",
                                    MS(au->t_start, auth), MS(auth, parsed), MS(parsed, submit), MS(submit, db),
                                    MS(db, now));
#undef MS
        if (v.ptr) out[n++] = (http_header_t){STR_LIT("Server-Timing"), v};
    }
    return n;
}

void rest_use_function(http_req_t *req, const db_func_t *f)
{
    rest_auth_t *au = req->user;
    if (au) au->func = f;
}

void rest_mark_parsed(http_req_t *req)
{
    rest_auth_t *au = req->user;
    if (au && !au->t_parsed) au->t_parsed = core_now_ns();
}

void rest_respond_error(http_req_t *req, const core_err_t *e)
{
    http_header_t h[8];
    size_t n = rest_cors_headers(req, h);
    core_buf_t b;
    core_buf_init(&b, (size_t)64 * 1024);
    core_err_write_json(&b, e);
    h[n++] = (http_header_t){STR_LIT("Content-Type"), STR_LIT(JSON_CT)};
    if (e->status == 401) {
        str_t www = auth_www_authenticate(req->arena, e);
        h[n++] = (http_header_t){STR_LIT("WWW-Authenticate"), www.ptr ? www : STR_LIT("Bearer")};
    }
    if (core_buf_status(&b) != CORE_OK) {
        core_buf_free(&b);
        http_respond(req, 500, h, n, STR_LIT("{\"code\":\"PGRST000\",\"details\":null,\"hint\":null,\"message\":\"out of memory\"}"));
        return;
    }
    char *body = core_arena_strdup(req->arena, core_buf_str(&b));
    size_t len = b.len;
    core_buf_free(&b);
    size_t nall = 0;
    http_header_t *all = rest_error_headers(req, e, h, n, &nall);
    if (!body || !all) {
        http_respond(req, 503, h, n, STR_NULL);
        return;
    }
    http_respond(req, e->status, all, nall, (str_t){body, len});
}

void rest_respond_simple(http_req_t *req, int status, const char *code, const char *msg, str_t details)
{
    core_err_t e = core_err_make(status, code, msg, details);
    rest_respond_error(req, &e);
}

str_t rest_arena_printf(core_arena_t *a, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0) return STR_NULL;
    size_t len = (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1;
    char *d = core_arena_strdup(a, (str_t){tmp, len});
    return d ? (str_t){d, len} : STR_NULL;
}

/* ---- negotiation ------------------------------------------------------------------------ */

static bool item_is(str_t item, const char *lit) { return str_eq(item, str_from_cstr(lit)); }

int rest_query_allowed(const rest_env_t *env, const rest_query_t *q, core_err_t *err)
{
    if (q->aggregates && !env->cfg->db_aggregates_enabled) {
        *err = core_err_make(400, "PGRST123", "Use of aggregate functions is not allowed", STR_NULL);
        return CORE_EINVAL;
    }
    return CORE_OK;
}

void rest_prefer_parse(const http_req_t *req, rest_prefer_t *p)
{
    memset(p, 0, sizeof(*p));
    p->max_affected = -1;
    for (size_t i = 0; i < req->nheaders; i++) {
        if (!str_eq_nocase(req->headers[i].name, STR_LIT("Prefer"))) continue;
        str_t v = req->headers[i].value;
        const char *cur = v.ptr, *end = v.ptr + v.len;
        while (cur < end) {
            const char *q = memchr(cur, ',', (size_t)(end - cur));
            if (!q) q = end;
            str_t item = {cur, (size_t)(q - cur)};
            cur = q + 1;
            while (item.len && item.ptr[0] == ' ') {
                item.ptr++;
                item.len--;
            }
            while (item.len && item.ptr[item.len - 1] == ' ') item.len--;
            if (item.len == 0) continue;
            if (item_is(item, "count=exact")) p->count = REST_COUNT_EXACT;
            else if (item_is(item, "count=planned")) p->count = REST_COUNT_PLANNED;
            else if (item_is(item, "count=estimated")) p->count = REST_COUNT_ESTIMATED;
            else if (item_is(item, "return=minimal")) p->ret = REST_RETURN_MINIMAL;
            else if (item_is(item, "return=headers-only")) p->ret = REST_RETURN_HEADERS_ONLY;
            else if (item_is(item, "return=representation")) p->ret = REST_RETURN_REPRESENTATION;
            else if (item_is(item, "resolution=merge-duplicates")) p->resolution = REST_RESOLUTION_MERGE;
            else if (item_is(item, "resolution=ignore-duplicates")) p->resolution = REST_RESOLUTION_IGNORE;
            else if (item_is(item, "missing=default")) p->missing_default = true;
            else if (item_is(item, "missing=null")) p->missing_default = false;
            else if (item_is(item, "tx=commit")) p->tx = REST_TX_COMMIT;
            else if (item_is(item, "tx=rollback")) p->tx = REST_TX_ROLLBACK;
            else if (item_is(item, "handling=strict")) p->strict = true;
            else if (item_is(item, "handling=lenient")) p->strict = false;
            else if (str_starts_with(item, STR_LIT("max-affected="))) {
                long n;
                if (str_to_long((str_t){item.ptr + 13, item.len - 13}, &n) == CORE_OK && n >= 0) p->max_affected = n;
                else p->invalid = true;
            } else if (str_starts_with(item, STR_LIT("timezone="))) {
                p->timezone = (str_t){item.ptr + 9, item.len - 9};
            } else {
                p->invalid = true;
            }
        }
    }
}

/* Range: 0-19 (items). Returns false on a malformed header (it is then ignored, as in
 * PostgREST); sets *lo and *hi (-1 when open-ended). */
bool rest_parse_range(str_t v, long *lo, long *hi)
{
    if (str_starts_with(v, STR_LIT("items="))) {
        v.ptr += 6;
        v.len -= 6;
    }
    long dash = str_find_char(v, '-');
    if (dash <= 0) return false;
    str_t a = {v.ptr, (size_t)dash}, b = {v.ptr + dash + 1, v.len - (size_t)dash - 1};
    uint64_t x, y;
    if (str_to_u64(a, &x) != CORE_OK || x > 1000000000000ull) return false;
    *lo = (long)x;
    if (b.len == 0) {
        *hi = -1;
        return true;
    }
    if (str_to_u64(b, &y) != CORE_OK || y > 1000000000000ull) return false;
    *hi = (long)y;
    return true;
}

/* Appends the request.headers object to b. */
static void append_headers_json(core_buf_t *b, const http_req_t *req)
{
    core_buf_append_char(b, '{');
    bool first = true;
    for (size_t i = 0; i < req->nheaders; i++) {
        str_t n = req->headers[i].name;
        char lower[256];
        if (n.len >= sizeof(lower)) continue;
        if (str_eq_nocase(n, STR_LIT("Cookie"))) continue; /* in request.cookies, as PostgREST does */
        for (size_t k = 0; k < n.len; k++)
            lower[k] = (n.ptr[k] >= 'A' && n.ptr[k] <= 'Z') ? (char)(n.ptr[k] + 32) : n.ptr[k];
        /* A repeated header keeps its last value (duplicate keys would confuse ->>). */
        bool later = false;
        for (size_t j = i + 1; j < req->nheaders; j++)
            if (str_eq_nocase(req->headers[j].name, n)) later = true;
        if (later) continue;
        if (!first) core_buf_append_char(b, ',');
        first = false;
        core_buf_append_json(b, (str_t){lower, n.len});
        core_buf_append_char(b, ':');
        core_buf_append_json(b, req->headers[i].value);
    }
    core_buf_append_char(b, '}');
}

/* request.headers as a JSON object with lower-cased names, as PostgREST sets it. Written
 * straight into the arena when the headers need no escaping beyond a little slack (the
 * usual case); otherwise through a growing buffer and copied. */
const char *rest_headers_json(http_req_t *req)
{
    size_t est = 64;
    for (size_t i = 0; i < req->nheaders; i++) est += req->headers[i].name.len + req->headers[i].value.len + 6;
    core_buf_t b;
    char *mem = est <= 16384 ? core_arena_alloc(req->arena, est) : NULL;
    if (mem) {
        core_buf_init_over(&b, mem, est);
        append_headers_json(&b, req);
        if (core_buf_status(&b) == CORE_OK) return mem;
    }
    core_buf_init(&b, (size_t)256 * 1024);
    append_headers_json(&b, req);
    char *s = core_buf_status(&b) == CORE_OK ? core_arena_strdup(req->arena, core_buf_str(&b)) : NULL;
    core_buf_free(&b);
    return s;
}

/* request.cookies: the Cookie header's name=value pairs as a JSON object (a repeated name
 * keeps its last value), "{}" without one. Values are passed as sent. */
const char *rest_cookies_json(http_req_t *req)
{
    str_t ck = http_req_header(req, STR_LIT("Cookie"));
    if (!ck.ptr || ck.len == 0) return "{}";
    enum { MAX_COOKIES = 256 };
    str_t names[MAX_COOKIES], values[MAX_COOKIES];
    size_t n = 0, start = 0;
    for (size_t i = 0; i <= ck.len && n < MAX_COOKIES; i++) {
        if (i < ck.len && ck.ptr[i] != ';') continue;
        str_t item = {ck.ptr + start, i - start};
        start = i + 1;
        while (item.len && (item.ptr[0] == ' ' || item.ptr[0] == '\t')) {
            item.ptr++;
            item.len--;
        }
        while (item.len && (item.ptr[item.len - 1] == ' ' || item.ptr[item.len - 1] == '\t')) item.len--;
        if (item.len == 0) continue;
        long eq = str_find_char(item, '=');
        str_t name = eq < 0 ? item : (str_t){item.ptr, (size_t)eq};
        str_t value = eq < 0 ? STR_LIT("") : (str_t){item.ptr + eq + 1, item.len - (size_t)eq - 1};
        while (name.len && name.ptr[name.len - 1] == ' ') name.len--;
        size_t k = 0;
        while (k < n && !str_eq(names[k], name)) k++;
        names[k] = name;
        values[k] = value;
        if (k == n) n++;
    }
    core_buf_t b;
    core_buf_init(&b, ck.len * 6 + 64);
    core_buf_append_char(&b, '{');
    for (size_t k = 0; k < n; k++) {
        if (k) core_buf_append_char(&b, ',');
        core_buf_append_json(&b, names[k]);
        core_buf_append_char(&b, ':');
        core_buf_append_json(&b, values[k]);
    }
    core_buf_append_char(&b, '}');
    char *out = core_buf_status(&b) == CORE_OK ? core_arena_strdup(req->arena, core_buf_str(&b)) : NULL;
    core_buf_free(&b);
    return out;
}

/* Appends item to a comma list in b as a quoted identifier (search_path syntax). */
static void append_path_item(core_buf_t *b, str_t item)
{
    while (item.len && (item.ptr[0] == ' ' || item.ptr[0] == '\t')) {
        item.ptr++;
        item.len--;
    }
    while (item.len && (item.ptr[item.len - 1] == ' ' || item.ptr[item.len - 1] == '\t')) item.len--;
    if (item.len == 0) return;
    if (b->len) core_buf_append(b, ", ", 2);
    /* A GUC value, not SQL text: the quoting only keeps odd names intact. */
    rest_sql_ident(b, item);
}

/* search_path: the request's schema, then db-extra-search-path. */
static const char *search_path(http_req_t *req, const core_config_t *cfg, str_t schema)
{
    core_buf_t b;
    core_buf_init(&b, (size_t)16 * 1024);
    append_path_item(&b, schema);
    str_t extra = str_from_cstr(cfg->db_extra_search_path);
    size_t start = 0;
    for (size_t i = 0; extra.ptr && i <= extra.len; i++) {
        if (i < extra.len && extra.ptr[i] != ',') continue;
        append_path_item(&b, (str_t){extra.ptr + start, i - start});
        start = i + 1;
    }
    const char *out = NULL;
    if (core_buf_status(&b) == CORE_OK) out = b.len ? core_arena_strdup(req->arena, core_buf_str(&b)) : "\"\"";
    core_buf_free(&b);
    return out;
}

/* Whether db-hoisted-tx-settings lists `name`. */
static bool hoisted(const core_config_t *cfg, str_t name)
{
    str_t all = str_from_cstr(cfg->db_hoisted_tx_settings);
    size_t start = 0;
    for (size_t i = 0; all.ptr && i <= all.len; i++) {
        if (i < all.len && all.ptr[i] != ',') continue;
        str_t item = {all.ptr + start, i - start};
        start = i + 1;
        while (item.len && item.ptr[0] == ' ') {
            item.ptr++;
            item.len--;
        }
        while (item.len && item.ptr[item.len - 1] == ' ') item.len--;
        if (str_eq(item, name)) return true;
    }
    return false;
}

/* Settings for one side of the role switch: the first DB_CTX_SLOTS go to the context
 * statement's slots, the rest into a JSON object for strata_set (see db.h). */
typedef struct {
    core_arena_t *arena;
    const char *keys[DB_CTX_SLOTS], *values[DB_CTX_SLOTS];
    size_t nslots;
    core_buf_t json;
    bool oom;
} settings_t;

static void settings_init(settings_t *s, core_arena_t *a)
{
    memset(s, 0, sizeof(*s));
    s->arena = a;
    core_buf_init(&s->json, (size_t)64 * 1024);
}

static void settings_add(settings_t *s, str_t key, str_t value)
{
    if (s->nslots < DB_CTX_SLOTS) {
        const char *k = core_arena_strdup(s->arena, key), *v = core_arena_strdup(s->arena, value);
        if (!k || !v) {
            s->oom = true;
            return;
        }
        s->keys[s->nslots] = k;
        s->values[s->nslots] = v;
        s->nslots++;
        return;
    }
    core_buf_t *b = &s->json;
    core_buf_append_char(b, b->len ? ',' : '{');
    core_buf_append_json(b, key);
    core_buf_append_char(b, ':');
    core_buf_append_json(b, value);
}

/* Whether a claim name can be part of a setting name (PostgreSQL refuses the others). */
static bool plain_identifier(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n > 63 || (k[0] >= '0' && k[0] <= '9')) return false;
    for (size_t i = 0; i < n; i++) {
        char c = k[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

/* db-use-legacy-gucs: request.jwt.claim.<name> for each top-level claim, as PostgREST
 * before v10 set them: strings as their text, other values as JSON. Names that are not plain
 * identifiers are skipped. The anonymous claims ({"role":"..."}) need no parser. */
static void append_legacy_claims(settings_t *b, const char *claims)
{
    char name[96];
    str_t c = str_from_cstr(claims);
    if (str_eq(c, STR_LIT("{}"))) return;
    json_error_t jerr;
    json_t *root = json_loadb(c.ptr, c.len, 0, &jerr);
    if (!root) return;
    const char *k;
    json_t *v;
    json_object_foreach(root, k, v) {
        if (!plain_identifier(k) || !strcmp(k, "role")) continue; /* role: db_request_t.legacy_role */
        int n = snprintf(name, sizeof(name), "request.jwt.claim.%s", k);
        if (n < 0 || (size_t)n >= sizeof(name)) continue;
        if (json_is_string(v)) {
            settings_add(b, (str_t){name, (size_t)n}, (str_t){json_string_value(v), json_string_length(v)});
            continue;
        }
        char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!text) {
            b->oom = true;
            break;
        }
        settings_add(b, (str_t){name, (size_t)n}, str_from_cstr(text));
        free(text);
    }
    json_decref(root);
}

/* Closes the JSON object of the settings beyond the slots into the arena; NULL when there
 * are none; *oom on allocation failure. */
static const char *settings_finish(settings_t *s, bool *oom)
{
    core_buf_t *b = &s->json;
    const char *out = NULL;
    if (b->len) core_buf_append_char(b, '}');
    if (core_buf_status(b) != CORE_OK || s->oom) *oom = true;
    else if (b->len) out = core_arena_strdup(s->arena, core_buf_str(b));
    if (b->len && !out) *oom = true;
    core_buf_free(b);
    return out;
}

/* ---- the database answer ------------------------------------------------------------------- */

static void clear_result(void *p) { PQclear(p); }

bool rest_take_result(http_req_t *req, PGresult *res, const db_error_t *err, int nfields)
{
    rest_auth_t *au = req->user;
    if (au) au->t_db = core_now_ns();
    if (err) {
        core_err_t e = rest_db_error(req, err);
        rest_respond_error(req, &e);
        return false;
    }
    if (core_arena_defer(req->arena, clear_result, res) != CORE_OK) {
        PQclear(res);
        rest_respond_simple(req, 503, "PGRST000", "Out of memory", STR_NULL);
        return false;
    }
    if (PQntuples(res) != 1 || PQnfields(res) < nfields) {
        rest_respond_simple(req, 500, "PGRST000", "Unexpected result shape from the database", STR_NULL);
        return false;
    }
    return true;
}

core_err_t rest_err_not_single(core_arena_t *a, long rows)
{
    return core_err_make(406, "PGRST116", "JSON object requested, multiple (or no) rows returned",
                         rest_arena_printf(a, "The result contains %ld rows", rows));
}

str_t rest_unwrap_array(str_t body)
{
    if (body.len >= 2 && body.ptr[0] == '[' && body.ptr[body.len - 1] == ']') {
        body.ptr++;
        body.len -= 2;
    }
    return body;
}

/* Content-Range: "first-last/total", with "*" for an unknown total or for the range when
 * there are no rows; in the arena, written without printf (every read's path). */
str_t rest_content_range(core_arena_t *a, long offset, long page, long total)
{
    if (page <= 0 && total < 0) return STR_LIT("*/*");
    char *out = core_arena_alloc(a, 72);
    if (!out) return STR_LIT("*/*");
    size_t n = 0;
    if (page > 0) {
        n += core_u64_str(out + n, (uint64_t)(offset < 0 ? 0 : offset));
        out[n++] = '-';
        n += core_u64_str(out + n, (uint64_t)(offset < 0 ? 0 : offset) + (uint64_t)page - 1);
    } else {
        out[n++] = '*';
    }
    out[n++] = '/';
    if (total >= 0) n += core_u64_str(out + n, (uint64_t)total);
    else out[n++] = '*';
    out[n] = '\0';
    return (str_t){out, n};
}

core_err_t rest_db_error(http_req_t *req, const db_error_t *err)
{
    core_err_t e = {0};
    const rest_auth_t *au = req->user;
    bool authenticated = au && au->authenticated;
    switch (err->kind) {
    case DB_ERR_ACQUIRE:
        e = core_err_make(504, "PGRST003", err->message, STR_NULL);
        break;
    case DB_ERR_QUERY:
        if (rest_raise_pgrst(req, err, &e)) break;
        e.status = rest_status_for_sqlstate(err->sqlstate, err->message, authenticated);
        e.code = core_arena_strdup(req->arena, str_from_cstr(err->sqlstate));
        e.message = str_from_cstr(core_arena_strdup(req->arena, str_from_cstr(err->message)));
        if (err->detail) e.details = str_from_cstr(core_arena_strdup(req->arena, str_from_cstr(err->detail)));
        if (err->hint) e.hint = str_from_cstr(core_arena_strdup(req->arena, str_from_cstr(err->hint)));
        if (!e.code) e.code = "XX000";
        break;
    default:
        e = core_err_make(503, "PGRST001", "Database client error. Retrying the connection.",
                          str_from_cstr(core_arena_strdup(req->arena, str_from_cstr(err->message))));
        break;
    }
    return e;
}

static void on_plan_done(void *arg, PGresult *res, const db_error_t *err);

int rest_submit(rest_env_t *env, http_req_t *req, const rest_stmt_t *st, bool read_only, bool rollback,
                db_done_fn done, void *arg)
{
    rest_auth_t *au = req->user;
    if (!au || !au->role) {
        rest_respond_simple(req, 500, "PGRST000", "request without an identity", STR_NULL);
        return CORE_EINVAL;
    }
    const char *sql = st->sql;
    if (au->plan) { /* Accept: application/vnd.pgrst.plan: explain the statement instead */
        const rest_plan_t *p = au->plan;
        str_t x = rest_arena_printf(req->arena, "explain (format %s%s%s%s%s%s) ", p->json ? "json" : "text",
                                    p->analyze ? ", analyze" : "", p->verbose ? ", verbose" : "",
                                    p->settings ? ", settings" : "", p->buffers ? ", buffers" : "", p->wal ? ", wal" : "");
        char *full = x.ptr ? core_arena_alloc(req->arena, x.len + strlen(st->sql) + 1) : NULL;
        if (!full) {
            rest_respond_simple(req, 503, "PGRST000", "Out of memory", STR_NULL);
            return CORE_ENOMEM;
        }
        memcpy(full, x.ptr, x.len);
        memcpy(full + x.len, st->sql, strlen(st->sql) + 1);
        sql = full;
        done = on_plan_done;
        arg = req;
    }
    const core_config_t *cfg = env->cfg;
    au->t_submit = core_now_ns();
    bool oom = false;

    /* Prefer: timezone= is applied when PostgreSQL knows the name; otherwise it is ignored,
     * or refused under handling=strict. */
    rest_prefer_t pref;
    rest_prefer_parse(req, &pref);
    str_t tz = STR_NULL;
    if (pref.timezone.ptr) {
        if (env->schema && db_schema_timezone_known(env->schema, pref.timezone)) {
            tz = pref.timezone;
        } else if (pref.strict) {
            char smp[80];
            rest_respond_simple(req, 400, "PGRST122", "Invalid preferences given with handling=strict",
                                rest_arena_printf(req->arena, "Invalid preferences: timezone=%s",
                                                  core_sample(pref.timezone, smp, sizeof(smp))));
            return CORE_EINVAL;
        }
    }

    /* The role's settings go before the role switch; the function's and the time zone after. */
    const char *isolation = NULL;
    settings_t pre, post;
    settings_init(&pre, req->arena);
    settings_init(&post, req->arena);
    const db_role_settings_t *rs = env->schema ? db_schema_role_settings(env->schema, str_from_cstr(au->role)) : NULL;
    if (rs) {
        for (size_t i = 0; i < rs->nsettings; i++) settings_add(&pre, rs->settings[i].key, rs->settings[i].value);
        if (rs->isolation.ptr) isolation = rs->isolation.ptr;
    }
    if (au->func) {
        for (size_t i = 0; i < au->func->nsettings; i++)
            if (hoisted(cfg, au->func->settings[i].key))
                settings_add(&post, au->func->settings[i].key, au->func->settings[i].value);
        if (au->func->isolation.ptr) isolation = au->func->isolation.ptr;
    }
    if (tz.ptr) settings_add(&post, STR_LIT("timezone"), tz);
    /* The anonymous claims are just {"role": ...}: no parsing needed. */
    bool anon_claims = !au->authenticated && !strncmp(au->claims_json, "{\"role\":", 8);
    if (cfg->db_use_legacy_gucs && !anon_claims) append_legacy_claims(&post, au->claims_json);
    const char *pre_json = settings_finish(&pre, &oom);
    const char *post_json = settings_finish(&post, &oom);
    if (tz.ptr) au->timezone = tz;

    db_request_t dr = {
        .role = au->role,
        .claims_json = au->claims_json,
        .method = core_arena_strdup(req->arena, req->method),
        .path = core_arena_strdup(req->arena, req->path),
        .headers_json = rest_headers_json(req),
        .cookies_json = rest_cookies_json(req),
        .search_path = search_path(req, cfg, au->schema),
        .pre_settings_json = pre_json,
        .settings_json = post_json,
        .isolation = isolation,
        .legacy_role = cfg->db_use_legacy_gucs ? au->role : NULL,
        .read_only = read_only,
        .rollback = rollback,
        /* A copy: the pool may send it after a config reload replaced env's. */
        .pre_sql = env->pre_request_sql ? core_arena_strdup(req->arena, str_from_cstr(env->pre_request_sql)) : NULL,
        .sql = sql,
        .nparams = st->nparams,
        .params = st->params,
    };
    memcpy(dr.pre_keys, pre.keys, sizeof(dr.pre_keys));
    memcpy(dr.pre_values, pre.values, sizeof(dr.pre_values));
    memcpy(dr.post_keys, post.keys, sizeof(dr.post_keys));
    memcpy(dr.post_values, post.values, sizeof(dr.post_values));
    int rc = CORE_ENOMEM;
    if (!oom && dr.claims_json && dr.method && dr.path && dr.headers_json && dr.cookies_json && dr.search_path &&
        (dr.pre_sql || !env->pre_request_sql))
        rc = env->collect ? rest_batch_collect(env, &dr, done, arg) : db_pool_submit(env->pool, &dr, done, arg);
    if (rc == CORE_OK) return CORE_OK;
    if (rc == CORE_ENOMEM) rest_respond_simple(req, 503, "PGRST000", "Out of memory", STR_NULL);
    else if (rc == CORE_ELIMIT) rest_respond_simple(req, 400, "PGRST102", "Invalid batch", STR_LIT("too many operations"));
    else rest_respond_simple(req, 503, "PGRST001", "The server is shutting down", STR_NULL);
    return rc;
}

static void on_db_done(void *arg, PGresult *res, const db_error_t *err)
{
    rest_call_t *c = arg;
    http_req_t *req = c->req;
    if (!rest_take_result(req, res, err, 3)) return;
    str_t body = {PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0)};
    long page = 0, total = -1;
    if (str_to_long((str_t){PQgetvalue(res, 0, 1), (size_t)PQgetlength(res, 0, 1)}, &page) != CORE_OK) page = 0;
    if (!PQgetisnull(res, 0, 2) &&
        str_to_long((str_t){PQgetvalue(res, 0, 2), (size_t)PQgetlength(res, 0, 2)}, &total) != CORE_OK)
        total = -1;

    http_header_t h[8];
    size_t n = rest_cors_headers(req, h);
    int status = 200;
    str_t range;
    if (total >= 0 && c->offset > 0 && c->offset >= total && page == 0) {
        core_err_t e = core_err_make(416, "PGRST103", "Requested range not satisfiable",
                                     rest_arena_printf(req->arena, "An offset of %ld was requested, but there are only %ld rows.",
                                                  c->offset, total));
        rest_respond_error(req, &e);
        return;
    }
    range = rest_content_range(req->arena, c->offset, page, total);
    if (total >= 0 && page > 0 && (c->offset > 0 || page < total) && c->offset + page <= total &&
        page < total)
        status = 206;
    if (rest_accept_single(c->accept)) {
        if (page != 1) {
            core_err_t e = rest_err_not_single(req->arena, page);
            rest_respond_error(req, &e);
            return;
        }
        body = rest_unwrap_array(body);
        status = 200;
    }
    h[n++] = (http_header_t){STR_LIT("Content-Type"), rest_accept_content_type(c->accept)};
    if (range.ptr) h[n++] = (http_header_t){STR_LIT("Content-Range"), range};
    if (c->count != REST_COUNT_NONE)
        h[n++] = (http_header_t){STR_LIT("Preference-Applied"), c->count == REST_COUNT_PLANNED     ? STR_LIT("count=planned")
                                                                : c->count == REST_COUNT_ESTIMATED ? STR_LIT("count=estimated")
                                                                                                   : STR_LIT("count=exact")};
    rest_send(req, res, status, h, n, body);
}

/* ---- routes ------------------------------------------------------------------------------- */

static str_t pick_schema(rest_env_t *env, http_req_t *req, bool *bad)
{
    bool read = str_eq(req->method, STR_LIT("GET")) || str_eq(req->method, STR_LIT("HEAD"));
    str_t prof = http_req_header(req, read ? STR_LIT("Accept-Profile") : STR_LIT("Content-Profile"));
    *bad = false;
    if (!prof.ptr) return env->schema->schemas[0];
    if (db_schema_exposed(env->schema, prof)) {
        for (size_t i = 0; i < env->schema->nschemas; i++)
            if (str_eq(env->schema->schemas[i], prof)) return env->schema->schemas[i];
    }
    *bad = true;
    return STR_NULL;
}

static void respond_bad_schema(rest_env_t *env, http_req_t *req)
{
    core_buf_t b;
    core_buf_init(&b, (size_t)64 * 1024);
    core_buf_append_cstr(&b, "The schema must be one of the following: ");
    for (size_t i = 0; i < env->schema->nschemas; i++) {
        if (i) core_buf_append_cstr(&b, ", ");
        core_buf_append_str(&b, env->schema->schemas[i]);
    }
    char *msg = core_buf_status(&b) == CORE_OK ? core_arena_strdup(req->arena, core_buf_str(&b)) : NULL;
    core_buf_free(&b);
    rest_respond_simple(req, 406, "PGRST106", msg ? msg : "Invalid schema", STR_NULL);
}

static void handle_openapi(rest_env_t *env, http_req_t *req, str_t schema)
{
    core_buf_t b;
    core_buf_init(&b, 64u << 20);
    /* OpenAPI 3.1 with ?openapi=3.1 or Accept: application/openapi+json;version=3.1. */
    str_t accept = http_req_header(req, STR_LIT("Accept"));
    bool v31 = str_eq(req->query, STR_LIT("openapi=3.1"));
    for (size_t i = 0; accept.ptr && i + 11 <= accept.len && !v31; i++)
        if (!memcmp(accept.ptr + i, "version=3.1", 11)) v31 = true;
    if (v31) rest_openapi31_write(&b, env->schema, schema, env->cfg, http_req_header(req, STR_LIT("Host")));
    else rest_openapi_write(&b, env->schema, schema, env->cfg, http_req_header(req, STR_LIT("Host")));
    if (core_buf_status(&b) != CORE_OK) {
        core_buf_free(&b);
        rest_respond_simple(req, 503, "PGRST000", "Out of memory", STR_NULL);
        return;
    }
    char *body = core_arena_alloc(req->arena, b.len);
    size_t len = b.len;
    if (body) memcpy(body, b.ptr, len);
    core_buf_free(&b);
    if (!body) {
        rest_respond_simple(req, 503, "PGRST000", "Out of memory", STR_NULL);
        return;
    }
    http_header_t h[8];
    size_t n = rest_cors_headers(req, h);
    h[n++] = (http_header_t){STR_LIT("Content-Type"), STR_LIT("application/openapi+json; charset=utf-8")};
    rest_send(req, NULL, 200, h, n, (str_t){body, len});
}

static void handle_options(http_req_t *req)
{
    http_header_t h[8];
    size_t n = rest_cors_headers(req, h);
    const rest_auth_t *au = req->user;
    if (!origin_allowed(au && au->env ? au->env->cfg : NULL, http_req_header(req, STR_LIT("Origin")))) {
        /* A preflight from an origin that is not allowed: no Access-Control-Allow-*. */
        h[n++] = (http_header_t){STR_LIT("Allow"), STR_LIT("OPTIONS,GET,HEAD,POST,PUT,PATCH,DELETE")};
        http_respond(req, 200, h, n, STR_NULL);
        return;
    }
    h[n++] = (http_header_t){STR_LIT("Access-Control-Allow-Methods"),
                             STR_LIT("GET, POST, PATCH, PUT, DELETE, OPTIONS, HEAD")};
    str_t want = http_req_header(req, STR_LIT("Access-Control-Request-Headers"));
    h[n++] = (http_header_t){STR_LIT("Access-Control-Allow-Headers"),
                             want.ptr ? want : STR_LIT("Authorization, Content-Type, Accept, Prefer, Range")};
    h[n++] = (http_header_t){STR_LIT("Access-Control-Max-Age"), STR_LIT("86400")};
    h[n++] = (http_header_t){STR_LIT("Allow"), STR_LIT("OPTIONS,GET,HEAD,POST,PUT,PATCH,DELETE")};
    http_respond(req, 200, h, n, STR_NULL);
}

/* Accept: application/vnd.pgrst.plan: only with db-plan-enabled (else nothing is
 * acceptable, as in PostgREST). The request is then planned for the `for` representation and
 * rest_submit explains its statement instead of running it. Returns that representation,
 * or -1 (PGRST107). */
static int plan_request(rest_env_t *env, http_req_t *req)
{
    rest_auth_t *au = req->user;
    rest_plan_t *p = core_arena_zalloc(req->arena, sizeof(*p));
    if (!env->cfg->db_plan_enabled || !au || !p ||
        rest_plan_parse(http_req_header(req, STR_LIT("Accept")), p) != CORE_OK)
        return -1;
    au->plan = p;
    return p->for_accept;
}

static void on_plan_done(void *arg, PGresult *res, const db_error_t *err)
{
    http_req_t *req = arg;
    const rest_auth_t *au = req->user;
    if (err) {
        core_err_t e = rest_db_error(req, err);
        rest_respond_error(req, &e);
        return;
    }
    if (core_arena_defer(req->arena, clear_result, res) != CORE_OK) {
        PQclear(res);
        rest_respond_simple(req, 503, "PGRST000", "Out of memory", STR_NULL);
        return;
    }
    /* FORMAT JSON is one row; FORMAT TEXT one row per line. */
    size_t len = 0;
    int rows = PQntuples(res);
    for (int i = 0; i < rows; i++) len += (size_t)PQgetlength(res, i, 0) + 1;
    char *body = core_arena_alloc(req->arena, len + 1);
    if (!body) {
        rest_respond_simple(req, 503, "PGRST000", "Out of memory", STR_NULL);
        return;
    }
    size_t k = 0;
    for (int i = 0; i < rows; i++) {
        size_t l = (size_t)PQgetlength(res, i, 0);
        memcpy(body + k, PQgetvalue(res, i, 0), l);
        k += l;
        if (i + 1 < rows) body[k++] = '\n';
    }
    http_header_t h[8];
    size_t n = rest_cors_headers(req, h);
    const rest_plan_t *p = au->plan;
    char opts[64];
    int nopts = snprintf(opts, sizeof(opts), "%s%s%s%s%s", p->analyze ? "|analyze" : "", p->verbose ? "|verbose" : "",
                      p->settings ? "|settings" : "", p->buffers ? "|buffers" : "", p->wal ? "|wal" : "");
    h[n++] = (http_header_t){STR_LIT("Content-Type"),
                             rest_arena_printf(req->arena, "application/vnd.pgrst.plan+%s; for=\"%.*s\"%s%s; charset=utf-8",
                                               p->json ? "json" : "text", STR_FMT(p->for_type),
                                               nopts > 0 ? "; options=" : "", nopts > 0 ? opts + 1 : "")};
    rest_send(req, NULL, 200, h, n, (str_t){body, k});
}

static void handle_read(rest_env_t *env, http_req_t *req, const db_table_t *t, int accept)
{
    rest_call_t *c = core_arena_zalloc(req->arena, sizeof(*c));
    if (!c) {
        rest_respond_simple(req, 503, "PGRST000", "Out of memory", STR_NULL);
        return;
    }
    c->req = req;
    c->env = env;
    c->accept = accept;
    rest_prefer_t pref;
    rest_prefer_parse(req, &pref);
    c->count = pref.count;

    rest_query_t q;
    core_err_t err = {0};
    int rc = rest_parse_query(req->arena, req->query, &q, &err);
    if (rc == CORE_OK) rc = rest_query_allowed(env, &q, &err);
    rest_mark_parsed(req);
    if (rc == CORE_OK) {
        rest_query_set_media(&q, accept);
        long lo, hi;
        str_t range = http_req_header(req, STR_LIT("Range"));
        if (range.ptr && rest_parse_range(range, &lo, &hi)) {
            if (hi >= 0 && hi < lo) {
                rest_respond_simple(req, 416, "PGRST103", "Requested range not satisfiable",
                               STR_LIT("The lower boundary must be lower than or equal to the upper boundary in the Range header."));
                return;
            }
            long rlimit = hi >= 0 ? hi - lo + 1 : -1;
            q.offset += lo;
            if (rlimit >= 0 && (q.limit < 0 || q.limit > rlimit)) q.limit = rlimit;
        }
        c->offset = q.offset;
        rest_stmt_t st;
        rc = rest_sql_read(req->arena, env->schema, t, &q, c->count, env->cfg->db_max_rows, &st, &err);
        if (rc == CORE_OK) {
            (void)rest_submit(env, req, &st, true, false, on_db_done, c);
            return;
        }
    }
    if (rc == CORE_ENOMEM || !err.code) {
        rest_respond_simple(req, 503, "PGRST000", "Out of memory", STR_NULL);
        return;
    }
    rest_respond_error(req, &err);
}

/* Settles who the request runs as (req->user): the JWT's role, or db-anon-role. Answers
 * the request itself (401/500) and returns nonzero when it may not run at all. */
static int identify(rest_env_t *env, http_req_t *req)
{
    rest_auth_t *au = req->user;
    str_t authz = http_req_header(req, STR_LIT("Authorization"));
    const char *claims = NULL;
    if (authz.ptr && env->jwt) {
        auth_claims_t cl;
        core_err_t e = {0};
        if (auth_jwt_verify(env->jwt, env->jwt_cache, authz, req->arena, &cl, &e) != CORE_OK) {
            rest_respond_error(req, &e);
            return CORE_EINVAL;
        }
        au->role = cl.role;
        au->authenticated = cl.role != NULL;
        claims = cl.claims_json;
    }
    if (!au->role) {
        if (!env->cfg->db_anon_role) {
            core_err_t e = auth_err_anonymous_disabled();
            rest_respond_error(req, &e);
            return CORE_EINVAL;
        }
        /* A copy: a config reload may replace env->cfg while the request runs. */
        au->role = core_arena_strdup(req->arena, str_from_cstr(env->cfg->db_anon_role));
        if (!au->role) {
            rest_respond_simple(req, 503, "PGRST000", "Out of memory", STR_NULL);
            return CORE_ENOMEM;
        }
    }
    if (!claims || !strcmp(claims, "{}")) {
        /* {"role":"<role>"}, the role escaped as JSON */
        size_t rlen = strlen(au->role), cap = rlen * 6 + 16;
        char *mem = core_arena_alloc(req->arena, cap);
        claims = NULL;
        if (mem) {
            core_buf_t c;
            core_buf_init_over(&c, mem, cap);
            core_buf_append(&c, "{\"role\":", 8);
            core_buf_append_json(&c, (str_t){au->role, rlen});
            core_buf_append_char(&c, '}');
            if (core_buf_status(&c) == CORE_OK) claims = mem;
        }
    }
    au->claims_json = claims;
    if (!au->claims_json) {
        rest_respond_simple(req, 503, "PGRST000", "Out of memory", STR_NULL);
        return CORE_ENOMEM;
    }
    req->log_role = au->role;
    au->t_auth = core_now_ns();
    return CORE_OK;
}

void rest_handle(rest_env_t *env, http_req_t *req, str_t path)
{
    bool get = str_eq(req->method, STR_LIT("GET")), head = str_eq(req->method, STR_LIT("HEAD"));
    rest_auth_t *au = core_arena_zalloc(req->arena, sizeof(*au));
    if (!au) {
        http_respond(req, 503, NULL, 0, STR_NULL);
        return;
    }
    au->env = env;
    au->t_start = core_now_ns();
    req->user = au;
    req->extra_headers = rest_extra_headers;
    if (str_eq(req->method, STR_LIT("OPTIONS"))) {
        handle_options(req);
        return;
    }
    if (!env->schema) {
        rest_respond_simple(req, 503, "PGRST002", "Could not query the database for the schema cache. Retrying.", STR_NULL);
        return;
    }
    while (path.len && path.ptr[0] == '/') {
        path.ptr++;
        path.len--;
    }
    if (path.len && path.ptr[path.len - 1] == '/') path.len--;
    bool bad = false;
    str_t schema = pick_schema(env, req, &bad);
    if (bad) {
        respond_bad_schema(env, req);
        return;
    }
    au->schema = schema;
    if (identify(env, req) != CORE_OK) return;
    int accept = rest_negotiate(http_req_header(req, STR_LIT("Accept")), path.len == 0);
    if (accept == ACCEPT_PLAN) accept = plan_request(env, req);
    if (accept < 0 && !str_starts_with(path, STR_LIT("rpc/"))) {
        rest_respond_simple(req, 406, "PGRST107", "None of these media types are available",
                       http_req_header(req, STR_LIT("Accept")));
        return;
    }
    if (path.len == 0) {
        if (!get && !head) {
            rest_respond_simple(req, 405, "PGRST117", "Unsupported HTTP method", req->method);
            return;
        }
        handle_openapi(env, req, schema);
        return;
    }
    if (str_starts_with(path, STR_LIT("rpc/"))) {
        str_t fname = {path.ptr + 4, path.len - 4};
        if (fname.len == 0 || str_find_char(fname, '/') >= 0) {
            rest_respond_simple(req, 404, "PGRST125", "Invalid path specified in request URL", STR_NULL);
            return;
        }
        /* an Accept nothing built in produces may still name a function's media-type domain */
        rest_handle_rpc(env, req, schema, fname, accept < 0 ? ACCEPT_OTHER : accept);
        return;
    }
    if (str_find_char(path, '/') >= 0) {
        rest_respond_simple(req, 404, "PGRST125", "Invalid path specified in request URL", STR_NULL);
        return;
    }
    const db_table_t *t = db_schema_table(env->schema, schema, path);
    if (!t && str_eq(path, STR_LIT("batch")) && str_eq(req->method, STR_LIT("POST")) && !env->collect) {
        rest_handle_batch(env, req); /* beyond PostgREST; a relation named "batch" wins */
        return;
    }
    if (!t) {
        core_err_t e = core_err_make(404, "PGRST205", NULL, STR_NULL);
        e.message = rest_arena_printf(req->arena, "Could not find the table '%.*s.%.*s' in the schema cache",
                                 STR_FMT(schema), (int)(path.len > 200 ? 200 : path.len), path.ptr);
        rest_respond_error(req, &e);
        return;
    }
    if (accept == ACCEPT_TEXT || accept == ACCEPT_XML || accept == ACCEPT_OCTET) {
        rest_respond_simple(req, 406, "PGRST107", "None of these media types are available",
                            http_req_header(req, STR_LIT("Accept")));
        return;
    }
    if (get || head) {
        handle_read(env, req, t, accept);
        return;
    }
    if (str_eq(req->method, STR_LIT("POST")) || str_eq(req->method, STR_LIT("PATCH")) ||
        str_eq(req->method, STR_LIT("PUT")) || str_eq(req->method, STR_LIT("DELETE"))) {
        rest_handle_write(env, req, t, accept);
        return;
    }
    rest_respond_simple(req, 405, "PGRST117", "Unsupported HTTP method", req->method);
}
