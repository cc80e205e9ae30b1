/*
 * Internals shared by the files of src/auth: the verifier's layout, keys (jwk.c), the role
 * claim path (jspath.c), the per-thread cache (cache.c) and base64url. Not for other
 * modules; tests include it to reach the clock-taking entry point.
 */
#ifndef STRATA_AUTH_INT_H
#define STRATA_AUTH_INT_H

#include <jansson.h>
#include <stdatomic.h>
#include <openssl/evp.h>

#include "auth/auth.h"

/* The JWS algorithms Strata verifies. "none" is not one of them, by construction. */
typedef enum {
    AUTH_ALG_HS256,
    AUTH_ALG_HS384,
    AUTH_ALG_HS512,
    AUTH_ALG_RS256,
    AUTH_ALG_RS384,
    AUTH_ALG_RS512,
    AUTH_ALG_PS256,
    AUTH_ALG_PS384,
    AUTH_ALG_PS512,
    AUTH_ALG_ES256,
    AUTH_ALG_ES384,
    AUTH_ALG_ES512,
    AUTH_ALG_EDDSA,
    AUTH_ALG_COUNT,
} auth_alg_t;

#define AUTH_ALG_BIT(a) (1u << (unsigned)(a))
#define AUTH_ALGS_HS (AUTH_ALG_BIT(AUTH_ALG_HS256) | AUTH_ALG_BIT(AUTH_ALG_HS384) | \
                      AUTH_ALG_BIT(AUTH_ALG_HS512))
#define AUTH_ALGS_RSA (AUTH_ALG_BIT(AUTH_ALG_RS256) | AUTH_ALG_BIT(AUTH_ALG_RS384) | \
                       AUTH_ALG_BIT(AUTH_ALG_RS512) | AUTH_ALG_BIT(AUTH_ALG_PS256) | \
                       AUTH_ALG_BIT(AUTH_ALG_PS384) | AUTH_ALG_BIT(AUTH_ALG_PS512))

/* The alg named by a JOSE "alg" value, or -1 (unknown, or "none"). */
int auth_alg_from_name(str_t name);
const char *auth_alg_name(auth_alg_t alg);

typedef enum { AUTH_KTY_OCT, AUTH_KTY_RSA, AUTH_KTY_EC, AUTH_KTY_OKP } auth_kty_t;

/* One verification key. Built at startup and read-only afterwards: verify threads only
 * read `pkey` (EVP_DigestVerifyInit takes its own reference) and duplicate `hmac[]`. */
typedef struct {
    auth_kty_t kty;
    unsigned algs;       /* AUTH_ALG_BIT set: what this key may verify (kty, crv, "alg") */
    char *kid;           /* NUL-terminated; NULL when the JWK has no "kid" */
    size_t kid_len;
    EVP_MAC_CTX *hmac[3]; /* oct: keyed HMAC-SHA256/384/512 templates, dup'ed per token */
    EVP_PKEY *pkey;      /* RSA / EC / OKP public key */
    size_t ec_len;       /* EC: bytes per coordinate (32, 48, 66); raw r||s is twice that */
} auth_key_t;

/* ---- role claim path (jspath.c) --------------------------------------------------------
 * PostgREST's JSPath DSL (".a.\"b\"[0][?(@ == \"x\")]") and the simple RFC 9535 forms
 * ("$.a['b'][0][?@ == 'x']"). A filter step may only come last. */
typedef enum { AUTH_JSP_KEY, AUTH_JSP_INDEX, AUTH_JSP_FILTER } auth_jsp_kind_t;
typedef enum {
    AUTH_JSP_EQ,       /* == */
    AUTH_JSP_NE,       /* != */
    AUTH_JSP_PREFIX,   /* ^== */
    AUTH_JSP_SUFFIX,   /* ==^ */
    AUTH_JSP_CONTAINS, /* *== */
} auth_jsp_op_t;

