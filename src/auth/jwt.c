/*
 * Verifying a bearer token the way PostgREST does, on OpenSSL 3 and jansson.
 *
 *   "Bearer <token>"            scheme case-insensitive; another scheme → anonymous
 *   ─▶ size cap, cache lookup   (hit: re-check exp, copy role + claims into the arena)
 *   ─▶ split into 3 parts       strict base64url, no padding (RFC 7515 §2)
 *   ─▶ header: alg (+ kid)      alg must be one a configured key allows; "none" never is
 *   ─▶ candidate keys           kid equal, else keys without a kid; right type only
 *   ─▶ signature                HMAC (CRYPTO_memcmp) / EVP_DigestVerify on a cached EVP_PKEY
 *   ─▶ claims                   JSON object; exp, nbf, iat (30 s leeway), aud
 *   ─▶ role                     jwt-role-claim-key; absent → anonymous
 *
 * The message texts are PostgREST 13/14's (src/PostgREST/Error.hs), so clients and tests
 * that match on them keep working: decode/signature failures are PGRST301, claim failures
 * PGRST303, a missing secret PGRST300 (500). Nothing here blocks and nothing is shared
 * mutably: the verifier is read-only, the cache belongs to the calling thread.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/rsa.h>

#include "auth/auth_int.h"

/* Claim times are clamped to this so exp + leeway never overflows (year ~146 billion). */
#define TIME_CLAMP ((int64_t)1 << 62)
/* At most this many keys are tried for one token: bounds the work a bad token costs. */
#define AUTH_MAX_CANDIDATES 16

static atomic_uint_fast64_t next_verifier_id;

/* ---- verifier lifetime -------------------------------------------------------------- */

auth_jwt_t *auth_jwt_ref(auth_jwt_t *v)
{
    if (v) atomic_fetch_add(&v->refs, 1);
    return v;
}

void auth_jwt_free(auth_jwt_t *v)
{
    if (!v || atomic_fetch_sub(&v->refs, 1) != 1) return;
    for (size_t i = 0; i < v->nkeys; i++) auth_key_clear(&v->keys[i]);
    core_free(v->keys);
    core_free(v->aud);
    auth_jspath_free(&v->role_path);
    core_free(v);
}

bool auth_jwt_has_secret(const auth_jwt_t *v) { return v && v->has_secret; }

int auth_jwt_config_create(const core_config_t *cfg, auth_jwt_t **out, char *err, size_t errlen)
{
    char msg[160];
    int rc = CORE_ENOMEM;
    *out = NULL;
    if (err && errlen) err[0] = '\0';
    auth_jwt_t *v = core_calloc(1, sizeof(*v));
    if (!v) goto oom;
    atomic_init(&v->refs, 1);
    v->id = (uint64_t)atomic_fetch_add(&next_verifier_id, 1) + 1;

    const char *key = cfg->jwt_role_claim_key ? cfg->jwt_role_claim_key : ".role";
    rc = auth_jspath_parse(str_from_cstr(key), &v->role_path, msg, sizeof(msg));
    if (rc == CORE_ENOMEM) goto oom;
    if (rc != CORE_OK) {
        if (err && errlen && snprintf(err, errlen, "jwt-role-claim-key: %s", msg) < 0)
            err[0] = '\0';
        goto fail;
    }
    if (cfg->jwt_aud) {
        v->aud_len = strlen(cfg->jwt_aud);
        v->aud = core_strndup(cfg->jwt_aud, v->aud_len);
        if (!v->aud) goto oom;
    }
    /* jwt-cache-max-lifetime is PostgREST 12/13's switch (0 = off, N = cap); unset (-1)
     * it leaves the cache to jwt-cache-max-entries, PostgREST 14's. */
    v->cache_max_entries =
        cfg->jwt_cache_max_entries > 0 && cfg->jwt_cache_max_lifetime_s != 0
            ? (size_t)cfg->jwt_cache_max_entries
            : 0;
    v->cache_max_lifetime_s =
        cfg->jwt_cache_max_lifetime_s > 0 ? (unsigned)cfg->jwt_cache_max_lifetime_s : 0;
    if (cfg->jwt_secret) {
        rc = auth_keys_load(v, cfg->jwt_secret, cfg->jwt_secret_is_base64, err, errlen);
        if (rc != CORE_OK) goto fail;
        v->has_secret = true;
    }
    *out = v;
    return CORE_OK;
oom:
    rc = CORE_ENOMEM;
    if (err && errlen && snprintf(err, errlen, "jwt-secret: out of memory") < 0) err[0] = '\0';
fail:
    auth_jwt_free(v);
    return rc;
}

