/*
 * The per-worker connection pool (see db.h for the protocol used on each connection).
 *
 * Each connection keeps a ring of the results it expects, in the order the statements were
 * sent; results are matched to requests by position, which is how pipeline mode defines
 * them. A request's sequence is:
 *
 *     [SET TRANSACTION]    per-role / per-function isolation level
 *     [EXECUTE strata_set] the role's settings (ALTER ROLE ... SET) beyond strata_ctx's slots
 *     EXECUTE strata_ctx   search_path, role and request.* settings, two settings each side
 *     [EXECUTE strata_set] function settings, Prefer: timezone, legacy claims beyond the slots
 *     [PREPARE sN]         first use of a statement text on this connection
 *     EXECUTE sN           the statement
 *     [ROLLBACK]           Prefer: tx=rollback
 *     SYNC                 commits (or rolls back after an error)
 *
 * The PREPARE comes after the role switch because parse analysis checks schema USAGE as
 * the current role. Until its result confirms it, the statement is "pending": requests
 * pipelined behind it with the same text run unnamed, so a PREPARE that fails (or is
 * skipped because the request failed earlier) never breaks another request.
 */
#include <stdio.h>
#include <string.h>

#include "db/db.h"
#include "db/resolve_int.h"

#define CTX_STMT "strata_ctx"
/* One prepared statement sets the request context; it is the same text for every request.
 * The settings that vary by role, function or request (ALTER ROLE ... SET, CREATE FUNCTION
 * ... SET, Prefer: timezone, legacy request.jwt.claim.*) take DB_CTX_SLOTS name/value slots
 * of their own on each side of the role switch: the role's before it (so GRANT SET ON
 * PARAMETER to the authenticator is enough, as in PostgREST), the others after it. A slot
 * left NULL costs nothing: CASE around a scalar call. More settings than slots go as JSON
 * objects to strata_set, sent in the same pipeline only then. (They are not subqueries of
 * strata_ctx: a subplan's executor start-up costs ~2.5 µs per request even when a CASE
 * skips it; and a strata_set per request costs ~8 µs of backend CPU. Measured, see
 * docs/internals/db.md.) */
#define CTX_SQL                                                                            \
    "select set_config('search_path', $1, true), "                                         \
    "case when $10::text is null then null else set_config($10, $11, true) end, "         \
    "case when $12::text is null then null else set_config($12, $13, true) end, "         \
    "set_config('role', $2, true), set_config('request.jwt.claims', $3, true), "          \
    "set_config('request.method', $4, true), set_config('request.path', $5, true), "      \
    "set_config('request.headers', $6, true), set_config('request.cookies', $7, true), "  \
    "case when $8::text is null then null else set_config('request.jwt.claim.role', $8, true) end, " \
    "case when $14::text is null then null else set_config($14, $15, true) end, "         \
    "case when $16::text is null then null else set_config($16, $17, true) end, "         \
    "set_config('transaction_read_only', $9, true)"
#define CTX_NPARAMS (9 + 4 * DB_CTX_SLOTS)
#define SET_STMT "strata_set"
#define SET_SQL "select count(set_config(k, v, true)) from json_each_text($1::json) s(k, v)"
_Static_assert(DB_CTX_SLOTS == 2, "CTX_SQL has two slots on each side of the role switch");
#define STMT_SLOTS 512u   /* open-addressing table size (power of two) */
#define STMT_MAX 256u     /* beyond this, new statements run unnamed */
#define BACKOFF_MIN_MS 100u
#define BACKOFF_MAX_MS 2000u

typedef struct db_job {
    struct db_job *next;
    struct db_job *group_next; /* the next request of a batch (db_pool_submit_batch) */
    unsigned ring_need;        /* ring items the whole segment may take */
    db_request_t req;
    db_done_fn done;
    void *arg;
    uint64_t deadline_ns;
    PGresult *res;     /* the statement's result */
    PGresult *err_res; /* the first error result of this job */
    int conn_err;      /* DB_ERR_* when the connection failed */
} db_job_t;

enum item_kind { IT_SETUP, IT_SETUP_SYNC, IT_PREPARE, IT_CTX, IT_MAIN, IT_AUX, IT_SYNC };

typedef struct {
    enum item_kind kind;
    db_job_t *job;
} item_t;

typedef struct {
    uint64_t hash;
    char *sql; /* NULL: empty slot */
    size_t len;
    int id;
    bool ready; /* the server confirmed the PREPARE */
} stmt_t;

/* CS_RESOLVING: waiting for the pool's host name lookup (resolve_int.h) before connecting. */
enum conn_state { CS_DOWN, CS_BACKOFF, CS_RESOLVING, CS_CONNECTING, CS_SETUP, CS_READY, CS_CLOSING };

typedef struct db_conn {
    db_pool_t *pool;
    PGconn *pg;
    uv_poll_t *poll; /* heap: replaced when PQsocket changes during connect */
    int poll_fd;
    int poll_events;
    uv_timer_t timer; /* reconnect backoff */
    enum conn_state state;
    unsigned backoff_ms;
    item_t *ring;
    unsigned ring_cap, ring_head, ring_len;
    unsigned inflight; /* jobs sent and not completed */
    unsigned generation;
    stmt_t stmts[STMT_SLOTS];
    unsigned nstmts;
    int next_stmt_id;
    bool logged_failure;
    bool maybe_input; /* libpq may have read results while sending: look before sleeping */
} db_conn_t;

