/*
 * Settings from a PostgREST-style config file and from the environment.
 *
 * Every setting is described once, in CONFIG_SETTINGS below: its file key, its type, its
 * field in core_config_t, its range and its default. The environment name is derived from
 * the file key (PGRST_ + upper-snake, or STRATA_ + upper-snake of what follows "strata-"),
 * so the three spellings of a setting cannot drift apart.
 *
 * The file parser walks a slice line by line with a cursor; it never needs the text to be
 * NUL-terminated, refuses NUL bytes (a C string made from the value would silently be cut
 * short) and caps the input at 1 MiB. It runs before anything else starts, but it is fuzzed:
 * every path returns a status and one line of text, none of them crashes.
 */
#include "core/config.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#define CONFIG_MAX_TEXT ((size_t)1 << 20)
#define CONFIG_PORT_UNSET (-1) /* admin_server_port before core_config_validate resolves it */

typedef enum {
    CFG_STR,       /* string with a default; must not be empty */
    CFG_STR_OPT,   /* string that may be unset (NULL); an empty value unsets it */
    CFG_INT,       /* int within [min, max] */
    CFG_LONG,      /* long within [min, max] */
    CFG_BOOL,      /* bool: true/false (the environment also takes 1/0, yes/no, on/off) */
    CFG_LOG_LEVEL, /* int: crit | error | warn | info | debug */
} cfg_type_t;

/* Seconds-based timeouts are capped so that callers may multiply them by 1000 into an
 * int or unsigned without overflow. */
#define CFG_MAX_SECONDS 2000000L

