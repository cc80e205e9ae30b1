/*
 * db: PostgreSQL, asynchronously. A pool per worker loop over libpq's non-blocking API in
 * pipeline mode, driven by uv_poll. One API request is one pipelined segment on one
 * connection:
 *
 *     [SET TRANSACTION ISOLATION LEVEL ...]
 *     [select set_config(k, v, true) from json_each_text($1)]   the role's settings
 *     select set_config('search_path',$1,true), set_config('role',$2,true), ...
 *     [select set_config(k, v, true) from json_each_text($1)]   function settings, timezone
 *     <the request's statement>
 *     Sync
 *
 * Everything before the Sync runs in one implicit transaction (the extended protocol
 * commits at Sync, and rolls back there on error), so several requests can be pipelined on
 * one connection without an error in one leaking into the next. Statements are prepared
 * once per connection (named, cached by SQL text) and reused.
 */
#ifndef STRATA_DB_H
#define STRATA_DB_H

#include <libpq-fe.h>
#include <uv.h>

#include "core/core.h"

typedef struct db_pool db_pool_t;

/* Name/value slots for varying settings in the context statement, per side of the role
 * switch (db_request_t). */
#define DB_CTX_SLOTS 2

typedef struct {
    const char *conninfo;        /* libpq conninfo or URI; copied */
    unsigned size;               /* connections in this pool */
    unsigned max_pipeline;       /* requests in flight per connection (>= 1) */
    unsigned acquire_timeout_ms; /* a request waiting longer gets DB_ERR_ACQUIRE */
    unsigned statement_timeout_ms; /* 0 = server default */
} db_pool_config_t;

enum db_err_kind {
    DB_ERR_NONE = 0,
    DB_ERR_CONNECTION, /* no usable connection / it broke mid-request (PGRST001-ish, 503) */
    DB_ERR_ACQUIRE,    /* waited acquire_timeout_ms for a connection (PGRST003, 504) */
    DB_ERR_QUERY,      /* PostgreSQL answered with an error: see sqlstate etc. */
    DB_ERR_NOMEM,      /* out of memory while queuing (503) */
    DB_ERR_SHUTDOWN,   /* the pool is closing (503) */
};

/* Strings are valid only during the callback. */
typedef struct {
    int kind;
    const char *sqlstate; /* 5 chars, DB_ERR_QUERY only */
    const char *message;
    const char *detail;   /* may be NULL */
    const char *hint;     /* may be NULL */
} db_error_t;

/* What a request asks of the database. All strings must stay valid until the callback
 * (they normally live in the request arena). Parameter values are text, NUL-terminated,
 * NULL meaning SQL NULL. */
typedef struct {
    const char *role;        /* role to switch to (set_config('role', ...)) */
    const char *claims_json; /* request.jwt.claims */
    const char *method;      /* request.method */
    const char *path;        /* request.path */
    const char *headers_json;/* request.headers */
    const char *cookies_json;/* request.cookies (NULL: "{}") */
    const char *search_path; /* search_path, already quoted ("\"api\", \"public\""); NULL: "public" */
    /* Settings that vary: the role's (set before the role switch) and the others (function
     * settings, timezone, legacy request.jwt.claim.* except role; set after it). The first
     * DB_CTX_SLOTS of each side go in the slots (NULL key: unused), any more as a JSON object
     * {"name":"value",...} (NULL: none). */
    const char *pre_keys[DB_CTX_SLOTS], *pre_values[DB_CTX_SLOTS];
    const char *pre_settings_json;
    const char *post_keys[DB_CTX_SLOTS], *post_values[DB_CTX_SLOTS];
    const char *settings_json;
    const char *legacy_role; /* request.jwt.claim.role (db-use-legacy-gucs), or NULL */
    const char *isolation;   /* "serializable", "repeatable read", ...; NULL: the session's */
    bool read_only;          /* transaction_read_only for GET/HEAD */
    bool rollback;           /* Prefer: tx=rollback: ROLLBACK after the statement */
    const char *pre_sql;     /* db-pre-request call, run after the settings (NULL: none) */
    const char *sql;         /* the statement; prepared and cached by this text */
    int nparams;
    const char *const *params;
} db_request_t;

/* Called exactly once on the pool's loop. On success err is NULL and res is the statement's
 * result, which the callee now owns (PQclear it, e.g. through core_arena_defer). On failure
 * res is NULL and err says why. */
typedef void (*db_done_fn)(void *arg, PGresult *res, const db_error_t *err);

/* Creates a pool on loop and starts connecting (asynchronously). Returns 0 and *out or a
 * negative status. */
int db_pool_create(uv_loop_t *loop, const db_pool_config_t *cfg, db_pool_t **out) CORE_WUR;

/* Queues a request. Returns 0 when queued (done will run later, never from inside this
 * call), or a negative status when it could not even be queued (done will not run). */
int db_pool_submit(db_pool_t *pool, const db_request_t *req, db_done_fn done, void *arg) CORE_WUR;

/* Queues n requests that run as one transaction: their statements are sent in order in one
 * pipeline segment with a single Sync, so an error in one rolls all of them back (the
 * requests after it get an error too). dones[i](args[i], ...) run in order once the
 * segment completes. Same return contract as db_pool_submit. */
#define DB_BATCH_MAX 64
int db_pool_submit_batch(db_pool_t *pool, const db_request_t *reqs, const db_done_fn *dones, void *const *args,
                         size_t n) CORE_WUR;

/* The SET TRANSACTION statement for an isolation level name as PostgreSQL spells it
 * ("serializable", "repeatable read", "read committed", "read uncommitted", any case), or
 * NULL for anything else. */
const char *db_isolation_sql(const char *level);

/* True when at least one connection is up. */
bool db_pool_ready(const db_pool_t *pool);

/* Forgets every prepared statement (after a schema reload): each connection deallocates
 * its statements before its next request. */
void db_pool_reset_statements(db_pool_t *pool);

typedef struct {
    unsigned size;
    unsigned connected;
    unsigned busy;       /* connections with requests in flight */
    unsigned waiting;    /* requests queued for a connection */
    uint64_t errors;     /* connection failures and query errors so far */
    uint64_t queries;
} db_pool_stats_t;

void db_pool_stats(const db_pool_t *pool, db_pool_stats_t *out);

/* Fails queued requests with DB_ERR_SHUTDOWN, lets in-flight ones finish, closes every
 * connection; on_closed(arg) runs on the loop when all handles are closed and the pool is
 * freed. */
void db_pool_close(db_pool_t *pool, void (*on_closed)(void *), void *arg);

#endif