struct db_pool {
    uv_loop_t *loop;
    db_pool_config_t cfg;
    char *conninfo;
    db_target_t target;      /* the conninfo parsed: which host names need a lookup */
    db_resolver_t *resolver; /* NULL when none does; counts in open_handles while open */
    const db_params_t *resolved; /* a lookup's result, only while pool_resolved runs */
    db_conn_t *conns;
    unsigned nconns;
    db_job_t *wait_head, *wait_tail;
    unsigned nwaiting;
    uv_check_t dispatch; /* flushes queued requests once per loop iteration, in one batch */
    uv_timer_t acquire_timer;
    unsigned generation;
    bool closing;
    bool down; /* the last connection attempt failed and none is ready */
    unsigned open_handles;
    void (*on_closed)(void *);
    void *on_closed_arg;
    /* for db_pool_stats, which /metrics calls from the admin thread: counted here, and the
     * gauges published by pool_publish whenever the dispatcher or a failure changed them */
    core_counter_t errors, queries, connected, busy, waiting;
};

static void conn_on_poll(uv_poll_t *h, int status, int events);
static void conn_fail(db_conn_t *c, const char *why);
static void pool_publish(db_pool_t *p);
static void conn_start_connect(db_conn_t *c);
static void pool_dispatch(db_pool_t *p);
static void pool_maybe_finish_close(db_pool_t *p);
static void dispatch_cb(uv_check_t *h);
static bool conn_read_results(db_conn_t *c);

static void notice_ignore(void *arg, const char *msg)
{
    (void)arg;
    LOG_DEBUG("postgres notice: %s", msg);
}

/* ---- expected-result ring ------------------------------------------------------------- */

static bool ring_push(db_conn_t *c, enum item_kind kind, db_job_t *job)
{
    if (c->ring_len == c->ring_cap) return false;
    item_t *it = &c->ring[(c->ring_head + c->ring_len) % c->ring_cap];
    it->kind = kind;
    it->job = job;
    c->ring_len++;
    return true;
}

static item_t *ring_front(db_conn_t *c) { return c->ring_len ? &c->ring[c->ring_head] : NULL; }

static void ring_pop(db_conn_t *c)
{
    c->ring_head = (c->ring_head + 1) % c->ring_cap;
    c->ring_len--;
}

/* ---- statement cache ------------------------------------------------------------------ */

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* Returns the slot holding sql, or the empty slot where it would go (sql == NULL there). */
static int stmt_find(db_conn_t *c, const char *sql, size_t len, uint64_t h)
{
    unsigned i = (unsigned)h & (STMT_SLOTS - 1);
    for (unsigned n = 0; n < STMT_SLOTS; n++, i = (i + 1) & (STMT_SLOTS - 1)) {
        stmt_t *s = &c->stmts[i];
        if (!s->sql) return (int)i;
        if (s->hash == h && s->len == len && memcmp(s->sql, sql, len) == 0) return (int)i;
    }
    return -1;
}

static void stmt_clear_all(db_conn_t *c)
{
    for (unsigned i = 0; i < STMT_SLOTS; i++) {
        core_free(c->stmts[i].sql);
        c->stmts[i].sql = NULL;
    }
    c->nstmts = 0;
}

/* Removes one entry; re-inserts the rest of its probe chain so lookups stay correct. */
static void stmt_remove(db_conn_t *c, int slot)
{
    core_free(c->stmts[slot].sql);
    c->stmts[slot].sql = NULL;
    c->nstmts--;
    unsigned i = ((unsigned)slot + 1) & (STMT_SLOTS - 1);
    while (c->stmts[i].sql) {
        stmt_t moved = c->stmts[i];
        c->stmts[i].sql = NULL;
        int j = stmt_find(c, moved.sql, moved.len, moved.hash);
        c->stmts[j] = moved;
        i = (i + 1) & (STMT_SLOTS - 1);
    }
}

/* ---- polling -------------------------------------------------------------------------- */

static void poll_free_cb(uv_handle_t *h) { core_free(h); }

static void conn_poll_close(db_conn_t *c)
{
    if (!c->poll) return;
    uv_poll_stop(c->poll);
    uv_close((uv_handle_t *)c->poll, poll_free_cb);
    c->poll = NULL;
    c->poll_fd = -1;
    c->poll_events = 0;
}

/* Watches the connection's current socket for `events`, re-creating the handle when libpq
 * switched sockets (it may, during connect). */
static int conn_watch(db_conn_t *c, int events)
{
    int fd = PQsocket(c->pg);
    if (fd < 0) return CORE_EIO;
    if (c->poll && c->poll_fd != fd) conn_poll_close(c);
    if (!c->poll) {
        c->poll = core_malloc(sizeof(*c->poll));
        if (!c->poll) return CORE_ENOMEM;
        if (uv_poll_init(c->pool->loop, c->poll, fd) != 0) {
            core_free(c->poll);
            c->poll = NULL;
            return CORE_EIO;
        }
        c->poll->data = c;
        c->poll_fd = fd;
        c->poll_events = 0;
    }
    if (events != c->poll_events) {
        if (uv_poll_start(c->poll, events, conn_on_poll) != 0) return CORE_EIO;
        c->poll_events = events;
    }
    return CORE_OK;
}

