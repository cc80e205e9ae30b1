/*
 * The auth service under /auth/v1: GoTrue's email + password routes as @supabase/auth-js
 * calls them. Each route is a short chain of asynchronous steps on the worker's loop:
 *
 *   parse + validate ─▶ rate limit ─▶ [argon2id on the thread pool] ─▶ one statement
 *   (an auth.strata_* SECURITY DEFINER function, as role strata_auth) ─▶ response
 *
 * The password grant has two statements around the verification (find the user, then
 * open the session), since the hash must be checked between them. PostgreSQL builds the
 * user JSON; C only reads it to put claims into the access token. Errors have GoTrue's
 * shapes: {"code": "<error_code>", "message"} for clients sending X-Supabase-Api-Version
 * 2024-01-01 (auth-js does), {"code": <status>, "error_code", "msg"} otherwise.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/service_int.h"

#define JSON_CT "application/json; charset=utf-8"
#define API_VERSION "2024-01-01"
#define SERVICE_ROLE "strata_auth"
#define AUTH_ADMIN_PER_PAGE_MAX 1000L

/* What one configuration generation gives the service. Built at startup and on each config
 * reload (auth_service_reload), immutable afterwards and reference-counted: a worker holds
 * the newest it has seen, and every request holds the one it started with until its arena
 * is released, so a reload never changes the key or the settings under a request that is
 * waiting for the database or the thread pool. */
typedef struct {
    atomic_int refs;
    auth_jwt_t *jwt;            /* a reference: signs new tokens, verifies bearers */
    char *aud;                  /* jwt-aud (copied), NULL = none */
    char *unavailable;          /* why every route answers 503, or NULL */
    int jwt_exp_s;              /* strata-auth-jwt-exp */
    int password_min_length;    /* strata-auth-password-min-length */
    int reuse_interval_s;       /* strata-auth-refresh-token-reuse-interval */
    bool anonymous_users;       /* strata-auth-anonymous-users-enabled */
    unsigned long long ops;     /* argon2id limits for new hashes */
    size_t mem;
} auth_conf_t;

struct auth_service {
    char *schema_unavailable; /* the auth schema cannot be used (a restart is needed) */
    auth_ratelimit_t *rl;     /* one for the process; a reload changes its rate */
    unsigned long long ops;   /* startup's argon2id limits (the hashers' default) */
    size_t mem;
    unsigned hash_per_worker;
    char dummy_hash[crypto_pwhash_STRBYTES]; /* verified for unknown emails (same cost) */
    pthread_mutex_t mu;
    auth_conf_t *conf;                 /* current (under mu) */
    atomic_uint_fast64_t conf_version; /* bumped on each publish */
};

struct auth_worker {
    auth_service_t *svc;
    db_pool_t *pool;
    auth_cache_t *jwt_cache;
    auth_hasher_t *hasher;
    auth_conf_t *conf;     /* the newest configuration this worker has adopted */
    uint64_t conf_version;
};

typedef enum {
    R_SIGNUP,
    R_TOKEN_PASSWORD,
    R_TOKEN_REFRESH,
    R_USER_GET,
    R_USER_PUT,
    R_LOGOUT,
    R_ADMIN_LIST,
    R_ADMIN_CREATE,
    R_ADMIN_GET,
    R_ADMIN_PUT,
    R_ADMIN_DELETE,
} route_t;

/* One request's state; lives in the request arena. */
typedef struct {
    auth_worker_t *w;
    const auth_conf_t *conf; /* held until the arena is released */
    http_req_t *req;
    route_t route;
    auth_body_t body;
    char ip[64];
    const char *ua;
    const char *user_id;    /* the JWT's sub (user routes) or the path's id (admin) */
    const char *session_id; /* the JWT's session_id, or NULL */
    const char *scope;      /* logout */
    long page, per_page;    /* admin list */
    const char *pw_hash;    /* a new password's hash, or NULL */
    bool user_found;        /* password grant: the email exists with a password */
    char refresh[AUTH_REFRESH_LEN + 1];
    char refresh_hash[AUTH_REFRESH_HASH_LEN + 1];
    char old_hash[AUTH_REFRESH_HASH_LEN + 1];
    auth_hash_job_t job;
} call_t;

/* ---- configuration generations ------------------------------------------------------------ */

static void conf_unref(auth_conf_t *c)
{
    if (!c || atomic_fetch_sub(&c->refs, 1) != 1) return;
    auth_jwt_free(c->jwt);
    core_free(c->aud);
    core_free(c->unavailable);
    core_free(c);
}

static void conf_unref_cb(void *p) { conf_unref(p); }

static auth_conf_t *conf_current(auth_service_t *s)
{
    pthread_mutex_lock(&s->mu);
    auth_conf_t *c = s->conf;
    if (c) atomic_fetch_add(&c->refs, 1);
    pthread_mutex_unlock(&s->mu);
    return c;
}

/* The settings the service reads from one generation; NULL when out of memory. */
static auth_conf_t *conf_create(const auth_service_t *s, const core_config_t *cfg, auth_jwt_t *verifier)
{
    auth_conf_t *c = core_calloc(1, sizeof(*c));
    if (!c) return NULL;
    atomic_init(&c->refs, 1);
    c->jwt = auth_jwt_ref(verifier);
    c->jwt_exp_s = cfg->auth_jwt_exp_s;
    c->password_min_length = cfg->auth_password_min_length;
    c->reuse_interval_s = cfg->auth_refresh_token_reuse_interval_s;
    c->anonymous_users = cfg->auth_anonymous_users_enabled;
    if (!auth_hash_limits(cfg->auth_password_hash, &c->ops, &c->mem))
        (void)auth_hash_limits("interactive", &c->ops, &c->mem);
    if (cfg->jwt_aud && !(c->aud = core_strndup(cfg->jwt_aud, strlen(cfg->jwt_aud)))) goto nomem;
    const char *why = s->schema_unavailable;
    if (!why && !auth_jwt_has_secret(verifier)) why = "jwt-secret is not set, so the auth service cannot sign tokens";
    if (!why && !auth_token_can_sign(verifier))
        why = "jwt-secret is not an HMAC secret, so the auth service cannot sign tokens "
              "(it needs a shared secret of at least 32 characters)";
    if (why && !(c->unavailable = core_strndup(why, strlen(why)))) goto nomem;
    return c;
nomem:
    conf_unref(c);
    return NULL;
}

static void conf_publish(auth_service_t *s, auth_conf_t *c)
{
    pthread_mutex_lock(&s->mu);
    auth_conf_t *old = s->conf;
    s->conf = c;
    atomic_fetch_add(&s->conf_version, 1);
    pthread_mutex_unlock(&s->mu);
    conf_unref(old);
}

/* Adopts the newest configuration when a reload published one (one atomic load when not). */
static void worker_refresh_conf(auth_worker_t *w)
{
    uint64_t v = atomic_load(&w->svc->conf_version);
    if (v == w->conf_version) return;
    auth_conf_t *c = conf_current(w->svc);
    if (!c) return;
    conf_unref(w->conf);
    w->conf = c;
    w->conf_version = v;
}

/* ---- service lifetime ---------------------------------------------------------------------- */

