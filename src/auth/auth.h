/*
 * auth: PostgREST's JWT rules. An immutable verifier built once from the config (secret,
 * JWK or JWKS; audience; role claim path) is shared read-only by every worker thread; each
 * worker owns one small cache of verified tokens. The algorithm is always chosen by the
 * configured keys, never by the token. See docs/internals/auth.md.
 */
#ifndef STRATA_AUTH_H
#define STRATA_AUTH_H

#include "core/config.h"
#include "core/core.h"

/* Tokens longer than this are refused before any decoding. */
#define AUTH_JWT_MAX_BYTES 16384
/* Clock skew allowed on exp / nbf / iat, as PostgREST. */
#define AUTH_JWT_LEEWAY_S 30

typedef struct auth_jwt auth_jwt_t;     /* the verifier: immutable, shared by all threads */
typedef struct auth_cache auth_cache_t; /* per worker thread: no locks, never shared */

/* What a request runs as. Everything points into the request arena given to
 * auth_jwt_verify and lives as long as it. */
typedef struct {
    const char *role;        /* NUL-terminated; NULL = anonymous (use db-anon-role) */
    const char *claims_json; /* the claims object as JSON text for request.jwt.claims,
                              * NUL-terminated; "{}" when anonymous */
    size_t claims_len;
    int64_t exp;             /* the exp claim (seconds since the epoch), 0 when absent */
    bool cached;             /* served from the worker's cache (metrics, Server-Timing) */
} auth_claims_t;

/* Builds the verifier from jwt-secret (an HMAC secret of at least 32 bytes, a JWK, a JWKS,
 * inline or "@/path/to/file", base64-decoded first with jwt-secret-is-base64), jwt-aud,
 * jwt-role-claim-key and the jwt-cache-* settings. Reads the secret file, so it belongs at
 * startup (or config reload), never on a loop. A NULL jwt-secret gives a verifier that
 * answers every Bearer token with PGRST300. On success *out is owned by the caller (free it
 * with auth_jwt_free once no thread uses it). On failure returns CORE_EINVAL (or
 * CORE_ENOMEM) and writes one line naming the setting (`jwt-secret: ...`) into err.
 * The verifier is reference-counted (atomically, so any thread may drop a reference): it
 * starts with one, auth_jwt_ref adds one (for an owner that may outlive the config
 * generation that built it, such as the auth service's current settings) and
 * auth_jwt_free drops one, freeing the verifier with the last. */
int auth_jwt_config_create(const core_config_t *cfg, auth_jwt_t **out, char *err,
                           size_t errlen) CORE_WUR;
auth_jwt_t *auth_jwt_ref(auth_jwt_t *v);
void auth_jwt_free(auth_jwt_t *v);

/* Whether a secret was configured (no secret: tokens get PGRST300). */
bool auth_jwt_has_secret(const auth_jwt_t *v);

/* Checks one Authorization header value, as PostgREST does:
 *  - "Bearer <token>" (scheme case-insensitive) is verified: signature, exp/nbf/iat with
 *    AUTH_JWT_LEEWAY_S, aud against jwt-aud; the role comes from jwt-role-claim-key;
 *  - any other scheme ("Basic ...") is not ours: the request is anonymous (returns 0 with
 *    role NULL and claims "{}"), as PostgREST ignores it too.
 * cache may be NULL (no caching). Returns 0 and fills *out, or a negative status and fills
 * *err: CORE_EINVAL with 401 PGRST301 (token cannot be decoded or verified) or 401 PGRST303
 * (claims invalid) or 500 PGRST300 (no secret configured); CORE_ENOMEM with 503. err's
 * strings are static or in the arena. Never blocks; safe to call from any worker thread
 * with that thread's own cache. */
int auth_jwt_verify(const auth_jwt_t *v, auth_cache_t *cache, str_t authorization,
                    core_arena_t *a, auth_claims_t *out, core_err_t *err) CORE_WUR;

/* The WWW-Authenticate value PostgREST sends with an error, or STR_NULL for none:
 * `Bearer error="invalid_token", error_description="<message>"` for PGRST301/PGRST303,
 * `Bearer` for any other 401 (PGRST302, a JWT role PostgreSQL does not know). Built in the
 * arena; STR_NULL also when the arena is out of memory. */
str_t auth_www_authenticate(core_arena_t *a, const core_err_t *e);

/* 401 PGRST302 "Anonymous access is disabled": what the caller answers when a request is
 * anonymous (no token, or a token without a role) and db-anon-role is not set. */
core_err_t auth_err_anonymous_disabled(void);

/* ---- the per-thread cache ---------------------------------------------------------------
 * Bounded, keyed by the whole token; stores only tokens that passed every check. An entry
 * is served only while its exp (with leeway) has not passed and, when max_lifetime_s > 0,
 * for at most that many seconds after it was stored. Full: the CLOCK hand evicts an entry
 * not used since its last pass. A cache remembers which verifier filled it and empties
 * itself when used with another one (config reload). */

/* max_entries 0 gives a cache that stores nothing. NULL when out of memory. */
auth_cache_t *auth_cache_create(size_t max_entries, unsigned max_lifetime_s) CORE_WUR;
/* A cache sized by the verifier's jwt-cache-max-entries / jwt-cache-max-lifetime. */
auth_cache_t *auth_cache_create_for(const auth_jwt_t *v) CORE_WUR;
void auth_cache_free(auth_cache_t *c);

typedef struct {
    uint64_t hits, misses, inserts, evictions, expired;
    size_t entries;
} auth_cache_stats_t;
void auth_cache_stats(const auth_cache_t *c, auth_cache_stats_t *out);

#endif