/* ---- errors ---------------------------------------------------------------------------- */

static const char MSG_EMPTY[] = "Empty JWT is sent in Authorization header";
static const char MSG_UNDECODABLE[] = "JWT couldn't be decoded";
static const char MSG_CRYPTO[] = "JWT cryptographic operation failed";
static const char MSG_ALG[] = "Wrong or unsupported encoding algorithm";
static const char MSG_KEY[] = "No suitable key or wrong key type";
static const char MSG_CLAIMS[] = "Parsing claims failed";

/* A 401 PGRST301 (decode) error; always CORE_EINVAL. */
static int decode_err(core_err_t *err, const char *message, const char *details)
{
    *err = core_err_make(401, "PGRST301", message, details ? str_from_cstr(details) : STR_NULL);
    return CORE_EINVAL;
}

/* A 401 PGRST303 (claims) error; always CORE_EINVAL. */
static int claims_err(core_err_t *err, const char *message)
{
    *err = core_err_make(401, "PGRST303", message, STR_NULL);
    return CORE_EINVAL;
}

static int oom_err(core_err_t *err)
{
    *err = core_err_make(503, "PGRST000", "Out of memory", STR_NULL);
    return CORE_ENOMEM;
}

core_err_t auth_err_anonymous_disabled(void)
{
    return core_err_make(401, "PGRST302", "Anonymous access is disabled", STR_NULL);
}

str_t auth_www_authenticate(core_arena_t *a, const core_err_t *e)
{
    if (!e || e->status != 401) return STR_NULL;
    if (!e->code || (strcmp(e->code, "PGRST301") != 0 && strcmp(e->code, "PGRST303") != 0))
        return STR_LIT("Bearer");
    static const char head[] = "Bearer error=\"invalid_token\", error_description=\"";
    size_t cap = sizeof(head) - 1 + 2 * e->message.len + 2;
    char *p = core_arena_alloc(a, cap);
    if (!p) return STR_NULL;
    size_t n = sizeof(head) - 1;
    memcpy(p, head, n);
    /* A quoted-string (RFC 9110 §5.6.4): escape " and \, and keep the header one line of
     * visible ASCII whatever the message holds. */
    for (size_t i = 0; i < e->message.len; i++) {
        unsigned char c = (unsigned char)e->message.ptr[i];
        if (c == '"' || c == '\\') p[n++] = '\\';
        p[n++] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
    }
    p[n++] = '"';
    p[n] = '\0';
    return (str_t){p, n};
}

/* ---- signatures ------------------------------------------------------------------------ */

static const EVP_MD *alg_md(auth_alg_t alg)
{
    switch (alg) {
    case AUTH_ALG_RS256:
    case AUTH_ALG_PS256:
    case AUTH_ALG_ES256: return EVP_sha256();
    case AUTH_ALG_RS384:
    case AUTH_ALG_PS384:
    case AUTH_ALG_ES384: return EVP_sha384();
    case AUTH_ALG_RS512:
    case AUTH_ALG_PS512:
    case AUTH_ALG_ES512: return EVP_sha512();
    default: return NULL;
    }
}

static bool verify_hmac(const auth_key_t *k, auth_alg_t alg, str_t input,
                        const unsigned char *sig, size_t siglen)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t maclen = 0;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup(k->hmac[alg - AUTH_ALG_HS256]);
    bool ok = ctx && EVP_MAC_update(ctx, (const unsigned char *)input.ptr, input.len) &&
              EVP_MAC_final(ctx, mac, &maclen, sizeof(mac)) && maclen == siglen &&
              CRYPTO_memcmp(mac, sig, siglen) == 0;
    EVP_MAC_CTX_free(ctx);
    OPENSSL_cleanse(mac, sizeof(mac));
    return ok;
}