int auth_service_create(const core_config_t *cfg, auth_jwt_t *verifier, const char *unavailable,
                        unsigned nworkers, auth_service_t **out)
{
    *out = NULL;
    if (sodium_init() < 0) return CORE_EIO;
    auth_service_t *s = core_calloc(1, sizeof(*s));
    if (!s) return CORE_ENOMEM;
    if (pthread_mutex_init(&s->mu, NULL) != 0) {
        core_free(s);
        return CORE_ENOMEM;
    }
    atomic_init(&s->conf_version, 1);
    if (!auth_hash_limits(cfg->auth_password_hash, &s->ops, &s->mem))
        (void)auth_hash_limits("interactive", &s->ops, &s->mem);
    /* One hash at a time per worker (two with a single worker), and never more than libuv's
     * thread pool runs at once (4 threads unless UV_THREADPOOL_SIZE says otherwise): at
     * interactive limits that bounds hashing to 4 × 64 MiB whatever the load. */
    s->hash_per_worker = nworkers >= 2 ? 1 : 2;
    s->rl = auth_ratelimit_create(4096, (unsigned)cfg->auth_rate_limit_per_min);
    if (!s->rl) goto nomem;
    if (unavailable && !(s->schema_unavailable = core_strndup(unavailable, strlen(unavailable)))) goto nomem;
    s->conf = conf_create(s, cfg, verifier);
    if (!s->conf) goto nomem;
    if (s->conf->unavailable) {
        LOG_ERROR("auth: /auth/v1 answers 503: %s", s->conf->unavailable);
    }
    if (!s->schema_unavailable) {
        /* At startup, before the loops: the one blocking hash this process makes. It is
         * made even without a usable secret, since a reload may bring one. */
        char pw[24];
        randombytes_buf(pw, sizeof(pw));
        if (auth_hash_now(pw, sizeof(pw), s->ops, s->mem, s->dummy_hash) != CORE_OK) goto nomem;
    }
    *out = s;
    return CORE_OK;
nomem:
    auth_service_free(s);
    return CORE_ENOMEM;
}

int auth_service_reload(auth_service_t *s, const core_config_t *cfg, auth_jwt_t *verifier)
{
    auth_conf_t *c = conf_create(s, cfg, verifier);
    if (!c) return CORE_ENOMEM;
    auth_conf_t *old = conf_current(s);
    bool was_unavailable = old && old->unavailable;
    conf_unref(old);
    if (c->unavailable) LOG_ERROR("auth: /auth/v1 answers 503: %s", c->unavailable);
    else if (was_unavailable) LOG_INFO("auth: /auth/v1 is available again");
    auth_ratelimit_set_rate(s->rl, (unsigned)cfg->auth_rate_limit_per_min);
    conf_publish(s, c);
    return CORE_OK;
}

void auth_service_free(auth_service_t *s)
{
    if (!s) return;
    conf_unref(s->conf);
    auth_ratelimit_free(s->rl);
    core_free(s->schema_unavailable);
    pthread_mutex_destroy(&s->mu);
    core_free(s);
}

auth_worker_t *auth_worker_create(auth_service_t *s, uv_loop_t *loop, db_pool_t *pool, auth_cache_t *jwt_cache)
{
    auth_worker_t *w = core_calloc(1, sizeof(*w));
    if (!w) return NULL;
    w->svc = s;
    w->pool = pool;
    w->jwt_cache = jwt_cache;
    w->conf_version = atomic_load(&s->conf_version);
    w->conf = conf_current(s);
    w->hasher = auth_hasher_create(loop, s->hash_per_worker, s->ops, s->mem);
    if (!w->hasher || !w->conf) {
        auth_worker_free(w);
        return NULL;
    }
    return w;
}

void auth_worker_free(auth_worker_t *w)
{
    if (!w) return;
    auth_hasher_free(w->hasher);
    conf_unref(w->conf);
    core_free(w);
}

/* ---- responses --------------------------------------------------------------------------------- */

static size_t cors_headers(const http_req_t *req, http_header_t *h)
{
    str_t origin = http_req_header(req, STR_LIT("Origin"));
    size_t n = 0;
    h[n++] = (http_header_t){STR_LIT("Access-Control-Allow-Origin"), origin.ptr ? origin : STR_LIT("*")};
    h[n++] = (http_header_t){STR_LIT("Access-Control-Expose-Headers"),
                             STR_LIT("Content-Type, Date, Link, Retry-After, X-Total-Count, "
                                     "X-Supabase-Api-Version, X-Sb-Error-Code")};
    if (origin.ptr) h[n++] = (http_header_t){STR_LIT("Vary"), STR_LIT("Origin")};
    return n;
}

/* GoTrue answers with the 2024-01-01 error shape when the client asks for that version or
 * a later one (a date it does not know maps to the closest earlier version). */
static bool api_2024(const http_req_t *req)
{
    str_t v = http_req_header(req, STR_LIT("X-Supabase-Api-Version"));
    if (v.len != 10 || v.ptr[4] != '-' || v.ptr[7] != '-') return false;
    for (size_t i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (v.ptr[i] < '0' || v.ptr[i] > '9')) return false;
    return memcmp(v.ptr, API_VERSION, 10) >= 0;
}

/* Sends b's contents (copied into the arena) with status; frees b. */
static void respond_buf(http_req_t *req, int status, core_buf_t *b, const http_header_t *extra, size_t nextra)
{
    http_header_t h[12];
    size_t n = cors_headers(req, h);
    h[n++] = (http_header_t){STR_LIT("Content-Type"), STR_LIT(JSON_CT)};
    for (size_t i = 0; i < nextra && n < sizeof(h) / sizeof(h[0]); i++) h[n++] = extra[i];
    char *body = core_buf_status(b) == CORE_OK ? core_arena_strdup(req->arena, core_buf_str(b)) : NULL;
    size_t len = b->len;
    core_buf_free(b);
    if (!body) {
        http_respond(req, 503, h, n, STR_LIT("{\"code\":503,\"error_code\":\"unexpected_failure\",\"msg\":\"Out of memory\"}"));
        return;
    }
    http_respond(req, status, h, n, (str_t){body, len});
}

/* GoTrue's HTTPError. weak: add weak_password.reasons ["length"]. retry_after > 0: 429's
 * Retry-After header. */
static void respond_error_ex(http_req_t *req, int status, const char *code, str_t msg, bool weak,
                             unsigned retry_after)
{
    core_buf_t b;
    core_buf_init(&b, (size_t)16 * 1024);
    http_header_t extra[3];
    size_t n = 0;
    extra[n++] = (http_header_t){STR_LIT("X-Sb-Error-Code"), str_from_cstr(code)};
    if (api_2024(req)) {
        extra[n++] = (http_header_t){STR_LIT("X-Supabase-Api-Version"), STR_LIT(API_VERSION)};
        core_buf_append_cstr(&b, "{\"code\":");
        core_buf_append_json(&b, str_from_cstr(code));
        core_buf_append_cstr(&b, ",\"message\":");
        core_buf_append_json(&b, msg);
    } else {
        core_buf_appendf(&b, "{\"code\":%d,\"error_code\":", status);
        core_buf_append_json(&b, str_from_cstr(code));
        core_buf_append_cstr(&b, ",\"msg\":");
        core_buf_append_json(&b, msg);
    }
    if (weak) core_buf_append_cstr(&b, ",\"weak_password\":{\"reasons\":[\"length\"]}");
    core_buf_append_char(&b, '}');
    char ra[24];
    if (retry_after) {
        snprintf(ra, sizeof(ra), "%u", retry_after);
        extra[n++] = (http_header_t){STR_LIT("Retry-After"), str_from_cstr(ra)};
    }
    respond_buf(req, status, &b, extra, n);
}

static void respond_error(http_req_t *req, int status, const char *code, const char *msg)
{
    respond_error_ex(req, status, code, str_from_cstr(msg), false, 0);
}

