#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "test.h"

#define CHECK_CSTR(p, lit) CHECK_STR(str_from_cstr(p), lit)

/* Parses `text` into a config that starts from the defaults; returns the status and leaves
 * the error line in err. */
static int parse(core_config_t *cfg, const char *text, char *err, size_t errlen)
{
    core_config_defaults(cfg);
    err[0] = '\0';
    return core_config_parse_text(cfg, str_from_cstr(text), err, errlen);
}

/* Expects `text` to be refused with exactly the error line `want`. */
static void check_file_error(const char *text, const char *want)
{
    core_config_t cfg;
    char err[256];
    int rc = parse(&cfg, text, err, sizeof(err));
    CHECK(rc != CORE_OK);
    CHECK_CSTR(err, want);
    core_config_free(&cfg);
}

static void test_defaults(void)
{
    core_config_t cfg;
    char err[256] = "";
    core_config_defaults(&cfg);
    CHECK(cfg.db_uri == NULL);
    CHECK_CSTR(cfg.db_schemas, "public");
    CHECK(cfg.db_anon_role == NULL);
    CHECK(cfg.jwt_secret == NULL);
    CHECK(!cfg.jwt_secret_is_base64);
    CHECK(cfg.jwt_aud == NULL);
    CHECK_CSTR(cfg.jwt_role_claim_key, ".role");
    CHECK_INT(cfg.jwt_cache_max_entries, 1000);
    CHECK_INT(cfg.jwt_cache_max_lifetime_s, -1); /* unset: jwt-cache-max-entries decides */
    CHECK_CSTR(cfg.server_host, "!4");
    CHECK_INT(cfg.server_port, 3000);
    CHECK_INT(cfg.admin_server_port, -1); /* unset until validate */
    CHECK_INT(cfg.db_pool, 10);
    CHECK_INT(cfg.db_pool_acquisition_timeout_s, 10);
    CHECK_INT(cfg.db_max_rows, -1);
    CHECK_CSTR(cfg.db_channel, "pgrst");
    CHECK(cfg.db_channel_enabled);
    CHECK_INT(cfg.log_level, CORE_LOG_INFO);
    CHECK(cfg.openapi_server_proxy_uri == NULL);
    CHECK_CSTR(cfg.data_dir, "./.strata");
    CHECK(cfg.db_admin_uri == NULL);
    CHECK_INT(cfg.workers, 0);
    CHECK_INT(cfg.max_body_bytes, 10L << 20);
    CHECK_INT(cfg.max_header_bytes, 16L << 10);
    CHECK_INT(cfg.request_timeout_s, 30);
    CHECK_INT(cfg.keepalive_timeout_s, 60);
    CHECK_INT(cfg.statement_timeout_ms, 0);
    CHECK(!cfg.demo);
    CHECK_CSTR(cfg.db_extra_search_path, "public");
    CHECK(!cfg.db_use_legacy_gucs);
    CHECK_CSTR(cfg.db_hoisted_tx_settings,
               "statement_timeout,plan_filter.statement_cost_limit,default_transaction_isolation");
    CHECK(!cfg.server_timing_enabled);
    CHECK(cfg.server_unix_socket == NULL);
    CHECK_CSTR(cfg.server_unix_socket_mode, "660");
    CHECK_INT(core_config_unix_socket_mode(&cfg), 0660);
    CHECK(cfg.server_cors_allowed_origins == NULL);
    CHECK_INT(core_config_validate(&cfg, err, sizeof(err)), CORE_OK);
    CHECK_INT(cfg.admin_server_port, 3001);
    core_config_free(&cfg); /* must not free the default literals */
    core_config_free(&cfg); /* and is idempotent */
}