typedef struct {
    auth_jsp_kind_t kind;
    auth_jsp_op_t op;  /* FILTER */
    char *s;           /* KEY name / FILTER operand (owned, NUL-terminated) */
    size_t len;
    long index;        /* INDEX; negative counts from the end (RFC 9535 only) */
} auth_jsp_step_t;

typedef struct {
    auth_jsp_step_t *steps;
    size_t n;
    bool rfc;          /* RFC 9535 semantics: != also matches non-strings */
} auth_jspath_t;

/* Parses a jwt-role-claim-key value. On failure returns CORE_EINVAL / CORE_ENOMEM and
 * writes the reason into msg. A leading "$$" is read as "$" (PostgREST's config files
 * need $ doubled; Strata's do not, but copied files should still work). */
int auth_jspath_parse(str_t text, auth_jspath_t *out, char *msg, size_t msglen) CORE_WUR;
void auth_jspath_free(auth_jspath_t *p);
/* The first value the path selects in root (a borrowed reference), or NULL. */
json_t *auth_jspath_eval(const auth_jspath_t *p, json_t *root);

/* ---- the verifier ------------------------------------------------------------------- */

struct auth_jwt {
    atomic_int refs;          /* auth_jwt_ref / auth_jwt_free; 1 when built */
    uint64_t id;              /* unique per verifier built; caches key themselves by it */
    bool has_secret;
    auth_key_t *keys;
    size_t nkeys;
    char *aud;                /* jwt-aud, NULL = any */
    size_t aud_len;
    auth_jspath_t role_path;
    size_t cache_max_entries; /* from jwt-cache-max-entries / -lifetime */
    unsigned cache_max_lifetime_s;
};

/* Fills v->keys from jwt-secret's value (jwk.c). Same error contract as
 * auth_jwt_config_create. */
int auth_keys_load(auth_jwt_t *v, const char *secret, bool is_base64, char *err,
                   size_t errlen) CORE_WUR;
void auth_key_clear(auth_key_t *k);

/* auth_jwt_verify with an explicit wall clock (seconds since the epoch), for tests. */
int auth_jwt_verify_at(const auth_jwt_t *v, auth_cache_t *cache, str_t authorization,
                       core_arena_t *a, auth_claims_t *out, core_err_t *err,
                       int64_t now) CORE_WUR;

/* ---- base64 ----------------------------------------------------------------------------
 * AUTH_B64_URL: RFC 4648 §5 alphabet (-_); AUTH_B64_STD: §4 alphabet (+/); both may be set.
 * Without AUTH_B64_PAD_OK, any '=' is an error (JWS compact form: RFC 7515 §2). Non-zero
 * trailing bits and a length of 4n+1 are always errors, so every byte string has exactly
 * one accepted encoding. out must hold auth_b64_max(in.len) bytes. */
enum { AUTH_B64_URL = 1, AUTH_B64_STD = 2, AUTH_B64_PAD_OK = 4 };
static inline size_t auth_b64_max(size_t n) { return n / 4 * 3 + 2; }
int auth_b64_decode(str_t in, unsigned flags, unsigned char *out, size_t *outlen) CORE_WUR;

/* ---- cache internals (cache.c) ------------------------------------------------------- */

typedef struct {
    const char *role;    /* NULL = anonymous */
    const char *claims;
    size_t claims_len;
    int64_t exp;         /* 0 = none */
} auth_cache_hit_t;

/* Looks token up; on a hit fills *hit (pointers valid until the next call on this cache)
 * and returns true. Entries past their exp (+ leeway) or lifetime are dropped here. */
bool auth_cache_lookup(auth_cache_t *c, const auth_jwt_t *v, str_t token, int64_t now,
                       auth_cache_hit_t *hit);
/* Stores a verified token; silently does nothing when out of memory or max_entries is 0. */
void auth_cache_insert(auth_cache_t *c, const auth_jwt_t *v, str_t token,
                       const auth_cache_hit_t *val, int64_t now);

#endif