/* OAuth2's error shape (the refresh grant without a token). */
static void respond_oauth_error(http_req_t *req, const char *error, const char *description)
{
    core_buf_t b;
    core_buf_init(&b, 4096);
    core_buf_append_cstr(&b, "{\"error\":");
    core_buf_append_json(&b, str_from_cstr(error));
    core_buf_append_cstr(&b, ",\"error_description\":");
    core_buf_append_json(&b, str_from_cstr(description));
    core_buf_append_char(&b, '}');
    respond_buf(req, 400, &b, NULL, 0);
}

static void respond_unavailable(http_req_t *req, const char *why)
{
    core_buf_t b;
    core_buf_init(&b, 4096);
    core_buf_append_cstr(&b, "The auth service is unavailable: ");
    core_buf_append_cstr(&b, why);
    if (core_buf_status(&b) != CORE_OK) {
        core_buf_free(&b);
        respond_error(req, 503, "unexpected_failure", "The auth service is unavailable");
        return;
    }
    respond_error_ex(req, 503, "unexpected_failure", core_buf_str(&b), false, 0);
    core_buf_free(&b);
}

static void respond_nomem(http_req_t *req) { respond_error(req, 503, "unexpected_failure", "Out of memory"); }

static void respond_raw_json(http_req_t *req, int status, str_t json)
{
    core_buf_t b;
    core_buf_init(&b, (size_t)64 << 20);
    core_buf_append_str(&b, json);
    respond_buf(req, status, &b, NULL, 0);
}

/* ---- small parsers ---------------------------------------------------------------------------- */

bool auth_uuid_valid(str_t s)
{
    if (s.len != 36) return false;
    for (size_t i = 0; i < 36; i++) {
        char ch = s.ptr[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (ch != '-') return false;
        } else if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F'))) {
            return false;
        }
    }
    return true;
}

bool auth_email_valid(const char *email)
{
    size_t n = strlen(email), at = 0, nat = 0;
    if (n < 3 || n > 255) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)email[i];
        if (ch <= ' ' || ch == 0x7f || ch == '"' || ch == '<' || ch == '>' || ch == '(' || ch == ')' ||
            ch == ',' || ch == ';' || ch == ':' || ch == '\\' || ch == '[' || ch == ']')
            return false;
        if (ch == '@') {
            at = i;
            nat++;
        }
    }
    if (nat != 1 || at == 0 || at + 1 >= n) return false;
    const char *dom = email + at + 1;
    return dom[0] != '.' && email[n - 1] != '.' && strstr(dom, "..") == NULL;
}

static void body_free(void *p) { json_decref(p); }

/* A string member: NULL when absent or null; CORE_EINVAL when another type. */
static int member_string(json_t *root, const char *name, const char **out, size_t *len)
{
    json_t *v = json_object_get(root, name);
    *out = NULL;
    if (len) *len = 0;
    if (!v || json_is_null(v)) return CORE_OK;
    if (!json_is_string(v)) return CORE_EINVAL;
    *out = json_string_value(v);
    if (len) *len = json_string_length(v);
    return CORE_OK;
}

static int member_object(json_t *root, const char *name, json_t **out)
{
    json_t *v = json_object_get(root, name);
    *out = NULL;
    if (!v || json_is_null(v)) return CORE_OK;
    if (!json_is_object(v)) return CORE_EINVAL;
    *out = v;
    return CORE_OK;
}

int auth_body_parse(core_arena_t *a, str_t body, auth_body_t *out, const char **msg)
{
    memset(out, 0, sizeof(*out));
    out->email_confirm = -1;
    *msg = NULL;
    if (body.len == 0) {
        *msg = "Request body is empty";
        return CORE_EINVAL;
    }
    json_error_t je;
    json_t *root = json_loadb(body.ptr, body.len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        *msg = "Could not parse request body as JSON";
        return CORE_EINVAL;
    }
    if (core_arena_defer(a, body_free, root) != CORE_OK) {
        json_decref(root);
        return CORE_ENOMEM;
    }
    out->root = root;
    if (!json_is_object(root)) {
        *msg = "Could not parse request body as JSON: expected an object";
        return CORE_EINVAL;
    }
    const char *email = NULL;
    size_t elen = 0;
    if (member_string(root, "email", &email, &elen) != CORE_OK) {
        *msg = "Could not parse request body as JSON: email must be a string";
        return CORE_EINVAL;
    }
    if (member_string(root, "password", &out->password, &out->password_len) != CORE_OK) {
        *msg = "Could not parse request body as JSON: password must be a string";
        return CORE_EINVAL;
    }
    if (member_string(root, "refresh_token", &out->refresh_token, NULL) != CORE_OK) {
        *msg = "Could not parse request body as JSON: refresh_token must be a string";
        return CORE_EINVAL;
    }
    json_t *data = NULL, *meta = NULL;
    if (member_object(root, "data", &data) != CORE_OK || member_object(root, "user_metadata", &meta) != CORE_OK ||
        member_object(root, "app_metadata", &out->app_metadata) != CORE_OK) {
        *msg = "Could not parse request body as JSON: metadata must be an object";
        return CORE_EINVAL;
    }
    out->data = data ? data : meta;
    json_t *conf = json_object_get(root, "email_confirm");
    if (conf && !json_is_null(conf)) {
        if (!json_is_boolean(conf)) {
            *msg = "Could not parse request body as JSON: email_confirm must be a boolean";
            return CORE_EINVAL;
        }
        out->email_confirm = json_is_true(conf) ? 1 : 0;
    }
    if (email) {
        /* Trimmed and lower-cased, as GoTrue stores addresses. */
        while (elen && (*email == ' ' || *email == '\t')) {
            email++;
            elen--;
        }
        while (elen && (email[elen - 1] == ' ' || email[elen - 1] == '\t')) elen--;
        char *e = core_arena_strdup(a, (str_t){email, elen});
        if (!e) return CORE_ENOMEM;
        for (char *p = e; *p; p++)
            if (*p >= 'A' && *p <= 'Z') *p = (char)(*p + 32);
        out->email = e;
    }
    return CORE_OK;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The decoded value of query parameter `name` (in the arena), or NULL when absent or
 * malformed. */
static const char *query_get(http_req_t *req, const char *name)
{
    str_t q = req->query;
    size_t nlen = strlen(name), i = 0;
    while (i < q.len) {
        size_t end = i;
        while (end < q.len && q.ptr[end] != '&') end++;
        str_t kv = {q.ptr + i, end - i};
        if (kv.len > nlen && memcmp(kv.ptr, name, nlen) == 0 && kv.ptr[nlen] == '=') {
            str_t v = {kv.ptr + nlen + 1, kv.len - nlen - 1};
            char *out = core_arena_alloc(req->arena, v.len + 1);
            if (!out) return NULL;
            size_t o = 0;
            for (size_t k = 0; k < v.len; k++) {
                char ch = v.ptr[k];
                if (ch == '+') ch = ' ';
                else if (ch == '%') {
                    int hi = k + 2 < v.len ? hexval(v.ptr[k + 1]) : -1, lo = k + 2 < v.len ? hexval(v.ptr[k + 2]) : -1;
                    if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) return NULL;
                    ch = (char)(hi * 16 + lo);
                    k += 2;
                }
                out[o++] = ch;
            }
            out[o] = '\0';
            return out;
        }
        i = end + 1;
    }
    return NULL;
}

/* ---- the database --------------------------------------------------------------------------------- */