/* X(file key, field, type, min, max, default string, default number) */
#define CONFIG_SETTINGS(X)                                                                 \
    X("db-uri", db_uri, CFG_STR_OPT, 0, 0, NULL, 0)                                        \
    X("db-schemas", db_schemas, CFG_STR, 0, 0, "public", 0)                                \
    X("db-anon-role", db_anon_role, CFG_STR_OPT, 0, 0, NULL, 0)                            \
    X("jwt-secret", jwt_secret, CFG_STR_OPT, 0, 0, NULL, 0)                                \
    X("jwt-secret-is-base64", jwt_secret_is_base64, CFG_BOOL, 0, 1, NULL, 0)               \
    X("jwt-aud", jwt_aud, CFG_STR_OPT, 0, 0, NULL, 0)                                      \
    X("jwt-role-claim-key", jwt_role_claim_key, CFG_STR, 0, 0, ".role", 0)                 \
    X("jwt-cache-max-entries", jwt_cache_max_entries, CFG_INT, 0, 1000000, NULL, 1000)     \
    X("jwt-cache-max-lifetime", jwt_cache_max_lifetime_s, CFG_INT, -1, CFG_MAX_SECONDS,    \
      NULL, -1)                                                                            \
    X("server-host", server_host, CFG_STR, 0, 0, "!4", 0)                                  \
    X("server-port", server_port, CFG_INT, 0, 65535, NULL, 3000)                           \
    X("admin-server-port", admin_server_port, CFG_INT, 0, 65535, NULL, CONFIG_PORT_UNSET)  \
    X("db-pool", db_pool, CFG_INT, 1, 1000, NULL, 10)                                      \
    X("db-pool-acquisition-timeout", db_pool_acquisition_timeout_s, CFG_INT, 0,            \
      CFG_MAX_SECONDS, NULL, 10)                                                           \
    X("db-max-rows", db_max_rows, CFG_LONG, -1, LONG_MAX, NULL, -1)                        \
    X("db-channel", db_channel, CFG_STR, 0, 0, "pgrst", 0)                                 \
    X("db-channel-enabled", db_channel_enabled, CFG_BOOL, 0, 1, NULL, 1)                   \
    X("log-level", log_level, CFG_LOG_LEVEL, CORE_LOG_ERROR, CORE_LOG_DEBUG, NULL,         \
      CORE_LOG_INFO)                                                                       \
    X("openapi-server-proxy-uri", openapi_server_proxy_uri, CFG_STR_OPT, 0, 0, NULL, 0)    \
    X("db-pre-request", db_pre_request, CFG_STR_OPT, 0, 0, NULL, 0)                        \
    X("db-aggregates-enabled", db_aggregates_enabled, CFG_BOOL, 0, 1, NULL, 0)             \
    X("db-plan-enabled", db_plan_enabled, CFG_BOOL, 0, 1, NULL, 0)                         \
    X("strata-data-dir", data_dir, CFG_STR, 0, 0, "./.strata", 0)                          \
    X("strata-db-admin-uri", db_admin_uri, CFG_STR_OPT, 0, 0, NULL, 0)                     \
    X("strata-workers", workers, CFG_INT, 0, 256, NULL, 0)                                 \
    X("strata-max-body-bytes", max_body_bytes, CFG_LONG, 1, LONG_MAX, NULL, 10L << 20)     \
    X("strata-max-header-bytes", max_header_bytes, CFG_LONG, 1, LONG_MAX, NULL, 16L << 10) \
    X("strata-request-timeout", request_timeout_s, CFG_INT, 0, CFG_MAX_SECONDS, NULL, 30)  \
    X("strata-keepalive-timeout", keepalive_timeout_s, CFG_INT, 0, CFG_MAX_SECONDS, NULL,  \
      60)                                                                                  \
    X("strata-statement-timeout-ms", statement_timeout_ms, CFG_INT, 0, INT_MAX, NULL, 0)   \
    X("strata-demo", demo, CFG_BOOL, 0, 1, NULL, 0)                                      \
    X("strata-auth-password-hash", auth_password_hash, CFG_STR, 0, 0, "interactive", 0)    \
    X("strata-auth-password-min-length", auth_password_min_length, CFG_INT, 1, 1024, NULL, \
      6)                                                                                   \
    X("strata-auth-jwt-exp", auth_jwt_exp_s, CFG_INT, 30, 604800, NULL, 3600)              \
    X("strata-auth-rate-limit-per-min", auth_rate_limit_per_min, CFG_INT, 0, 1000000,      \
      NULL, 30) \
    X("strata-auth-refresh-token-reuse-interval", auth_refresh_token_reuse_interval_s,     \
      CFG_INT, 0, 86400, NULL, 10)                                                         \
    X("strata-auth-anonymous-users-enabled", auth_anonymous_users_enabled, CFG_BOOL, 0, 1, \
      NULL, 0)                                                                             \
    X("db-extra-search-path", db_extra_search_path, CFG_STR_OPT, 0, 0, "public", 0)        \
    X("db-use-legacy-gucs", db_use_legacy_gucs, CFG_BOOL, 0, 1, NULL, 0)                   \
    X("db-hoisted-tx-settings", db_hoisted_tx_settings, CFG_STR_OPT, 0, 0,                 \
      "statement_timeout,plan_filter.statement_cost_limit,default_transaction_isolation", 0) \
    X("server-timing-enabled", server_timing_enabled, CFG_BOOL, 0, 1, NULL, 0)             \
    X("server-unix-socket", server_unix_socket, CFG_STR_OPT, 0, 0, NULL, 0)                \
    X("server-unix-socket-mode", server_unix_socket_mode, CFG_STR, 0, 0, "660", 0)         \
    X("server-cors-allowed-origins", server_cors_allowed_origins, CFG_STR_OPT, 0, 0, NULL, 0)

typedef struct {
    const char *key; /* file key; the environment name is derived from it */
    cfg_type_t type;
    size_t off; /* offsetof(core_config_t, field) */
    long min, max;
    const char *def_str; /* CFG_STR default (a literal: never freed, see owns_string) */
    long def_num;        /* default for numbers, booleans and the log level */
} cfg_setting_t;

#define CFG_ENTRY(k, f, t, mn, mx, ds, dn) {k, t, offsetof(core_config_t, f), mn, mx, ds, dn},
static const cfg_setting_t settings[] = {CONFIG_SETTINGS(CFG_ENTRY)};
#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

/* The field behind each entry must have the C type its cfg_type_t reads and writes through
 * the offset; a mismatch would be silent memory corruption, so it is a compile error. */
