/* Internals shared inside src/rest: statement building blocks and response helpers. */
#ifndef STRATA_REST_INT_H
#define STRATA_REST_INT_H

#include "rest/rest.h"

/* ---- statement building (sql.c) ----------------------------------------------------------- */

/* One statement under construction: SQL text in b, parameters in the arena. Column names
 * are checked against `table`; user errors land in *err. */
typedef struct {
    core_arena_t *arena;
    const db_table_t *table;
    core_buf_t *b;
    const char **params;
    int nparams, cap;
    core_err_t *err;
    const db_schema_t *schema; /* for embedding: relationships come from its foreign keys */
    const char *alias;         /* how the current relation is named in the FROM clause */
    int *next_alias;           /* counter for the embedded relations' aliases */
} rest_build_t;

/* Adds a parameter ($n = its position) without writing anything. */
int rest_build_add_param(rest_build_t *x, str_t value) CORE_WUR;
/* Adds a parameter and appends "$n". */
int rest_build_param(rest_build_t *x, str_t value) CORE_WUR;
/* Appends the quoted column after checking `table` has it (42703 otherwise). */
int rest_build_column(rest_build_t *x, str_t name) CORE_WUR;
int rest_build_column_error(rest_build_t *x, str_t column);
int rest_build_unsupported(rest_build_t *x, const char *what);
int rest_build_filter(rest_build_t *x, const rest_filter_t *f) CORE_WUR;
int rest_build_logic(rest_build_t *x, const rest_logic_t *l) CORE_WUR;
/* The query's own conditions (not its embeds'), each after `prefix` (" where " / " and ")
 * for the first and " and " after that. */
int rest_build_conds(rest_build_t *x, const rest_query_t *q, const char *prefix) CORE_WUR;
/* " where ..." for the query's filters and logic trees (nothing when there are none). */
int rest_build_where(rest_build_t *x, const rest_query_t *q) CORE_WUR;
/* The select list ("*" when none). */
int rest_build_select(rest_build_t *x, const rest_query_t *q) CORE_WUR;
int rest_build_order(rest_build_t *x, const rest_query_t *q) CORE_WUR;
/* " from "schema"."table"". */
void rest_build_from(rest_build_t *x);
str_t rest_like_pattern(core_arena_t *a, str_t v);
str_t rest_array_literal(core_arena_t *a, const str_t *items, size_t n, bool like);

/* ---- Prefer (handler.c) ------------------------------------------------------------------------ */

enum { REST_RETURN_UNSET = 0, REST_RETURN_MINIMAL, REST_RETURN_HEADERS_ONLY, REST_RETURN_REPRESENTATION };
enum { REST_RESOLUTION_NONE = 0, REST_RESOLUTION_MERGE, REST_RESOLUTION_IGNORE };
enum { REST_TX_UNSET = 0, REST_TX_COMMIT, REST_TX_ROLLBACK };

typedef struct {
    int ret;
    int count;
    int resolution;
    bool missing_default;
    int tx;
    bool strict;
    long max_affected; /* -1: none */
    str_t timezone;
    bool invalid;      /* an unknown or malformed preference was sent */
} rest_prefer_t;

void rest_prefer_parse(const http_req_t *req, rest_prefer_t *p);

/* Accept negotiation: ACCEPT_* or -1 when nothing acceptable (PGRST107). */
enum { ACCEPT_JSON = 0, ACCEPT_OBJECT = 1, ACCEPT_OPENAPI = 2, ACCEPT_CSV = 3 };
int rest_negotiate(str_t accept, bool root);
/* Range: [items=]lo-[hi]; false when malformed (PostgREST then ignores it). */
bool rest_parse_range(str_t v, long *lo, long *hi);

/* ---- responses and the database (handler.c) ----------------------------------------------- */

/* Who a request runs as, and the rest of its transaction context (req->user, in the
 * arena; allocated by rest_handle before anything else, filled by identify()). */
typedef struct {
    const char *role;        /* the JWT's role or db-anon-role (NULL until identified) */
    const char *claims_json; /* request.jwt.claims */
    bool authenticated;      /* a JWT with a role was presented (42501 → 403 instead of 401) */
    const rest_env_t *env;   /* the worker's; read env->cfg where it is used (a config
                              * reload may replace it between two callbacks) */
    str_t schema;            /* the request's schema (first in search_path) */
    const db_func_t *func;   /* RPC: the function called (its SET settings apply), or NULL */
    str_t timezone;          /* Prefer: timezone= that was applied (ptr NULL: none) */
    /* Server-Timing marks (core_now_ns; 0 = not reached) */
    uint64_t t_start, t_auth, t_parsed, t_submit, t_db;
} rest_auth_t;

/* RPC: the function whose settings (CREATE FUNCTION ... SET, as far as
 * db-hoisted-tx-settings allows, and its isolation level) apply to the transaction. */
void rest_use_function(http_req_t *req, const db_func_t *f);
/* Server-Timing: the request's query string and headers are parsed (the plan starts). */
void rest_mark_parsed(http_req_t *req);

void rest_respond_error(http_req_t *req, const core_err_t *e);
void rest_respond_simple(http_req_t *req, int status, const char *code, const char *msg, str_t details);
str_t rest_arena_printf(core_arena_t *a, const char *fmt, ...) CORE_PRINTF(2, 3);
/* request.headers as JSON (lower-cased names, without Cookie), in the arena; NULL on OOM. */
const char *rest_headers_json(http_req_t *req);
/* request.cookies: the Cookie header's pairs as a JSON object ("{}" without one; a repeated
 * name keeps its last value; at most 256 names), in the arena; NULL on OOM. */
const char *rest_cookies_json(http_req_t *req);
/* The common start of every db callback: answers err, or registers res on the request
 * arena and checks it is one row of at least nfields. True when the caller goes on. */
bool rest_take_result(http_req_t *req, PGresult *res, const db_error_t *err, int nfields);
/* Maps a pool error to PostgREST's error (status, code, texts copied into the arena); 42501
 * is 403 or 401 by whether req->user is authenticated. */
core_err_t rest_db_error(http_req_t *req, const db_error_t *err);
/* PGRST116 (406): a singular response was asked for and `rows` rows came back. */
core_err_t rest_err_not_single(core_arena_t *a, long rows);
/* json_agg of one row, "[{...}]", as the object "{...}". */
str_t rest_unwrap_array(str_t body);
/* Content-Range of a read: "lo-hi/total" when rows came back, "*" + "/total" when none;
 * a total < 0 (not counted) is written as "*". */
str_t rest_content_range(core_arena_t *a, long offset, long page, long total);

/* Submits one statement for req with its role and request.* settings. Returns 0 when
 * queued (done runs later), or answers the request itself and returns nonzero. */
int rest_submit(rest_env_t *env, http_req_t *req, const rest_stmt_t *st, bool read_only, bool rollback,
                db_done_fn done, void *arg);

/* ---- writes (write.c) ------------------------------------------------------------------------ */

void rest_handle_write(rest_env_t *env, http_req_t *req, const db_table_t *t, int accept);

/* ---- functions (rpc.c) ------------------------------------------------------------------------ */

void rest_handle_rpc(rest_env_t *env, http_req_t *req, str_t schema, str_t name, int accept);

#endif
