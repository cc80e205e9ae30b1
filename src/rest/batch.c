/*
 * POST /batch (beyond PostgREST): several REST operations in one transaction.
 *
 *   POST /batch
 *   [{"method": "POST", "path": "/orders", "body": {...}, "headers": {"Prefer": "return=representation"}},
 *    {"method": "PATCH", "path": "/items?id=eq.1", "body": {"qty": 3}},
 *    {"method": "GET", "path": "/items?id=eq.1"}]
 *
 * Each operation becomes a request of its own (made here, in the batch's arena, answering
 * into `capture` instead of a socket) and goes through the ordinary handlers; while they run,
 * env->collect makes rest_submit hand their statements to the batch instead of the pool.
 * The statements then run in order in one pipeline segment with one Sync — one
 * transaction: a later operation sees an earlier one's writes, and an error anywhere rolls
 * everything back. The answer is 200 with every operation's status, headers and body, or
 * the first failing operation's status and error (with its index under "operation").
 *
 * An operation may carry only Prefer, Content-Type, Accept-Profile and Content-Profile; its
 * Accept is JSON, and it runs as the batch's caller (the batch's Authorization).
 */
#include <jansson.h>
#include <string.h>

#include "rest/rest_int.h"

typedef struct {
    http_req_t req;
    bool answered;
    int status;
    str_t body;
    str_t content_type, location, content_range, preference_applied;
} batch_op_t;

struct rest_batch {
    rest_env_t *env;
    http_req_t *parent;
    batch_op_t *ops;
    size_t nops, answered;
    db_request_t reqs[DB_BATCH_MAX];
    db_done_fn dones[DB_BATCH_MAX];
    void *args[DB_BATCH_MAX];
    size_t nreqs;
    bool overflow;   /* an operation submitted more than one statement */
    bool dispatched; /* every operation has been handled; answers may finish the batch */
};

static void batch_error(http_req_t *req, int status, const char *code, const char *msg, str_t details)
{
    core_err_t e = core_err_make(status, code, msg, details);
    rest_respond_error(req, &e);
}

static str_t header_of(const http_header_t *h, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (str_eq_nocase(h[i].name, str_from_cstr(name))) return h[i].value;
    return STR_NULL;
}

static str_t arena_copy(core_arena_t *a, str_t s)
{
    if (!s.ptr) return STR_NULL;
    char *d = core_arena_strdup(a, s);
    return d ? (str_t){d, s.len} : STR_NULL;
}

static void finish(struct rest_batch *b);
static void respond_failure(struct rest_batch *b, size_t i);

static void on_capture(http_req_t *req, int status, const http_header_t *h, size_t n, str_t body)
{
    struct rest_batch *b = req->capture_arg;
    batch_op_t *op = (batch_op_t *)(void *)req; /* req is the first member of its op */
    core_arena_t *a = b->parent->arena;
    if (op->answered) return;
    op->answered = true;
    op->status = status;
    op->body = body; /* in the shared arena already */
    op->content_type = arena_copy(a, header_of(h, n, "Content-Type"));
    op->location = arena_copy(a, header_of(h, n, "Location"));
    op->content_range = arena_copy(a, header_of(h, n, "Content-Range"));
    op->preference_applied = arena_copy(a, header_of(h, n, "Preference-Applied"));
    b->answered++;
    if (b->dispatched && b->answered == b->nops) finish(b);
}

int rest_batch_collect(rest_env_t *env, const db_request_t *dr, db_done_fn done, void *arg)
{
    struct rest_batch *b = env->collect;
    if (b->nreqs == DB_BATCH_MAX) {
        b->overflow = true;
        return CORE_ELIMIT;
    }
    db_request_t r = *dr;
    r.read_only = false; /* a read-only switch after earlier writes would fail the transaction */
    r.rollback = false;  /* tx=rollback applies to the whole batch, not one operation */
    if (b->nreqs > 0) r.isolation = NULL; /* only the first statement may set the isolation level */
    b->reqs[b->nreqs] = r;
    b->dones[b->nreqs] = done;
    b->args[b->nreqs] = arg;
    b->nreqs++;
    return CORE_OK;
}

static bool is_json_type(str_t ct)
{
    return ct.ptr && (str_starts_with(ct, STR_LIT("application/json")) || str_starts_with(ct, STR_LIT("application/vnd.pgrst")) ||
                      str_starts_with(ct, STR_LIT("application/openapi+json")));
}