static void clear_result(void *p) { PQclear(p); }

/* The common start of every db callback: answers errors itself; true when res is one row of
 * at least nfields (and now belongs to the arena). */
static bool take_result(call_t *c, PGresult *res, const db_error_t *err, int nfields)
{
    http_req_t *req = c->req;
    if (err) {
        if (err->kind == DB_ERR_QUERY && err->sqlstate &&
            (!strcmp(err->sqlstate, "3F000") || !strcmp(err->sqlstate, "42883") ||
             !strcmp(err->sqlstate, "42501"))) {
            LOG_ERROR("auth: %s (%s)", err->message, err->sqlstate);
            respond_unavailable(req, "its SQL functions in schema auth cannot be used");
            return false;
        }
        if (err->kind == DB_ERR_QUERY) {
            LOG_ERROR("auth: database error %s: %s", err->sqlstate ? err->sqlstate : "?", err->message);
            respond_error(req, 500, "unexpected_failure", "Database error");
        } else {
            respond_error(req, 503, "unexpected_failure", "Database client error. Retrying the connection.");
        }
        return false;
    }
    if (core_arena_defer(req->arena, clear_result, res) != CORE_OK) {
        PQclear(res);
        respond_nomem(req);
        return false;
    }
    if (PQntuples(res) != 1 || PQnfields(res) < nfields) {
        respond_error(req, 500, "unexpected_failure", "Unexpected result shape from the database");
        return false;
    }
    return true;
}

static str_t field(PGresult *res, int col)
{
    if (PQgetisnull(res, 0, col)) return STR_NULL;
    return (str_t){PQgetvalue(res, 0, col), (size_t)PQgetlength(res, 0, col)};
}

/* Runs one auth.strata_* call as strata_auth. Answers the request itself on failure. */
static void submit(call_t *c, const char *sql, int nparams, const char **params, db_done_fn done)
{
    http_req_t *req = c->req;
    db_request_t dr = {
        .role = SERVICE_ROLE,
        .claims_json = "{}",
        .method = core_arena_strdup(req->arena, req->method),
        .path = core_arena_strdup(req->arena, req->path),
        .headers_json = "{}",
        .sql = sql,
        .nparams = nparams,
        .params = params,
    };
    if (!dr.method || !dr.path) {
        respond_nomem(req);
        return;
    }
    int rc = db_pool_submit(c->w->pool, &dr, done, c);
    if (rc == CORE_OK) return;
    if (rc == CORE_ENOMEM) respond_nomem(req);
    else respond_error(req, 503, "unexpected_failure", "The server is shutting down");
}

static const char **params_alloc(call_t *c, int n)
{
    const char **p = core_arena_zalloc(c->req->arena, sizeof(char *) * (size_t)n);
    if (!p) respond_nomem(c->req);
    return p;
}

/* JSON text of an object member of the body (for a jsonb parameter), NULL when absent. */
static const char *json_param(call_t *c, json_t *v, bool *nomem)
{
    if (!v) return NULL;
    char *t = json_dumps(v, JSON_COMPACT);
    if (!t) {
        *nomem = true;
        return NULL;
    }
    char *a = core_arena_strdup(c->req->arena, str_from_cstr(t));
    free(t);
    if (!a) *nomem = true;
    return a;
}

/* ---- sessions ------------------------------------------------------------------------------------- */

/* 200 with a session for the user JSON in column 1 and session id in column 2 of res. */
static void respond_session(call_t *c, PGresult *res)
{
    http_req_t *req = c->req;
    const auth_conf_t *conf = c->conf;
    str_t user = field(res, 1), sid = field(res, 2);
    if (!user.ptr || !sid.ptr) {
        respond_error(req, 500, "unexpected_failure", "Unexpected result from the database");
        return;
    }
    json_error_t je;
    json_t *u = json_loadb(user.ptr, user.len, 0, &je);
    if (!u) {
        respond_error(req, 500, "unexpected_failure", "Unexpected user from the database");
        return;
    }
    if (core_arena_defer(req->arena, body_free, u) != CORE_OK) {
        json_decref(u);
        respond_nomem(req);
        return;
    }
    char *sid_c = core_arena_strdup(req->arena, sid);
    int64_t iat = (int64_t)time(NULL);
    int64_t exp = iat + conf->jwt_exp_s;
    core_buf_t claims, b;
    core_buf_init(&claims, (size_t)256 * 1024);
    core_buf_init(&b, (size_t)1 << 20);
    int rc = sid_c ? auth_claims_build(u, sid_c, conf->aud, iat, exp, &claims) : CORE_ENOMEM;
    if (rc == CORE_OK) {
        core_buf_append_cstr(&b, "{\"access_token\":\"");
        rc = auth_token_sign(conf->jwt, core_buf_str(&claims), &b);
    }
    core_buf_free(&claims);
    if (rc != CORE_OK) {
        core_buf_free(&b);
        if (rc == CORE_ENOMEM) respond_nomem(req);
        else respond_error(req, 500, "unexpected_failure", "error generating jwt token");
        return;
    }
    core_buf_appendf(&b, "\",\"token_type\":\"bearer\",\"expires_in\":%d,\"expires_at\":%lld,\"refresh_token\":",
                     conf->jwt_exp_s, (long long)exp);
    core_buf_append_json(&b, str_from_cstr(c->refresh));
    core_buf_append_cstr(&b, ",\"user\":");
    core_buf_append_str(&b, user);
    core_buf_append_char(&b, '}');
    http_header_t extra[1] = {{STR_LIT("Cache-Control"), STR_LIT("no-store")}};
    respond_buf(req, 200, &b, extra, 1);
}

static void new_refresh(call_t *c)
{
    auth_refresh_token_new(c->refresh);
    auth_refresh_token_hash(str_from_cstr(c->refresh), c->refresh_hash);
}

/* ---- rate limits ------------------------------------------------------------------------------------ */

/* True when the request may go on; else it was answered with 429. */
static bool rate_ok(call_t *c, const char *what, const char *kind, const char *value)
{
    char key[512];
    int n = snprintf(key, sizeof(key), "%s:%s:%s", what, kind, value);
    if (n < 0) return true;
    size_t len = (size_t)n < sizeof(key) ? (size_t)n : sizeof(key) - 1;
    unsigned wait = auth_ratelimit_take(c->w->svc->rl, (str_t){key, len}, core_now_ns() / 1000000u);
    if (!wait) return true;
    respond_error_ex(c->req, 429, "over_request_rate_limit", STR_LIT("Request rate limit reached"), false, wait);
    return false;
}

/* ---- hashing ------------------------------------------------------------------------------------------- */

static bool password_weak(call_t *c, size_t len)
{
    int min = c->conf->password_min_length;
    if (len >= (size_t)min) return false;
    str_t msg = STR_NULL;
    char tmp[96];
    int n = snprintf(tmp, sizeof(tmp), "Password should be at least %d characters.", min);
    if (n > 0) msg = (str_t){tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1};
    respond_error_ex(c->req, 422, "weak_password", msg, true, 0);
    return true;
}

static void start_hash(call_t *c, auth_hash_kind_t kind, const char *stored, auth_hash_done_fn done)
{
    c->job.kind = kind;
    c->job.password = c->body.password ? c->body.password : "";
    c->job.password_len = c->body.password ? c->body.password_len : 0;
    c->job.stored = stored;
    c->job.ops = c->conf->ops;
    c->job.mem = c->conf->mem;
    c->job.done = done;
    c->job.arg = c;
    if (auth_hash_submit(c->w->hasher, &c->job) != CORE_OK)
        respond_error(c->req, 503, "unexpected_failure", "Too many password operations in progress");
}