/* JWS carries ECDSA signatures as raw r||s (RFC 7518 §3.4); OpenSSL wants DER. */
static int ecdsa_der(const auth_key_t *k, const unsigned char *sig, size_t siglen,
                     unsigned char *der, size_t dercap, size_t *derlen)
{
    if (siglen != 2 * k->ec_len) return CORE_EINVAL;
    int rc = CORE_EINVAL;
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, (int)k->ec_len, NULL);
    BIGNUM *s = BN_bin2bn(sig + k->ec_len, (int)k->ec_len, NULL);
    if (!es || !r || !s || !ECDSA_SIG_set0(es, r, s)) {
        BN_free(r);
        BN_free(s);
        goto out;
    }
    int n = i2d_ECDSA_SIG(es, NULL);
    if (n <= 0 || (size_t)n > dercap) goto out;
    unsigned char *p = der;
    if (i2d_ECDSA_SIG(es, &p) != n) goto out;
    *derlen = (size_t)n;
    rc = CORE_OK;
out:
    ECDSA_SIG_free(es);
    return rc;
}

static bool verify_pkey(const auth_key_t *k, auth_alg_t alg, str_t input,
                        const unsigned char *sig, size_t siglen)
{
    unsigned char der[2 * 66 + 16];
    if (k->kty == AUTH_KTY_EC) {
        size_t dlen;
        if (ecdsa_der(k, sig, siglen, der, sizeof(der), &dlen) != CORE_OK) return false;
        sig = der;
        siglen = dlen;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    bool ok = ctx && EVP_DigestVerifyInit(ctx, &pctx, alg_md(alg), NULL, k->pkey) == 1;
    if (ok && alg >= AUTH_ALG_PS256 && alg <= AUTH_ALG_PS512)
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) > 0;
    ok = ok && EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)input.ptr,
                                input.len) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

static bool verify_sig(const auth_key_t *k, auth_alg_t alg, str_t input,
                       const unsigned char *sig, size_t siglen)
{
    bool ok = k->kty == AUTH_KTY_OCT ? verify_hmac(k, alg, input, sig, siglen)
                                     : verify_pkey(k, alg, input, sig, siglen);
    /* A failed verify leaves entries on this thread's OpenSSL error queue; drop them so
     * the queue does not grow with every bad token. */
    if (!ok) ERR_clear_error();
    return ok;
}

/* ---- claims ----------------------------------------------------------------------------- */

/* A NumericDate claim: 0 absent (or null, as PostgREST), 1 present, -1 not a number. */
static int claim_time(json_t *claims, const char *name, int64_t *out)
{
    json_t *x = json_object_get(claims, name);
    if (!x || json_is_null(x)) return 0;
    if (!json_is_number(x)) return -1;
    double d = floor(json_number_value(x));
    if (d > (double)TIME_CLAMP) *out = TIME_CLAMP;
    else if (d < -(double)TIME_CLAMP) *out = -TIME_CLAMP;
    else *out = (int64_t)d;
    return 1;
}

static bool aud_equals(const auth_jwt_t *v, json_t *s)
{
    return !v->aud || (json_string_length(s) == v->aud_len &&
                       memcmp(json_string_value(s), v->aud, v->aud_len) == 0);
}

