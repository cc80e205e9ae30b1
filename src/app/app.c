/*
 * Process model (ARCHITECTURE.md): the main thread runs a loop for signals and for the
 * embedded PostgreSQL's supervisor; each worker thread runs its own loop with its own HTTP
 * listener (SO_REUSEPORT) and its own db pool; worker 0 also serves the admin port. The
 * schema cache is loaded by the listener thread and published as an immutable snapshot
 * that workers pick up between requests (one atomic load per request).
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "app/app.h"
#include "auth/auth.h"
#include "auth/service.h"
#include "db/db.h"
#include "db/embedded.h"
#include "db/listener.h"
#include "db/migrate.h"
#include "db/schema.h"
#include "http/http.h"
#include "rest/rest.h"

#define SHUTDOWN_GRACE_MS 10000u

typedef struct app app_t;

/* What a config reload can change, as one reference-counted snapshot: the settings workers
 * read per request, the JWT verifier built from them and the db-pre-request call. Workers
 * adopt a new one between requests (one atomic load per request) and drop the old one;
 * requests copy what they keep across callbacks (role, pre-request SQL) into their arena. */
typedef struct {
    atomic_int refs;
    core_config_t *cfg;
    bool owns_cfg; /* reloaded generations own their config; the first borrows main's */
    auth_jwt_t *jwt;
    char *pre_request_sql;
} app_gen_t;

typedef struct {
    app_t *app;
    unsigned index;
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t stop_async;
    http_server_t *http;
    http_server_t *admin;
    db_pool_t *pool;
    rest_env_t env;
    auth_worker_t *auth;
    uint64_t schema_gen;
    app_gen_t *gen;
    uint64_t gen_version;
    unsigned servers_stopping;
    atomic_bool done;
    bool started;
} worker_t;

struct app {
    core_config_t *cfg;
    uv_loop_t *loop;
    uv_signal_t sig_int, sig_term, sig_usr1;
    uv_async_t worker_done;
    db_embedded_t *embedded;
    db_listener_t *listener;
    auth_service_t *auth; /* follows each generation (auth_service_reload) */
    pthread_mutex_t gen_mu;
    app_gen_t *gen;                   /* current generation (under gen_mu) */
    atomic_uint_fast64_t gen_version; /* bumped on each publish */
    uv_signal_t sig_usr2;
    int unix_fd; /* server-unix-socket's listening descriptor, or -1 */
    worker_t *workers;
    unsigned nworkers;
    const char *conninfo;
    bool stopping;
    int exit_status;
};

/* ---- configuration generations ---------------------------------------------------------- */

static void gen_unref(app_gen_t *g)
{
    if (!g || atomic_fetch_sub(&g->refs, 1) != 1) return;
    auth_jwt_free(g->jwt);
    core_free(g->pre_request_sql);
    if (g->owns_cfg) {
        core_config_free(g->cfg);
        core_free(g->cfg);
    }
    core_free(g);
}

/* Builds a generation over cfg (refcount 1); on failure err says why and cfg is untouched. */
static int gen_create(core_config_t *cfg, bool owns, app_gen_t **out, char *err, size_t errlen)
{
    app_gen_t *g = core_calloc(1, sizeof(*g));
    if (!g) {
        core_errf(err, errlen, "out of memory");
        return CORE_ENOMEM;
    }
    atomic_init(&g->refs, 1);
    g->cfg = cfg;
    if (auth_jwt_config_create(cfg, &g->jwt, err, errlen) != CORE_OK) {
        core_free(g);
        return CORE_EINVAL;
    }
    if (cfg->db_pre_request) {
        /* "schema.function" or "function": each part quoted as an identifier. */
        core_buf_t b;
        core_buf_init(&b, 4096);
        core_buf_append_cstr(&b, "select ");
        str_t name = str_from_cstr(cfg->db_pre_request);
        long dot = str_find_char(name, '.');
        if (dot >= 0) {
            rest_sql_ident(&b, (str_t){name.ptr, (size_t)dot});
            core_buf_append_char(&b, '.');
            name = (str_t){name.ptr + dot + 1, name.len - (size_t)dot - 1};
        }
        rest_sql_ident(&b, name);
        core_buf_append_cstr(&b, "()");
        if (core_buf_status(&b) == CORE_OK) g->pre_request_sql = core_strndup(b.ptr, b.len);
        core_buf_free(&b);
        if (!g->pre_request_sql) {
            core_errf(err, errlen, "db-pre-request: cannot be used");
            auth_jwt_free(g->jwt);
            core_free(g);
            return CORE_EINVAL;
        }
    }
    g->owns_cfg = owns;
    *out = g;
    return CORE_OK;
}