/* ---- POST /signup ---------------------------------------------------------------------------------------- */

static void signup_db_done(void *arg, PGresult *res, const db_error_t *err)
{
    call_t *c = arg;
    if (!take_result(c, res, err, 3)) return;
    str_t st = field(res, 0);
    if (str_eq(st, STR_LIT("ok"))) {
        respond_session(c, res);
    } else if (str_eq(st, STR_LIT("user_already_exists"))) {
        respond_error(c->req, 422, "user_already_exists", "User already registered");
    } else {
        respond_error(c->req, 500, "unexpected_failure", "Database error saving new user");
    }
}

static void signup_hashed(auth_hash_job_t *job, int status)
{
    call_t *c = job->arg;
    if (status != CORE_OK) {
        respond_error(c->req, 500, "unexpected_failure", "Error hashing the password");
        return;
    }
    new_refresh(c);
    bool nomem = false;
    const char **p = params_alloc(c, 6);
    if (!p) return;
    p[0] = c->body.email;
    p[1] = c->job.hash;
    p[2] = json_param(c, c->body.data, &nomem);
    p[3] = c->refresh_hash;
    p[4] = c->ip[0] ? c->ip : NULL;
    p[5] = c->ua;
    if (nomem) {
        respond_nomem(c->req);
        return;
    }
    submit(c, "select * from auth.strata_signup($1, $2, $3::jsonb, $4, $5, $6)", 6, p, signup_db_done);
}

/* POST /signup without email or phone: an anonymous user (supabase-js signInAnonymously),
 * charged to the same per-IP signup bucket as any signup. */
static void handle_signup_anonymous(call_t *c)
{
    if (!c->conf->anonymous_users) {
        respond_error(c->req, 422, "anonymous_provider_disabled", "Anonymous sign-ins are disabled");
        return;
    }
    new_refresh(c);
    bool nomem = false;
    const char **p = params_alloc(c, 4);
    if (!p) return;
    p[0] = json_param(c, c->body.data, &nomem);
    p[1] = c->refresh_hash;
    p[2] = c->ip[0] ? c->ip : NULL;
    p[3] = c->ua;
    if (nomem) {
        respond_nomem(c->req);
        return;
    }
    submit(c, "select * from auth.strata_signup_anonymous($1::jsonb, $2, $3, $4)", 4, p, signup_db_done);
}

static void handle_signup(call_t *c)
{
    /* GoTrue's order: with neither email nor phone it is an anonymous sign-in (a password
     * alone does not make an email signup); a phone means SMS, which Strata does not send. */
    json_t *phone = json_object_get(c->body.root, "phone");
    bool has_phone = json_is_string(phone) && json_string_length(phone) > 0;
    if ((!c->body.email || !c->body.email[0]) && !has_phone) {
        handle_signup_anonymous(c);
        return;
    }
    if (!c->body.email || !c->body.email[0]) {
        respond_error(c->req, 400, "phone_provider_disabled", "Phone signups are disabled");
        return;
    }
    if (!c->body.password) {
        respond_error(c->req, 400, "validation_failed", "Signup requires a valid password");
        return;
    }
    if (!auth_email_valid(c->body.email)) {
        respond_error(c->req, 400, "validation_failed", "Unable to validate email address: invalid format");
        return;
    }
    if (!rate_ok(c, "signup", "email", c->body.email)) return;
    if (password_weak(c, c->body.password_len)) return;
    start_hash(c, AUTH_HASH_MAKE, NULL, signup_hashed);
}

/* ---- POST /token?grant_type=password ----------------------------------------------------------------------- */

static void login_db_done(void *arg, PGresult *res, const db_error_t *err)
{
    call_t *c = arg;
    if (!take_result(c, res, err, 3)) return;
    if (str_eq(field(res, 0), STR_LIT("ok"))) respond_session(c, res);
    else respond_error(c->req, 400, "invalid_credentials", "Invalid login credentials");
}

static void login_verified(auth_hash_job_t *job, int status)
{
    call_t *c = job->arg;
    if (status != CORE_OK) {
        respond_error(c->req, 500, "unexpected_failure", "Error verifying the password");
        return;
    }
    if (!c->user_found || !job->verify_ok) {
        respond_error(c->req, 400, "invalid_credentials", "Invalid login credentials");
        return;
    }
    new_refresh(c);
    const char **p = params_alloc(c, 4);
    if (!p) return;
    p[0] = c->user_id;
    p[1] = c->refresh_hash;
    p[2] = c->ip[0] ? c->ip : NULL;
    p[3] = c->ua;
    submit(c, "select * from auth.strata_login($1::uuid, $2, $3, $4)", 4, p, login_db_done);
}

static void lookup_db_done(void *arg, PGresult *res, const db_error_t *err)
{
    call_t *c = arg;
    if (err) {
        (void)take_result(c, res, err, 2);
        return;
    }
    if (core_arena_defer(c->req->arena, clear_result, res) != CORE_OK) {
        PQclear(res);
        respond_nomem(c->req);
        return;
    }
    const char *stored = c->w->svc->dummy_hash;
    /* A set-returning function: no row when the email is unknown. Either way one
     * verification runs, so the answer takes as long for an unknown email. */
    if (PQntuples(res) == 1 && PQnfields(res) >= 2 && !PQgetisnull(res, 0, 0) && !PQgetisnull(res, 0, 1)) {
        c->user_id = core_arena_strdup(c->req->arena, field(res, 0));
        const char *h = core_arena_strdup(c->req->arena, field(res, 1));
        if (!c->user_id || !h) {
            respond_nomem(c->req);
            return;
        }
        stored = h;
        c->user_found = true;
    }
    start_hash(c, AUTH_HASH_VERIFY, stored, login_verified);
}

static void handle_token_password(call_t *c)
{
    if (!c->body.email) {
        respond_error(c->req, 400, "validation_failed", "missing email or phone");
        return;
    }
    if (!rate_ok(c, "token", "email", c->body.email)) return;
    const char **p = params_alloc(c, 1);
    if (!p) return;
    p[0] = c->body.email;
    submit(c, "select * from auth.strata_password_user($1)", 1, p, lookup_db_done);
}

/* ---- POST /token?grant_type=refresh_token ------------------------------------------------------------------ */

static void refresh_db_done(void *arg, PGresult *res, const db_error_t *err)
{
    call_t *c = arg;
    if (!take_result(c, res, err, 3)) return;
    str_t st = field(res, 0);
    if (str_eq(st, STR_LIT("ok"))) respond_session(c, res);
    else if (str_eq(st, STR_LIT("refresh_token_already_used")))
        respond_error(c->req, 400, "refresh_token_already_used", "Invalid Refresh Token: Already Used");
    else respond_error(c->req, 400, "refresh_token_not_found", "Invalid Refresh Token: Refresh Token Not Found");
}

static void handle_token_refresh(call_t *c)
{
    if (!c->body.refresh_token || !c->body.refresh_token[0]) {
        respond_oauth_error(c->req, "invalid_request", "refresh_token required");
        return;
    }
    auth_refresh_token_hash(str_from_cstr(c->body.refresh_token), c->old_hash);
    new_refresh(c);
    const char **p = params_alloc(c, 3);
    if (!p) return;
    char interval[16];
    snprintf(interval, sizeof(interval), "%d", c->conf->reuse_interval_s);
    p[0] = c->old_hash;
    p[1] = c->refresh_hash;
    p[2] = core_arena_strdup(c->req->arena, str_from_cstr(interval));
    if (!p[2]) {
        respond_nomem(c->req);
        return;
    }
    submit(c, "select * from auth.strata_refresh($1, $2, $3::int)", 3, p, refresh_db_done);
}