/* PostgREST's rules, in its order: the first failing claim is reported. */
static int check_claims(const auth_jwt_t *v, json_t *claims, int64_t now, int64_t *exp,
                        core_err_t *err)
{
    int64_t t = 0;
    int r = claim_time(claims, "exp", &t);
    if (r < 0) return claims_err(err, "The JWT 'exp' claim must be a number");
    if (r > 0 && now - AUTH_JWT_LEEWAY_S > t) return claims_err(err, "JWT expired");
    /* A present exp of exactly 0 is already expired above, so 0 can mean "none". */
    *exp = r > 0 ? t : 0;
    r = claim_time(claims, "nbf", &t);
    if (r < 0) return claims_err(err, "The JWT 'nbf' claim must be a number");
    if (r > 0 && now + AUTH_JWT_LEEWAY_S < t) return claims_err(err, "JWT not yet valid");
    r = claim_time(claims, "iat", &t);
    if (r < 0) return claims_err(err, "The JWT 'iat' claim must be a number");
    if (r > 0 && now + AUTH_JWT_LEEWAY_S < t) return claims_err(err, "JWT issued at future");

    json_t *aud = json_object_get(claims, "aud");
    if (!aud || json_is_null(aud)) return CORE_OK;
    if (json_is_string(aud)) return aud_equals(v, aud) ? CORE_OK : claims_err(err, "JWT not in audience");
    if (!json_is_array(aud))
        return claims_err(err, "The JWT 'aud' claim must be a string or an array of strings");
    size_t i;
    json_t *el;
    bool match = json_array_size(aud) == 0;
    json_array_foreach(aud, i, el) {
        if (!json_is_string(el))
            return claims_err(err, "The JWT 'aud' claim must be a string or an array of strings");
        if (aud_equals(v, el)) match = true;
    }
    return match ? CORE_OK : claims_err(err, "JWT not in audience");
}

/* The role as SET ROLE will get it: a string as is, anything else as compact JSON
 * (PostgREST's rule; such a role normally fails later as unknown). NULL value = anonymous.
 * Returns CORE_ENOMEM or CORE_OK. */
static int role_text(core_arena_t *a, json_t *val, const char **out)
{
    *out = NULL;
    if (!val) return CORE_OK;
    if (json_is_string(val)) {
        *out = core_arena_strdup(a, (str_t){json_string_value(val), json_string_length(val)});
        return *out ? CORE_OK : CORE_ENOMEM;
    }
    /* Claims holding a huge integer are parsed with every number as a real: print
     * integral values the way they were most likely written. */
    if (json_is_real(val)) {
        double d = json_real_value(val);
        if (d == floor(d) && fabs(d) < 9007199254740992.0) {
            char num[32];
            int n = snprintf(num, sizeof(num), "%.0f", d);
            if (n > 0 && (size_t)n < sizeof(num)) {
                *out = core_arena_strdup(a, (str_t){num, (size_t)n});
                return *out ? CORE_OK : CORE_ENOMEM;
            }
        }
    }
    char *s = json_dumps(val, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(17));
    if (!s) return CORE_ENOMEM;
    *out = core_arena_strdup(a, str_from_cstr(s));
    free(s); /* jansson allocates with malloc unless told otherwise */
    return *out ? CORE_OK : CORE_ENOMEM;
}

/* ---- verify ------------------------------------------------------------------------------ */

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static void set_anonymous(auth_claims_t *out)
{
    memset(out, 0, sizeof(*out));
    out->claims_json = "{}";
    out->claims_len = 2;
}

static int from_cache(core_arena_t *a, const auth_cache_hit_t *hit, auth_claims_t *out,
                      core_err_t *err)
{
    out->role = NULL;
    if (hit->role && !(out->role = core_arena_strdup(a, str_from_cstr(hit->role))))
        return oom_err(err);
    char *cl = core_arena_strdup(a, (str_t){hit->claims, hit->claims_len});
    if (!cl) return oom_err(err);
    out->claims_json = cl;
    out->claims_len = hit->claims_len;
    out->exp = hit->exp;
    out->cached = true;
    return CORE_OK;
}

/* "Expected 3 parts in JWT; got N", in the arena (or without N when memory is short). */
static int parts_err(core_arena_t *a, size_t nparts, core_err_t *err)
{
    char *m = core_arena_alloc(a, 64);
    int n = m ? snprintf(m, 64, "Expected 3 parts in JWT; got %zu", nparts) : -1;
    *err = core_err_make(401, "PGRST301", "Expected 3 parts in JWT", STR_NULL);
    if (n > 0 && n < 64) err->message = (str_t){m, (size_t)n};
    return CORE_EINVAL;
}

