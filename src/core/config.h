/*
 * config: PostgREST's settings under their own names (env PGRST_* and a PostgREST-style
 * config file), plus Strata's own STRATA_* settings. Loaded once before anything starts;
 * the result is immutable and shared by every worker.
 */
#ifndef STRATA_CONFIG_H
#define STRATA_CONFIG_H

#include "core/core.h"

typedef struct {
    /* PostgREST settings (file key / env name) */
    char *db_uri;             /* db-uri / PGRST_DB_URI; NULL → embedded PostgreSQL */
    char *db_schemas;         /* db-schemas / PGRST_DB_SCHEMAS; default "public" */
    char *db_anon_role;       /* db-anon-role / PGRST_DB_ANON_ROLE; NULL = none */
    char *jwt_secret;         /* jwt-secret / PGRST_JWT_SECRET; NULL = none; "@path" = file */
    bool jwt_secret_is_base64; /* jwt-secret-is-base64; default false */
    char *jwt_aud;            /* jwt-aud / PGRST_JWT_AUD; NULL = any audience */
    char *jwt_role_claim_key; /* jwt-role-claim-key; default ".role" (a JSPath) */
    int jwt_cache_max_entries; /* jwt-cache-max-entries (PostgREST 14); default 1000, 0 = off */
    int jwt_cache_max_lifetime_s; /* jwt-cache-max-lifetime (PostgREST 12/13); default -1 =
                                   * unset (entries live until exp); 0 = cache off */
    char *server_host;        /* server-host / PGRST_SERVER_HOST; default "!4" */
    int server_port;          /* server-port / PGRST_SERVER_PORT; default 3000 */
    int admin_server_port;    /* admin-server-port / PGRST_ADMIN_SERVER_PORT; default port+1 */
    int db_pool;              /* db-pool / PGRST_DB_POOL; default 10 (per instance, split across workers) */
    int db_pool_acquisition_timeout_s; /* db-pool-acquisition-timeout; default 10 */
    long db_max_rows;         /* db-max-rows / PGRST_DB_MAX_ROWS; -1 = unlimited */
    char *db_channel;         /* db-channel; default "pgrst" */
    bool db_channel_enabled;  /* db-channel-enabled; default true */
    int log_level;            /* log-level / PGRST_LOG_LEVEL; default info (core_log_level) */
    char *openapi_server_proxy_uri; /* openapi-server-proxy-uri; NULL = none */
    char *db_pre_request;     /* db-pre-request: "schema.function" run before each statement */
    bool db_aggregates_enabled; /* db-aggregates-enabled; default false (PGRST123) */
    bool db_plan_enabled;     /* db-plan-enabled: Accept: application/vnd.pgrst.plan; default false */

    /* Strata settings (file key "strata-..." / env STRATA_...) */
    char *data_dir;           /* STRATA_DATA_DIR; default "./.strata" */
    char *db_admin_uri;       /* STRATA_DB_ADMIN_URI; NULL → db_uri */
    int workers;              /* STRATA_WORKERS; default 0 = number of cores */
    long max_body_bytes;      /* STRATA_MAX_BODY_BYTES; default 10 MiB */
    long max_header_bytes;    /* STRATA_MAX_HEADER_BYTES; default 16 KiB */
    int request_timeout_s;    /* STRATA_REQUEST_TIMEOUT; default 30 */
    int keepalive_timeout_s;  /* STRATA_KEEPALIVE_TIMEOUT; default 60 */
    int statement_timeout_ms; /* STRATA_STATEMENT_TIMEOUT_MS; default 0 = none */
    bool demo;                /* set by `strata serve --demo` (or STRATA_DEMO=1) */
    char *auth_password_hash; /* STRATA_AUTH_PASSWORD_HASH: interactive | moderate | min */
    int auth_password_min_length; /* STRATA_AUTH_PASSWORD_MIN_LENGTH; default 6 */
    int auth_jwt_exp_s;       /* STRATA_AUTH_JWT_EXP: access-token lifetime; default 3600 */
    int auth_rate_limit_per_min; /* STRATA_AUTH_RATE_LIMIT_PER_MIN per IP and per email for
                                  * signup and token; default 30, 0 = off */
    int auth_refresh_token_reuse_interval_s; /* STRATA_AUTH_REFRESH_TOKEN_REUSE_INTERVAL: seconds
                                  * a just-rotated refresh token still refreshes (GoTrue's
                                  * GOTRUE_SECURITY_REFRESH_TOKEN_REUSE_INTERVAL); default 10 */
    bool auth_anonymous_users_enabled; /* STRATA_AUTH_ANONYMOUS_USERS_ENABLED: POST /signup
                                  * without email creates an anonymous user; default false */

    /* More PostgREST settings (the transaction context and operations) */
    char *db_extra_search_path; /* db-extra-search-path: schemas after the request's own in
                                 * search_path, comma-separated; default "public"; "" = none */
    bool db_use_legacy_gucs;  /* db-use-legacy-gucs: also set request.jwt.claim.<name> (PostgREST
                               * 9-11; v12 dropped them); default false */
    char *db_hoisted_tx_settings; /* db-hoisted-tx-settings: function settings (CREATE FUNCTION
                                   * ... SET) applied to the transaction; comma list */
    bool server_timing_enabled; /* server-timing-enabled: Server-Timing header; default false */
    char *server_unix_socket; /* server-unix-socket: listen there instead of host:port; NULL = TCP */
    char *server_unix_socket_mode; /* server-unix-socket-mode: octal, 600..777; default "660" */
    char *server_cors_allowed_origins; /* server-cors-allowed-origins: comma list; NULL = any */

    /* Not a setting: the config file given on the command line (not owned), re-read by
     * NOTIFY pgrst, 'reload config' and SIGUSR2. NULL: environment only. */
    const char *config_path;
} core_config_t;

/* Fills *cfg with the defaults. */
void core_config_defaults(core_config_t *cfg);

/* Applies a PostgREST-style config file's text (`key = value` lines, values quoted with
 * double quotes or bare numbers/booleans, `#` comments). Unknown keys are an error. On
 * error returns CORE_EINVAL and writes one line naming the setting and what is wrong into
 * err (NUL-terminated, truncated to errlen). Bounded: files over 1 MiB are refused. */
int core_config_parse_text(core_config_t *cfg, str_t text, char *err, size_t errlen) CORE_WUR;

/* Applies the environment (envp: NULL-terminated "NAME=value" array): PGRST_* and
 * STRATA_* names; environment values override the file. Same error contract. */
int core_config_apply_env(core_config_t *cfg, char *const *envp, char *err, size_t errlen) CORE_WUR;

/* Cross-setting checks (ports in range, admin port != server port, ...). */
int core_config_validate(core_config_t *cfg, char *err, size_t errlen) CORE_WUR;

/* server-unix-socket-mode as a number (e.g. 0660), or -1 when it is not an octal mode
 * between 600 and 777. */
int core_config_unix_socket_mode(const core_config_t *cfg);

/* Defaults, then the file at `path` (NULL: none; read with blocking stdio — call it before
 * the loops start or on a thread that is not a loop), then envp, then validation. On
 * failure *cfg holds nothing to free and err says why. */
int core_config_load(core_config_t *cfg, const char *path, char *const *envp, char *err, size_t errlen) CORE_WUR;

/* Frees every string the config owns. */
void core_config_free(core_config_t *cfg);

#endif
