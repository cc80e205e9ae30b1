/*
 * RPC: POST /rpc/fn (arguments from the JSON body) and GET /rpc/fn (arguments from the
 * query string). The overload is chosen by argument names; arguments reach PostgreSQL as one
 * json parameter expanded by json_to_record with the parameter types from the schema cache,
 * so values are never spliced into SQL:
 *
 *   with pgrst_args as (select * from json_to_record($1::json) as _a("a" integer, ...))
 *   select ... from pgrst_args, lateral "s"."fn"("a" := pgrst_args."a", ...) pgrst_call ...
 *
 * Set-returning functions over a relation's row type take the same select, filters, order,
 * limit and count as that relation.
 */
#include <jansson.h>
#include <string.h>

#include "rest/rest_int.h"

#define SQL_MAX (1u << 20)
#define MAX_ARGS 100

typedef struct {
    http_req_t *req;
    rest_env_t *env;
    const db_func_t *fn;
    int accept;
    long offset;
    int count;
    enum { RPC_ROWS, RPC_SCALAR, RPC_SCALARS, RPC_ROW, RPC_VOID } shape;
    bool row_as_object; /* one composite row, built as rows so select applies; sent as an object */
    str_t raw_type;     /* "text"/"xml"/"bytea": the body is the single unnamed argument */
} rpc_call_t;

static bool is_in(const db_func_param_t *p) { return p->mode == 'i' || p->mode == 'b' || p->mode == 'v'; }

static bool names_contain(str_t *names, size_t n, str_t x)
{
    for (size_t i = 0; i < n; i++)
        if (str_eq(names[i], x)) return true;
    return false;
}

/* The type of f's single unnamed parameter ("" when it has another signature). */
static str_t single_unnamed_type(const db_func_t *f)
{
    size_t nin = 0;
    const db_func_param_t *only = NULL;
    for (size_t i = 0; i < f->nparams; i++)
        if (is_in(&f->params[i])) {
            nin++;
            only = &f->params[i];
        }
    return nin == 1 && only->name.len == 0 ? only->type : STR_LIT("");
}

/* A single unnamed json/jsonb parameter takes the whole body. */
static bool takes_whole_body(const db_func_t *f)
{
    str_t t = single_unnamed_type(f);
    return str_eq(t, STR_LIT("json")) || str_eq(t, STR_LIT("jsonb"));
}

/* The request's Content-Type as a raw-body parameter type: text/plain → text, text/xml →
 * xml, application/octet-stream → bytea; "" for anything else (JSON arguments). */
static str_t raw_body_type(const http_req_t *req)
{
    str_t ct = http_req_header(req, STR_LIT("Content-Type"));
    if (!ct.ptr) return STR_LIT("");
    long semi = str_find_char(ct, ';');
    if (semi >= 0) ct.len = (size_t)semi;
    while (ct.len && ct.ptr[ct.len - 1] == ' ') ct.len--;
    if (str_eq_nocase(ct, STR_LIT("text/plain"))) return STR_LIT("text");
    if (str_eq_nocase(ct, STR_LIT("text/xml"))) return STR_LIT("xml");
    if (str_eq_nocase(ct, STR_LIT("application/octet-stream"))) return STR_LIT("bytea");
    return STR_LIT("");
}

/* The scalar type a raw representation serves: text/plain ← text, text/xml ← xml,
 * application/octet-stream ← bytea. */
static str_t raw_result_type(int accept)
{
    return accept == ACCEPT_TEXT ? STR_LIT("text") : accept == ACCEPT_XML ? STR_LIT("xml")
                                                   : accept == ACCEPT_OCTET ? STR_LIT("bytea") : STR_LIT("");
}

