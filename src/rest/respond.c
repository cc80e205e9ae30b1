/*
 * Function-driven responses, as PostgREST does them:
 *
 * - `response.headers` / `response.status` set with set_config by a function, a trigger or
 *   db-pre-request are read by the request's own statement (columns pgrst_hdrs and
 *   pgrst_status, see REST_SQL_GUC_COLS), so there is no extra round trip. They override the
 *   status and any header of the same name; an invalid value answers PGRST111 / PGRST112.
 * - `RAISE SQLSTATE 'PGRST'` with a JSON MESSAGE {code, message, details, hint} and a JSON
 *   DETAIL {status, status_text, headers} sets the error's status, body and headers
 *   (PGRST121 when either is not such JSON).
 * - Every error answer carries `Proxy-Status: PostgREST; error=<code>` and every answer a
 *   `Vary` header (PostgREST's "Accept, Prefer, Range" unless one was set).
 *
 * The JSON is small and parsed with jansson after a size cap; everything lands in the
 * request arena.
 */
#include <jansson.h>
#include <string.h>

#include "rest/rest_int.h"

#define GUC_MAX_BYTES ((size_t)64 * 1024)
#define MAX_FN_HEADERS 64

static char *arena_cstr(core_arena_t *a, const char *s) { return s ? core_arena_strdup(a, str_from_cstr(s)) : NULL; }

/* One header value from a JSON string, copied into the arena. */
static bool header_from_json(core_arena_t *a, const char *key, json_t *v, http_header_t *out)
{
    if (!json_is_string(v)) return false;
    char *k = arena_cstr(a, key);
    char *val = core_arena_strdup(a, (str_t){json_string_value(v), json_string_length(v)});
    if (!k || !val) return false;
    *out = (http_header_t){str_from_cstr(k), (str_t){val, json_string_length(v)}};
    return true;
}

/* response.headers: a JSON array of objects with one key and a string value each. */
static int parse_guc_headers(core_arena_t *a, str_t text, http_header_t **out, size_t *nout)
{
    *out = NULL;
    *nout = 0;
    if (text.len > GUC_MAX_BYTES) return CORE_EINVAL;
    json_error_t jerr;
    json_t *root = json_loadb(text.ptr, text.len, 0, &jerr);
    int rc = CORE_EINVAL;
    if (!root || !json_is_array(root) || json_array_size(root) > MAX_FN_HEADERS) goto out;
    size_t n = json_array_size(root);
    http_header_t *h = n ? core_arena_alloc(a, n * sizeof(*h)) : NULL;
    if (n && !h) {
        rc = CORE_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(root, i);
        if (!json_is_object(o) || json_object_size(o) != 1) goto out;
        const char *key;
        json_t *v;
        json_object_foreach(o, key, v) {
            if (!header_from_json(a, key, v, &h[i])) goto out;
        }
    }
    *out = h;
    *nout = n;
    rc = CORE_OK;
out:
    if (root) json_decref(root);
    return rc;
}

/* response.status: a decimal status code. */
static bool parse_guc_status(str_t text, int *status)
{
    uint64_t v;
    if (str_to_u64(text, &v) != CORE_OK || v < 100 || v > 999) return false;
    *status = (int)v;
    return true;
}

static str_t column_text(const PGresult *res, const char *name)
{
    int col = PQfnumber(res, name);
    if (col < 0 || PQntuples(res) < 1 || PQgetisnull(res, 0, col)) return STR_NULL;
    return (str_t){PQgetvalue(res, 0, col), (size_t)PQgetlength(res, 0, col)};
}

static bool has_header(const http_header_t *h, size_t n, str_t name)
{
    for (size_t i = 0; i < n; i++)
        if (str_eq_nocase(h[i].name, name)) return true;
    return false;
}

/* base headers, minus those `over` replaces, then `over`, then Vary if none. NULL on OOM. */
static http_header_t *merge_headers(core_arena_t *a, const http_header_t *base, size_t nbase, const http_header_t *over,
                                    size_t nover, size_t *nout)
{
    http_header_t *h = core_arena_alloc(a, (nbase + nover + 1) * sizeof(*h));
    if (!h) return NULL;
    size_t n = 0;
    for (size_t i = 0; i < nbase; i++)
        if (!has_header(over, nover, base[i].name)) h[n++] = base[i];
    for (size_t i = 0; i < nover; i++) h[n++] = over[i];
    if (!has_header(h, n, STR_LIT("Vary"))) h[n++] = (http_header_t){STR_LIT("Vary"), STR_LIT("Accept, Prefer, Range")};
    *nout = n;
    return h;
}

void rest_send(http_req_t *req, const PGresult *res, int status, const http_header_t *h, size_t n, str_t body)
{
    http_header_t *fh = NULL;
    size_t nfh = 0;
    if (res) {
        str_t st = column_text(res, "pgrst_status");
        if (st.ptr && st.len && !parse_guc_status(st, &status)) {
            rest_respond_simple(req, 500, "PGRST112", "response.status guc must be a valid status code", STR_NULL);
            return;
        }
        str_t hv = column_text(res, "pgrst_hdrs");
        if (hv.ptr && hv.len) {
            int rc = parse_guc_headers(req->arena, hv, &fh, &nfh);
            if (rc == CORE_ENOMEM) {
                rest_respond_simple(req, 503, "PGRST000", "Out of memory", STR_NULL);
                return;
            }
            if (rc != CORE_OK) {
                rest_respond_simple(req, 500, "PGRST111",
                                    "response.headers guc must be a JSON array composed of objects with a single key and a string value",
                                    STR_NULL);
                return;
            }
        }
    }
    size_t nall = 0;
    http_header_t *all = merge_headers(req->arena, h, n, fh, nfh, &nall);
    if (!all) {
        http_respond(req, 503, h, n, STR_NULL);
        return;
    }
    http_respond(req, status, all, nall, body);
}