static void gen_publish(app_t *app, app_gen_t *g)
{
    pthread_mutex_lock(&app->gen_mu);
    app_gen_t *old = app->gen;
    app->gen = g;
    atomic_fetch_add(&app->gen_version, 1);
    pthread_mutex_unlock(&app->gen_mu);
    gen_unref(old);
}

static app_gen_t *gen_current(app_t *app)
{
    pthread_mutex_lock(&app->gen_mu);
    app_gen_t *g = app->gen;
    if (g) atomic_fetch_add(&g->refs, 1);
    pthread_mutex_unlock(&app->gen_mu);
    return g;
}

/* The embedded database's defaults for what the user did not set. */
static int fill_embedded_defaults(app_t *app, core_config_t *cfg)
{
    if (!app->embedded) return CORE_OK;
    if (!cfg->db_anon_role) cfg->db_anon_role = core_strndup("anon", 4);
    if (!cfg->jwt_secret) {
        const char *sec = db_embedded_jwt_secret(app->embedded);
        cfg->jwt_secret = core_strndup(sec, strlen(sec));
    }
    return cfg->db_anon_role && cfg->jwt_secret ? CORE_OK : CORE_ENOMEM;
}

/* NOTIFY pgrst, 'reload config' and SIGUSR2, on the listener thread: re-reads the file
 * and the environment. Settings read per request take effect for the next requests (see
 * docs/internals/config.md); the others keep their running values until a restart. */
static void reload_config(void *arg)
{
    app_t *app = arg;
    char err[1024];
    core_config_t *cfg = core_calloc(1, sizeof(*cfg));
    app_gen_t *g = NULL;
    if (!cfg) {
        LOG_ERROR("config reload failed: out of memory; keeping the current configuration");
        return;
    }
    if (core_config_load(cfg, app->cfg->config_path, environ, err, sizeof(err)) != CORE_OK) {
        LOG_ERROR("config reload failed: %s; keeping the current configuration", err);
        core_free(cfg);
        return;
    }
    cfg->config_path = app->cfg->config_path;
    cfg->demo = app->cfg->demo;
    core_errf(err, sizeof(err), "out of memory");
    if (fill_embedded_defaults(app, cfg) != CORE_OK ||
        gen_create(cfg, true, &g, err, sizeof(err)) != CORE_OK) {
        LOG_ERROR("config reload failed: %s; keeping the current configuration", err);
        core_config_free(cfg);
        core_free(cfg);
        return;
    }
    const core_config_t *o = app->cfg;
#define CHANGED_STR(f) ((o->f == NULL) != (cfg->f == NULL) || (o->f && strcmp(o->f, cfg->f) != 0))
    if (CHANGED_STR(db_uri) || CHANGED_STR(db_schemas) || CHANGED_STR(server_host) ||
        CHANGED_STR(server_unix_socket) || CHANGED_STR(db_channel) || o->server_port != cfg->server_port ||
        o->db_pool != cfg->db_pool || o->workers != cfg->workers || o->max_body_bytes != cfg->max_body_bytes ||
        o->statement_timeout_ms != cfg->statement_timeout_ms)
        LOG_WARN("config reload: connection, listener, pool and schema settings changed too; "
                 "they apply after a restart");
#undef CHANGED_STR
    core_log_set_level(cfg->log_level);
    /* The auth service takes its own reference to the new key before workers see it. */
    if (app->auth && auth_service_reload(app->auth, g->cfg, g->jwt) != CORE_OK)
        LOG_ERROR("config reload: out of memory; the auth service keeps its current settings");
    gen_publish(app, g);
    LOG_INFO("configuration reloaded");
}