static bool is_form(const http_req_t *req)
{
    str_t ct = http_req_header(req, STR_LIT("Content-Type"));
    if (!ct.ptr) return false;
    long semi = str_find_char(ct, ';');
    if (semi >= 0) ct.len = (size_t)semi;
    while (ct.len && ct.ptr[ct.len - 1] == ' ') ct.len--;
    return str_eq_nocase(ct, STR_LIT("application/x-www-form-urlencoded"));
}

static bool accept_raw(int accept)
{
    return accept == ACCEPT_TEXT || accept == ACCEPT_XML || accept == ACCEPT_OCTET || accept == ACCEPT_CUSTOM;
}

/* Whether the raw result arrives as hex (bytea) for C to decode. */
static bool raw_is_hex(const rpc_call_t *c)
{
    return c->accept == ACCEPT_OCTET || (c->accept == ACCEPT_CUSTOM && c->fn->retmedia_bytea);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Does f accept exactly these argument names (all required present, none unknown)? */
static bool accepts(const db_func_t *f, str_t *names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        bool found = false;
        for (size_t k = 0; k < f->nparams; k++)
            if (is_in(&f->params[k]) && str_eq(f->params[k].name, names[i])) found = true;
        if (!found) return false;
    }
    for (size_t k = 0; k < f->nparams; k++) {
        const db_func_param_t *p = &f->params[k];
        if (is_in(p) && !p->has_default && !names_contain(names, n, p->name)) return false;
    }
    return true;
}

static void not_found(http_req_t *req, str_t schema, str_t name, str_t *names, size_t n)
{
    core_buf_t b;
    core_buf_init(&b, (size_t)64 * 1024);
    core_buf_appendf(&b, "Could not find the function %.*s.%.*s(", STR_FMT(schema),
                     (int)(name.len > 200 ? 200 : name.len), name.ptr);
    for (size_t i = 0; i < n; i++) {
        if (i) core_buf_append_cstr(&b, ", ");
        core_buf_append(&b, names[i].ptr, names[i].len > 100 ? 100 : names[i].len);
    }
    core_buf_append_cstr(&b, ") in the schema cache");
    char *m = core_buf_status(&b) == CORE_OK ? core_arena_strdup(req->arena, core_buf_str(&b)) : NULL;
    core_buf_free(&b);
    core_err_t e = core_err_make(404, "PGRST202", m ? m : "Could not find the function in the schema cache", STR_NULL);
    rest_respond_error(req, &e);
}

/* ---- the answer -------------------------------------------------------------------------- */

