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
    unsigned char *pkind;      /* per parameter: 1 for a JSON key (shared by equal keys) */
    int nparams, cap;
    core_err_t *err;
    const db_schema_t *schema; /* for embedding: relationships come from its foreign keys */
    const char *alias;         /* how the current relation is named in the FROM clause */
    int *next_alias;           /* counter for the embedded relations' aliases */
    const char *group_by;      /* " group by 1, 3" when the select list aggregates (set by
                                * rest_build_select, written by rest_build_order) */
    const db_table_t **cte_tables; /* embeds of these relations read the CTE of the same index */
    const char **cte_names;        /* (rows a nested insert wrote in this statement) */
    size_t ncte;
    /* When the select list aggregates beside embeds or spreads, their values are computed
     * per row in a lateral join named <alias>_d, to be grouped: ", <expr> as pgrst_d1, ..."
     * (set by rest_build_select, written by whoever writes the FROM: rest_build_from,
     * rest_build_from_item). */
    const char *derived;
    struct rest_derived_col *dcols; /* spread columns in derived: for order=rel(col) */
    size_t ndcols;
    bool qualify; /* columns as alias."col" (ORDER BY: an output name must not shadow them) */
} rest_build_t;

typedef struct rest_derived_col {
    str_t rel;  /* the spread's name or alias at this level */
    str_t name; /* the column's name in the response */
    int index;  /* pgrst_d<index> */
} rest_derived_col_t;

/* Adds a parameter ($n = its position) without writing anything. */
int rest_build_add_param(rest_build_t *x, str_t value) CORE_WUR;
/* Adds a parameter and appends "$n". */
int rest_build_param(rest_build_t *x, str_t value) CORE_WUR;
int rest_build_column_error(rest_build_t *x, str_t column);
/* A column with its JSON path (none: the plain column). */
int rest_build_field(rest_build_t *x, str_t name, const rest_json_op_t *ops, size_t nops) CORE_WUR;
str_t rest_json_name(str_t column, const rest_json_op_t *ops, size_t nops);
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
/* " from <source>" (SQL text naming x->alias: a relation or a FROM list), with x->derived's
 * values joined beside it when the select list groups them. */
void rest_build_from_item(rest_build_t *x, str_t source);
str_t rest_like_pattern(core_arena_t *a, str_t v);
str_t rest_array_literal(core_arena_t *a, const str_t *items, size_t n, bool like);

/* ---- batches (batch.c) ------------------------------------------------------------------------- */

/* POST /batch: a JSON array of operations run in one transaction. */
void rest_handle_batch(rest_env_t *env, http_req_t *req);
/* While env->collect is set, rest_submit hands statements here instead of to the pool. */
int rest_batch_collect(rest_env_t *env, const db_request_t *dr, db_done_fn done, void *arg) CORE_WUR;

/* ---- nested inserts (nested.c) ---------------------------------------------------------------- */

/* When the POST body (an object or an array of objects) carries children under the names of
 * one-to-many relations of x->table, writes "with ..., pgrst_source as (insert ...), pgrst_cN
 * as (insert children ...)" into x->b, points the children's embeds at their CTEs and sets
 * *used. Otherwise leaves everything untouched (*used false). */
int rest_nested_insert(rest_build_t *x, str_t body, bool *used, core_err_t *err) CORE_WUR;

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

/* Settings-dependent checks of a parsed query (aggregates need db-aggregates-enabled:
 * PGRST123). CORE_EINVAL with *err set. */
int rest_query_allowed(const rest_env_t *env, const rest_query_t *q, core_err_t *err) CORE_WUR;

/* ---- media types (media.c) ------------------------------------------------------------------ */

/* Accept negotiation: ACCEPT_* or -1 when nothing acceptable (PGRST107). The first range of
 * Accept that Strata produces wins. */
enum {
    ACCEPT_JSON = 0,          /* application/json, vnd.pgrst.array+json, wildcards */
    ACCEPT_OBJECT = 1,        /* application/vnd.pgrst.object+json */
    ACCEPT_OPENAPI = 2,       /* the root document */
    ACCEPT_CSV = 3,           /* text/csv */
    ACCEPT_JSON_STRIP = 4,    /* vnd.pgrst.array+json;nulls=stripped */
    ACCEPT_OBJECT_STRIP = 5,  /* vnd.pgrst.object+json;nulls=stripped */
    ACCEPT_GEOJSON = 6,       /* application/geo+json (PostGIS) */
    ACCEPT_PLAN = 7,          /* application/vnd.pgrst.plan[+json|+text] (db-plan-enabled) */
    ACCEPT_TEXT = 8,          /* text/plain: raw scalar function results */
    ACCEPT_XML = 9,           /* text/xml */
    ACCEPT_OCTET = 10,        /* application/octet-stream */
    ACCEPT_OTHER = 11,        /* nothing built in: only a function's media-type domain may serve it */
    ACCEPT_CUSTOM = 12,       /* the media-type domain a function returns */
};
int rest_negotiate(str_t accept, bool root);
/* Like rest_negotiate for a function returning the media-type domain `custom`: ACCEPT_CUSTOM
 * when Accept names it before anything built in (always for the any-type domain). */