/* The batch's answer when operation i failed: its status and error, with "operation": i. */
static void respond_failure(struct rest_batch *b, size_t i)
{
    http_req_t *req = b->parent;
    http_header_t h[8];
    size_t nh = rest_cors_headers(req, h);
    h[nh++] = (http_header_t){STR_LIT("Content-Type"), STR_LIT("application/json; charset=utf-8")};
    batch_op_t *op = &b->ops[i];
    json_error_t jerr;
    json_t *e = json_loadb(op->body.ptr, op->body.len, 0, &jerr);
    if (!json_is_object(e)) {
        json_decref(e);
        e = json_pack("{s:s,s:s}", "code", "PGRST000", "message", "operation failed");
    }
    if (e) json_object_set_new(e, "operation", json_integer((json_int_t)i));
    char *txt = e ? json_dumps(e, JSON_COMPACT) : NULL;
    json_decref(e);
    str_t body = txt ? arena_copy(req->arena, str_from_cstr(txt)) : STR_NULL;
    free(txt);
    if (!body.ptr) {
        rest_respond_simple(req, 503, "PGRST000", "Out of memory", STR_NULL);
        return;
    }
    http_respond(req, op->status, h, nh, body);
}

static void finish(struct rest_batch *b)
{
    http_req_t *req = b->parent;
    http_header_t h[8];
    size_t nh = rest_cors_headers(req, h);
    h[nh++] = (http_header_t){STR_LIT("Content-Type"), STR_LIT("application/json; charset=utf-8")};
    for (size_t i = 0; i < b->nops; i++) {
        if (b->ops[i].status >= 400) { /* the first failure is the cause; what follows was not run */
            respond_failure(b, i);
            return;
        }
    }
    core_buf_t out;
    core_buf_init(&out, (size_t)1 << 30);
    core_buf_append_char(&out, '[');
    for (size_t i = 0; i < b->nops; i++) {
        batch_op_t *op = &b->ops[i];
        core_buf_appendf(&out, "%s{\"status\":%d,\"headers\":{", i ? "," : "", op->status);
        size_t k = 0;
        const struct {
            const char *name;
            str_t v;
        } hs[] = {{"Content-Type", op->content_type},
                  {"Content-Range", op->content_range},
                  {"Location", op->location},
                  {"Preference-Applied", op->preference_applied}};
        for (size_t j = 0; j < sizeof(hs) / sizeof(hs[0]); j++) {
            if (!hs[j].v.ptr) continue;
            core_buf_appendf(&out, "%s\"%s\":", k++ ? "," : "", hs[j].name);
            core_buf_append_json(&out, hs[j].v);
        }
        core_buf_append_cstr(&out, "},\"body\":");
        if (op->body.len == 0) core_buf_append_cstr(&out, "null");
        else if (is_json_type(op->content_type)) core_buf_append_str(&out, op->body); /* built by PostgreSQL */
        else core_buf_append_json(&out, op->body);
        core_buf_append_char(&out, '}');
    }
    core_buf_append_char(&out, ']');
    str_t body = core_buf_status(&out) == CORE_OK ? arena_copy(req->arena, core_buf_str(&out)) : STR_NULL;
    core_buf_free(&out);
    if (!body.ptr) {
        rest_respond_simple(req, 503, "PGRST000", "Out of memory", STR_NULL);
        return;
    }
    http_respond(req, 200, h, nh, body);
}