/* ---- per-worker request routing ------------------------------------------------------- */

/* Adopts the current configuration generation when a reload published a new one. */
static void worker_refresh_config(worker_t *w)
{
    uint64_t v = atomic_load(&w->app->gen_version);
    if (v == w->gen_version) return;
    app_gen_t *g = gen_current(w->app);
    if (!g) return;
    auth_cache_free(w->env.jwt_cache);
    w->env.cfg = g->cfg;
    w->env.jwt = g->jwt;
    w->env.pre_request_sql = g->pre_request_sql;
    w->env.jwt_cache = auth_cache_create_for(g->jwt); /* NULL (no caching) when out of memory */
    gen_unref(w->gen);
    w->gen = g;
    w->gen_version = v;
}


static void worker_refresh_schema(worker_t *w)
{
    uint64_t gen = db_schema_generation();
    if (gen == w->schema_gen) return;
    db_schema_t *s = db_schema_current();
    if (!s) return;
    db_schema_unref(w->env.schema);
    w->env.schema = s;
    w->schema_gen = gen;
    db_pool_reset_statements(w->pool);
}

static void on_api_request(http_req_t *req, void *udata)
{
    worker_t *w = udata;
    worker_refresh_schema(w);
    worker_refresh_config(w);
    str_t path = req->path;
    if (str_starts_with(path, STR_LIT("/auth/v1")) && (path.len == 8 || path.ptr[8] == '/')) {
        auth_handle(w->auth, req, (str_t){path.ptr + 8, path.len - 8});
        return;
    }
    if (str_starts_with(path, STR_LIT("/rest/v1")) &&
        (path.len == 8 || path.ptr[8] == '/')) {
        path.ptr += 8;
        path.len -= 8;
    }
    rest_handle(&w->env, req, path);
}

/* ---- admin server: /live, /ready, /metrics, /schema_cache ----------------------------- */

