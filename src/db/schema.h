/*
 * schema: the schema cache. An immutable, reference-counted snapshot of the exposed
 * schemas' relations, columns, keys, foreign keys and functions, loaded from the catalogs
 * with one query. Workers share snapshots read-only; a reload publishes a new one.
 */
#ifndef STRATA_DB_SCHEMA_H
#define STRATA_DB_SCHEMA_H

#include <libpq-fe.h>

#include "core/core.h"

typedef struct {
    str_t name;
    str_t type;        /* format_type(), e.g. "bigint", "character varying(20)", "text[]" */
    str_t default_expr;/* ptr NULL when none */
    str_t description; /* ptr NULL when none */
    bool nullable;
    bool is_pk;
    int position;      /* 1-based */
} db_column_t;

typedef struct {
    str_t schema;
    str_t name;
    str_t description;
    char kind;         /* 'r' table, 'v' view, 'm' matview, 'f' foreign, 'p' partitioned */
    bool insertable;
    db_column_t *columns;
    size_t ncolumns;
    str_t *pk;         /* primary key column names in key order */
    size_t npk;
    struct db_unique { /* unique constraints (not the primary key) */
        str_t *columns;
        size_t ncolumns;
    } *uniques;
    size_t nuniques;
} db_table_t;

typedef struct {
    str_t name;
    str_t schema, table;   /* the referencing side */
    str_t fschema, ftable; /* the referenced side */
    str_t *columns, *fcolumns;
    size_t ncolumns;
} db_fk_t;

/* One `name = value` setting (ALTER ROLE ... SET, CREATE FUNCTION ... SET). */
typedef struct {
    str_t key;
    str_t value;
} db_setting_t;

/* Settings of a role the authenticator may switch to, applied per request (set_config
 * before the role switch) the way PostgREST applies them. */
typedef struct {
    str_t role;
    str_t isolation;       /* its default_transaction_isolation (ptr NULL when unset) */
    db_setting_t *settings; /* the other user-settable ones */
    size_t nsettings;
} db_role_settings_t;

typedef struct {
    str_t name;        /* "" for an unnamed parameter */
    str_t type;        /* format_type() */
    char mode;         /* 'i' in, 'o' out, 'b' inout, 'v' variadic, 't' table */
    bool has_default;
} db_func_param_t;

typedef struct {
    str_t schema;
    str_t name;
    str_t args;        /* pg_get_function_arguments() */
    db_func_param_t *params; /* every parameter, in declaration order */
    size_t nparams;
    size_t ndefaults;
    bool variadic;
    char rettype_kind; /* pg_type.typtype of the result: 'b' base, 'c' composite, 'p' pseudo (void, record), ... */
    str_t retrel_schema; /* the relation whose row type is returned (ptr NULL when none) */
    str_t retrel_name;
    str_t rettype;
    str_t argrel_schema; /* the relation whose row type the first argument is (ptr NULL when
                          * none): a computed field or relationship of that relation */
    str_t argrel_name;
    str_t description;
    bool retset;
    char volatility;   /* 'i', 's', 'v' */
    str_t retmedia;    /* result is a domain named like a media type (text/html, or the
                        * any-type domain star-slash-star): that name, ptr NULL otherwise —
                        * PostgREST's media type handlers for functions */
    bool retmedia_bytea; /* ... over bytea (sent as raw bytes) */
    db_setting_t *settings; /* proconfig (CREATE FUNCTION ... SET), except the isolation */
    size_t nsettings;
    str_t isolation;   /* SET default_transaction_isolation of the function (ptr NULL when none) */
} db_func_t;

typedef struct db_schema db_schema_t;

struct db_schema {
    db_table_t *tables; /* sorted by (schema, name) */
    size_t ntables;
    db_fk_t *fks;
    size_t nfks;
    db_func_t *funcs;
    size_t nfuncs;
    str_t *schemas;     /* the exposed schemas, in configured order (first = default) */
    size_t nschemas;
    db_role_settings_t *roles; /* sorted by role */
    size_t nroles;
    str_t *timezones;   /* pg_timezone_names, sorted (byte order) */
    size_t ntimezones;
    uint64_t load_us;   /* how long the load took */
    uint64_t version;   /* 1, 2, ... for each published snapshot */
    void *internal;
};

/* Loads a snapshot over a connection (blocking libpq: called before the loops start or
 * on a thread of its own, never on a loop thread). schemas_csv: "public,api".
 * Returns 0 and *out (refcount 1), or a negative status and a message in err. */
int db_schema_load(PGconn *conn, const char *schemas_csv, db_schema_t **out, char *err,
                   size_t errlen) CORE_WUR;

/* Parses the catalog query's JSON (exposed for unit tests and fuzzing). */
int db_schema_from_json(const char *json, size_t len, const char *schemas_csv, db_schema_t **out,
                        char *err, size_t errlen) CORE_WUR;

void db_schema_ref(db_schema_t *s);
void db_schema_unref(db_schema_t *s);

/* Lookups: NULL when absent. */
const db_table_t *db_schema_table(const db_schema_t *s, str_t schema, str_t name);
const db_column_t *db_table_column(const db_table_t *t, str_t name);
/* Functions named schema.name, in catalog order: *n of them from the returned index. */
const db_func_t *db_schema_funcs(const db_schema_t *s, str_t schema, str_t name, size_t *n);
/* The settings of `role` (NULL when it has none). */
const db_role_settings_t *db_schema_role_settings(const db_schema_t *s, str_t role);
/* True when `name` is one of pg_timezone_names (exact spelling). */
bool db_schema_timezone_known(const db_schema_t *s, str_t name);
/* True when `schema` is one of the exposed schemas. */
bool db_schema_exposed(const db_schema_t *s, str_t schema);

/* ---- the published snapshot ----------------------------------------------------------
 * One process-wide "current" snapshot. Publishing bumps a generation that workers compare
 * (one atomic load per request) before taking a new reference under a mutex. */
void db_schema_publish(db_schema_t *s);          /* takes over the caller's reference */
db_schema_t *db_schema_current(void);            /* new reference, or NULL if none yet */
uint64_t db_schema_generation(void);
void db_schema_publish_clear(void);              /* drops the current one (at exit) */

#endif