static void on_rpc_done(void *arg, PGresult *res, const db_error_t *err)
{
    rpc_call_t *c = arg;
    http_req_t *req = c->req;
    if (!rest_take_result(req, res, err, 3)) return;
    http_header_t h[10];
    size_t n = rest_cors_headers(req, h);
    if (c->shape == RPC_VOID) {
        rest_send(req, res, 204, h, n, STR_NULL);
        return;
    }
    str_t body = PQgetisnull(res, 0, 0) ? STR_LIT("null") : (str_t){PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0)};
    if (accept_raw(c->accept)) { /* the scalar as it is: text/xml as text, bytea sent as hex */
        if (PQgetisnull(res, 0, 0)) body = STR_LIT("");
        if (raw_is_hex(c) && body.len) {
            char *raw = core_arena_alloc(req->arena, body.len / 2 + 1);
            if (!raw) {
                rest_respond_simple(req, 503, "PGRST000", "Out of memory", STR_NULL);
                return;
            }
            size_t k = 0;
            for (size_t i = 0; i + 1 < body.len; i += 2) {
                int hi = hexval(body.ptr[i]), lo = hexval(body.ptr[i + 1]);
                raw[k++] = (char)(unsigned char)((hi < 0 ? 0 : hi) * 16 + (lo < 0 ? 0 : lo));
            }
            body = (str_t){raw, k};
        }
        str_t ct = rest_accept_content_type(c->accept);
        if (c->accept == ACCEPT_CUSTOM) /* the domain's name; the any-type domain: octet-stream */
            ct = str_eq(c->fn->retmedia, STR_LIT("*/*")) ? STR_LIT("application/octet-stream") : c->fn->retmedia;
        h[n++] = (http_header_t){STR_LIT("Content-Type"), ct};
        rest_send(req, res, 200, h, n, body);
        return;
    }
    long page = 0, total = -1;
    if (str_to_long((str_t){PQgetvalue(res, 0, 1), (size_t)PQgetlength(res, 0, 1)}, &page) != CORE_OK) page = 0;
    if (!PQgetisnull(res, 0, 2) &&
        str_to_long((str_t){PQgetvalue(res, 0, 2), (size_t)PQgetlength(res, 0, 2)}, &total) != CORE_OK)
        total = -1;
    int status = 200;
    if (c->row_as_object) {
        body = page == 0 ? STR_LIT("null") : rest_unwrap_array(body);
        h[n++] = (http_header_t){STR_LIT("Content-Type"), rest_accept_content_type(c->accept == ACCEPT_JSON_STRIP ? c->accept : ACCEPT_JSON)};
        rest_send(req, res, status, h, n, body);
        return;
    }
    if (rest_accept_single(c->accept) && (c->shape == RPC_ROWS || c->shape == RPC_SCALARS)) {
        if (page != 1) {
            core_err_t e = rest_err_not_single(req->arena, page);
            rest_respond_error(req, &e);
            return;
        }
        body = rest_unwrap_array(body);
    }
    h[n++] = (http_header_t){STR_LIT("Content-Type"), rest_accept_content_type(c->accept)};
    if (c->shape == RPC_ROWS || c->shape == RPC_SCALARS) {
        str_t range = rest_content_range(req->arena, c->offset, page, total);
        if (range.ptr) h[n++] = (http_header_t){STR_LIT("Content-Range"), range};
        if (total >= 0 && page > 0 && page < total) status = 206;
    }
    rest_send(req, res, status, h, n, body);
}

/* ---- SQL --------------------------------------------------------------------------------- */

/* RETURNS TABLE (...) / OUT parameters: the result's columns, as a relation the select,
 * filters and order can be checked against. NULL when there are none. */
static const db_table_t *out_columns(core_arena_t *a, const db_func_t *f)
{
    size_t n = 0;
    for (size_t i = 0; i < f->nparams; i++)
        if ((f->params[i].mode == 't' || f->params[i].mode == 'o' || f->params[i].mode == 'b') && f->params[i].name.len) n++;
    if (n == 0) return NULL;
    db_table_t *t = core_arena_zalloc(a, sizeof(*t));
    db_column_t *cols = core_arena_zalloc(a, n * sizeof(*cols));
    if (!t || !cols) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < f->nparams; i++) {
        const db_func_param_t *p = &f->params[i];
        if ((p->mode != 't' && p->mode != 'o' && p->mode != 'b') || !p->name.len) continue;
        cols[k].name = p->name;
        cols[k].type = p->type;
        cols[k].nullable = true;
        cols[k].position = (int)k + 1;
        k++;
    }
    t->schema = f->schema;
    t->name = f->name;
    t->kind = 'f';
    t->columns = cols;
    t->ncolumns = k;
    return t;
}