static void test_file(void)
{
    core_config_t cfg;
    char err[256];
    const char *text = "# PostgREST config\n"
                       "\n"
                       "db-uri = \"postgres://app@db/app\"   # trailing comment\n"
                       "db-schemas=\"api, public\"\n"
                       "  db-anon-role\t=\t\"web_anon\"\r\n"
                       "jwt-secret = \"a \\\"quoted\\\" # not a comment \\\\ end\"\n"
                       "server-port = 8080\n"
                       "db-pool = 25\n"
                       "db-max-rows = 1000\n"
                       "db-channel-enabled = false\n"
                       "log-level = \"crit\"\n"
                       "strata-data-dir = \"/srv/strata\"\n"
                       "strata-workers = \"4\"\n"
                       "strata-max-body-bytes = 1048576\n"
                       "strata-demo = true\n"
                       "jwt-secret-is-base64 = true\n"
                       "jwt-aud = \"api\"\n"
                       "jwt-role-claim-key = \".app_metadata.\\\"role\\\"\"\n"
                       "jwt-cache-max-entries = 0\n"
                       "jwt-cache-max-lifetime = \"3600\"\n"
                       "db-pool = 30"; /* last line without newline; a repeated key wins */
    CHECK_INT(parse(&cfg, text, err, sizeof(err)), CORE_OK);
    CHECK_CSTR(err, "");
    CHECK_CSTR(cfg.db_uri, "postgres://app@db/app");
    CHECK_CSTR(cfg.db_schemas, "api, public");
    CHECK_CSTR(cfg.db_anon_role, "web_anon");
    CHECK_CSTR(cfg.jwt_secret, "a \"quoted\" # not a comment \\ end");
    CHECK_INT(cfg.server_port, 8080);
    CHECK_INT(cfg.db_pool, 30);
    CHECK_INT(cfg.db_max_rows, 1000);
    CHECK(!cfg.db_channel_enabled);
    CHECK_INT(cfg.log_level, CORE_LOG_ERROR);
    CHECK_CSTR(cfg.data_dir, "/srv/strata");
    CHECK_INT(cfg.workers, 4);
    CHECK_INT(cfg.max_body_bytes, 1048576);
    CHECK(cfg.demo);
    CHECK(cfg.jwt_secret_is_base64);
    CHECK_CSTR(cfg.jwt_aud, "api");
    CHECK_CSTR(cfg.jwt_role_claim_key, ".app_metadata.\"role\"");
    CHECK_INT(cfg.jwt_cache_max_entries, 0);
    CHECK_INT(cfg.jwt_cache_max_lifetime_s, 3600);
    CHECK_INT(core_config_validate(&cfg, err, sizeof(err)), CORE_OK);
    CHECK_INT(cfg.admin_server_port, 8081);
    core_config_free(&cfg);

    /* Empty db-uri means "unset" (embedded PostgreSQL), also after a value was set. */
    CHECK_INT(parse(&cfg, "db-uri = \"postgres://x\"\ndb-uri = \"\"\n", err, sizeof(err)),
              CORE_OK);
    CHECK(cfg.db_uri == NULL);
    core_config_free(&cfg);

    /* Empty text, only comments, CRLF line ends. */
    CHECK_INT(parse(&cfg, "", err, sizeof(err)), CORE_OK);
    CHECK_INT(parse(&cfg, "\n\n  # x = 1\r\n\t\n", err, sizeof(err)), CORE_OK);
    CHECK_INT(parse(&cfg, "server-port = -0", err, sizeof(err)), CORE_OK);
    CHECK_INT(cfg.server_port, 0);
    core_config_free(&cfg);

    /* The explicit admin port is kept. */
    CHECK_INT(parse(&cfg, "admin-server-port = 9000\n", err, sizeof(err)), CORE_OK);
    CHECK_INT(core_config_validate(&cfg, err, sizeof(err)), CORE_OK);
    CHECK_INT(cfg.admin_server_port, 9000);
    core_config_free(&cfg);
}