/* The request an operation becomes. */
static int make_op(struct rest_batch *b, size_t i, json_t *o, str_t *route, str_t *why)
{
    http_req_t *parent = b->parent;
    core_arena_t *a = parent->arena;
    batch_op_t *op = &b->ops[i];
    http_req_t *r = &op->req;
    json_t *jm = json_object_get(o, "method"), *jp = json_object_get(o, "path"), *jh = json_object_get(o, "headers");
    json_t *jb = json_object_get(o, "body");
    if (!json_is_string(jm) || !json_is_string(jp)) {
        *why = STR_LIT("every operation needs a \"method\" and a \"path\" string");
        return CORE_EINVAL;
    }
    str_t m = {json_string_value(jm), json_string_length(jm)};
    if (!str_eq(m, STR_LIT("GET")) && !str_eq(m, STR_LIT("POST")) && !str_eq(m, STR_LIT("PATCH")) &&
        !str_eq(m, STR_LIT("PUT")) && !str_eq(m, STR_LIT("DELETE"))) {
        *why = STR_LIT("method must be GET, POST, PATCH, PUT or DELETE");
        return CORE_EINVAL;
    }
    str_t target = {json_string_value(jp), json_string_length(jp)};
    if (target.len == 0 || target.ptr[0] != '/' || memchr(target.ptr, '\0', target.len)) {
        *why = STR_LIT("path must start with \"/\"");
        return CORE_EINVAL;
    }
    if (jh && !json_is_object(jh)) {
        *why = STR_LIT("headers must be an object of strings");
        return CORE_EINVAL;
    }
    r->arena = a;
    r->method = arena_copy(a, m);
    r->method_id = parent->method_id;
    r->target = arena_copy(a, target);
    if (!r->method.ptr || !r->target.ptr) return CORE_ENOMEM;
    long q = str_find_char(r->target, '?');
    str_t rawpath = q < 0 ? r->target : (str_t){r->target.ptr, (size_t)q};
    r->query = q < 0 ? STR_LIT("") : (str_t){r->target.ptr + q + 1, r->target.len - (size_t)q - 1};
    if (rest_url_decode(a, rawpath, &r->path) != CORE_OK) {
        *why = STR_LIT("invalid percent-encoding in a path");
        return CORE_EINVAL;
    }
    *route = r->path;
    if (str_starts_with(*route, STR_LIT("/rest/v1/")) || str_eq(*route, STR_LIT("/rest/v1")))
        *route = (str_t){route->ptr + 8, route->len - 8};

    /* headers: the caller's identity, then the operation's own few */
    size_t cap = 8 + (jh ? json_object_size(jh) : 0);
    r->headers = core_arena_zalloc(a, cap * sizeof(http_header_t));
    if (!r->headers) return CORE_ENOMEM;
    static const char *const INHERIT[] = {"Authorization", "Cookie", "apikey", "Origin"};
    for (size_t k = 0; k < sizeof(INHERIT) / sizeof(INHERIT[0]); k++) {
        str_t v = http_req_header(parent, str_from_cstr(INHERIT[k]));
        if (v.ptr) r->headers[r->nheaders++] = (http_header_t){str_from_cstr(INHERIT[k]), v};
    }
    r->headers[r->nheaders++] = (http_header_t){STR_LIT("Accept"), STR_LIT("application/json")};
    bool has_ct = false;
    const char *key;
    json_t *val;
    json_object_foreach(jh, key, val) {
        str_t k = str_from_cstr(key);
        if (!json_is_string(val)) {
            *why = STR_LIT("headers must be an object of strings");
            return CORE_EINVAL;
        }
        if (!str_eq_nocase(k, STR_LIT("Prefer")) && !str_eq_nocase(k, STR_LIT("Content-Type")) &&
            !str_eq_nocase(k, STR_LIT("Accept-Profile")) && !str_eq_nocase(k, STR_LIT("Content-Profile"))) {
            *why = STR_LIT("an operation may set only Prefer, Content-Type, Accept-Profile and Content-Profile");
            return CORE_EINVAL;
        }
        str_t v = arena_copy(a, (str_t){json_string_value(val), json_string_length(val)});
        str_t kn = arena_copy(a, k);
        if (!v.ptr || !kn.ptr) return CORE_ENOMEM;
        if (str_eq_nocase(k, STR_LIT("Content-Type"))) has_ct = true;
        r->headers[r->nheaders++] = (http_header_t){kn, v};
    }
    /* body: JSON as sent; a string is passed as it is (CSV, form data) */
    r->body = STR_LIT("");
    if (jb) {
        if (json_is_string(jb)) {
            r->body = arena_copy(a, (str_t){json_string_value(jb), json_string_length(jb)});
        } else {
            char *txt = json_dumps(jb, JSON_COMPACT | JSON_ENCODE_ANY);
            r->body = txt ? arena_copy(a, str_from_cstr(txt)) : STR_NULL;
            free(txt);
            if (!has_ct) r->headers[r->nheaders++] = (http_header_t){STR_LIT("Content-Type"), STR_LIT("application/json")};
        }
        if (!r->body.ptr) return CORE_ENOMEM;
    }
    (void)snprintf(r->request_id, sizeof(r->request_id), "%.28s-%u", parent->request_id, (unsigned)(i & 0xffu));
    r->start_ns = parent->start_ns;
    r->capture = on_capture;
    r->capture_arg = b;
    return CORE_OK;
}

