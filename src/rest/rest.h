/*
 * rest: the PostgREST layer — parse (query string and headers → request AST in the request
 * arena), plan (resolve names against the schema cache; every user error becomes a
 * PGRST-coded core_err_t), sql (one parameterised statement that returns the finished
 * body), and the HTTP glue that runs it through the db pool.
 */
#ifndef STRATA_REST_H
#define STRATA_REST_H

#include "core/config.h"
#include "core/core.h"
#include "db/db.h"
#include "db/schema.h"
#include "http/http.h"

/* ---- AST (rest/parse.c) ---------------------------------------------------------------- */

typedef enum {
    REST_OP_EQ, REST_OP_NEQ, REST_OP_GT, REST_OP_GTE, REST_OP_LT, REST_OP_LTE,
    REST_OP_LIKE, REST_OP_ILIKE, REST_OP_MATCH, REST_OP_IMATCH, REST_OP_IN, REST_OP_IS,
    REST_OP_ISDISTINCT, REST_OP_FTS, REST_OP_PLFTS, REST_OP_PHFTS, REST_OP_WFTS,
    REST_OP_CS, REST_OP_CD, REST_OP_OV, REST_OP_SL, REST_OP_SR, REST_OP_NXR, REST_OP_NXL,
    REST_OP_ADJ,
} rest_op_t;

enum { REST_QUANT_NONE = 0, REST_QUANT_ANY, REST_QUANT_ALL };
enum { REST_AGG_NONE = 0, REST_AGG_COUNT, REST_AGG_SUM, REST_AGG_AVG, REST_AGG_MIN, REST_AGG_MAX };

/* One step of a JSON path: "->key", "->>key", "->0", "->>-1". */
typedef struct {
    str_t key;
    bool text;  /* ->> (text) rather than -> (json) */
    bool index; /* key is an integer: an array index */
} rest_json_op_t;

typedef struct {
    str_t embed;       /* "rel" of "rel.col=..." (ptr NULL for the top level) */
    str_t column;
    rest_json_op_t *json; /* JSON path after the column ("data->a->>b"), njson steps */
    size_t njson;
    rest_op_t op;
    bool negate;
    int quant;         /* REST_QUANT_* */
    str_t lang;        /* fts language, ptr NULL when absent */
    str_t value;       /* decoded; for IN the raw "(...)" list is split into `list` */
    str_t *list;
    size_t nlist;
} rest_filter_t;

typedef struct rest_logic rest_logic_t;
typedef struct {
    bool is_logic;
    rest_filter_t filter;  /* when !is_logic */
    rest_logic_t *logic;   /* when is_logic */
} rest_cond_t;

struct rest_logic {
    str_t embed;     /* "rel" of "rel.or=..." */
    bool is_and;
    bool negate;
    rest_cond_t *conds;
    size_t nconds;
};

typedef struct rest_select rest_select_t;
struct rest_select {
    bool star;
    bool is_embed;
    str_t name;     /* column or relation */
    rest_json_op_t *json; /* JSON path after a column, njson steps */
    size_t njson;
    str_t alias;    /* ptr NULL when none */
    str_t cast;     /* ptr NULL when none */
    str_t hint;     /* "!hint" of an embed (ptr NULL when none) */
    bool inner;     /* "!inner": only parents with a matching child */
    bool spread;    /* "...rel(cols)": the to-one relation's columns join the parent's */
    int agg;        /* REST_AGG_*: col.sum(), count() ... */
    str_t agg_cast; /* cast applied to the aggregate's result: col.sum()::int */
    rest_select_t *children; /* embed's own select list */
    size_t nchildren;
};

typedef struct {
    str_t embed;
    str_t rel;       /* "rel" of order=rel(col): a to-one embed of this level (ptr NULL: none) */
    str_t column;
    rest_json_op_t *json;
    size_t njson;
    bool desc;
    int nulls;       /* 0 default, 1 first, 2 last */
} rest_order_t;

typedef struct {
    str_t embed;   /* "rel" of "rel.limit=" / "rel.offset=" */
    long limit;    /* -1: none */
    long offset;
} rest_embed_page_t;