#define CFG_CTYPE_OK_CFG_STR(e) _Generic((e), char *: 1, default: 0)
#define CFG_CTYPE_OK_CFG_STR_OPT(e) _Generic((e), char *: 1, default: 0)
#define CFG_CTYPE_OK_CFG_INT(e) _Generic((e), int: 1, default: 0)
#define CFG_CTYPE_OK_CFG_LONG(e) _Generic((e), long: 1, default: 0)
#define CFG_CTYPE_OK_CFG_BOOL(e) _Generic((e), bool: 1, default: 0)
#define CFG_CTYPE_OK_CFG_LOG_LEVEL(e) _Generic((e), int: 1, default: 0)
#define CFG_ASSERT(k, f, t, mn, mx, ds, dn)                                                \
    _Static_assert(CFG_CTYPE_OK_##t(((core_config_t *)0)->f), "wrong C type for " k);
CONFIG_SETTINGS(CFG_ASSERT)

/* ---- small helpers ------------------------------------------------------------------ */

static char **str_field(core_config_t *cfg, const cfg_setting_t *s)
{
    return (char **)(void *)((char *)cfg + s->off);
}

static int *int_field(core_config_t *cfg, const cfg_setting_t *s)
{
    return (int *)(void *)((char *)cfg + s->off);
}

static long *long_field(core_config_t *cfg, const cfg_setting_t *s)
{
    return (long *)(void *)((char *)cfg + s->off);
}

static bool *bool_field(core_config_t *cfg, const cfg_setting_t *s)
{
    return (bool *)(void *)((char *)cfg + s->off);
}

/* Defaults point at the literals in the table (so core_config_defaults cannot fail);
 * everything else in a string field was allocated here and is owned by the config. */
static bool owns_string(const cfg_setting_t *s, const char *p)
{
    return p != NULL && p != s->def_str;
}

static void replace_string(core_config_t *cfg, const cfg_setting_t *s, char *value)
{
    char **f = str_field(cfg, s);
    if (owns_string(s, *f)) core_free(*f);
    *f = value;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

static bool is_key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == '.';
}

static const cfg_setting_t *find_by_key(str_t key)
{
    for (size_t i = 0; i < NSETTINGS; i++)
        if (str_eq(key, str_from_cstr(settings[i].key))) return &settings[i];
    return NULL;
}

/* Whether `name` is the environment spelling of `key`: "db-uri" ↔ PGRST_DB_URI,
 * "strata-data-dir" ↔ STRATA_DATA_DIR. Compared in place, without building the name. */
static bool env_name_matches(str_t name, const char *key)
{
    str_t k = str_from_cstr(key);
    str_t prefix = STR_LIT("PGRST_");
    if (str_starts_with(k, STR_LIT("strata-"))) {
        k.ptr += 7;
        k.len -= 7;
        prefix = STR_LIT("STRATA_");
    }
    if (!str_starts_with(name, prefix) || name.len - prefix.len != k.len) return false;
    for (size_t i = 0; i < k.len; i++) {
        char want = k.ptr[i] == '-' ? '_' : k.ptr[i];
        if (want >= 'a' && want <= 'z') want = (char)(want - 'a' + 'A');
        if (name.ptr[prefix.len + i] != want) return false;
    }
    return true;
}

static const cfg_setting_t *find_by_env(str_t name)
{
    for (size_t i = 0; i < NSETTINGS; i++)
        if (env_name_matches(name, settings[i].key)) return &settings[i];
    return NULL;
}

/* true/false everywhere; the environment is looser because shells and compose files
 * commonly say 1/0. */
static int parse_bool(str_t v, bool loose, bool *out)
{
    if (str_eq_nocase(v, STR_LIT("true")) || (loose && (str_eq(v, STR_LIT("1")) ||
                                                       str_eq_nocase(v, STR_LIT("yes")) ||
                                                       str_eq_nocase(v, STR_LIT("on"))))) {
        *out = true;
        return CORE_OK;
    }
    if (str_eq_nocase(v, STR_LIT("false")) || (loose && (str_eq(v, STR_LIT("0")) ||
                                                        str_eq_nocase(v, STR_LIT("no")) ||
                                                        str_eq_nocase(v, STR_LIT("off"))))) {
        *out = false;
        return CORE_OK;
    }
    return CORE_EINVAL;
}

static void range_err(char *msg, size_t msglen, long v, const cfg_setting_t *s)
{
    if (s->max == LONG_MAX) core_errf(msg, msglen, "%ld is out of range (at least %ld)", v, s->min);
    else core_errf(msg, msglen, "%ld is out of range (%ld to %ld)", v, s->min, s->max);
}

/* Stores one value. `quoted`: the file wrote it as a "string" (environment values count as
 * strings). On failure writes the reason (without the setting's name) into msg. */
static int apply_value(core_config_t *cfg, const cfg_setting_t *s, str_t v, bool quoted,
                       bool from_env, char *msg, size_t msglen)
{
    char smp[48];
    switch (s->type) {
    case CFG_STR:
    case CFG_STR_OPT: {
        if (!quoted) {
            core_errf(msg, msglen, "expected a double-quoted string");
            return CORE_EINVAL;
        }
        if (v.len == 0) {
            if (s->type == CFG_STR) {
                core_errf(msg, msglen, "must not be empty");
                return CORE_EINVAL;
            }
            replace_string(cfg, s, NULL);
            return CORE_OK;
        }
        char *copy = core_strndup(v.ptr, v.len);
        if (!copy) {
            core_errf(msg, msglen, "out of memory");
            return CORE_ENOMEM;
        }
        replace_string(cfg, s, copy);
        return CORE_OK;
    }
    case CFG_INT:
    case CFG_LONG: {
        long n;
        if (str_to_long(v, &n) != CORE_OK) {
            core_errf(msg, msglen, "\"%s\" is not an integer", core_sample(v, smp, sizeof(smp)));
            return CORE_EINVAL;
        }
        if (n < s->min || n > s->max) {
            range_err(msg, msglen, n, s);
            return CORE_EINVAL;
        }
        if (s->type == CFG_INT) *int_field(cfg, s) = (int)n;
        else *long_field(cfg, s) = n;
        return CORE_OK;
    }
    case CFG_BOOL: {
        bool b;
        if (parse_bool(v, from_env || quoted, &b) != CORE_OK) {
            core_errf(msg, msglen, "\"%s\" is not a boolean (true or false)",
                    core_sample(v, smp, sizeof(smp)));
            return CORE_EINVAL;
        }
        *bool_field(cfg, s) = b;
        return CORE_OK;
    }
    case CFG_LOG_LEVEL: {
        int level;
        if (!quoted) {
            core_errf(msg, msglen, "expected a double-quoted string");
            return CORE_EINVAL;
        }
        if (core_log_level_parse(v, &level) != CORE_OK) {
            core_errf(msg, msglen, "\"%s\" is not a log level (crit, error, warn, info, debug)",
                    core_sample(v, smp, sizeof(smp)));
            return CORE_EINVAL;
        }
        *int_field(cfg, s) = level;
        return CORE_OK;
    }
    }
    core_errf(msg, msglen, "internal error: unknown setting type");
    return CORE_EINVAL;
}

/* ---- public API ---------------------------------------------------------------------- */

void core_config_defaults(core_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < NSETTINGS; i++) {
        const cfg_setting_t *s = &settings[i];
        switch (s->type) {
        case CFG_STR:
        case CFG_STR_OPT:
            /* The literal stays const in practice: owns_string keeps it from being freed
             * and nothing writes through a config's strings. */
            memcpy(str_field(cfg, s), &s->def_str, sizeof(char *));
            break;
        case CFG_INT:
        case CFG_LOG_LEVEL: *int_field(cfg, s) = (int)s->def_num; break;
        case CFG_LONG: *long_field(cfg, s) = s->def_num; break;
        case CFG_BOOL: *bool_field(cfg, s) = s->def_num != 0; break;
        }
    }
}