void rest_handle_batch(rest_env_t *env, http_req_t *req)
{
    json_error_t jerr;
    json_t *root = json_loadb(req->body.ptr, req->body.len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_array(root) || json_array_size(root) == 0 || json_array_size(root) > DB_BATCH_MAX) {
        json_decref(root);
        batch_error(req, 400, "PGRST102", "Invalid batch",
                    rest_arena_printf(req->arena, "The body must be a JSON array of 1 to %d operations", DB_BATCH_MAX));
        return;
    }
    rest_prefer_t pref;
    rest_prefer_parse(req, &pref);
    struct rest_batch *b = core_arena_zalloc(req->arena, sizeof(*b));
    size_t n = json_array_size(root);
    if (b) b->ops = core_arena_zalloc(req->arena, n * sizeof(batch_op_t));
    if (!b || !b->ops) {
        json_decref(root);
        rest_respond_simple(req, 503, "PGRST000", "Out of memory", STR_NULL);
        return;
    }
    b->env = env;
    b->parent = req;
    b->nops = n;
    str_t *routes = core_arena_zalloc(req->arena, n * sizeof(str_t));
    for (size_t i = 0; i < n; i++) {
        str_t why = STR_NULL;
        json_t *o = json_array_get(root, i);
        int rc = !routes ? CORE_ENOMEM : json_is_object(o) ? make_op(b, i, o, &routes[i], &why) : CORE_EINVAL;
        if (rc == CORE_EINVAL && !why.ptr) why = STR_LIT("every operation must be an object");
        if (rc != CORE_OK) {
            json_decref(root);
            if (rc == CORE_ENOMEM) rest_respond_simple(req, 503, "PGRST000", "Out of memory", STR_NULL);
            else batch_error(req, 400, "PGRST102", "Invalid batch", rest_arena_printf(req->arena, "operation %zu: %.*s", i, STR_FMT(why)));
            return;
        }
        str_t rt = routes[i];
        while (rt.len && rt.ptr[0] == '/') {
            rt.ptr++;
            rt.len--;
        }
        if (str_eq(rt, STR_LIT("batch"))) {
            json_decref(root);
            batch_error(req, 400, "PGRST102", "Invalid batch", rest_arena_printf(req->arena, "operation %zu: batches do not nest", i));
            return;
        }
    }
    json_decref(root);

    /* Hand every operation to the ordinary handlers; their statements are collected. */
    bool failed = false;
    for (size_t i = 0; i < n; i++) {
        size_t before = b->nreqs;
        env->collect = b;
        rest_handle(env, &b->ops[i].req, routes[i]);
        env->collect = NULL;
        /* an operation either answered at once or left exactly one statement */
        failed = b->ops[i].answered ? b->ops[i].status >= 400 : b->nreqs != before + 1;
        if (failed) break;
    }
    if (failed || b->overflow) {
        /* Nothing ran: answer with the failing operation's error, after releasing the
         * operations that wait for the database (their answers are ignored). */
        size_t first = 0;
        while (first < n && !(b->ops[first].answered && b->ops[first].status >= 400)) first++;
        db_error_t e = {.kind = DB_ERR_SHUTDOWN, .message = "not run: another operation of the batch failed"};
        for (size_t k = 0; k < b->nreqs; k++) b->dones[k](b->args[k], NULL, &e);
        if (first == n) {
            batch_error(req, 400, "PGRST102", "Invalid batch", STR_LIT("an operation could not be run in a batch"));
            return;
        }
        respond_failure(b, first);
        return;
    }
    if (b->nreqs > 0 && pref.tx == REST_TX_ROLLBACK) b->reqs[b->nreqs - 1].rollback = true;
    b->dispatched = true;
    if (b->nreqs == 0) {
        if (b->answered == b->nops) finish(b);
        return;
    }
    int rc = db_pool_submit_batch(env->pool, b->reqs, b->dones, b->args, b->nreqs);
    if (rc != CORE_OK) {
        db_error_t e = {.kind = rc == CORE_ENOMEM ? DB_ERR_NOMEM : DB_ERR_SHUTDOWN,
                        .message = rc == CORE_ENOMEM ? "Out of memory" : "The server is shutting down"};
        for (size_t k = 0; k < b->nreqs; k++) b->dones[k](b->args[k], NULL, &e); /* each answers; the last finishes */
    }
}