typedef struct {
    rest_select_t *select;  /* NULL/0 means "*" */
    size_t nselect;
    rest_filter_t *filters; /* ANDed at the top level */
    size_t nfilters;
    rest_logic_t **logic;   /* or=/and= trees, also ANDed */
    size_t nlogic;
    rest_order_t *order;
    size_t norder;
    long limit;             /* -1: none */
    long offset;            /* 0 default */
    rest_embed_page_t *pages; /* limits and offsets of embedded resources */
    size_t npages;
    bool csv;               /* set by the handler: build a text/csv body instead of JSON */
    bool aggregates;        /* some select item (at any depth) is an aggregate */
    bool geojson;           /* set by the handler: a GeoJSON FeatureCollection (PostGIS) */
    bool strip_nulls;       /* set by the handler: nulls=stripped */
    str_t columns;          /* decoded ?columns= (ptr NULL when absent); used by writes */
    str_t on_conflict;      /* decoded ?on_conflict= (ptr NULL when absent); used by upserts */
} rest_query_t;

/* Parses a raw query string (not yet percent-decoded) into q, allocating from a. Returns 0,
 * or CORE_EINVAL with *err set (status 400, PGRST100 and a useful details), or
 * CORE_ENOMEM. Input is bounded by the HTTP layer's header limit. */
int rest_parse_query(core_arena_t *a, str_t qs, rest_query_t *q, core_err_t *err) CORE_WUR;

/* Percent-decodes s ('+' becomes a space) into the arena; CORE_EINVAL on a bad escape or
 * an encoded NUL. */
int rest_url_decode(core_arena_t *a, str_t s, str_t *out) CORE_WUR;

/* ---- SQL (rest/sql.c) ------------------------------------------------------------------- */

enum { REST_COUNT_NONE = 0, REST_COUNT_EXACT, REST_COUNT_PLANNED, REST_COUNT_ESTIMATED };

typedef struct {
    const char *sql;     /* NUL-terminated, in the arena */
    const char **params; /* NUL-terminated text values in the arena */
    int nparams;
} rest_stmt_t;

/* The one identifier-quoting function: appends "name" with embedded quotes doubled. Only
 * names the schema cache vouched for may be passed. */
void rest_sql_ident(core_buf_t *b, str_t name);

/* Builds the read statement for q on table t (resolved by the planner). The statement
 * returns one row: (body text, page row count bigint, total count bigint or null).
 * Validates every name against t; on a user error returns CORE_EINVAL with *err. */
int rest_sql_read(core_arena_t *a, const db_schema_t *schema, const db_table_t *t, const rest_query_t *q,
                  int count, long max_rows, rest_stmt_t *out, core_err_t *err) CORE_WUR;

/* ---- errors (rest/errors.c) ------------------------------------------------------------- */

/* HTTP status for a PostgreSQL SQLSTATE (PostgREST's table). `authenticated` decides
 * 42501 (403 with a JWT role, 401 for the anonymous role). */
int rest_status_for_sqlstate(const char *sqlstate, const char *message, bool authenticated);

/* ---- OpenAPI (rest/openapi.c) -------------------------------------------------------------- */

/* Appends the Swagger 2.0 document describing the exposed schema `schema`. */
void rest_openapi_write(core_buf_t *b, const db_schema_t *s, str_t schema, const core_config_t *cfg,
                        str_t host);

/* Appends the OpenAPI 3.1 document (tables with their verbs, functions, JSON Schemas). */
void rest_openapi31_write(core_buf_t *b, const db_schema_t *s, str_t schema, const core_config_t *cfg,
                          str_t host);

/* ---- request handling (rest/handler.c) --------------------------------------------------- */

typedef struct {
    const core_config_t *cfg;
    db_pool_t *pool;
    db_schema_t *schema; /* the worker's current snapshot; NULL until loaded */
    const struct auth_jwt *jwt;   /* shared verifier (auth/auth.h) */
    struct auth_cache *jwt_cache; /* this worker's verified-token cache */
    const char *pre_request_sql;  /* "select "schema"."fn"()" for db-pre-request, or NULL */
    struct rest_batch *collect;   /* set while a batch's operations are handled (batch.c) */
} rest_env_t;

/* Handles a request whose path (after any "/rest/v1" prefix) is `path`. Always ends the
 * request (http_respond), possibly later from a db callback. */
void rest_handle(rest_env_t *env, http_req_t *req, str_t path);

/* Appends CORS headers for a response to req into hdrs (capacity >= 4); returns count. */
size_t rest_cors_headers(const http_req_t *req, http_header_t *hdrs);

#endif