static int build_rpc(rpc_call_t *c, const rest_query_t *q, str_t args_json, str_t *given, size_t ngiven,
                     rest_stmt_t *st, core_err_t *err)
{
    http_req_t *req = c->req;
    const db_func_t *f = c->fn;
    core_buf_t b;
    core_buf_init(&b, SQL_MAX);
    const db_table_t *rel = NULL;
    if (f->retrel_name.ptr) rel = db_schema_table(c->env->schema, f->retrel_schema, f->retrel_name);
    if (!rel && f->retset && str_eq(f->rettype, STR_LIT("record"))) rel = out_columns(req->arena, f);
    int next_alias = 0;
    rest_build_t x = {.arena = req->arena, .table = rel, .b = &b, .err = err, .schema = c->env->schema, .next_alias = &next_alias};
    int rc = rest_build_add_param(&x, args_json); /* $1 */
    if (rc != CORE_OK) goto out;
    bool whole = c->raw_type.len || takes_whole_body(f);

    if (str_eq(f->rettype, STR_LIT("void"))) c->shape = RPC_VOID;
    else if (f->retset && (f->rettype_kind == 'c' || str_eq(f->rettype, STR_LIT("record")))) c->shape = RPC_ROWS;
    else if (f->retset) c->shape = RPC_SCALARS;
    else if (f->rettype_kind == 'c') c->shape = RPC_ROW;
    else c->shape = RPC_SCALAR;
    if (c->shape == RPC_ROW && rel) { /* the row's own relation: select and filters apply */
        c->shape = RPC_ROWS;
        c->row_as_object = true;
    }

    /* PostgREST's media type handlers for functions: a result domain named like a media type
     * answers that type, raw, when Accept asks for it first (the any-type domain always). */
    if (f->retmedia.ptr && !f->retset &&
        rest_negotiate_custom(http_req_header(req, STR_LIT("Accept")), f->retmedia) == ACCEPT_CUSTOM)
        c->accept = ACCEPT_CUSTOM;
    if (c->accept == ACCEPT_OTHER ||
        (accept_raw(c->accept) && c->accept != ACCEPT_CUSTOM && (c->shape != RPC_SCALAR || !str_eq(f->rettype, raw_result_type(c->accept)))) ||
        ((q->csv || q->geojson) && c->shape != RPC_ROWS)) {
        *err = core_err_make(406, "PGRST107", "None of these media types are available",
                             http_req_header(req, STR_LIT("Accept")));
        rc = CORE_EINVAL;
        goto out;
    }
    if (c->shape != RPC_ROWS && (q->nselect || q->nfilters || q->nlogic || q->norder)) {
        rc = rest_build_unsupported(&x, "select, filters and order apply only to functions returning a set of rows");
        goto out;
    }
    if (c->shape == RPC_ROWS && !rel && (q->nselect || q->nfilters || q->nlogic || q->norder)) {
        rc = rest_build_unsupported(&x, "this function's result columns are not in the schema cache");
        goto out;
    }

    core_buf_append_cstr(&b, "with pgrst_args as (select * from json_to_record(");
    core_buf_append_cstr(&b, whole ? "'{}'::json" : "$1::json");
    core_buf_append_cstr(&b, ") as _a(");
    size_t k = 0;
    for (size_t i = 0; i < f->nparams && !whole; i++) {
        const db_func_param_t *p = &f->params[i];
        if (!is_in(p) || p->name.len == 0) continue;
        if (k++) core_buf_append_cstr(&b, ", ");
        rest_sql_ident(&b, p->name);
        core_buf_append_char(&b, ' ');
        core_buf_append_str(&b, p->type); /* format_type() output from the catalog */
    }
    if (k == 0) core_buf_append_cstr(&b, "pgrst_none int");
    core_buf_append_cstr(&b, ")) ");

    /* Only the arguments that were given are passed, so the others take their defaults. */
    core_buf_t call;
    core_buf_init(&call, SQL_MAX);
    rest_sql_ident(&call, f->schema);
    core_buf_append_char(&call, '.');
    rest_sql_ident(&call, f->name);
    core_buf_append_char(&call, '(');
    if (whole) {
        str_t t = single_unnamed_type(f); /* json, jsonb, text, xml or bytea */
        core_buf_append_cstr(&call, "$1::");
        core_buf_append_str(&call, t);
    } else {
        size_t m = 0;
        for (size_t i = 0; i < f->nparams; i++) {
            const db_func_param_t *p = &f->params[i];
            if (!is_in(p) || p->name.len == 0 || !names_contain(given, ngiven, p->name)) continue;
            if (m++) core_buf_append_cstr(&call, ", ");
            if (p->mode == 'v') core_buf_append_cstr(&call, "variadic ");
            rest_sql_ident(&call, p->name);
            core_buf_append_cstr(&call, " := pgrst_args.");
            rest_sql_ident(&call, p->name);
        }
    }
    core_buf_append_char(&call, ')');
    rc = core_buf_status(&call);
    if (rc != CORE_OK) {
        core_buf_free(&call);
        goto out;
    }

    switch (c->shape) {
    case RPC_VOID:
        core_buf_append_cstr(&b, "select null::text, 1::bigint, null::bigint" REST_SQL_GUC_COLS " from pgrst_args, lateral ");
        core_buf_append_str(&b, core_buf_str(&call));
        core_buf_append_cstr(&b, " pgrst_call");
        break;
    case RPC_SCALAR:
        /* raw representations: text and xml as their text, bytea as hex (decoded by C) */
        core_buf_append_cstr(&b, raw_is_hex(c) ? "select encode(" : accept_raw(c->accept) ? "select (" : "select to_json(");
        core_buf_append_str(&b, core_buf_str(&call));
        core_buf_append_cstr(&b, raw_is_hex(c) ? "::bytea, 'hex'" : "");
        core_buf_append_cstr(&b, ")::text, 1::bigint, null::bigint" REST_SQL_GUC_COLS " from pgrst_args");
        break;
    case RPC_ROW:
        core_buf_append_cstr(&b, "select to_json(pgrst_call)::text, 1::bigint, null::bigint" REST_SQL_GUC_COLS " from pgrst_args, lateral ");
        core_buf_append_str(&b, core_buf_str(&call));
        core_buf_append_cstr(&b, " pgrst_call");
        break;
    case RPC_SCALARS:
        core_buf_append_cstr(&b, "select coalesce(json_agg(_s.pgrst_scalar), '[]')::text, count(*), null::bigint" REST_SQL_GUC_COLS " from (select pgrst_call.pgrst_scalar from pgrst_args, lateral ");
        core_buf_append_str(&b, core_buf_str(&call));
        core_buf_append_cstr(&b, " pgrst_call(pgrst_scalar)");
        if (q->limit >= 0) core_buf_appendf(&b, " limit %ld", q->limit);
        if (q->offset > 0) core_buf_appendf(&b, " offset %ld", q->offset);
        core_buf_append_cstr(&b, ") _s");
        break;
    case RPC_ROWS: {
        core_buf_t where;
        core_buf_init(&where, SQL_MAX);
        x.b = &where;
        if (rel) rc = rest_build_where(&x, q);
        x.b = &b;
        if (rc != CORE_OK) {
            core_buf_free(&where);
            break;
        }
        core_buf_append_cstr(&b, "select ");
        core_buf_append_cstr(&b, rest_sql_body_agg(q)); /* json, csv, geojson, nulls stripped */
        core_buf_append_cstr(&b, ", count(*), ");
        if (c->count != REST_COUNT_NONE) {
            core_buf_append_cstr(&b, "(select count(*) from pgrst_args, lateral ");
            core_buf_append_str(&b, core_buf_str(&call));
            core_buf_append_cstr(&b, " pgrst_call");
            core_buf_append_str(&b, core_buf_str(&where));
            core_buf_append_char(&b, ')');
        } else {
            core_buf_append_cstr(&b, "null::bigint");
        }
        core_buf_append_cstr(&b, REST_SQL_GUC_COLS " from (select ");
        x.alias = "pgrst_call";
        if (rel) rc = rest_build_select(&x, q);
        else core_buf_append_char(&b, '*');
        if (rc == CORE_OK) {
            core_buf_t src;
            core_buf_init(&src, SQL_MAX);
            core_buf_append_cstr(&src, "pgrst_args, lateral ");
            core_buf_append_str(&src, core_buf_str(&call));
            core_buf_append_cstr(&src, " pgrst_call");
            if (core_buf_status(&src) == CORE_OK) rest_build_from_item(&x, core_buf_str(&src));
            else rc = core_buf_status(&src);
            core_buf_free(&src);
            core_buf_append_str(&b, core_buf_str(&where));
            if (rel) rc = rest_build_order(&x, q);
        }
        long limit = q->limit, max_rows = c->env->cfg->db_max_rows;
        if (max_rows >= 0 && (limit < 0 || limit > max_rows)) limit = max_rows;
        if (rc == CORE_OK && limit >= 0) core_buf_appendf(&b, " limit %ld", limit);
        if (rc == CORE_OK && q->offset > 0) core_buf_appendf(&b, " offset %ld", q->offset);
        core_buf_append_cstr(&b, ") _s");
        core_buf_free(&where);
        break;
    }
    }
    core_buf_free(&call);
    if (rc != CORE_OK) goto out;
    if ((rc = core_buf_status(&b)) != CORE_OK) goto out;
    st->sql = core_arena_strdup(req->arena, core_buf_str(&b));
    st->params = x.params;
    st->nparams = x.nparams;
    rc = st->sql ? CORE_OK : CORE_ENOMEM;
out:
    core_buf_free(&b);
    return rc;
}