/* Parses the header into *alg and, when there is one, *kid (copied into the arena). */
static int parse_header(core_arena_t *a, const unsigned char *h, size_t hlen, int *alg,
                        bool *has_kid, str_t *kid, core_err_t *err)
{
    json_error_t jerr;
    int rc = CORE_EINVAL;
    json_t *hdr = json_loadb((const char *)h, hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!hdr || !json_is_object(hdr)) {
        rc = decode_err(err, MSG_CRYPTO, NULL);
        goto out;
    }
    json_t *jalg = json_object_get(hdr, "alg");
    json_t *jkid = json_object_get(hdr, "kid");
    if (!json_is_string(jalg) || (jkid && !json_is_string(jkid))) {
        rc = decode_err(err, MSG_CRYPTO, NULL);
        goto out;
    }
    str_t name = {json_string_value(jalg), json_string_length(jalg)};
    if (str_eq(name, STR_LIT("none"))) {
        rc = decode_err(err, MSG_ALG, "JWT is unsecured but expected 'alg' was not 'none'");
        goto out;
    }
    *alg = auth_alg_from_name(name);
    if (*alg < 0) {
        rc = decode_err(err, MSG_ALG, NULL);
        goto out;
    }
    /* We implement no JWS extension, so any "crit" is one we must refuse (RFC 7515
     * §4.1.11); that also rules out unencoded payloads (RFC 7797). */
    if (json_object_get(hdr, "crit")) {
        rc = decode_err(err, MSG_ALG, "Unsupported critical header parameter");
        goto out;
    }
    *has_kid = jkid != NULL;
    if (jkid) {
        kid->len = json_string_length(jkid);
        kid->ptr = core_arena_strdup(a, (str_t){json_string_value(jkid), kid->len});
        if (!kid->ptr) {
            rc = oom_err(err);
            goto out;
        }
    }
    rc = CORE_OK;
out:
    json_decref(hdr);
    return rc;
}

static bool kid_matches(const auth_key_t *k, str_t kid)
{
    return k->kid && k->kid_len == kid.len && memcmp(k->kid, kid.ptr, kid.len) == 0;
}