/* ---- job completion -------------------------------------------------------------------- */

static void job_complete_one(db_pool_t *p, db_job_t *j)
{
    db_error_t e = {0};
    PGresult *res = NULL;
    if (j->conn_err) {
        e.kind = j->conn_err;
        e.message = j->conn_err == DB_ERR_ACQUIRE ? "Timed out acquiring connection from connection pool."
                    : j->conn_err == DB_ERR_SHUTDOWN ? "The server is shutting down"
                    : j->conn_err == DB_ERR_NOMEM    ? "Out of memory"
                                                     : "Database connection lost";
    } else if (j->err_res) {
        e.kind = DB_ERR_QUERY;
        e.sqlstate = PQresultErrorField(j->err_res, PG_DIAG_SQLSTATE);
        e.message = PQresultErrorField(j->err_res, PG_DIAG_MESSAGE_PRIMARY);
        e.detail = PQresultErrorField(j->err_res, PG_DIAG_MESSAGE_DETAIL);
        e.hint = PQresultErrorField(j->err_res, PG_DIAG_MESSAGE_HINT);
        if (!e.sqlstate) e.sqlstate = "XX000";
        if (!e.message) e.message = "unknown database error";
    } else if (!j->res) {
        e.kind = DB_ERR_CONNECTION;
        e.message = "The statement returned no result";
    } else {
        res = j->res;
        j->res = NULL;
    }
    if (e.kind != DB_ERR_NONE) core_counter_add(&p->errors, 1);
    core_counter_add(&p->queries, 1);
    j->done(j->arg, res, e.kind == DB_ERR_NONE ? NULL : &e);
    PQclear(j->err_res);
    PQclear(j->res);
    core_free(j);
}

/* Completes a job and, for a batch, every request of its group in order (a connection or
 * acquisition failure applies to all of them). */
static void job_complete(db_pool_t *p, db_job_t *j)
{
    int conn_err = j->conn_err;
    while (j) {
        db_job_t *next = j->group_next;
        if (conn_err && !j->conn_err) j->conn_err = conn_err;
        job_complete_one(p, j);
        j = next;
    }
}

/* ---- sending -------------------------------------------------------------------------- */

static void conn_flush(db_conn_t *c)
{
    /* When the socket is full, libpq reads input while it sends (to avoid a deadlock), so
     * results may now sit in its buffer with no readable event to come. The pool's check
     * handle looks at such connections before the loop sleeps again. */
    c->maybe_input = true;
    if (!uv_is_closing((uv_handle_t *)&c->pool->dispatch)) uv_check_start(&c->pool->dispatch, dispatch_cb);
    int r = PQflush(c->pg);
    if (r < 0) {
        conn_fail(c, PQerrorMessage(c->pg));
        return;
    }
    int ev = UV_READABLE | (r == 1 ? UV_WRITABLE : 0);
    if (conn_watch(c, ev) != CORE_OK) conn_fail(c, "cannot watch the connection's socket");
}

/* Sends the setup segment: (DEALLOCATE ALL,) PREPARE strata_ctx and strata_set, (SET
 * statement_timeout,) Sync. */
static bool conn_send_setup(db_conn_t *c, bool deallocate)
{
    PGconn *pg = c->pg;
    if (deallocate) {
        if (!PQsendQueryParams(pg, "DEALLOCATE ALL", 0, NULL, NULL, NULL, NULL, 0)) return false;
        if (!ring_push(c, IT_SETUP, NULL)) return false;
        stmt_clear_all(c);
    }
    if (!PQsendPrepare(pg, CTX_STMT, CTX_SQL, 0, NULL)) return false;
    if (!ring_push(c, IT_SETUP, NULL)) return false;
    if (!PQsendPrepare(pg, SET_STMT, SET_SQL, 0, NULL)) return false;
    if (!ring_push(c, IT_SETUP, NULL)) return false;
    if (c->pool->cfg.statement_timeout_ms && !deallocate) {
        char sql[64];
        snprintf(sql, sizeof(sql), "SET statement_timeout = %u", c->pool->cfg.statement_timeout_ms);
        if (!PQsendQueryParams(pg, sql, 0, NULL, NULL, NULL, NULL, 0)) return false;
        if (!ring_push(c, IT_SETUP, NULL)) return false;
    }
    if (!PQpipelineSync(pg)) return false;
    if (!ring_push(c, IT_SETUP_SYNC, NULL)) return false;
    c->generation = c->pool->generation;
    c->state = CS_SETUP;
    return true;
}

const char *db_isolation_sql(const char *level)
{
    static const char *const names[] = {"read committed", "repeatable read", "serializable", "read uncommitted"};
    static const char *const sql[] = {"SET TRANSACTION ISOLATION LEVEL READ COMMITTED",
                                      "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
                                      "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
                                      "SET TRANSACTION ISOLATION LEVEL READ UNCOMMITTED"};
    if (!level) return NULL;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (str_eq_nocase(str_from_cstr(level), str_from_cstr(names[i]))) return sql[i];
    return NULL;
}