void core_config_free(core_config_t *cfg)
{
    if (!cfg) return;
    for (size_t i = 0; i < NSETTINGS; i++) {
        const cfg_setting_t *s = &settings[i];
        if (s->type != CFG_STR && s->type != CFG_STR_OPT) continue;
        replace_string(cfg, s, NULL);
    }
}

/* One line of the file (without its '\n'). Blank and comment-only lines are fine. */
static int parse_line(core_config_t *cfg, str_t l, unsigned long lineno, char *err, size_t errlen)
{
    size_t i = 0;
    char smp[48], msg[160];
    if (l.len && memchr(l.ptr, '\0', l.len)) {
        core_errf(err, errlen, "config file line %lu: contains a NUL byte", lineno);
        return CORE_EINVAL;
    }
    while (i < l.len && is_space(l.ptr[i])) i++;
    if (i == l.len || l.ptr[i] == '#') return CORE_OK;

    size_t kstart = i;
    while (i < l.len && is_key_char(l.ptr[i])) i++;
    str_t key = {l.ptr + kstart, i - kstart};
    while (i < l.len && is_space(l.ptr[i])) i++;
    if (key.len == 0 || i == l.len || l.ptr[i] != '=') {
        core_errf(err, errlen, "config file line %lu: expected key = value", lineno);
        return CORE_EINVAL;
    }
    i++;
    while (i < l.len && is_space(l.ptr[i])) i++;
    if (i == l.len || l.ptr[i] == '#') {
        core_errf(err, errlen, "config file line %lu: %s: missing value", lineno,
                core_sample(key, smp, sizeof(smp)));
        return CORE_EINVAL;
    }

    const cfg_setting_t *s = find_by_key(key);
    if (!s) {
        core_errf(err, errlen, "config file line %lu: unknown setting \"%s\"", lineno,
                core_sample(key, smp, sizeof(smp)));
        return CORE_EINVAL;
    }

    /* The unescaped value: at most as long as the rest of the line. */
    core_buf_t val;
    core_buf_init(&val, l.len);
    bool quoted = l.ptr[i] == '"';
    int rc = CORE_EINVAL;
    if (quoted) {
        i++;
        bool closed = false;
        while (i < l.len) {
            char c = l.ptr[i++];
            if (c == '"') {
                closed = true;
                break;
            }
            if (c == '\\') {
                if (i == l.len || (l.ptr[i] != '"' && l.ptr[i] != '\\')) {
                    core_errf(err, errlen,
                            "config file line %lu: %s: only \\\" and \\\\ may follow a backslash",
                            lineno, s->key);
                    goto out;
                }
                c = l.ptr[i++];
            }
            core_buf_append_char(&val, c);
        }
        if (!closed) {
            core_errf(err, errlen, "config file line %lu: %s: unterminated string", lineno,
                    s->key);
            goto out;
        }
    } else {
        size_t vstart = i;
        while (i < l.len && !is_space(l.ptr[i]) && l.ptr[i] != '#') i++;
        core_buf_append(&val, l.ptr + vstart, i - vstart);
    }
    while (i < l.len && is_space(l.ptr[i])) i++;
    if (i < l.len && l.ptr[i] != '#') {
        core_errf(err, errlen, "config file line %lu: %s: unexpected text after the value",
                lineno, s->key);
        goto out;
    }
    if (core_buf_status(&val) != CORE_OK) {
        rc = core_buf_status(&val);
        core_errf(err, errlen, "config file line %lu: %s: out of memory", lineno, s->key);
        goto out;
    }
    rc = apply_value(cfg, s, core_buf_str(&val), quoted, false, msg, sizeof(msg));
    if (rc != CORE_OK) core_errf(err, errlen, "config file line %lu: %s: %s", lineno, s->key, msg);
out:
    core_buf_free(&val);
    return rc;
}