/* ---- the bearer's identity (GET/PUT /user, /logout, admin) ---------------------------------------------------- */

typedef struct {
    const char *sub, *session_id, *role;
} bearer_t;

/* Verifies the Authorization header with Strata's own verifier. Answers the request and
 * returns false when there is no usable token. */
static bool bearer(call_t *c, bearer_t *out)
{
    http_req_t *req = c->req;
    memset(out, 0, sizeof(*out));
    str_t authz = http_req_header(req, STR_LIT("Authorization"));
    if (!authz.ptr || authz.len < 7 || !str_eq_nocase((str_t){authz.ptr, 6}, STR_LIT("bearer")) ||
        (authz.ptr[6] != ' ' && authz.ptr[6] != '\t')) {
        respond_error(req, 401, "no_authorization", "This endpoint requires a valid Bearer token");
        return false;
    }
    auth_claims_t cl;
    core_err_t e = {0};
    if (auth_jwt_verify(c->conf->jwt, c->w->jwt_cache, authz, req->arena, &cl, &e) != CORE_OK) {
        if (e.status == 503) {
            respond_nomem(req);
            return false;
        }
        core_buf_t b;
        core_buf_init(&b, 4096);
        core_buf_append_cstr(&b, "invalid JWT: unable to parse or verify signature, ");
        core_buf_append_str(&b, e.message);
        char *m = core_buf_status(&b) == CORE_OK ? core_arena_strdup(req->arena, core_buf_str(&b)) : NULL;
        core_buf_free(&b);
        respond_error(req, 403, "bad_jwt", m ? m : "invalid JWT");
        return false;
    }
    json_error_t je;
    json_t *claims = json_loadb(cl.claims_json, cl.claims_len, 0, &je);
    if (!claims || core_arena_defer(req->arena, body_free, claims) != CORE_OK) {
        json_decref(claims);
        respond_error(req, 403, "bad_jwt", "invalid token: missing claims");
        return false;
    }
    json_t *v = json_object_get(claims, "sub");
    out->sub = json_is_string(v) ? json_string_value(v) : NULL;
    v = json_object_get(claims, "session_id");
    out->session_id = json_is_string(v) ? json_string_value(v) : NULL;
    out->role = cl.role;
    return true;
}

/* bearer() plus a user: sub must be a UUID. */
static bool bearer_user(call_t *c)
{
    bearer_t b;
    if (!bearer(c, &b)) return false;
    if (!b.sub) {
        respond_error(c->req, 403, "bad_jwt", "invalid claim: missing sub claim");
        return false;
    }
    if (!auth_uuid_valid(str_from_cstr(b.sub))) {
        respond_error(c->req, 400, "bad_jwt", "invalid claim: sub claim must be a UUID");
        return false;
    }
    if (b.session_id && !auth_uuid_valid(str_from_cstr(b.session_id))) {
        respond_error(c->req, 403, "bad_jwt", "invalid claim: session_id claim must be a UUID");
        return false;
    }
    c->user_id = b.sub;
    c->session_id = b.session_id;
    return true;
}

/* bearer() with the service role (or supabase_admin), as GoTrue's admin routes. */
static bool bearer_admin(call_t *c)
{
    bearer_t b;
    if (!bearer(c, &b)) return false;
    if (!b.role || (strcmp(b.role, "service_role") != 0 && strcmp(b.role, "supabase_admin") != 0)) {
        respond_error(c->req, 403, "not_admin", "User not allowed");
        return false;
    }
    return true;
}

/* ---- GET/PUT /user --------------------------------------------------------------------------------------------- */

/* For calls returning (status, user_json): 200 with the user, or GoTrue's error. */
static void user_db_done(void *arg, PGresult *res, const db_error_t *err)
{
    call_t *c = arg;
    if (!take_result(c, res, err, 2)) return;
    str_t st = field(res, 0);
    bool admin = c->route >= R_ADMIN_LIST;
    if (str_eq(st, STR_LIT("ok"))) {
        respond_raw_json(c->req, 200, field(res, 1));
    } else if (str_eq(st, STR_LIT("user_not_found"))) {
        if (admin) respond_error(c->req, 404, "user_not_found", "User not found");
        else respond_error(c->req, 403, "user_not_found", "User from sub claim in JWT does not exist");
    } else if (str_eq(st, STR_LIT("session_not_found"))) {
        respond_error(c->req, 403, "session_not_found", "Session from session_id claim in JWT does not exist");
    } else if (str_eq(st, STR_LIT("email_exists"))) {
        respond_error(c->req, 422, "email_exists", "A user with this email address has already been registered");
    } else {
        respond_error(c->req, 500, "unexpected_failure", "Database error updating user");
    }
}

static void handle_user_get(call_t *c)
{
    const char **p = params_alloc(c, 2);
    if (!p) return;
    p[0] = c->user_id;
    p[1] = c->session_id;
    submit(c, "select * from auth.strata_user_get($1::uuid, $2::uuid)", 2, p, user_db_done);
}

static void user_put_submit(call_t *c)
{
    bool nomem = false;
    const char **p = params_alloc(c, 5);
    if (!p) return;
    p[0] = c->user_id;
    p[1] = c->session_id;
    p[2] = c->body.email;
    p[3] = c->pw_hash;
    p[4] = json_param(c, c->body.data, &nomem);
    if (nomem) {
        respond_nomem(c->req);
        return;
    }
    submit(c, "select * from auth.strata_user_update($1::uuid, $2::uuid, $3, $4, $5::jsonb)", 5, p, user_db_done);
}

static void admin_put_submit(call_t *c);
static void admin_create_submit(call_t *c);

static void put_hashed(auth_hash_job_t *job, int status)
{
    call_t *c = job->arg;
    if (status != CORE_OK) {
        respond_error(c->req, 500, "unexpected_failure", "Error hashing the password");
        return;
    }
    c->pw_hash = job->hash;
    if (c->route == R_USER_PUT) user_put_submit(c);
    else if (c->route == R_ADMIN_PUT) admin_put_submit(c);
    else admin_create_submit(c);
}

/* Shared by PUT /user and the admin writes: validates email and password, then hashes the
 * password (when one is given) before `then`. */
static void update_user(call_t *c, bool check_strength)
{
    if (c->body.email && !auth_email_valid(c->body.email)) {
        respond_error(c->req, 400, "validation_failed", "Unable to validate email address: invalid format");
        return;
    }
    if (c->body.password) {
        if (check_strength && password_weak(c, c->body.password_len)) return;
        start_hash(c, AUTH_HASH_MAKE, NULL, put_hashed);
        return;
    }
    if (c->route == R_USER_PUT) user_put_submit(c);
    else if (c->route == R_ADMIN_PUT) admin_put_submit(c);
    else admin_create_submit(c);
}

/* ---- POST /logout ------------------------------------------------------------------------------------------------- */

static void logout_db_done(void *arg, PGresult *res, const db_error_t *err)
{
    call_t *c = arg;
    if (!take_result(c, res, err, 1)) return;
    http_header_t h[4];
    size_t n = cors_headers(c->req, h);
    http_respond(c->req, 204, h, n, STR_NULL);
}