/* Sends one job's segment; false when the connection broke (the job is then in the ring
 * or not, as the return of ring pushes says — the caller fails the connection, which
 * completes every job in the ring, and requeues nothing). */
static bool conn_send_stmts(db_conn_t *c, db_job_t *j)
{
    PGconn *pg = c->pg;
    const db_request_t *r = &j->req;
    size_t len = strlen(r->sql);
    uint64_t h = fnv1a(r->sql, len);
    int slot = stmt_find(c, r->sql, len, h);
    char name[24] = "";
    bool named = false, prepare = false;

    if (slot >= 0 && c->stmts[slot].sql) {
        if (c->stmts[slot].ready) {
            name[0] = 's';
            core_u64_str(name + 1, (uint64_t)c->stmts[slot].id);
            named = true;
        }
    } else if (slot >= 0 && c->nstmts < STMT_MAX) {
        char *copy = core_strndup(r->sql, len);
        if (copy) {
            stmt_t *s = &c->stmts[slot];
            s->sql = copy;
            s->len = len;
            s->hash = h;
            s->id = ++c->next_stmt_id;
            s->ready = false;
            c->nstmts++;
            name[0] = 's';
            core_u64_str(name + 1, (uint64_t)s->id);
            named = prepare = true;
        }
    }

    /* An isolation level other than the session's must be set before the transaction's
     * first snapshot, so it goes first, as its own statement: one of four fixed texts.
     * (PostgreSQL warns that SET TRANSACTION is outside a transaction block, and applies it
     * to the pipeline's implicit transaction all the same.) */
    const char *iso = db_isolation_sql(r->isolation);
    if (iso && (!PQsendQueryParams(pg, iso, 0, NULL, NULL, NULL, NULL, 0) || !ring_push(c, IT_CTX, j)))
        return false;
    if (r->pre_settings_json && (!PQsendQueryPrepared(pg, SET_STMT, 1, &r->pre_settings_json, NULL, NULL, 0) ||
                                 !ring_push(c, IT_CTX, j)))
        return false;
    const char *ctx[CTX_NPARAMS] = {r->search_path ? r->search_path : "\"public\"",
                                    r->role, r->claims_json, r->method, r->path, r->headers_json,
                                    r->cookies_json ? r->cookies_json : "{}", r->legacy_role,
                                    r->read_only ? "on" : "off"};
    for (unsigned k = 0; k < DB_CTX_SLOTS; k++) {
        ctx[9 + 2 * k] = r->pre_keys[k];
        ctx[10 + 2 * k] = r->pre_keys[k] ? r->pre_values[k] : NULL;
        ctx[9 + 2 * DB_CTX_SLOTS + 2 * k] = r->post_keys[k];
        ctx[10 + 2 * DB_CTX_SLOTS + 2 * k] = r->post_keys[k] ? r->post_values[k] : NULL;
    }
    if (!PQsendQueryPrepared(pg, CTX_STMT, CTX_NPARAMS, ctx, NULL, NULL, 0) || !ring_push(c, IT_CTX, j))
        return false;
    if (r->settings_json && (!PQsendQueryPrepared(pg, SET_STMT, 1, &r->settings_json, NULL, NULL, 0) ||
                             !ring_push(c, IT_CTX, j)))
        return false;
    /* db-pre-request: its errors fail the request like the statement's own (IT_CTX). */
    if (r->pre_sql && (!PQsendQueryParams(pg, r->pre_sql, 0, NULL, NULL, NULL, NULL, 0) || !ring_push(c, IT_CTX, j)))
        return false;
    if (prepare && (!PQsendPrepare(pg, name, r->sql, 0, NULL) || !ring_push(c, IT_PREPARE, j)))
        return false;
    int ok = named ? PQsendQueryPrepared(pg, name, r->nparams, r->params, NULL, NULL, 0)
                   : PQsendQueryParams(pg, r->sql, r->nparams, NULL, r->params, NULL, NULL, 0);
    if (!ok || !ring_push(c, IT_MAIN, j)) return false;
    /* Prefer: tx=rollback. In the implicit transaction ROLLBACK warns "no transaction in
     * progress" but aborts it all the same, so nothing of the request is committed. */
    if (r->rollback &&
        (!PQsendQueryParams(pg, "ROLLBACK", 0, NULL, NULL, NULL, NULL, 0) || !ring_push(c, IT_AUX, j)))
        return false;
    return true;
}

/* Sends a job's segment: its statements (every request's, for a batch) and one Sync, so a
 * batch is one transaction. */
static bool conn_send_job(db_conn_t *c, db_job_t *j)
{
    for (db_job_t *m = j; m; m = m->group_next)
        if (!conn_send_stmts(c, m)) return false;
    if (!PQpipelineSync(c->pg) || !ring_push(c, IT_SYNC, j)) return false;
    c->inflight++;
    return true;
}

/* ---- receiving ------------------------------------------------------------------------ */