int auth_jwt_verify_at(const auth_jwt_t *v, auth_cache_t *cache, str_t authorization,
                       core_arena_t *a, auth_claims_t *out, core_err_t *err, int64_t now)
{
    json_t *claims = NULL;
    int rc;
    memset(err, 0, sizeof(*err));
    set_anonymous(out);

    /* "Bearer" SP token, as wai's extractBearerAuth: the scheme is the text up to the
     * first white space; anything but bearer is not ours. */
    str_t h = authorization;
    size_t i = 0;
    while (i < h.len && !is_space(h.ptr[i])) i++;
    if (!str_eq_nocase((str_t){h.ptr, i}, STR_LIT("bearer"))) return CORE_OK;
    while (i < h.len && is_space(h.ptr[i])) i++;
    str_t token = {h.ptr + i, h.len - i};
    while (token.len && is_space(token.ptr[token.len - 1])) token.len--;

    if (!v || !v->has_secret) {
        *err = core_err_make(500, "PGRST300", "Server lacks JWT secret", STR_NULL);
        return CORE_EINVAL;
    }
    if (token.len == 0) return decode_err(err, MSG_EMPTY, NULL);
    if (token.len > AUTH_JWT_MAX_BYTES)
        return decode_err(err, MSG_UNDECODABLE, "The JWT is longer than 16384 bytes");

    auth_cache_hit_t hit;
    if (auth_cache_lookup(cache, v, token, now, &hit)) return from_cache(a, &hit, out, err);

    /* header.payload.signature */
    size_t dot[2], ndots = 0;
    for (size_t j = 0; j < token.len; j++) {
        if (token.ptr[j] != '.') continue;
        if (ndots < 2) dot[ndots] = j;
        ndots++;
    }
    if (ndots != 2) return parts_err(a, ndots + 1, err);
    str_t h64 = {token.ptr, dot[0]};
    str_t p64 = {token.ptr + dot[0] + 1, dot[1] - dot[0] - 1};
    str_t s64 = {token.ptr + dot[1] + 1, token.len - dot[1] - 1};
    str_t signing_input = {token.ptr, dot[1]};

    size_t hcap = auth_b64_max(h64.len), pcap = auth_b64_max(p64.len);
    unsigned char *buf = core_arena_alloc(a, hcap + pcap + auth_b64_max(s64.len) + 1);
    if (!buf) return oom_err(err);
    unsigned char *hb = buf, *pb = buf + hcap, *sb = buf + hcap + pcap;
    size_t hlen, plen, slen;
    if (auth_b64_decode(h64, AUTH_B64_URL, hb, &hlen) != CORE_OK)
        return decode_err(err, MSG_CRYPTO, NULL);
    str_t kid = STR_NULL;
    bool has_kid = false;
    int alg = -1;
    if ((rc = parse_header(a, hb, hlen, &alg, &has_kid, &kid, err)) != CORE_OK) return rc;

    /* Keys that may verify this alg: a kid picks keys with that kid, or failing those,
     * keys that have none (a plain secret has none). The type check is what stops an
     * HS256 token from being "verified" with an RSA key's public bytes. */
    const auth_key_t *cand[AUTH_MAX_CANDIDATES];
    size_t ncand = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t k = 0; k < v->nkeys && ncand < AUTH_MAX_CANDIDATES; k++) {
            const auth_key_t *key = &v->keys[k];
            if (!(key->algs & AUTH_ALG_BIT(alg))) continue;
            if (!has_kid || (pass == 0 ? kid_matches(key, kid) : key->kid == NULL))
                cand[ncand++] = key;
        }
        if (ncand || !has_kid) break;
    }
    if (ncand == 0) return decode_err(err, MSG_KEY, "No suitable key was found to decode the JWT");

    if (auth_b64_decode(p64, AUTH_B64_URL, pb, &plen) != CORE_OK ||
        auth_b64_decode(s64, AUTH_B64_URL, sb, &slen) != CORE_OK)
        return decode_err(err, MSG_CRYPTO, NULL);
    bool verified = false;
    for (size_t k = 0; k < ncand && !verified; k++)
        verified = verify_sig(cand[k], (auth_alg_t)alg, signing_input, sb, slen);
    if (!verified) return decode_err(err, MSG_KEY, "None of the keys was able to decode the JWT");

    /* Only now is the payload trusted enough to parse. An integer beyond 64 bits anywhere
     * in the claims must not make a valid token fail: then read every number as a real. */
    json_error_t jerr;
    claims = json_loadb((const char *)pb, plen, JSON_REJECT_DUPLICATES, &jerr);
    if (!claims && json_error_code(&jerr) == json_error_numeric_overflow)
        claims = json_loadb((const char *)pb, plen,
                            JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, &jerr);
    if (!claims || !json_is_object(claims)) {
        rc = claims_err(err, MSG_CLAIMS);
        goto out;
    }
    int64_t exp = 0;
    if ((rc = check_claims(v, claims, now, &exp, err)) != CORE_OK) goto out;
    const char *role;
    if (role_text(a, auth_jspath_eval(&v->role_path, claims), &role) != CORE_OK) {
        rc = oom_err(err);
        goto out;
    }
    /* request.jwt.claims gets the payload exactly as signed: it is a JSON object (just
     * parsed), and passing it through keeps numbers jansson could only approximate. */
    char *cl = core_arena_strdup(a, (str_t){(const char *)pb, plen});
    if (!cl) {
        rc = oom_err(err);
        goto out;
    }
    out->role = role;
    out->claims_json = cl;
    out->claims_len = plen;
    out->exp = exp;
    auth_cache_hit_t val = {.role = role, .claims = cl, .claims_len = plen, .exp = exp};
    auth_cache_insert(cache, v, token, &val, now);
    rc = CORE_OK;
out:
    json_decref(claims);
    if (rc != CORE_OK) set_anonymous(out);
    return rc;
}

int auth_jwt_verify(const auth_jwt_t *v, auth_cache_t *cache, str_t authorization,
                    core_arena_t *a, auth_claims_t *out, core_err_t *err)
{
    return auth_jwt_verify_at(v, cache, authorization, a, out, err, (int64_t)time(NULL));
}