static void metrics_write(app_t *app, core_buf_t *b)
{
    uint64_t by_class[6] = {0}, buckets[HTTP_LATENCY_NBUCKETS + 1] = {0}, sum = 0, count = 0, conns = 0;
    db_pool_stats_t total = {0};
    for (unsigned i = 0; i < app->nworkers; i++) {
        worker_t *w = &app->workers[i];
        if (!w->http || !w->pool) continue;
        /* Counters of other workers are read as relaxed atomics, without locks: a scrape may
         * be a few requests behind (and its sums a request apart), never wrong in shape. */
        http_stats_t s;
        http_server_stats(w->http, &s);
        for (int k = 1; k < 6; k++) by_class[k] += s.requests_by_class[k];
        for (int k = 0; k < HTTP_LATENCY_NBUCKETS + 1; k++) buckets[k] += s.latency_buckets[k];
        sum += s.latency_sum_us;
        count += s.latency_count;
        conns += s.connections_open;
        db_pool_stats_t ps;
        db_pool_stats(w->pool, &ps);
        total.size += ps.size;
        total.connected += ps.connected;
        total.busy += ps.busy;
        total.waiting += ps.waiting;
        total.errors += ps.errors;
        total.queries += ps.queries;
    }
    core_buf_append_cstr(b, "# HELP strata_http_requests_total HTTP requests answered, by status class.\n"
                            "# TYPE strata_http_requests_total counter\n");
    for (int k = 1; k < 6; k++)
        core_buf_appendf(b, "strata_http_requests_total{status=\"%dxx\"} %llu\n", k, (unsigned long long)by_class[k]);
    core_buf_append_cstr(b, "# HELP strata_http_request_duration_seconds Request latency.\n"
                            "# TYPE strata_http_request_duration_seconds histogram\n");
    uint64_t cum = 0;
    for (int k = 0; k < HTTP_LATENCY_NBUCKETS; k++) {
        cum += buckets[k];
        core_buf_appendf(b, "strata_http_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
                         (double)HTTP_LATENCY_BOUNDS_US[k] / 1e6, (unsigned long long)cum);
    }
    core_buf_appendf(b, "strata_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)count);
    core_buf_appendf(b, "strata_http_request_duration_seconds_sum %g\n", (double)sum / 1e6);
    core_buf_appendf(b, "strata_http_request_duration_seconds_count %llu\n", (unsigned long long)count);
    core_buf_appendf(b, "# TYPE strata_http_connections_open gauge\nstrata_http_connections_open %llu\n",
                     (unsigned long long)conns);
    core_buf_appendf(b, "# TYPE strata_db_pool_size gauge\nstrata_db_pool_size %u\n", total.size);
    core_buf_appendf(b, "# TYPE strata_db_pool_connected gauge\nstrata_db_pool_connected %u\n", total.connected);
    core_buf_appendf(b, "# TYPE strata_db_pool_in_use gauge\nstrata_db_pool_in_use %u\n", total.busy);
    core_buf_appendf(b, "# TYPE strata_db_pool_waiting gauge\nstrata_db_pool_waiting %u\n", total.waiting);
    core_buf_appendf(b, "# TYPE strata_db_errors_total counter\nstrata_db_errors_total %llu\n",
                     (unsigned long long)total.errors);
    core_buf_appendf(b, "# TYPE strata_db_queries_total counter\nstrata_db_queries_total %llu\n",
                     (unsigned long long)total.queries);
    db_schema_t *s = db_schema_current();
    core_buf_appendf(b, "# TYPE strata_schema_cache_load_seconds gauge\nstrata_schema_cache_load_seconds %g\n",
                     s ? (double)s->load_us / 1e6 : 0.0);
    core_buf_appendf(b, "# TYPE strata_schema_cache_relations gauge\nstrata_schema_cache_relations %zu\n",
                     s ? s->ntables : (size_t)0);
    db_schema_unref(s);
    core_buf_appendf(b, "# TYPE strata_log_lines_dropped_total counter\nstrata_log_lines_dropped_total %llu\n",
                     (unsigned long long)core_log_dropped_total());
}

static void respond_text(http_req_t *req, int status, const char *ct, core_buf_t *b)
{
    http_header_t h[1] = {{STR_LIT("Content-Type"), str_from_cstr(ct)}};
    if (core_buf_status(b) != CORE_OK) {
        core_buf_free(b);
        http_respond(req, 503, NULL, 0, STR_NULL);
        return;
    }
    char *body = core_arena_alloc(req->arena, b->len + 1);
    size_t len = b->len;
    if (body) memcpy(body, b->ptr, len);
    core_buf_free(b);
    if (!body) {
        http_respond(req, 503, NULL, 0, STR_NULL);
        return;
    }
    http_respond(req, status, h, 1, (str_t){body, len});
}

static void on_admin_request(http_req_t *req, void *udata)
{
    worker_t *w = udata;
    app_t *app = w->app;
    worker_refresh_schema(w);
    bool get = str_eq(req->method, STR_LIT("GET")) || str_eq(req->method, STR_LIT("HEAD"));
    if (!get) {
        core_err_t e = core_err_make(405, "PGRST117", "Unsupported HTTP method", req->method);
        http_respond_error(req, &e);
        return;
    }
    if (str_eq(req->path, STR_LIT("/live"))) {
        http_respond(req, 200, NULL, 0, STR_NULL);
        return;
    }
    if (str_eq(req->path, STR_LIT("/ready"))) {
        bool ready = w->env.schema && db_listener_db_up(app->listener) && db_pool_ready(w->pool) &&
                     !app->stopping;
        http_respond(req, ready ? 200 : 503, NULL, 0, STR_NULL);
        return;
    }
    if (str_eq(req->path, STR_LIT("/metrics"))) {
        core_buf_t b;
        core_buf_init(&b, 1u << 20);
        metrics_write(app, &b);
        respond_text(req, 200, "text/plain; version=0.0.4; charset=utf-8", &b);
        return;
    }
    if (str_eq(req->path, STR_LIT("/schema_cache"))) {
        core_buf_t b;
        core_buf_init(&b, 64u << 20);
        db_schema_t *s = w->env.schema;
        if (!s) {
            core_err_t e = core_err_make(503, "PGRST002", "The schema cache is not loaded yet", STR_NULL);
            http_respond_error(req, &e);
            core_buf_free(&b);
            return;
        }
        core_buf_appendf(&b, "{\"version\":%llu,\"load_us\":%llu,\"relations\":[",
                         (unsigned long long)s->version, (unsigned long long)s->load_us);
        for (size_t i = 0; i < s->ntables; i++) {
            const db_table_t *t = &s->tables[i];
            if (i) core_buf_append_char(&b, ',');
            core_buf_append_cstr(&b, "{\"schema\":");
            core_buf_append_json(&b, t->schema);
            core_buf_append_cstr(&b, ",\"name\":");
            core_buf_append_json(&b, t->name);
            core_buf_appendf(&b, ",\"kind\":\"%c\",\"columns\":[", t->kind);
            for (size_t k = 0; k < t->ncolumns; k++) {
                if (k) core_buf_append_char(&b, ',');
                core_buf_append_cstr(&b, "{\"name\":");
                core_buf_append_json(&b, t->columns[k].name);
                core_buf_append_cstr(&b, ",\"type\":");
                core_buf_append_json(&b, t->columns[k].type);
                core_buf_append_char(&b, '}');
            }
            core_buf_append_cstr(&b, "]}");
        }
        core_buf_appendf(&b, "],\"foreign_keys\":%zu,\"functions\":%zu}", s->nfks, s->nfuncs);
        respond_text(req, 200, "application/json; charset=utf-8", &b);
        return;
    }
    core_err_t e = core_err_make(404, "PGRST125", "Invalid path specified in request URL", STR_NULL);
    http_respond_error(req, &e);
}

/* ---- worker lifecycle ------------------------------------------------------------------- */

static void worker_handle_closed(uv_handle_t *h) { (void)h; }

static void worker_pool_closed(void *arg)
{
    worker_t *w = arg;
    w->pool = NULL;
    uv_close((uv_handle_t *)&w->stop_async, worker_handle_closed);
    atomic_store(&w->done, true);
    uv_async_send(&w->app->worker_done);
}

/* Once no HTTP server holds requests any more, the pool can close. */
static void worker_http_stopped(void *arg)
{
    worker_t *w = arg;
    if (--w->servers_stopping == 0) db_pool_close(w->pool, worker_pool_closed, w);
}

static void worker_stop_cb(uv_async_t *h)
{
    worker_t *w = h->data;
    w->servers_stopping = (w->http ? 1u : 0u) + (w->admin ? 1u : 0u);
    if (w->servers_stopping == 0) {
        db_pool_close(w->pool, worker_pool_closed, w);
        return;
    }
    if (w->http) http_server_stop(w->http, SHUTDOWN_GRACE_MS, worker_http_stopped, w);
    if (w->admin) http_server_stop(w->admin, 1000, worker_http_stopped, w);
}

static void worker_main(void *arg)
{
    worker_t *w = arg;
    uv_run(&w->loop, UV_RUN_DEFAULT);
    db_schema_unref(w->env.schema);
    w->env.schema = NULL;
    auth_worker_free(w->auth);
    w->auth = NULL;
    auth_cache_free(w->env.jwt_cache);
    w->env.jwt_cache = NULL;
    gen_unref(w->gen);
    w->gen = NULL;
}

/* Each worker's share of db-pool (an instance setting), rounded up, at least one. */
static unsigned pool_per_worker(const core_config_t *cfg, unsigned nworkers)
{
    unsigned per = ((unsigned)cfg->db_pool + nworkers - 1) / nworkers;
    return per ? per : 1;
}

static int worker_init(app_t *app, worker_t *w, unsigned index, int port)
{
    core_config_t *cfg = app->cfg;
    w->app = app;
    w->index = index;
    if (uv_loop_init(&w->loop) != 0) return CORE_EIO;
    uv_async_init(&w->loop, &w->stop_async, worker_stop_cb);
    w->stop_async.data = w;

    db_pool_config_t pc = {
        .conninfo = app->conninfo,
        .size = pool_per_worker(cfg, app->nworkers),
        .max_pipeline = 8,
        .acquire_timeout_ms = (unsigned)cfg->db_pool_acquisition_timeout_s * 1000u,
        .statement_timeout_ms = (unsigned)cfg->statement_timeout_ms,
    };
    int rc = db_pool_create(&w->loop, &pc, &w->pool);
    if (rc != CORE_OK) return rc;
    w->gen = gen_current(app);
    w->gen_version = atomic_load(&app->gen_version);
    w->env.cfg = w->gen->cfg;
    w->env.pool = w->pool;
    w->env.jwt = w->gen->jwt;
    w->env.pre_request_sql = w->gen->pre_request_sql;
    w->env.jwt_cache = auth_cache_create_for(w->gen->jwt); /* NULL (no caching) when out of memory */
    /* the auth service verifies without a cache of its own (reloads replace env.jwt_cache) */
    w->auth = auth_worker_create(app->auth, &w->loop, w->pool, NULL);
    if (!w->auth) return CORE_ENOMEM;

    http_limits_t lim;
    http_limits_default(&lim);
    lim.max_body_bytes = (size_t)cfg->max_body_bytes;
    lim.max_header_bytes = (size_t)cfg->max_header_bytes;
    lim.request_timeout_ms = (unsigned)cfg->request_timeout_s * 1000u;
    lim.keepalive_timeout_ms = (unsigned)cfg->keepalive_timeout_s * 1000u;
    lim.access_log = true;
    if (app->unix_fd >= 0) rc = http_server_start_fd(&w->loop, app->unix_fd, &lim, on_api_request, w, &w->http);
    else rc = http_server_start(&w->loop, cfg->server_host, port, &lim, on_api_request, w, &w->http);
    if (rc != CORE_OK) return rc;
    if (index == 0) {
        http_limits_t al;
        http_limits_default(&al);
        al.access_log = false;
        rc = http_server_start(&w->loop, cfg->server_host, cfg->admin_server_port, &al, on_admin_request, w,
                               &w->admin);
        if (rc != CORE_OK) return rc;
    }
    return CORE_OK;
}

/* ---- main loop: signals and shutdown ---------------------------------------------------- */

static void main_close_cb(uv_handle_t *h) { (void)h; }

/* The last step of a shutdown: the main loop's own handles. The signal handlers stay until
 * here, so a second Ctrl-C while requests finish and PostgreSQL stops is noted, not fatal
 * (with the handlers gone it would kill the process, the embedded cluster unstopped and the
 * queued log lines unwritten). */
static void close_main_handles(app_t *app)
{
    uv_close((uv_handle_t *)&app->sig_int, main_close_cb);
    uv_close((uv_handle_t *)&app->sig_term, main_close_cb);
    uv_close((uv_handle_t *)&app->sig_usr1, main_close_cb);
    uv_close((uv_handle_t *)&app->sig_usr2, main_close_cb);
    uv_close((uv_handle_t *)&app->worker_done, main_close_cb);
}

static void embedded_stopped(void *arg)
{
    app_t *app = arg;
    close_main_handles(app);
}

static void on_worker_done(uv_async_t *h)
{
    app_t *app = h->data;
    for (unsigned i = 0; i < app->nworkers && app->workers; i++)
        if (app->workers[i].started && !atomic_load(&app->workers[i].done)) return;
    if (app->listener) {
        db_listener_stop(app->listener);
        app->listener = NULL;
    }
    if (app->embedded) db_embedded_stop(app->embedded, embedded_stopped, app);
    else close_main_handles(app);
}

static void begin_shutdown(app_t *app)
{
    if (app->stopping) return;
    app->stopping = true;
    LOG_INFO("shutting down: finishing in-flight requests");
    bool any = false;
    for (unsigned i = 0; i < app->nworkers && app->workers; i++) {
        if (!app->workers[i].started) continue;
        any = true;
        uv_async_send(&app->workers[i].stop_async);
    }
    if (!any) on_worker_done(&app->worker_done);
}

static void on_signal(uv_signal_t *h, int signum)
{
    app_t *app = h->data;
    if (signum == SIGUSR1) {
        LOG_INFO("SIGUSR1: reloading the schema cache");
        if (app->listener) db_listener_reload(app->listener);
        return;
    }
    if (signum == SIGUSR2) {
        LOG_INFO("SIGUSR2: reloading the configuration");
        if (app->listener) db_listener_reload_config(app->listener);
        return;
    }
    if (app->stopping) {
        LOG_INFO("already shutting down (signal %d): in-flight requests are finishing", signum);
        return;
    }
    begin_shutdown(app);
}

int app_serve(core_config_t *cfg)
{
    app_t app = {0};
    char err[1024];
    bool config_error = false;
    app.cfg = cfg;
    app.loop = uv_default_loop();
    app.exit_status = 1;
    app.unix_fd = -1;
    signal(SIGPIPE, SIG_IGN);

    uv_signal_init(app.loop, &app.sig_int);
    uv_signal_init(app.loop, &app.sig_term);
    uv_signal_init(app.loop, &app.sig_usr1);
    uv_signal_init(app.loop, &app.sig_usr2);
    app.sig_int.data = app.sig_term.data = app.sig_usr1.data = app.sig_usr2.data = &app;
    pthread_mutex_init(&app.gen_mu, NULL);
    atomic_init(&app.gen_version, 1);
    uv_signal_start(&app.sig_int, on_signal, SIGINT);
    uv_signal_start(&app.sig_term, on_signal, SIGTERM);
    uv_signal_start(&app.sig_usr1, on_signal, SIGUSR1);
    uv_signal_start(&app.sig_usr2, on_signal, SIGUSR2);
    uv_async_init(app.loop, &app.worker_done, on_worker_done);
    app.worker_done.data = &app;

    unsigned nworkers = cfg->workers > 0 ? (unsigned)cfg->workers : uv_available_parallelism();
    if (nworkers == 0) nworkers = 1;

    const char *admin_conninfo;
    if (!cfg->db_uri) {
        /* every worker's pool, and room for the schema listener, migrations and psql */
        unsigned need = pool_per_worker(cfg, nworkers) * nworkers + 20;
        if (db_embedded_start(app.loop, cfg->data_dir, need, &app.embedded) != CORE_OK) goto fail;
        app.conninfo = db_embedded_conninfo(app.embedded);
        admin_conninfo = cfg->db_admin_uri ? cfg->db_admin_uri : db_embedded_admin_conninfo(app.embedded);
        if (fill_embedded_defaults(&app, cfg) != CORE_OK) goto fail;
    } else {
        app.conninfo = cfg->db_uri;
        admin_conninfo = cfg->db_admin_uri ? cfg->db_admin_uri : cfg->db_uri;
    }

    app_gen_t *first = NULL;
    if (gen_create(cfg, false, &first, err, sizeof(err)) != CORE_OK) {
        LOG_ERROR("configuration error: %s", err);
        config_error = true;
        goto fail;
    }
    gen_publish(&app, first);

    if (db_migrate(admin_conninfo, cfg->demo, err, sizeof(err)) != CORE_OK) {
        LOG_ERROR("%s", err);
        goto fail;
    }

    /* The auth service starts in any case: without its schema (no privileges) or without an
     * HMAC secret it answers /auth/v1 with 503 and says why, once, here. */
    const char *auth_unavailable = NULL;
    if (db_migrate_auth_ready(admin_conninfo, app.conninfo, err, sizeof(err)) != CORE_OK) auth_unavailable = err;
    /* The auth service follows config reloads (reload_config); it starts on this one. */
    if (auth_service_create(first->cfg, first->jwt, auth_unavailable, nworkers, &app.auth) != CORE_OK) {
        LOG_ERROR("cannot start the auth service");
        goto fail;
    }

    db_listener_config_t lc = {
        .conninfo = app.conninfo,
        .schemas_csv = cfg->db_schemas,
        .channel = cfg->db_channel_enabled ? cfg->db_channel : NULL,
        .on_reload_config = reload_config,
        .arg = &app,
    };
    if (db_listener_start(&lc, &app.listener) != CORE_OK) {
        LOG_ERROR("cannot start the schema listener");
        goto fail;
    }

    if (cfg->server_unix_socket &&
        http_unix_listen(cfg->server_unix_socket, core_config_unix_socket_mode(cfg), &app.unix_fd) != CORE_OK)
        goto fail;

    app.nworkers = nworkers;
    app.workers = core_calloc(app.nworkers, sizeof(worker_t));
    if (!app.workers) goto fail;
    int port = cfg->server_port;
    for (unsigned i = 0; i < app.nworkers; i++) {
        worker_t *w = &app.workers[i];
        if (worker_init(&app, w, i, port) != CORE_OK) {
            LOG_ERROR("cannot start worker %u on %s:%d", i, cfg->server_host, port);
            goto fail;
        }
        if (i == 0 && app.unix_fd < 0) port = http_server_port(w->http);
    }
    for (unsigned i = 0; i < app.nworkers; i++) {
        if (uv_thread_create(&app.workers[i].thread, worker_main, &app.workers[i]) != 0) {
            LOG_ERROR("cannot start worker thread %u", i);
            goto fail;
        }
        app.workers[i].started = true;
    }
    if (app.unix_fd >= 0)
        LOG_INFO("strata listening on unix:%s (admin on port %d), %u workers, database %s", cfg->server_unix_socket,
                 http_server_port(app.workers[0].admin), app.nworkers, app.embedded ? "embedded" : "external");
    else
        LOG_INFO("strata listening on http://%s:%d/ (admin on port %d), %u workers, database %s",
                 cfg->server_host, port, http_server_port(app.workers[0].admin), app.nworkers,
                 app.embedded ? "embedded" : "external");
    app.exit_status = 0;
    uv_run(app.loop, UV_RUN_DEFAULT);
    goto done;

fail:
    begin_shutdown(&app);
    uv_run(app.loop, UV_RUN_DEFAULT);
    app.exit_status = config_error ? 2 : 1;
done:
    for (unsigned i = 0; i < app.nworkers && app.workers; i++) {
        worker_t *w = &app.workers[i];
        /* A worker that never ran is left to the process exit: its handles never started.
         * Its configuration reference and JWT cache are dropped, so the generation is freed. */
        if (!w->started) {
            auth_cache_free(w->env.jwt_cache);
            w->env.jwt_cache = NULL;
            gen_unref(w->gen);
            w->gen = NULL;
            continue;
        }
        uv_thread_join(&w->thread);
        (void)uv_loop_close(&w->loop);
    }
    if (app.listener) db_listener_stop(app.listener);
    if (app.unix_fd >= 0) {
        close(app.unix_fd);
        if (cfg->server_unix_socket) (void)unlink(cfg->server_unix_socket);
    }
    if (app.embedded) db_embedded_free(app.embedded);
    auth_service_free(app.auth);
    gen_publish(&app, NULL); /* drops the last generation (workers have dropped theirs) */
    pthread_mutex_destroy(&app.gen_mu);
    db_schema_publish_clear();
    core_free(app.workers);
    uv_loop_close(app.loop);
    LOG_INFO("stopped");
    return app.exit_status;
}