/* Handles every result that has arrived. Returns false when the connection was failed. */
static bool conn_read_results(db_conn_t *c)
{
    db_pool_t *p = c->pool;
    while (c->ring_len > 0) {
        if (PQisBusy(c->pg)) return true;
        PGresult *r = PQgetResult(c->pg);
        item_t *it = ring_front(c);
        if (!r) { /* end of one statement's results */
            if (it->kind == IT_SETUP_SYNC || it->kind == IT_SYNC)
                continue; /* no NULL follows a sync; nothing to do */
            ring_pop(c);
            continue;
        }
        ExecStatusType st = PQresultStatus(r);
        switch (it->kind) {
        case IT_SETUP_SYNC:
        case IT_SYNC:
            PQclear(r);
            if (st != PGRES_PIPELINE_SYNC) {
                conn_fail(c, "pipeline out of step");
                return false;
            }
            ring_pop(c);
            if (it->kind == IT_SETUP_SYNC) {
                c->state = CS_READY;
                c->backoff_ms = 0;
                p->down = false;
                if (c->logged_failure) LOG_INFO("database connection re-established");
                c->logged_failure = false;
                pool_dispatch(p);
            } else if (it->kind == IT_SYNC) {
                db_job_t *j = it->job;
                c->inflight--;
                job_complete(p, j);
                if (p->closing) pool_maybe_finish_close(p);
                else pool_dispatch(p);
                if (c->state != CS_READY) return false; /* the callback may have closed things */
            }
            continue;
        case IT_SETUP:
            if (st != PGRES_COMMAND_OK) {
                LOG_ERROR("database connection setup failed: %s", PQresultErrorMessage(r));
                PQclear(r);
                conn_fail(c, "setup failed");
                return false;
            }
            PQclear(r);
            continue;
        case IT_PREPARE: {
            const char *sql = it->job->req.sql;
            size_t len = strlen(sql);
            int slot = stmt_find(c, sql, len, fnv1a(sql, len));
            bool known = slot >= 0 && c->stmts[slot].sql;
            if (st == PGRES_COMMAND_OK) {
                if (known) c->stmts[slot].ready = true;
                PQclear(r);
            } else {
                if (known) stmt_remove(c, slot);
                if (!it->job->err_res && st == PGRES_FATAL_ERROR) it->job->err_res = r;
                else PQclear(r);
            }
            continue;
        }
        case IT_AUX:
            PQclear(r);
            continue;
        case IT_CTX:
        case IT_MAIN:
            if (st == PGRES_FATAL_ERROR || st == PGRES_NONFATAL_ERROR || st == PGRES_BAD_RESPONSE) {
                if (!it->job->err_res) it->job->err_res = r;
                else PQclear(r);
            } else if (it->kind == IT_MAIN && (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) &&
                       !it->job->res) {
                it->job->res = r;
            } else {
                PQclear(r);
            }
            continue;
        }
    }
    return true;
}

static void conn_on_poll(uv_poll_t *h, int status, int events)
{
    db_conn_t *c = h->data;
    if (c->state == CS_CONNECTING) {
        (void)events;
        PostgresPollingStatusType ps = PQconnectPoll(c->pg);
        if (ps == PGRES_POLLING_FAILED) {
            conn_fail(c, PQerrorMessage(c->pg));
            return;
        }
        if (ps == PGRES_POLLING_OK) {
            if (PQsetnonblocking(c->pg, 1) != 0 || !PQenterPipelineMode(c->pg)) {
                conn_fail(c, "cannot enter pipeline mode");
                return;
            }
            PQsetNoticeProcessor(c->pg, notice_ignore, NULL);
            c->ring_head = c->ring_len = 0;
            if (!conn_send_setup(c, false)) {
                conn_fail(c, PQerrorMessage(c->pg));
                return;
            }
            conn_flush(c);
            return;
        }
        int ev = ps == PGRES_POLLING_WRITING ? UV_WRITABLE : UV_READABLE;
        if (conn_watch(c, ev) != CORE_OK) conn_fail(c, "cannot watch the connection's socket");
        return;
    }
    if (status < 0) {
        conn_fail(c, uv_strerror(status));
        return;
    }
    if (events & UV_WRITABLE) {
        conn_flush(c);
        if (c->state != CS_READY && c->state != CS_SETUP) return;
    }
    if (events & UV_READABLE) {
        if (!PQconsumeInput(c->pg)) {
            conn_fail(c, PQerrorMessage(c->pg));
            return;
        }
        if (!conn_read_results(c)) return;
        /* Asynchronous notifications are not used on pool connections; drop them. */
        PGnotify *n;
        while ((n = PQnotifies(c->pg)) != NULL) PQfreemem(n);
    }
}

/* ---- connection lifecycle ------------------------------------------------------------- */

static void conn_backoff_cb(uv_timer_t *t)
{
    db_conn_t *c = t->data;
    if (c->pool->closing) return;
    conn_start_connect(c);
}