static void test_file_errors(void)
{
    check_file_error("server-port = \"abc\"\n",
                     "config file line 1: server-port: \"abc\" is not an integer");
    check_file_error("# c\nserver-port = abc\n",
                     "config file line 2: server-port: \"abc\" is not an integer");
    check_file_error("server-port = 12x",
                     "config file line 1: server-port: \"12x\" is not an integer");
    check_file_error("server-port = 99999999999999999999999",
                     "config file line 1: server-port: \"99999999999999999999999\" is not an "
                     "integer");
    check_file_error("\n\njust some words\n", "config file line 3: expected key = value");
    check_file_error("= 3", "config file line 1: expected key = value");
    check_file_error("server-port 3000", "config file line 1: expected key = value");
    check_file_error("server-port =", "config file line 1: server-port: missing value");
    check_file_error("server-port = # nothing", "config file line 1: server-port: missing value");
    check_file_error("no-such-key = 1", "config file line 1: unknown setting \"no-such-key\"");
    check_file_error("db-schemas = \"public",
                     "config file line 1: db-schemas: unterminated string");
    check_file_error("db-schemas = \"a\\nb\"",
                     "config file line 1: db-schemas: only \\\" and \\\\ may follow a backslash");
    check_file_error("db-schemas = \"a\\",
                     "config file line 1: db-schemas: only \\\" and \\\\ may follow a backslash");
    check_file_error("db-schemas = \"a\" b",
                     "config file line 1: db-schemas: unexpected text after the value");
    check_file_error("db-schemas = public",
                     "config file line 1: db-schemas: expected a double-quoted string");
    check_file_error("db-schemas = \"\"", "config file line 1: db-schemas: must not be empty");
    check_file_error("log-level = info",
                     "config file line 1: log-level: expected a double-quoted string");
    check_file_error("log-level = \"loud\"",
                     "config file line 1: log-level: \"loud\" is not a log level (crit, error, "
                     "warn, info, debug)");
    check_file_error("db-channel-enabled = maybe",
                     "config file line 1: db-channel-enabled: \"maybe\" is not a boolean (true "
                     "or false)");
    check_file_error("db-channel-enabled = 1",
                     "config file line 1: db-channel-enabled: \"1\" is not a boolean (true or "
                     "false)");
    check_file_error("server-port = 65536",
                     "config file line 1: server-port: 65536 is out of range (0 to 65535)");
    check_file_error("admin-server-port = -1",
                     "config file line 1: admin-server-port: -1 is out of range (0 to 65535)");
    check_file_error("db-pool = 0", "config file line 1: db-pool: 0 is out of range (1 to 1000)");
    check_file_error("db-pool = 1001",
                     "config file line 1: db-pool: 1001 is out of range (1 to 1000)");
    check_file_error("strata-workers = 257",
                     "config file line 1: strata-workers: 257 is out of range (0 to 256)");
    check_file_error("strata-request-timeout = -1",
                     "config file line 1: strata-request-timeout: -1 is out of range (0 to "
                     "2000000)");
    check_file_error("strata-max-body-bytes = 0",
                     "config file line 1: strata-max-body-bytes: 0 is out of range (at least 1)");
    check_file_error("jwt-role-claim-key = \"\"",
                     "config file line 1: jwt-role-claim-key: must not be empty");
    check_file_error("jwt-secret-is-base64 = yes",
                     "config file line 1: jwt-secret-is-base64: \"yes\" is not a boolean (true "
                     "or false)");
    check_file_error("jwt-cache-max-entries = -1",
                     "config file line 1: jwt-cache-max-entries: -1 is out of range (0 to "
                     "1000000)");
    check_file_error("jwt-cache-max-lifetime = -2",
                     "config file line 1: jwt-cache-max-lifetime: -2 is out of range (-1 to "
                     "2000000)");
    check_file_error("db-max-rows = -2",
                     "config file line 1: db-max-rows: -2 is out of range (at least -1)");
    /* Control bytes in a sample are made printable, long samples are cut. */
    check_file_error("server-port = \"\x1b[31m\"",
                     "config file line 1: server-port: \"?[31m\" is not an integer");
    check_file_error("server-port = 1234567890123456789012345678901234567890123456789012345",
                     "config file line 1: server-port: "
                     "\"12345678901234567890123456789012345678901234...\" is not an integer");

    /* A NUL byte anywhere on a line is refused, not silently cut. */
    core_config_t cfg;
    char err[256];
    core_config_defaults(&cfg);
    static const char nul_text[] = "db-schemas = \"a\0b\"\n";
    CHECK_INT(core_config_parse_text(&cfg, (str_t){nul_text, sizeof(nul_text) - 1}, err,
                                     sizeof(err)),
              CORE_EINVAL);
    CHECK_CSTR(err, "config file line 1: contains a NUL byte");
    core_config_free(&cfg);

    /* Size cap: one byte over 1 MiB is refused before parsing. */
    size_t big = ((size_t)1 << 20) + 1;
    char *text = malloc(big);
    CHECK(text != NULL);
    if (text) {
        memset(text, '#', big);
        core_config_defaults(&cfg);
        CHECK_INT(core_config_parse_text(&cfg, (str_t){text, big}, err, sizeof(err)),
                  CORE_ELIMIT);
        CHECK_CSTR(err, "config file is larger than 1 MiB");
        CHECK_INT(core_config_parse_text(&cfg, (str_t){text, big - 1}, err, sizeof(err)),
                  CORE_OK);
        free(text);
    }

    /* A tiny or missing error buffer is fine. */
    char tiny[8];
    core_config_defaults(&cfg);
    CHECK_INT(core_config_parse_text(&cfg, STR_LIT("x = 1"), tiny, sizeof(tiny)), CORE_EINVAL);
    CHECK_CSTR(tiny, "config ");
    CHECK_INT(core_config_parse_text(&cfg, STR_LIT("x = 1"), NULL, 0), CORE_EINVAL);
    core_config_free(&cfg);
}