/* ---- entry ----------------------------------------------------------------------------- */

void rest_handle_rpc(rest_env_t *env, http_req_t *req, str_t schema, str_t name, int accept)
{
    bool get = str_eq(req->method, STR_LIT("GET")) || str_eq(req->method, STR_LIT("HEAD"));
    bool post = str_eq(req->method, STR_LIT("POST"));
    if (!get && !post) {
        rest_respond_simple(req, 405, "PGRST101", "Cannot use the method on RPC", req->method);
        return;
    }
    size_t ncand = 0;
    const db_func_t *cands = db_schema_funcs(env->schema, schema, name, &ncand);
    rpc_call_t *c = core_arena_zalloc(req->arena, sizeof(*c));
    str_t *given = core_arena_alloc(req->arena, MAX_ARGS * sizeof(str_t));
    if (!c || !given) {
        rest_respond_simple(req, 503, "PGRST000", "Out of memory", STR_NULL);
        return;
    }
    c->req = req;
    c->env = env;
    c->accept = accept;
    rest_prefer_t pref;
    rest_prefer_parse(req, &pref);
    c->count = pref.count;
    size_t ngiven = 0;
    str_t args_json;
    str_t filters_qs = req->query;
    core_err_t err = {0};
    const db_func_t *chosen = NULL;
    str_t raw = post ? raw_body_type(req) : STR_LIT("");

    if (raw.len) {
        /* text/plain, text/xml, application/octet-stream: the body is the argument of a
         * function whose single unnamed parameter has that type. */
        size_t nraw = 0;
        for (size_t i = 0; i < ncand; i++)
            if (str_eq(single_unnamed_type(&cands[i]), raw)) {
                nraw++;
                if (!chosen) chosen = &cands[i];
            }
        if (!chosen) {
            not_found(req, schema, name, given, 0);
            return;
        }
        if (nraw > 1) {
            rest_respond_simple(req, 300, "PGRST203", "Could not choose the best candidate function between overloads", STR_NULL);
            return;
        }
        c->raw_type = raw;
        str_t body = req->body;
        if (str_eq(raw, STR_LIT("bytea"))) { /* bound as bytea's hex text form */
            static const char hex[] = "0123456789abcdef";
            char *d = core_arena_alloc(req->arena, body.len * 2 + 3);
            if (!d) {
                rest_respond_simple(req, 503, "PGRST000", "Out of memory", STR_NULL);
                return;
            }
            d[0] = '\\';
            d[1] = 'x';
            for (size_t i = 0; i < body.len; i++) {
                d[2 + 2 * i] = hex[(unsigned char)body.ptr[i] >> 4];
                d[3 + 2 * i] = hex[(unsigned char)body.ptr[i] & 15];
            }
            d[2 + 2 * body.len] = '\0';
            args_json = (str_t){d, 2 + 2 * body.len};
        } else {
            if (memchr(body.ptr, '\0', body.len)) {
                rest_respond_simple(req, 400, "PGRST102", "The body contains a NUL byte", STR_NULL);
                return;
            }
            args_json = body;
        }
    } else if (post && !is_form(req)) {
        str_t body = req->body.len ? req->body : STR_LIT("{}");
        json_error_t jerr;
        json_t *root = json_loadb(body.ptr, body.len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root) {
            rest_respond_simple(req, 400, "PGRST102", "Empty or invalid json", rest_arena_printf(req->arena, "%s", jerr.text));
            return;
        }
        bool whole_body_fn = false;
        for (size_t i = 0; i < ncand; i++)
            if (takes_whole_body(&cands[i])) whole_body_fn = true;
        if (!json_is_object(root) && !whole_body_fn) {
            json_decref(root);
            rest_respond_simple(req, 400, "PGRST102", "Empty or invalid json", STR_LIT("RPC arguments must be a JSON object"));
            return;
        }
        if (json_is_object(root)) {
            const char *key;
            json_t *val;
            json_object_foreach(root, key, val) {
                (void)val;
                if (ngiven == MAX_ARGS) break;
                str_t k = str_from_cstr(key);
                char *d = core_arena_strdup(req->arena, k);
                if (!d) break;
                given[ngiven++] = (str_t){d, k.len};
            }
        }
        json_decref(root);
        args_json = body;
    } else {
        /* GET: parameters named like an argument of some candidate are arguments; the rest
         * are filters, select, order... on the result. POST with a form body: every key of
         * the body is an argument (string values; a repeated variadic one makes an array),
         * the query string keeps the filters. */
        bool form = post;
        str_t src = form ? req->body : req->query;
        core_buf_t args, rest, var;
        core_buf_init(&args, SQL_MAX);
        core_buf_init(&rest, SQL_MAX);
        core_buf_init(&var, SQL_MAX);
        core_buf_append_char(&args, '{');
        str_t var_name = STR_NULL; /* a variadic argument: every repetition is one element */
        size_t start = 0;
        for (size_t i = 0; i <= src.len; i++) {
            if (i < src.len && src.ptr[i] != '&') continue;
            str_t part = {src.ptr + start, i - start};
            start = i + 1;
            if (part.len == 0) continue;
            long eq = str_find_char(part, '=');
            str_t rk = eq < 0 ? part : (str_t){part.ptr, (size_t)eq};
            str_t k, v;
            if (rest_url_decode(req->arena, rk, &k) != CORE_OK ||
                rest_url_decode(req->arena, eq < 0 ? STR_LIT("") : (str_t){part.ptr + eq + 1, part.len - (size_t)eq - 1}, &v) != CORE_OK) {
                core_buf_free(&args);
                core_buf_free(&rest);
                core_buf_free(&var);
                if (form) rest_respond_simple(req, 400, "PGRST102", "Invalid form body", STR_NULL);
                else rest_respond_simple(req, 400, "PGRST100", "invalid percent-encoding in the query string", STR_NULL);
                return;
            }
            bool is_arg = false, is_var = false;
            for (size_t ci = 0; ci < ncand && !is_arg; ci++)
                for (size_t pi = 0; pi < cands[ci].nparams; pi++)
                    if (is_in(&cands[ci].params[pi]) && cands[ci].params[pi].name.len && str_eq(cands[ci].params[pi].name, k)) {
                        is_arg = true;
                        is_var = cands[ci].params[pi].mode == 'v';
                    }
            is_arg = is_arg || form; /* unknown form keys then fail the overload choice (PGRST202) */
            if (is_var && (!var_name.ptr || str_eq(var_name, k))) {
                if (!var_name.ptr && ngiven < MAX_ARGS) given[ngiven++] = k;
                var_name = k;
                if (var.len) core_buf_append_char(&var, ',');
                core_buf_append_json(&var, v);
            } else if (is_arg && ngiven < MAX_ARGS && !names_contain(given, ngiven, k)) {
                if (ngiven) core_buf_append_char(&args, ',');
                core_buf_append_json(&args, k);
                core_buf_append_char(&args, ':');
                core_buf_append_json(&args, v);
                given[ngiven++] = k;
            } else {
                if (rest.len) core_buf_append_char(&rest, '&');
                core_buf_append_str(&rest, part);
            }
        }
        if (var_name.ptr) { /* GET /rpc/f?v=1&v=2: the variadic argument as an array */
            if (args.len > 1) core_buf_append_char(&args, ',');
            core_buf_append_json(&args, var_name);
            core_buf_append_cstr(&args, ":[");
            core_buf_append_str(&args, core_buf_str(&var));
            core_buf_append_char(&args, ']');
        }
        int rc = core_buf_status(&var);
        core_buf_free(&var);
        core_buf_append_char(&args, '}');
        if (rc == CORE_OK) rc = core_buf_status(&args) != CORE_OK ? core_buf_status(&args) : core_buf_status(&rest);
        char *a = rc == CORE_OK ? core_arena_strdup(req->arena, core_buf_str(&args)) : NULL;
        char *r = rc == CORE_OK ? core_arena_strdup(req->arena, core_buf_str(&rest)) : NULL;
        size_t alen = args.len, rlen = rest.len;
        core_buf_free(&args);
        core_buf_free(&rest);
        if (!a || !r) {
            rest_respond_simple(req, 503, "PGRST000", "Out of memory", STR_NULL);
            return;
        }
        args_json = (str_t){a, alen};
        if (!form) filters_qs = (str_t){r, rlen};
    }

    /* Overload choice by argument names (PGRST202 none, PGRST203 several). */
    size_t nmatch = chosen ? 1 : 0;
    for (size_t i = 0; i < ncand && !raw.len; i++) {
        const db_func_t *f = &cands[i];
        bool ok = (post && takes_whole_body(f)) || accepts(f, given, ngiven);
        if (ok) {
            nmatch++;
            if (!chosen) chosen = f;
        }
    }
    if (!chosen) {
        not_found(req, schema, name, given, ngiven);
        return;
    }
    if (nmatch > 1) {
        rest_respond_simple(req, 300, "PGRST203", "Could not choose the best candidate function between overloads",
                            rest_arena_printf(req->arena, "%zu functions named %.*s accept these arguments", nmatch,
                                              (int)(name.len > 100 ? 100 : name.len), name.ptr));
        return;
    }
    c->fn = chosen;
    rest_use_function(req, chosen);

    rest_query_t q;
    int rc = rest_parse_query(req->arena, filters_qs, &q, &err);
    if (rc == CORE_OK) rc = rest_query_allowed(env, &q, &err);
    rest_mark_parsed(req);
    if (rc == CORE_OK) {
        rest_query_set_media(&q, accept);
        c->offset = q.offset;
        rest_stmt_t st;
        rc = build_rpc(c, &q, args_json, given, ngiven, &st, &err);
        if (rc == CORE_OK) {
            bool read_only = get || chosen->volatility != 'v';
            (void)rest_submit(env, req, &st, read_only, pref.tx == REST_TX_ROLLBACK, on_rpc_done, c);
            return;
        }
    }
    if (rc == CORE_ENOMEM || !err.code) {
        rest_respond_simple(req, 503, "PGRST000", "Out of memory", STR_NULL);
        return;
    }
    rest_respond_error(req, &err);
}