/* ---- RAISE SQLSTATE 'PGRST' ---------------------------------------------------------------- */

/* "<prefix>'<text>'" in the arena (the text as PostgreSQL sent it: valid UTF-8, bounded). */
static str_t quoted_detail(core_arena_t *a, const char *prefix, const char *text)
{
    core_buf_t b;
    core_buf_init(&b, GUC_MAX_BYTES + 256);
    core_buf_append_cstr(&b, prefix);
    core_buf_append_char(&b, '\'');
    core_buf_append_cstr(&b, text ? text : "");
    core_buf_append_char(&b, '\'');
    char *d = core_buf_status(&b) == CORE_OK ? core_arena_strdup(a, core_buf_str(&b)) : NULL;
    size_t len = b.len;
    core_buf_free(&b);
    return d ? (str_t){d, len} : STR_NULL;
}

static core_err_t raise_parse_error(core_arena_t *a, int which, const char *text)
{
    core_err_t e = core_err_make(500, "PGRST121", "Could not parse JSON in the \"RAISE SQLSTATE 'PGRST'\" error", STR_NULL);
    if (which == 0) {
        e.details = quoted_detail(a, "Invalid JSON value for MESSAGE: ", text);
        e.hint = STR_LIT("MESSAGE must be a JSON object with obligatory keys: 'code', 'message' and optional keys: 'details', 'hint'.");
    } else {
        e.details = which == 1 ? STR_LIT("DETAIL is missing in the RAISE statement")
                               : quoted_detail(a, "Invalid JSON value for DETAIL: ", text);
        e.hint = STR_LIT("DETAIL must be a JSON object with obligatory keys: 'status', 'headers' and optional key: 'status_text'.");
    }
    return e;
}

/* An optional string member: absent or null is fine, anything else is not. */
static bool opt_string(core_arena_t *a, json_t *o, const char *key, str_t *out)
{
    json_t *v = json_object_get(o, key);
    *out = STR_NULL;
    if (!v || json_is_null(v)) return true;
    if (!json_is_string(v)) return false;
    char *d = core_arena_strdup(a, (str_t){json_string_value(v), json_string_length(v)});
    if (!d) return false;
    *out = (str_t){d, json_string_length(v)};
    return true;
}

bool rest_raise_pgrst(http_req_t *req, const db_error_t *err, core_err_t *out)
{
    if (err->kind != DB_ERR_QUERY || !err->sqlstate || strcmp(err->sqlstate, "PGRST") != 0) return false;
    core_arena_t *a = req->arena;
    const char *msg = err->message ? err->message : "";
    json_error_t jerr;
    json_t *m = strlen(msg) <= GUC_MAX_BYTES ? json_loads(msg, 0, &jerr) : NULL;
    json_t *d = NULL;
    str_t code, message, details, hint;
    bool ok = json_is_object(m) && json_is_string(json_object_get(m, "code")) &&
              json_is_string(json_object_get(m, "message")) && opt_string(a, m, "code", &code) &&
              opt_string(a, m, "message", &message) && opt_string(a, m, "details", &details) &&
              opt_string(a, m, "hint", &hint);
    if (!ok) {
        *out = raise_parse_error(a, 0, msg);
        goto done;
    }
    if (!err->detail) {
        *out = raise_parse_error(a, 1, NULL);
        goto done;
    }
    d = strlen(err->detail) <= GUC_MAX_BYTES ? json_loads(err->detail, 0, &jerr) : NULL;
    json_t *status = json_is_object(d) ? json_object_get(d, "status") : NULL; /* json_is_object checks NULL */
    json_t *headers = json_is_object(d) ? json_object_get(d, "headers") : NULL;
    if (!status || !json_is_integer(status) || json_integer_value(status) < 100 || json_integer_value(status) > 999 ||
        !headers || !json_is_object(headers) || json_object_size(headers) > MAX_FN_HEADERS) {
        *out = raise_parse_error(a, 2, err->detail);
        goto done;
    }
    size_t nh = json_object_size(headers), k = 0;
    http_header_t *h = nh ? core_arena_alloc(a, nh * sizeof(*h)) : NULL;
    const char *key;
    json_t *v;
    json_object_foreach(headers, key, v) {
        if (!h || !header_from_json(a, key, v, &h[k])) {
            *out = raise_parse_error(a, 2, err->detail);
            goto done;
        }
        k++;
    }
    *out = (core_err_t){.status = (int)json_integer_value(status), .code = code.ptr, .message = message,
                        .details = details, .hint = hint};
    rest_auth_t *au = req->user;
    if (au) {
        au->err_headers = h;
        au->nerr_headers = k;
    }
done:
    if (m) json_decref(m);
    if (d) json_decref(d);
    return true;
}

http_header_t *rest_error_headers(http_req_t *req, const core_err_t *e, const http_header_t *h, size_t n, size_t *nout)
{
    const rest_auth_t *au = req->user;
    const http_header_t *extra = au ? au->err_headers : NULL;
    size_t nextra = au ? au->nerr_headers : 0;
    http_header_t *all = core_arena_alloc(req->arena, (n + nextra + 2) * sizeof(*all));
    if (!all) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!has_header(extra, nextra, h[i].name)) all[k++] = h[i];
    for (size_t i = 0; i < nextra; i++) all[k++] = extra[i];
    if (e->code && !has_header(all, k, STR_LIT("Proxy-Status"))) {
        str_t ps = rest_arena_printf(req->arena, "PostgREST; error=%s", e->code);
        if (ps.ptr) all[k++] = (http_header_t){STR_LIT("Proxy-Status"), ps};
    }
    *nout = k;
    return all;
}