/* Tears the connection down, fails every job it carried, and schedules a reconnect. */
static void conn_fail(db_conn_t *c, const char *why)
{
    db_pool_t *p = c->pool;
    if (!c->logged_failure && !p->closing) {
        char msg[256];
        snprintf(msg, sizeof(msg), "%s", why ? why : "unknown error");
        size_t n = strlen(msg);
        while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) msg[--n] = '\0';
        LOG_ERROR("database connection failed: %s", msg);
        c->logged_failure = true;
    }
    core_counter_add(&p->errors, 1);
    conn_poll_close(c);
    if (c->pg) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
    bool was_ready = c->state == CS_READY || c->state == CS_SETUP;
    /* Complete the jobs this connection carried, each once (its IT_SYNC item). */
    while (c->ring_len) {
        item_t it = *ring_front(c);
        ring_pop(c);
        if (it.kind == IT_SYNC && it.job) {
            it.job->conn_err = DB_ERR_CONNECTION;
            job_complete(p, it.job);
        }
    }
    c->inflight = 0;
    stmt_clear_all(c);
    (void)was_ready;
    bool any_ready = false;
    for (unsigned i = 0; i < p->nconns; i++)
        if (p->conns[i].state == CS_READY) any_ready = true;
    if (!any_ready) p->down = true;
    if (p->closing) {
        c->state = CS_DOWN;
        pool_maybe_finish_close(p);
        return;
    }
    c->state = CS_BACKOFF;
    c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (c->backoff_ms > BACKOFF_MAX_MS) c->backoff_ms = BACKOFF_MAX_MS;
    uv_timer_start(&c->timer, conn_backoff_cb, c->backoff_ms, 0);
    /* Waiting requests must not sit out the acquire timeout when the database is gone. */
    if (p->down) pool_dispatch(p);
    else pool_publish(p);
}

/* Every attempt (the first and each reconnect) resolves host names afresh when the
 * conninfo has any: libpq would look them up with a blocking getaddrinfo() on this loop.
 * Connections starting while a lookup is in flight share its result: pool_resolved calls
 * this again for each connection in CS_RESOLVING, with p->resolved set. */
static void conn_start_connect(db_conn_t *c)
{
    db_pool_t *p = c->pool;
    if (p->resolver && !p->resolved) {
        if (db_resolver_start(p->resolver) != CORE_OK) conn_fail(c, "cannot start a host name lookup");
        else c->state = CS_RESOLVING;
        return;
    }
    /* With the addresses as hostaddr beside host, libpq looks nothing up. */
    c->pg = p->resolved ? PQconnectStartParams(p->resolved->keys, p->resolved->vals, 0) : PQconnectStart(p->conninfo);
    if (!c->pg) {
        conn_fail(c, "out of memory");
        return;
    }
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        conn_fail(c, PQerrorMessage(c->pg));
        return;
    }
    c->state = CS_CONNECTING;
    if (conn_watch(c, UV_WRITABLE) != CORE_OK) conn_fail(c, "cannot watch the connection's socket");
}

/* The lookup's result, on the loop: connect each waiting connection to the addresses, or
 * fail it like any failed connect (logged, backoff, retried with a fresh lookup). */
static void pool_resolved(void *arg, const db_params_t *params, const char *err)
{
    db_pool_t *p = arg;
    p->resolved = params;
    for (unsigned i = 0; i < p->nconns; i++) {
        db_conn_t *c = &p->conns[i];
        if (c->state != CS_RESOLVING) continue;
        if (p->closing) c->state = CS_DOWN;
        else if (!params) conn_fail(c, err);
        else conn_start_connect(c);
    }
    p->resolved = NULL;
}

/* ---- dispatch ------------------------------------------------------------------------- */

static db_job_t *wait_pop(db_pool_t *p)
{
    db_job_t *j = p->wait_head;
    if (!j) return NULL;
    p->wait_head = j->next;
    if (!p->wait_head) p->wait_tail = NULL;
    p->nwaiting--;
    j->next = NULL;
    return j;
}

/* The gauges db_pool_stats reports, from this loop's state. */
static void pool_publish(db_pool_t *p)
{
    unsigned connected = 0, busy = 0;
    for (unsigned i = 0; i < p->nconns; i++) {
        if (p->conns[i].state == CS_READY) connected++;
        if (p->conns[i].inflight) busy++;
    }
    core_counter_set(&p->connected, connected);
    core_counter_set(&p->busy, busy);
    core_counter_set(&p->waiting, p->nwaiting);
}

/* Sends waiting jobs to the least-loaded ready connections (or fails them when the
 * database is down), then flushes each connection it wrote to once. */