int rest_negotiate_custom(str_t accept, str_t custom);
/* True for the singular (object) representations. */
bool rest_accept_single(int accept);
/* The Content-Type sent for a representation. */
str_t rest_accept_content_type(int accept);
/* Sets q's body representation (csv, geojson, strip_nulls) from ACCEPT_*. */
void rest_query_set_media(rest_query_t *q, int accept);
/* The aggregate over the selected rows `_s` that builds q's body as text. */
const char *rest_sql_body_agg(const rest_query_t *q);

/* Accept: application/vnd.pgrst.plan[+json|+text]; for="<type>"; options=a|b. */
typedef struct rest_plan {
    bool json;          /* +json; text otherwise */
    int for_accept;     /* the representation whose statement is explained */
    str_t for_type;     /* its media type, as sent (for the Content-Type) */
    bool analyze, verbose, settings, buffers, wal;
} rest_plan_t;
/* Parses the plan media range of accept (rest_negotiate returned ACCEPT_PLAN); CORE_EINVAL
 * on an unknown `for` or option. */
int rest_plan_parse(str_t accept, rest_plan_t *p) CORE_WUR;

/* A text/csv request body (header line = columns; NULL = null; "" = empty string) as a JSON
 * array of objects, in the arena. CORE_EINVAL with *err (PGRST102) when malformed. */
int rest_csv_to_json(core_arena_t *a, str_t body, str_t *out, core_err_t *err) CORE_WUR;
/* Range: [items=]lo-[hi]; false when malformed (PostgREST then ignores it). */
bool rest_parse_range(str_t v, long *lo, long *hi);

/* ---- responses and the database (handler.c) ----------------------------------------------- */

/* Who a request runs as, and the rest of its transaction context (req->user, in the
 * arena; allocated by rest_handle before anything else, filled by identify()). */
typedef struct {
    const char *role;        /* the JWT's role or db-anon-role (NULL until identified) */
    const char *claims_json; /* request.jwt.claims */
    bool authenticated;      /* a JWT with a role was presented (42501 → 403 instead of 401) */
    http_header_t *err_headers; /* set by RAISE SQLSTATE 'PGRST' (respond.c), sent with the error */
    size_t nerr_headers;
    const struct rest_plan *plan; /* Accept: application/vnd.pgrst.plan (NULL: run normally) */
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

/* ---- function-driven responses (respond.c) ------------------------------------------------- */

/* Appended to every statement's select list: what functions set with set_config, read in
 * the same statement after the body was built (PostgREST's response.headers/status). */
#define REST_SQL_GUC_COLS                                                                           \
    ", nullif(current_setting('response.headers', true), '') as pgrst_hdrs, "                        \
    "nullif(current_setting('response.status', true), '') as pgrst_status"

/* Answers a successful request: status and headers h[0..n) overridden by the response.status
 * and response.headers res carries (res may be NULL), plus Vary. An invalid setting answers
 * PGRST111 / PGRST112 (500) instead. Ends the request. */
void rest_send(http_req_t *req, const PGresult *res, int status, const http_header_t *h, size_t n, str_t body);
/* RAISE SQLSTATE 'PGRST': true when err is one; *out is then its error (or PGRST121) and the
 * headers it asked for are kept on req->user for rest_respond_error. */
bool rest_raise_pgrst(http_req_t *req, const db_error_t *err, core_err_t *out);
/* The headers of an error answer: h[0..n), those a RAISE asked for, Proxy-Status. In the
 * arena; NULL on OOM. */
http_header_t *rest_error_headers(http_req_t *req, const core_err_t *e, const http_header_t *h, size_t n, size_t *nout);

/* ---- writes (write.c) ------------------------------------------------------------------------ */

void rest_handle_write(rest_env_t *env, http_req_t *req, const db_table_t *t, int accept);

/* ---- functions (rpc.c) ------------------------------------------------------------------------ */

void rest_handle_rpc(rest_env_t *env, http_req_t *req, str_t schema, str_t name, int accept);

#endif