int core_config_parse_text(core_config_t *cfg, str_t text, char *err, size_t errlen)
{
    if (text.len > CONFIG_MAX_TEXT) {
        core_errf(err, errlen, "config file is larger than 1 MiB");
        return CORE_ELIMIT;
    }
    size_t pos = 0;
    unsigned long lineno = 0;
    while (pos < text.len) {
        lineno++;
        str_t rest = {text.ptr + pos, text.len - pos};
        long nl = str_find_char(rest, '\n');
        size_t end = nl < 0 ? rest.len : (size_t)nl;
        int rc = parse_line(cfg, (str_t){rest.ptr, end}, lineno, err, errlen);
        if (rc != CORE_OK) return rc;
        pos += end + (nl < 0 ? 0 : 1);
    }
    return CORE_OK;
}

int core_config_apply_env(core_config_t *cfg, char *const *envp, char *err, size_t errlen)
{
    char msg[160];
    if (!envp) return CORE_OK;
    for (size_t i = 0; envp[i]; i++) {
        str_t entry = str_from_cstr(envp[i]);
        long eq = str_find_char(entry, '=');
        if (eq <= 0) continue;
        str_t name = {entry.ptr, (size_t)eq};
        str_t value = {entry.ptr + eq + 1, entry.len - (size_t)eq - 1};
        if (!str_starts_with(name, STR_LIT("PGRST_")) && !str_starts_with(name, STR_LIT("STRATA_")))
            continue;
        /* Other tools (PostgREST's own scripts, compose files) set names we do not know. */
        const cfg_setting_t *s = find_by_env(name);
        if (!s) continue;
        /* An empty value means "not set": it unsets an optional string and leaves every
         * other setting alone (compose files often pass VAR= for "nothing"). */
        if (value.len == 0 && s->type != CFG_STR_OPT) continue;
        int rc = apply_value(cfg, s, value, true, true, msg, sizeof(msg));
        if (rc != CORE_OK) {
            core_errf(err, errlen, "%.*s: %s", (int)name.len, name.ptr, msg);
            return rc;
        }
    }
    return CORE_OK;
}