static void pool_dispatch(db_pool_t *p)
{
    bool wrote[64] = {false};
    while (p->wait_head) {
        if (p->down) {
            db_job_t *j = wait_pop(p);
            j->conn_err = DB_ERR_CONNECTION;
            job_complete(p, j);
            continue;
        }
        db_conn_t *best = NULL;
        unsigned best_i = 0;
        unsigned need = p->wait_head->ring_need ? p->wait_head->ring_need : 8;
        /* Reads fill the first connection with room (up to max_pipeline in flight) before
         * the next: few busy backends, each woken once for several pipelined requests, which
         * on a small machine beats spreading (measured: W1 about 1.1 of pgbench instead of
         * 0.9). Writes spread to the least busy connection: pipelined behind another write a
         * commit would wait for its WAL flush instead of sharing a group commit. */
        bool pack = p->wait_head->req.read_only;
        for (unsigned i = 0; i < p->nconns; i++) {
            db_conn_t *c = &p->conns[i];
            if (c->state != CS_READY || c->inflight >= p->cfg.max_pipeline) continue;
            if (c->generation != p->generation) {
                if (c->inflight == 0 && c->ring_len == 0) {
                    if (!conn_send_setup(c, true)) conn_fail(c, PQerrorMessage(c->pg));
                    else conn_flush(c);
                }
                continue;
            }
            if (c->ring_cap - c->ring_len < need) continue;
            if (!best || c->inflight < best->inflight) {
                best = c;
                best_i = i;
            }
            if (pack || c->inflight == 0) break;
        }
        if (!best) break;
        db_job_t *j = wait_pop(p);
        if (!conn_send_job(best, j)) {
            /* The job may sit in the ring partially; failing the connection completes it only
             * if its IT_SYNC made it in. Otherwise complete it here. */
            bool queued = false;
            for (unsigned k = 0; k < best->ring_len; k++)
                if (best->ring[(best->ring_head + k) % best->ring_cap].job == j &&
                    best->ring[(best->ring_head + k) % best->ring_cap].kind == IT_SYNC)
                    queued = true;
            /* Remove partial items of this job so conn_fail does not touch a freed job. */
            for (unsigned k = 0; k < best->ring_len && !queued; k++) {
                item_t *it = &best->ring[(best->ring_head + k) % best->ring_cap];
                for (db_job_t *m = j; m; m = m->group_next)
                    if (it->job == m) it->job = NULL;
            }
            if (!queued) {
                j->conn_err = DB_ERR_CONNECTION;
                job_complete(p, j);
            }
            conn_fail(best, PQerrorMessage(best->pg));
            continue;
        }
        if (best_i < 64) wrote[best_i] = true;
        else conn_flush(best);
    }
    for (unsigned i = 0; i < p->nconns && i < 64; i++)
        if (wrote[i] && p->conns[i].state == CS_READY) conn_flush(&p->conns[i]);
    pool_publish(p);
}

static void dispatch_cb(uv_check_t *h)
{
    db_pool_t *p = h->data;
    if (p->closing) {
        uv_check_stop(&p->dispatch);
        return;
    }
    pool_dispatch(p);
    for (unsigned i = 0; i < p->nconns; i++) {
        db_conn_t *c = &p->conns[i];
        if (!c->maybe_input) continue;
        c->maybe_input = false;
        if ((c->state == CS_READY || c->state == CS_SETUP) && c->ring_len > 0) (void)conn_read_results(c);
    }
    bool again = p->wait_head != NULL;
    for (unsigned i = 0; i < p->nconns && !again; i++) again = p->conns[i].maybe_input;
    if (!again) uv_check_stop(&p->dispatch);
}

static void acquire_timer_cb(uv_timer_t *t)
{
    db_pool_t *p = t->data;
    uint64_t now = core_now_ns();
    /* Jobs are queued in arrival order with the same timeout, so expired ones are in front. */
    while (p->wait_head && p->wait_head->deadline_ns <= now) {
        db_job_t *j = wait_pop(p);
        j->conn_err = DB_ERR_ACQUIRE;
        job_complete(p, j);
    }
}

/* ---- public API ----------------------------------------------------------------------- */

int db_pool_create(uv_loop_t *loop, const db_pool_config_t *cfg, db_pool_t **out)
{
    int rc = CORE_ENOMEM;
    db_pool_t *p = core_calloc(1, sizeof(*p));
    if (!p) goto out;
    p->loop = loop;
    p->cfg = *cfg;
    if (p->cfg.size == 0) p->cfg.size = 1;
    if (p->cfg.max_pipeline == 0) p->cfg.max_pipeline = 1;
    p->conninfo = core_strndup(cfg->conninfo, strlen(cfg->conninfo));
    p->conns = core_calloc(p->cfg.size, sizeof(db_conn_t));
    if (!p->conninfo || !p->conns) goto out;
    if (db_target_parse(p->conninfo, &p->target) != CORE_OK) goto out;
    if (p->target.nlookup > 0 && db_resolver_create(loop, &p->target, pool_resolved, p, &p->resolver) != CORE_OK)
        goto out;
    p->nconns = p->cfg.size;
    for (unsigned i = 0; i < p->nconns; i++) {
        db_conn_t *c = &p->conns[i];
        c->pool = p;
        c->poll_fd = -1;
        c->ring_cap = p->cfg.max_pipeline * 9 + 16 + DB_BATCH_MAX * 9; /* up to 9 items per job */
        c->ring = core_calloc(c->ring_cap, sizeof(item_t));
        if (!c->ring) goto out;
    }
    uv_check_init(loop, &p->dispatch);
    p->dispatch.data = p;
    uv_timer_init(loop, &p->acquire_timer);
    p->acquire_timer.data = p;
    uv_timer_start(&p->acquire_timer, acquire_timer_cb, 50, 50);
    uv_unref((uv_handle_t *)&p->acquire_timer);
    p->open_handles = p->resolver ? 3 : 2;
    for (unsigned i = 0; i < p->nconns; i++) {
        db_conn_t *c = &p->conns[i];
        uv_timer_init(loop, &c->timer);
        c->timer.data = c;
        p->open_handles++;
        conn_start_connect(c);
    }
    *out = p;
    return CORE_OK;
out:
    if (p) {
        if (p->conns)
            for (unsigned i = 0; i < p->cfg.size; i++) core_free(p->conns[i].ring);
        core_free(p->conns);
        if (p->resolver) db_resolver_close(p->resolver, NULL, NULL);
        db_target_free(&p->target);
        core_free(p->conninfo);
        core_free(p);
    }
    return rc;
}