static void handle_logout(call_t *c)
{
    const char **p = params_alloc(c, 3);
    if (!p) return;
    p[0] = c->user_id;
    p[1] = c->session_id;
    p[2] = c->scope;
    submit(c, "select auth.strata_logout($1::uuid, $2::uuid, $3)", 3, p, logout_db_done);
}

/* ---- admin ------------------------------------------------------------------------------------------------------------ */

static void admin_list_done(void *arg, PGresult *res, const db_error_t *err)
{
    call_t *c = arg;
    if (!take_result(c, res, err, 2)) return;
    str_t total = field(res, 0), users = field(res, 1);
    long n = 0;
    if (!total.ptr || !users.ptr || str_to_long(total, &n) != CORE_OK) {
        respond_error(c->req, 500, "unexpected_failure", "Database error finding users");
        return;
    }
    core_buf_t b;
    core_buf_init(&b, (size_t)256 << 20);
    core_buf_append_cstr(&b, "{\"users\":");
    core_buf_append_str(&b, users);
    core_buf_append_cstr(&b, ",\"aud\":\"authenticated\"}");
    char cnt[32], link[256];
    snprintf(cnt, sizeof(cnt), "%ld", n);
    http_header_t extra[2] = {{STR_LIT("X-Total-Count"), str_from_cstr(cnt)}, {STR_NULL, STR_NULL}};
    size_t nextra = 1;
    long last = c->per_page > 0 ? (n + c->per_page - 1) / c->per_page : 1;
    if (last < 1) last = 1;
    if (c->page < last) {
        snprintf(link, sizeof(link),
                 "</auth/v1/admin/users?page=%ld&per_page=%ld>; rel=\"next\", "
                 "</auth/v1/admin/users?page=%ld&per_page=%ld>; rel=\"last\"",
                 c->page + 1, c->per_page, last, c->per_page);
        extra[nextra++] = (http_header_t){STR_LIT("Link"), str_from_cstr(link)};
    }
    respond_buf(c->req, 200, &b, extra, nextra);
}

static bool parse_page(const char *s, long dflt, long *out)
{
    if (!s || !*s) {
        *out = dflt;
        return true;
    }
    long v;
    if (str_to_long(str_from_cstr(s), &v) != CORE_OK || v < 1) return false;
    *out = v;
    return true;
}

static void handle_admin_list(call_t *c)
{
    if (!parse_page(query_get(c->req, "page"), 1, &c->page) ||
        !parse_page(query_get(c->req, "per_page"), 50, &c->per_page) || c->page > 1000000000L) {
        respond_error(c->req, 400, "validation_failed", "Bad Pagination Parameters");
        return;
    }
    if (c->per_page > AUTH_ADMIN_PER_PAGE_MAX) c->per_page = AUTH_ADMIN_PER_PAGE_MAX;
    const char **p = params_alloc(c, 2);
    if (!p) return;
    char num[2][24];
    snprintf(num[0], sizeof(num[0]), "%ld", c->page);
    snprintf(num[1], sizeof(num[1]), "%ld", c->per_page);
    p[0] = core_arena_strdup(c->req->arena, str_from_cstr(num[0]));
    p[1] = core_arena_strdup(c->req->arena, str_from_cstr(num[1]));
    if (!p[0] || !p[1]) {
        respond_nomem(c->req);
        return;
    }
    submit(c, "select * from auth.strata_admin_list($1::int, $2::int)", 2, p, admin_list_done);
}

static const char *confirm_param(int v) { return v < 0 ? NULL : v ? "true" : "false"; }

static void admin_create_submit(call_t *c)
{
    bool nomem = false;
    const char **p = params_alloc(c, 5);
    if (!p) return;
    p[0] = c->body.email;
    p[1] = c->pw_hash;
    p[2] = json_param(c, c->body.data, &nomem);
    p[3] = json_param(c, c->body.app_metadata, &nomem);
    p[4] = c->body.email_confirm == 1 ? "true" : "false";
    if (nomem) {
        respond_nomem(c->req);
        return;
    }
    submit(c, "select * from auth.strata_admin_create($1, $2, $3::jsonb, $4::jsonb, $5::boolean)", 5, p, user_db_done);
}

static void admin_put_submit(call_t *c)
{
    bool nomem = false;
    const char **p = params_alloc(c, 6);
    if (!p) return;
    p[0] = c->user_id;
    p[1] = c->body.email;
    p[2] = c->pw_hash;
    p[3] = json_param(c, c->body.data, &nomem);
    p[4] = json_param(c, c->body.app_metadata, &nomem);
    p[5] = confirm_param(c->body.email_confirm);
    if (nomem) {
        respond_nomem(c->req);
        return;
    }
    submit(c, "select * from auth.strata_admin_update($1::uuid, $2, $3, $4::jsonb, $5::jsonb, $6::boolean)", 6, p,
           user_db_done);
}

static void admin_delete_done(void *arg, PGresult *res, const db_error_t *err)
{
    call_t *c = arg;
    if (!take_result(c, res, err, 1)) return;
    if (str_eq(field(res, 0), STR_LIT("0"))) respond_error(c->req, 404, "user_not_found", "User not found");
    else respond_raw_json(c->req, 200, STR_LIT("{}"));
}

static void handle_admin_one(call_t *c)
{
    const char **p = params_alloc(c, 1);
    if (!p) return;
    p[0] = c->user_id;
    if (c->route == R_ADMIN_GET)
        submit(c, "select * from auth.strata_admin_get($1::uuid)", 1, p, user_db_done);
    else submit(c, "select auth.strata_admin_delete($1::uuid)", 1, p, admin_delete_done);
}

/* ---- settings, health, CORS ---------------------------------------------------------------------------------------------- */

static void handle_settings(http_req_t *req, const auth_conf_t *conf)
{
    core_buf_t b;
    core_buf_init(&b, 4096);
    core_buf_append_cstr(&b, conf->anonymous_users ? "{\"external\":{\"anonymous_users\":true,"
                                                   : "{\"external\":{\"anonymous_users\":false,");
    core_buf_append_cstr(&b, "\"apple\":false,\"azure\":false,\"bitbucket\":false,\"discord\":false,"
                             "\"facebook\":false,\"figma\":false,\"github\":false,\"gitlab\":false,"
                             "\"google\":false,\"keycloak\":false,\"kakao\":false,\"linkedin_oidc\":false,"
                             "\"notion\":false,\"spotify\":false,\"slack_oidc\":false,\"twitch\":false,"
                             "\"twitter\":false,\"workos\":false,\"zoom\":false,\"email\":true,\"phone\":false},"
                             "\"disable_signup\":false,\"mailer_autoconfirm\":true,\"phone_autoconfirm\":false,"
                             "\"sms_provider\":\"\",\"saml_enabled\":false}");
    respond_buf(req, 200, &b, NULL, 0);
}

static void handle_preflight(http_req_t *req)
{
    http_header_t h[8];
    size_t n = cors_headers(req, h);
    h[n++] = (http_header_t){STR_LIT("Access-Control-Allow-Methods"), STR_LIT("GET, POST, PUT, DELETE, OPTIONS")};
    str_t want = http_req_header(req, STR_LIT("Access-Control-Request-Headers"));
    h[n++] = (http_header_t){STR_LIT("Access-Control-Allow-Headers"),
                             want.ptr ? want
                                      : STR_LIT("Authorization, Content-Type, Accept, apikey, x-client-info, "
                                                "X-Supabase-Api-Version")};
    h[n++] = (http_header_t){STR_LIT("Access-Control-Max-Age"), STR_LIT("86400")};
    http_respond(req, 200, h, n, STR_NULL);
}