int core_config_validate(core_config_t *cfg, char *err, size_t errlen)
{
    char msg[160];
    for (size_t i = 0; i < NSETTINGS; i++) {
        const cfg_setting_t *s = &settings[i];
        long v;
        switch (s->type) {
        case CFG_STR: {
            const char *p = *str_field(cfg, s);
            if (!p || !*p) {
                core_errf(err, errlen, "%s: must not be empty", s->key);
                return CORE_EINVAL;
            }
            continue;
        }
        case CFG_STR_OPT:
        case CFG_BOOL: continue;
        case CFG_INT:
        case CFG_LOG_LEVEL: v = *int_field(cfg, s); break;
        case CFG_LONG: v = *long_field(cfg, s); break;
        default: continue;
        }
        if (s->off == offsetof(core_config_t, admin_server_port) && v == CONFIG_PORT_UNSET)
            continue;
        if (v < s->min || v > s->max) {
            range_err(msg, sizeof(msg), v, s);
            core_errf(err, errlen, "%s: %s", s->key, msg);
            return CORE_EINVAL;
        }
    }

    if (strcmp(cfg->auth_password_hash, "interactive") != 0 &&
        strcmp(cfg->auth_password_hash, "moderate") != 0 && strcmp(cfg->auth_password_hash, "min") != 0) {
        core_errf(err, errlen, "strata-auth-password-hash: must be interactive, moderate or min");
        return CORE_EINVAL;
    }

    if (cfg->admin_server_port == CONFIG_PORT_UNSET) {
        /* PostgREST's admin server is opt-in; Strata always has one (health, metrics) and
         * puts it next to the API port. Port 0 (tests: "any free port") stays 0. */
        if (cfg->server_port == 0) {
            cfg->admin_server_port = 0;
        } else if (cfg->server_port == 65535) {
            core_errf(err, errlen,
                    "admin-server-port: must be set when server-port is 65535");
            return CORE_EINVAL;
        } else {
            cfg->admin_server_port = cfg->server_port + 1;
        }
    }
    if (core_config_unix_socket_mode(cfg) < 0) {
        core_errf(err, errlen, "server-unix-socket-mode: must be an octal mode between 600 and 777, not \"%s\"",
                  core_sample(str_from_cstr(cfg->server_unix_socket_mode), msg, sizeof(msg)));
        return CORE_EINVAL;
    }
    if (cfg->admin_server_port != 0 && cfg->admin_server_port == cfg->server_port) {
        core_errf(err, errlen, "admin-server-port: must differ from server-port (%d)",
                cfg->server_port);
        return CORE_EINVAL;
    }
    return CORE_OK;
}

int core_config_unix_socket_mode(const core_config_t *cfg)
{
    str_t m = str_from_cstr(cfg->server_unix_socket_mode);
    if (m.len != 3) return -1;
    int v = 0;
    for (size_t i = 0; i < m.len; i++) {
        if (m.ptr[i] < '0' || m.ptr[i] > '7') return -1;
        v = v * 8 + (m.ptr[i] - '0');
    }
    return v >= 0600 && v <= 0777 ? v : -1;
}

int core_config_load(core_config_t *cfg, const char *path, char *const *envp, char *err, size_t errlen)
{
    int rc = CORE_OK;
    core_config_defaults(cfg);
    if (path) {
        core_buf_t text;
        core_buf_init(&text, CONFIG_MAX_TEXT);
        FILE *f = fopen(path, "rb");
        if (!f) {
            core_errf(err, errlen, "config file %s: cannot open", path);
            rc = CORE_EIO;
        } else {
            char chunk[8192];
            size_t n;
            while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) core_buf_append(&text, chunk, n);
            if (ferror(f) || core_buf_status(&text) != CORE_OK) {
                core_errf(err, errlen, "config file %s: cannot read (or larger than 1 MiB)", path);
                rc = CORE_EIO;
            }
            fclose(f);
        }
        if (rc == CORE_OK) rc = core_config_parse_text(cfg, core_buf_str(&text), err, errlen);
        core_buf_free(&text);
    }
    if (rc == CORE_OK) rc = core_config_apply_env(cfg, envp, err, errlen);
    if (rc == CORE_OK) rc = core_config_validate(cfg, err, errlen);
    if (rc != CORE_OK) core_config_free(cfg);
    return rc;
}