int db_pool_submit(db_pool_t *p, const db_request_t *req, db_done_fn done, void *arg)
{
    if (p->closing) return CORE_EIO;
    db_job_t *j = core_calloc(1, sizeof(*j));
    if (!j) return CORE_ENOMEM;
    j->req = *req;
    j->done = done;
    j->arg = arg;
    j->deadline_ns = core_now_ns() + (uint64_t)p->cfg.acquire_timeout_ms * 1000000u;
    if (p->wait_tail) p->wait_tail->next = j;
    else p->wait_head = j;
    p->wait_tail = j;
    p->nwaiting++;
    if (!uv_is_closing((uv_handle_t *)&p->dispatch)) uv_check_start(&p->dispatch, dispatch_cb);
    return CORE_OK;
}

int db_pool_submit_batch(db_pool_t *p, const db_request_t *reqs, const db_done_fn *dones, void *const *args, size_t n)
{
    if (p->closing) return CORE_EIO;
    if (n == 0 || n > DB_BATCH_MAX) return CORE_EINVAL;
    db_job_t *head = NULL, *tail = NULL;
    for (size_t i = 0; i < n; i++) {
        db_job_t *j = core_calloc(1, sizeof(*j));
        if (!j) {
            while (head) {
                db_job_t *next = head->group_next;
                core_free(head);
                head = next;
            }
            return CORE_ENOMEM;
        }
        j->req = reqs[i];
        j->done = dones[i];
        j->arg = args[i];
        if (tail) tail->group_next = j;
        else head = j;
        tail = j;
    }
    if (!head) return CORE_EINVAL;
    head->deadline_ns = core_now_ns() + (uint64_t)p->cfg.acquire_timeout_ms * 1000000u;
    head->ring_need = (unsigned)n * 9 + 1;
    if (p->wait_tail) p->wait_tail->next = head;
    else p->wait_head = head;
    p->wait_tail = head;
    p->nwaiting++;
    if (!uv_is_closing((uv_handle_t *)&p->dispatch)) uv_check_start(&p->dispatch, dispatch_cb);
    return CORE_OK;
}

bool db_pool_ready(const db_pool_t *p)
{
    for (unsigned i = 0; i < p->nconns; i++)
        if (p->conns[i].state == CS_READY) return true;
    return false;
}

void db_pool_reset_statements(db_pool_t *p) { p->generation++; }

void db_pool_stats(const db_pool_t *p, db_pool_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    out->size = p->nconns; /* fixed at creation */
    out->connected = (unsigned)core_counter_get(&p->connected);
    out->busy = (unsigned)core_counter_get(&p->busy);
    out->waiting = (unsigned)core_counter_get(&p->waiting);
    out->errors = core_counter_get(&p->errors);
    out->queries = core_counter_get(&p->queries);
}

/* One of the pool's handles (or its resolver) is closed; the last one frees the pool. */
static void pool_release(void *pool)
{
    db_pool_t *p = pool;
    if (--p->open_handles > 0) return;
    void (*cb)(void *) = p->on_closed;
    void *arg = p->on_closed_arg;
    for (unsigned i = 0; i < p->nconns; i++) core_free(p->conns[i].ring);
    core_free(p->conns);
    db_target_free(&p->target);
    core_free(p->conninfo);
    core_free(p);
    if (cb) cb(arg);
}

static void pool_handle_closed(uv_handle_t *h) { pool_release(h->data); }

static void pool_maybe_finish_close(db_pool_t *p)
{
    if (!p->closing || p->open_handles == 0) return;
    for (unsigned i = 0; i < p->nconns; i++)
        if (p->conns[i].inflight) return;
    if (uv_is_closing((uv_handle_t *)&p->dispatch)) return;
    for (unsigned i = 0; i < p->nconns; i++) {
        db_conn_t *c = &p->conns[i];
        conn_poll_close(c);
        if (c->pg) {
            PQfinish(c->pg);
            c->pg = NULL;
        }
        stmt_clear_all(c);
        c->state = CS_CLOSING;
        c->timer.data = p;
        uv_close((uv_handle_t *)&c->timer, pool_handle_closed);
    }
    p->dispatch.data = p;
    p->acquire_timer.data = p;
    uv_close((uv_handle_t *)&p->dispatch, pool_handle_closed);
    uv_close((uv_handle_t *)&p->acquire_timer, pool_handle_closed);
    /* A lookup in flight is cancelled (or, already running, waited for): its callback
     * must not outlive the pool. */
    if (p->resolver) {
        db_resolver_t *r = p->resolver;
        p->resolver = NULL;
        db_resolver_close(r, pool_release, p);
    }
}

void db_pool_close(db_pool_t *p, void (*on_closed)(void *), void *arg)
{
    p->closing = true;
    p->on_closed = on_closed;
    p->on_closed_arg = arg;
    db_job_t *j;
    while ((j = wait_pop(p)) != NULL) {
        j->conn_err = DB_ERR_SHUTDOWN;
        job_complete(p, j);
    }
    pool_maybe_finish_close(p);
}