/* ---- routing ------------------------------------------------------------------------------------------------------------------ */

static void method_not_allowed(http_req_t *req)
{
    respond_error(req, 405, "method_not_allowed", "Method Not Allowed");
}

void auth_handle(auth_worker_t *w, http_req_t *req, str_t path)
{
    worker_refresh_conf(w);
    auth_conf_t *conf = w->conf;
    if (str_eq(req->method, STR_LIT("OPTIONS"))) {
        handle_preflight(req);
        return;
    }
    while (path.len > 1 && path.ptr[path.len - 1] == '/') path.len--;
    bool get = str_eq(req->method, STR_LIT("GET")) || str_eq(req->method, STR_LIT("HEAD"));
    bool post = str_eq(req->method, STR_LIT("POST")), put = str_eq(req->method, STR_LIT("PUT"));
    bool del = str_eq(req->method, STR_LIT("DELETE"));
    req->log_role = SERVICE_ROLE;
    if (conf->unavailable) {
        respond_unavailable(req, conf->unavailable);
        return;
    }
    if (str_eq(path, STR_LIT("/health"))) {
        if (!get) method_not_allowed(req);
        else respond_raw_json(req, 200, STR_LIT("{\"version\":\"strata\",\"name\":\"GoTrue\","
                                                "\"description\":\"Strata's built-in auth service (GoTrue-compatible)\"}"));
        return;
    }
    if (str_eq(path, STR_LIT("/settings"))) {
        if (!get) method_not_allowed(req);
        else handle_settings(req, conf);
        return;
    }

    call_t *c = core_arena_zalloc(req->arena, sizeof(*c));
    if (!c) {
        respond_nomem(req);
        return;
    }
    c->w = w;
    c->req = req;
    /* The request keeps this generation's key and settings to its end, whatever a reload
     * publishes meanwhile. */
    atomic_fetch_add(&conf->refs, 1);
    if (core_arena_defer(req->arena, conf_unref_cb, conf) != CORE_OK) {
        conf_unref(conf);
        respond_nomem(req);
        return;
    }
    c->conf = conf;
    str_t ua = http_req_header(req, STR_LIT("User-Agent"));
    c->ua = ua.ptr ? core_arena_strdup(req->arena, (str_t){ua.ptr, ua.len > 512 ? 512 : ua.len}) : NULL;
    if (http_req_peer(req, c->ip, sizeof(c->ip)) != CORE_OK) c->ip[0] = '\0';

    bool needs_body = false;
    str_t admin_prefix = STR_LIT("/admin/users");
    if (str_eq(path, STR_LIT("/signup"))) {
        if (!post) goto bad_method;
        c->route = R_SIGNUP;
        needs_body = true;
    } else if (str_eq(path, STR_LIT("/token"))) {
        if (!post) goto bad_method;
        const char *grant = query_get(req, "grant_type");
        if (grant && !strcmp(grant, "password")) c->route = R_TOKEN_PASSWORD;
        else if (grant && !strcmp(grant, "refresh_token")) c->route = R_TOKEN_REFRESH;
        else {
            respond_error(req, 400, "invalid_credentials", "unsupported_grant_type");
            return;
        }
        needs_body = true;
    } else if (str_eq(path, STR_LIT("/user"))) {
        if (get) c->route = R_USER_GET;
        else if (put) c->route = R_USER_PUT;
        else goto bad_method;
        needs_body = put;
    } else if (str_eq(path, STR_LIT("/logout"))) {
        if (!post) goto bad_method;
        c->route = R_LOGOUT;
        const char *scope = query_get(req, "scope");
        c->scope = scope && *scope ? scope : "global";
        if (strcmp(c->scope, "global") != 0 && strcmp(c->scope, "local") != 0 && strcmp(c->scope, "others") != 0) {
            core_buf_t b;
            core_buf_init(&b, 1024);
            char sample[64];
            core_buf_appendf(&b, "Unsupported logout scope \"%s\"", core_sample(str_from_cstr(c->scope), sample, sizeof(sample)));
            char *m = core_buf_status(&b) == CORE_OK ? core_arena_strdup(req->arena, core_buf_str(&b)) : NULL;
            core_buf_free(&b);
            respond_error(req, 400, "validation_failed", m ? m : "Unsupported logout scope");
            return;
        }
    } else if (str_eq(path, admin_prefix)) {
        if (get) c->route = R_ADMIN_LIST;
        else if (post) c->route = R_ADMIN_CREATE;
        else goto bad_method;
        needs_body = post;
    } else if (str_starts_with(path, STR_LIT("/admin/users/")) && path.len > admin_prefix.len + 1) {
        str_t id = {path.ptr + admin_prefix.len + 1, path.len - admin_prefix.len - 1};
        if (get) c->route = R_ADMIN_GET;
        else if (put) c->route = R_ADMIN_PUT;
        else if (del) c->route = R_ADMIN_DELETE;
        else goto bad_method;
        needs_body = put;
        if (!bearer_admin(c)) return;
        if (!auth_uuid_valid(id)) {
            respond_error(req, 404, "validation_failed", "user_id must be an UUID");
            return;
        }
        c->user_id = core_arena_strdup(req->arena, id);
        if (!c->user_id) {
            respond_nomem(req);
            return;
        }
    } else {
        respond_error(req, 404, "not_found", "Not Found");
        return;
    }

    /* Per-IP limits come before any parsing, as GoTrue's rate-limit middleware. */
    if ((c->route == R_SIGNUP && !rate_ok(c, "signup", "ip", c->ip)) ||
        ((c->route == R_TOKEN_PASSWORD || c->route == R_TOKEN_REFRESH) && !rate_ok(c, "token", "ip", c->ip)))
        return;
    if (c->route == R_USER_GET || c->route == R_USER_PUT || c->route == R_LOGOUT) {
        if (!bearer_user(c)) return;
    } else if ((c->route == R_ADMIN_LIST || c->route == R_ADMIN_CREATE) && !bearer_admin(c)) {
        return;
    }
    if (needs_body) {
        if (req->body.len > AUTH_MAX_BODY_BYTES) {
            respond_error(req, 413, "request_entity_too_large", "Request body too large");
            return;
        }
        const char *msg = NULL;
        int rc = auth_body_parse(req->arena, req->body, &c->body, &msg);
        if (rc == CORE_ENOMEM) {
            respond_nomem(req);
            return;
        }
        if (rc != CORE_OK) {
            respond_error(req, 400, "bad_json", msg ? msg : "Could not parse request body as JSON");
            return;
        }
    }
    switch (c->route) {
    case R_SIGNUP: handle_signup(c); return;
    case R_TOKEN_PASSWORD: handle_token_password(c); return;
    case R_TOKEN_REFRESH: handle_token_refresh(c); return;
    case R_USER_GET: handle_user_get(c); return;
    case R_USER_PUT: update_user(c, true); return;
    case R_LOGOUT: handle_logout(c); return;
    case R_ADMIN_LIST: handle_admin_list(c); return;
    case R_ADMIN_CREATE:
        if (!c->body.email) {
            respond_error(req, 400, "validation_failed", "Cannot create a user without either an email or phone");
            return;
        }
        update_user(c, false);
        return;
    case R_ADMIN_PUT: update_user(c, false); return;
    case R_ADMIN_GET:
    case R_ADMIN_DELETE: handle_admin_one(c); return;
    }
    respond_error(req, 404, "not_found", "Not Found");
    return;
bad_method:
    method_not_allowed(req);
}