static void test_env(void)
{
    core_config_t cfg;
    char err[256] = "";
    CHECK_INT(parse(&cfg, "server-port = 8080\ndb-uri = \"postgres://file\"\n"
                          "db-anon-role = \"file_anon\"\ndb-pool = 5\n",
                    err, sizeof(err)),
              CORE_OK);
    char *env[] = {
        "PATH=/usr/bin",
        "PGRST_SERVER_PORT=9090",
        "PGRST_DB_URI=postgres://env",
        "PGRST_DB_ANON_ROLE=", /* empty: unsets an optional string */
        "PGRST_DB_POOL=",      /* empty: leaves a number alone */
        "PGRST_DB_CHANNEL_ENABLED=0",
        "PGRST_LOG_LEVEL=debug",
        "PGRST_SOMETHING_NEW=1", /* unknown PGRST_/STRATA_ names are ignored */
        "STRATA_UNKNOWN=x",
        "PGRST_=x",
        "=weird",
        "NOEQUALS",
        "STRATA_DATA_DIR=/var/data",
        "STRATA_DB_ADMIN_URI=postgres://admin",
        "STRATA_WORKERS=8",
        "STRATA_MAX_HEADER_BYTES=32768",
        "STRATA_STATEMENT_TIMEOUT_MS=1500",
        "STRATA_DEMO=1",
        "PGRST_JWT_SECRET_IS_BASE64=true",
        "PGRST_JWT_AUD=https://api.example.com",
        "PGRST_JWT_ROLE_CLAIM_KEY=$.realm_access.roles[0]",
        "PGRST_JWT_CACHE_MAX_ENTRIES=50",
        "PGRST_JWT_CACHE_MAX_LIFETIME=0",
        "pgrst_server_port=1", /* names are case-sensitive */
        "PGRST_SERVER-PORT=1",
        "PGRST_STRATA_WORKERS=3", /* Strata's settings are only STRATA_* */
        NULL,
    };
    CHECK_INT(core_config_apply_env(&cfg, env, err, sizeof(err)), CORE_OK);
    CHECK_CSTR(err, "");
    CHECK_INT(cfg.server_port, 9090);
    CHECK_CSTR(cfg.db_uri, "postgres://env");
    CHECK(cfg.db_anon_role == NULL);
    CHECK_INT(cfg.db_pool, 5);
    CHECK(!cfg.db_channel_enabled);
    CHECK_INT(cfg.log_level, CORE_LOG_DEBUG);
    CHECK_CSTR(cfg.data_dir, "/var/data");
    CHECK_CSTR(cfg.db_admin_uri, "postgres://admin");
    CHECK_INT(cfg.workers, 8);
    CHECK_INT(cfg.max_header_bytes, 32768);
    CHECK_INT(cfg.statement_timeout_ms, 1500);
    CHECK(cfg.demo);
    CHECK(cfg.jwt_secret_is_base64);
    CHECK_CSTR(cfg.jwt_aud, "https://api.example.com");
    CHECK_CSTR(cfg.jwt_role_claim_key, "$.realm_access.roles[0]");
    CHECK_INT(cfg.jwt_cache_max_entries, 50);
    CHECK_INT(cfg.jwt_cache_max_lifetime_s, 0);
    CHECK_INT(core_config_validate(&cfg, err, sizeof(err)), CORE_OK);
    CHECK_INT(cfg.admin_server_port, 9091);
    core_config_free(&cfg);

    /* Each error names the environment variable. */
    struct {
        const char *var;
        const char *want;
    } cases[] = {
        {"PGRST_SERVER_PORT=abc", "PGRST_SERVER_PORT: \"abc\" is not an integer"},
        {"PGRST_SERVER_PORT= 1", "PGRST_SERVER_PORT: \" 1\" is not an integer"},
        {"PGRST_ADMIN_SERVER_PORT=70000",
         "PGRST_ADMIN_SERVER_PORT: 70000 is out of range (0 to 65535)"},
        {"PGRST_DB_POOL_ACQUISITION_TIMEOUT=-5",
         "PGRST_DB_POOL_ACQUISITION_TIMEOUT: -5 is out of range (0 to 2000000)"},
        {"PGRST_DB_CHANNEL_ENABLED=maybe",
         "PGRST_DB_CHANNEL_ENABLED: \"maybe\" is not a boolean (true or false)"},
        {"PGRST_LOG_LEVEL=trace",
         "PGRST_LOG_LEVEL: \"trace\" is not a log level (crit, error, warn, info, debug)"},
        {"STRATA_KEEPALIVE_TIMEOUT=1.5", "STRATA_KEEPALIVE_TIMEOUT: \"1.5\" is not an integer"},
        {"STRATA_WORKERS=-1", "STRATA_WORKERS: -1 is out of range (0 to 256)"},
        {"PGRST_JWT_SECRET_IS_BASE64=maybe",
         "PGRST_JWT_SECRET_IS_BASE64: \"maybe\" is not a boolean (true or false)"},
        {"PGRST_JWT_CACHE_MAX_LIFETIME=1h",
         "PGRST_JWT_CACHE_MAX_LIFETIME: \"1h\" is not an integer"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *one[] = {(char *)(uintptr_t)cases[i].var, NULL};
        core_config_defaults(&cfg);
        CHECK_INT(core_config_apply_env(&cfg, one, err, sizeof(err)), CORE_EINVAL);
        CHECK_CSTR(err, cases[i].want);
        core_config_free(&cfg);
    }
    core_config_defaults(&cfg);
    CHECK_INT(core_config_apply_env(&cfg, NULL, err, sizeof(err)), CORE_OK);
    core_config_free(&cfg);
}

static void test_validate(void)
{
    core_config_t cfg;
    char err[256];

    /* Admin port defaults: port + 1; port 0 (any free port) gives 0; 65535 needs it set. */
    core_config_defaults(&cfg);
    cfg.server_port = 0;
    CHECK_INT(core_config_validate(&cfg, err, sizeof(err)), CORE_OK);
    CHECK_INT(cfg.admin_server_port, 0);
    core_config_defaults(&cfg);
    cfg.server_port = 65535;
    CHECK_INT(core_config_validate(&cfg, err, sizeof(err)), CORE_EINVAL);
    CHECK_CSTR(err, "admin-server-port: must be set when server-port is 65535");
    core_config_defaults(&cfg);
    cfg.server_port = 65535;
    cfg.admin_server_port = 65534;
    CHECK_INT(core_config_validate(&cfg, err, sizeof(err)), CORE_OK);
    CHECK_INT(cfg.admin_server_port, 65534);
    /* Validating twice keeps the resolved value. */
    CHECK_INT(core_config_validate(&cfg, err, sizeof(err)), CORE_OK);
    CHECK_INT(cfg.admin_server_port, 65534);

    core_config_defaults(&cfg);
    cfg.admin_server_port = 3000;
    CHECK_INT(core_config_validate(&cfg, err, sizeof(err)), CORE_EINVAL);
    CHECK_CSTR(err, "admin-server-port: must differ from server-port (3000)");
    core_config_defaults(&cfg);
    cfg.server_port = 0;
    cfg.admin_server_port = 0; /* both "any free port": different ports in the end */
    CHECK_INT(core_config_validate(&cfg, err, sizeof(err)), CORE_OK);

    /* Values set directly (not through the parser) are range-checked too. */
    core_config_defaults(&cfg);
    cfg.db_pool = 0;
    CHECK_INT(core_config_validate(&cfg, err, sizeof(err)), CORE_EINVAL);
    CHECK_CSTR(err, "db-pool: 0 is out of range (1 to 1000)");
    core_config_defaults(&cfg);
    cfg.server_port = -5;
    CHECK_INT(core_config_validate(&cfg, err, sizeof(err)), CORE_EINVAL);
    CHECK_CSTR(err, "server-port: -5 is out of range (0 to 65535)");
    core_config_defaults(&cfg);
    cfg.log_level = 9;
    CHECK_INT(core_config_validate(&cfg, err, sizeof(err)), CORE_EINVAL);
    CHECK_CSTR(err, "log-level: 9 is out of range (0 to 3)");
    core_config_defaults(&cfg);
    cfg.max_header_bytes = 0;
    CHECK_INT(core_config_validate(&cfg, err, sizeof(err)), CORE_EINVAL);
    CHECK_CSTR(err, "strata-max-header-bytes: 0 is out of range (at least 1)");
    core_config_defaults(&cfg);
    cfg.db_schemas = NULL;
    CHECK_INT(core_config_validate(&cfg, err, sizeof(err)), CORE_EINVAL);
    CHECK_CSTR(err, "db-schemas: must not be empty");
    core_config_defaults(&cfg);
    cfg.jwt_cache_max_entries = -5;
    CHECK_INT(core_config_validate(&cfg, err, sizeof(err)), CORE_EINVAL);
    CHECK_CSTR(err, "jwt-cache-max-entries: -5 is out of range (0 to 1000000)");
    core_config_free(&cfg);
}

/* The request-context and operations settings: file, environment, validation. */
static void test_context_settings(void)
{
    core_config_t cfg;
    char err[256];
    CHECK_INT(parse(&cfg,
                    "db-extra-search-path = \"public, extensions\"\n"
                    "db-use-legacy-gucs = true\n"
                    "db-hoisted-tx-settings = \"statement_timeout\"\n"
                    "server-timing-enabled = true\n"
                    "server-unix-socket = \"/tmp/strata.sock\"\n"
                    "server-unix-socket-mode = \"600\"\n"
                    "server-cors-allowed-origins = \"http://a.example, http://b.example\"\n",
                    err, sizeof(err)),
              CORE_OK);
    CHECK_CSTR(cfg.db_extra_search_path, "public, extensions");
    CHECK(cfg.db_use_legacy_gucs);
    CHECK_CSTR(cfg.db_hoisted_tx_settings, "statement_timeout");
    CHECK(cfg.server_timing_enabled);
    CHECK_CSTR(cfg.server_unix_socket, "/tmp/strata.sock");
    CHECK_INT(core_config_unix_socket_mode(&cfg), 0600);
    CHECK_CSTR(cfg.server_cors_allowed_origins, "http://a.example, http://b.example");
    CHECK_INT(core_config_validate(&cfg, err, sizeof(err)), CORE_OK);
    /* An empty value unsets the optional lists (no extra schemas, nothing hoisted). */
    char *env[] = {"PGRST_DB_EXTRA_SEARCH_PATH=", "PGRST_DB_HOISTED_TX_SETTINGS=", "PGRST_SERVER_TIMING_ENABLED=0",
                   "PGRST_SERVER_UNIX_SOCKET_MODE=777", NULL};
    CHECK_INT(core_config_apply_env(&cfg, env, err, sizeof(err)), CORE_OK);
    CHECK(cfg.db_extra_search_path == NULL);
    CHECK(cfg.db_hoisted_tx_settings == NULL);
    CHECK(!cfg.server_timing_enabled);
    CHECK_INT(core_config_unix_socket_mode(&cfg), 0777);
    core_config_free(&cfg);

    static const char *const bad[] = {"\"500\"", "\"800\"", "\"6600\"", "\"66\"", "\"abc\"", "\"0660\""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[64];
        snprintf(text, sizeof(text), "server-unix-socket-mode = %s\n", bad[i]);
        CHECK_INT(parse(&cfg, text, err, sizeof(err)), CORE_OK);
        CHECK_INT(core_config_unix_socket_mode(&cfg), -1);
        CHECK_INT(core_config_validate(&cfg, err, sizeof(err)), CORE_EINVAL);
        CHECK(strstr(err, "server-unix-socket-mode: must be an octal mode between 600 and 777") == err);
        core_config_free(&cfg);
    }
}

/* core_config_load: file then environment then validation; a failure leaves nothing owned. */
static void test_load(void)
{
    core_config_t cfg;
    char err[256];
    char path[] = "/tmp/strata-config-test-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    FILE *f = fdopen(fd, "w");
    CHECK(f != NULL);
    fputs("db-max-rows = 5\nserver-timing-enabled = true\n", f);
    fclose(f);
    char *env[] = {"PGRST_DB_MAX_ROWS=7", NULL};
    CHECK_INT(core_config_load(&cfg, path, env, err, sizeof(err)), CORE_OK);
    CHECK_INT(cfg.db_max_rows, 7);
    CHECK(cfg.server_timing_enabled);
    CHECK_INT(cfg.admin_server_port, 3001); /* validated */
    core_config_free(&cfg);
    CHECK_INT(core_config_load(&cfg, NULL, env, err, sizeof(err)), CORE_OK);
    CHECK_INT(cfg.db_max_rows, 7);
    core_config_free(&cfg);
    f = fopen(path, "w");
    CHECK(f != NULL);
    fputs("db-max-rows = \"many\"\n", f);
    fclose(f);
    CHECK(core_config_load(&cfg, path, NULL, err, sizeof(err)) != CORE_OK);
    CHECK_CSTR(err, "config file line 1: db-max-rows: \"many\" is not an integer");
    unlink(path);
    CHECK(core_config_load(&cfg, path, NULL, err, sizeof(err)) != CORE_OK);
    CHECK(strstr(err, "cannot open") != NULL);
}

/* Every allocation failure is reported, never a crash or a leak (ASan checks the latter). */
static void test_alloc_failure(void)
{
    const char *text = "db-uri = \"postgres://a\"\ndb-schemas = \"api\"\nserver-host = \"*\"\n"
                       "jwt-secret = \"0123456789abcdef0123456789abcdef\"\n";
    char *env[] = {"PGRST_DB_ANON_ROLE=anon", "STRATA_DATA_DIR=/d", NULL};
    int failures = 0;
    for (long n = 1; n < 20; n++) {
        core_config_t cfg;
        char err[256];
        core_config_defaults(&cfg);
        core_alloc_fail_after(n);
        int rc = core_config_parse_text(&cfg, str_from_cstr(text), err, sizeof(err));
        if (rc == CORE_OK) rc = core_config_apply_env(&cfg, env, err, sizeof(err));
        core_alloc_fail_after(0);
        if (rc != CORE_OK) {
            failures++;
            CHECK_INT(rc, CORE_ENOMEM);
            CHECK(strstr(err, "out of memory") != NULL);
        }
        core_config_free(&cfg);
    }
    CHECK(failures > 0);
}

int main(void)
{
    test_defaults();
    test_file();
    test_file_errors();
    test_env();
    test_validate();
    test_context_settings();
    test_load();
    test_alloc_failure();
    TEST_MAIN_END();
}
