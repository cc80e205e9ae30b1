/*
 * jwt-secret → verification keys. Runs once per config generation, before the loops (it may
 * read a file). The value is, after "@file" and jwt-secret-is-base64 are applied:
 *   - a JSON object with "keys": a JWKS; keys Strata cannot use (encryption keys, unknown
 *     kty/crv/alg) are skipped with a warning, as an IdP's set often carries some;
 *   - any other JSON object: one JWK, which must be usable;
 *   - anything else: an HMAC secret of at least 32 bytes (PostgREST's rule), good for
 *     HS256/384/512.
 * Every key records the algorithms it may verify (from kty and crv, narrowed by its "alg"),
 * which is what keeps a token from choosing its own algorithm: an HS256 token is never
 * checked against an RSA key's bytes. Public keys become EVP_PKEYs here, once, so a verify
 * never parses key material; HMAC keys become keyed EVP_MAC contexts that verify duplicates.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/param_build.h>

#include "auth/auth_int.h"

#define SECRET_MAX_BYTES ((size_t)1 << 20)
#define HMAC_MIN_BYTES 32
#define RSA_MIN_BITS 1024
#define RSA_WARN_BITS 2048

static const char *const alg_names[AUTH_ALG_COUNT] = {
    [AUTH_ALG_HS256] = "HS256", [AUTH_ALG_HS384] = "HS384", [AUTH_ALG_HS512] = "HS512",
    [AUTH_ALG_RS256] = "RS256", [AUTH_ALG_RS384] = "RS384", [AUTH_ALG_RS512] = "RS512",
    [AUTH_ALG_PS256] = "PS256", [AUTH_ALG_PS384] = "PS384", [AUTH_ALG_PS512] = "PS512",
    [AUTH_ALG_ES256] = "ES256", [AUTH_ALG_ES384] = "ES384", [AUTH_ALG_ES512] = "ES512",
    [AUTH_ALG_EDDSA] = "EdDSA",
};

int auth_alg_from_name(str_t name)
{
    for (int i = 0; i < AUTH_ALG_COUNT; i++)
        if (str_eq(name, str_from_cstr(alg_names[i]))) return i;
    return -1;
}

const char *auth_alg_name(auth_alg_t alg)
{
    return (unsigned)alg < AUTH_ALG_COUNT ? alg_names[alg] : "?";
}

/* ---- base64 ------------------------------------------------------------------------- */

static int b64_value(unsigned char c, unsigned flags)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (flags & AUTH_B64_URL) {
        if (c == '-') return 62;
        if (c == '_') return 63;
    }
    if (flags & AUTH_B64_STD) {
        if (c == '+') return 62;
        if (c == '/') return 63;
    }
    return -1;
}

int auth_b64_decode(str_t in, unsigned flags, unsigned char *out, size_t *outlen)
{
    size_t n = in.len;
    if (flags & AUTH_B64_PAD_OK) {
        size_t pad = 0;
        while (n > 0 && pad < 2 && in.ptr[n - 1] == '=') {
            n--;
            pad++;
        }
        if (pad && in.len % 4 != 0) return CORE_EINVAL;
    }
    if (n % 4 == 1) return CORE_EINVAL;
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int val = b64_value((unsigned char)in.ptr[i], flags);
        if (val < 0) return CORE_EINVAL;
        acc = (acc << 6) | (uint32_t)val;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* The 2 or 4 bits left over must be zero: one encoding per byte string. */
    if (acc != 0) return CORE_EINVAL;
    *outlen = o;
    return CORE_OK;
}

/* ---- small helpers ------------------------------------------------------------------ */

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

void auth_key_clear(auth_key_t *k)
{
    core_free(k->kid);
    for (size_t i = 0; i < 3; i++) EVP_MAC_CTX_free(k->hmac[i]);
    EVP_PKEY_free(k->pkey);
    memset(k, 0, sizeof(*k));
}

/* ---- key construction ---------------------------------------------------------------- */

static int oct_key(auth_key_t *k, const unsigned char *secret, size_t len)
{
    /* OSSL_PARAM wants a char *; OpenSSL only reads it. */
    static char digests[3][8] = {"SHA256", "SHA384", "SHA512"};
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (!mac) return CORE_ENOMEM;
    int rc = CORE_OK;
    for (size_t i = 0; i < 3; i++) {
        OSSL_PARAM params[2];
        params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digests[i], 0);
        params[1] = OSSL_PARAM_construct_end();
        EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
        if (!ctx || !EVP_MAC_init(ctx, secret, len, params)) {
            EVP_MAC_CTX_free(ctx);
            rc = CORE_ENOMEM;
            break;
        }
        k->hmac[i] = ctx;
    }
    EVP_MAC_free(mac);
    k->kty = AUTH_KTY_OCT;
    k->algs = AUTH_ALGS_HS;
    return rc;
}

static int rsa_key(auth_key_t *k, const unsigned char *n, size_t nlen, const unsigned char *e,
                   size_t elen, char *msg, size_t msglen)
{
    int rc = CORE_ENOMEM;
    BIGNUM *bn = BN_bin2bn(n, (int)nlen, NULL);
    BIGNUM *be = BN_bin2bn(e, (int)elen, NULL);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    if (!bn || !be || !bld) goto out;
    int bits = BN_num_bits(bn);
    if (bits < RSA_MIN_BITS || BN_is_zero(be) || !BN_is_odd(be) || BN_is_one(be)) {
        rc = CORE_EINVAL;
        core_errf(msg, msglen, "not a usable RSA public key (%d-bit modulus; %d bits at least)",
                bits, RSA_MIN_BITS);
        goto out;
    }
    if (!OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be))
        goto out;
    params = OSSL_PARAM_BLD_to_param(bld);
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    if (!params || !ctx) goto out;
    if (EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &k->pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
        rc = CORE_EINVAL;
        core_errf(msg, msglen, "not a usable RSA public key");
        goto out;
    }
    if (bits < RSA_WARN_BITS)
        LOG_WARN("jwt-secret: an RSA key has a %d-bit modulus; 2048 bits or more is advised",
                 bits);
    k->kty = AUTH_KTY_RSA;
    k->algs = AUTH_ALGS_RSA;
    rc = CORE_OK;
out:
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);
    return rc;
}

static int ec_key(auth_key_t *k, const char *group, size_t clen, const unsigned char *x,
                  size_t xlen, const unsigned char *y, size_t ylen, char *msg, size_t msglen)
{
    unsigned char point[1 + 2 * 66];
    if (xlen == 0 || ylen == 0 || xlen > clen || ylen > clen) {
        core_errf(msg, msglen, "\"x\" and \"y\" must be %zu bytes for %s", clen, group);
        return CORE_EINVAL;
    }
    /* Uncompressed SEC1 point; short coordinates (a leading zero dropped by a lenient
     * encoder) are padded back to full size. */
    memset(point, 0, sizeof(point));
    point[0] = 0x04;
    memcpy(point + 1 + (clen - xlen), x, xlen);
    memcpy(point + 1 + clen + (clen - ylen), y, ylen);

    int rc = CORE_ENOMEM;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL, *check = NULL;
    if (!bld || !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * clen))
        goto out;
    params = OSSL_PARAM_BLD_to_param(bld);
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (!params || !ctx) goto out;
    rc = CORE_EINVAL;
    if (EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &k->pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
        core_errf(msg, msglen, "not a point on %s", group);
        goto out;
    }
    check = EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL);
    if (!check || EVP_PKEY_public_check(check) != 1) {
        core_errf(msg, msglen, "not a valid public key on %s", group);
        goto out;
    }
    k->kty = AUTH_KTY_EC;
    k->ec_len = clen;
    rc = CORE_OK;
out:
    EVP_PKEY_CTX_free(check);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    return rc;
}

/* A base64url member of a JWK, decoded into *out (core_malloc'd; the caller frees). */
static int jwk_bytes(json_t *o, const char *name, unsigned char **out, size_t *len, char *msg,
                     size_t msglen)
{
    json_t *m = json_object_get(o, name);
    *out = NULL;
    if (!m) {
        core_errf(msg, msglen, "\"%s\" is missing", name);
        return CORE_EINVAL;
    }
    if (!json_is_string(m)) {
        core_errf(msg, msglen, "\"%s\" must be a string", name);
        return CORE_EINVAL;
    }
    str_t s = {json_string_value(m), json_string_length(m)};
    *out = core_malloc(auth_b64_max(s.len));
    if (!*out) {
        core_errf(msg, msglen, "out of memory");
        return CORE_ENOMEM;
    }
    if (auth_b64_decode(s, AUTH_B64_URL | AUTH_B64_PAD_OK, *out, len) != CORE_OK) {
        core_free(*out);
        *out = NULL;
        core_errf(msg, msglen, "\"%s\" is not valid base64url", name);
        return CORE_EINVAL;
    }
    return CORE_OK;
}

static void free_secret(unsigned char *p, size_t len)
{
    if (p) OPENSSL_cleanse(p, len);
    core_free(p);
}

/* One JWK into *k. CORE_ENOTFOUND: a well-formed key Strata does not verify with (skipped
 * in a set); CORE_EINVAL: a broken key; msg says which. */
static int parse_jwk(json_t *o, auth_key_t *k, char *msg, size_t msglen)
{
    unsigned char *a = NULL, *b = NULL;
    size_t alen = 0, blen = 0;
    char smp[48];
    int rc = CORE_EINVAL;
    memset(k, 0, sizeof(*k));
    if (!json_is_object(o)) {
        core_errf(msg, msglen, "a JWK must be a JSON object");
        return CORE_EINVAL;
    }
    json_t *kty = json_object_get(o, "kty");
    json_t *use = json_object_get(o, "use");
    json_t *kid = json_object_get(o, "kid");
    json_t *jalg = json_object_get(o, "alg");
    json_t *crv = json_object_get(o, "crv");
    if (!json_is_string(kty)) {
        core_errf(msg, msglen, "\"kty\" is missing or not a string");
        return CORE_EINVAL;
    }
    if ((kid && !json_is_string(kid)) || (use && !json_is_string(use)) ||
        (jalg && !json_is_string(jalg)) || (crv && !json_is_string(crv))) {
        core_errf(msg, msglen, "\"kid\", \"use\", \"alg\" and \"crv\" must be strings");
        return CORE_EINVAL;
    }
    if (use && strcmp(json_string_value(use), "sig") != 0) {
        core_errf(msg, msglen, "not a signature key (\"use\": \"%s\")",
                core_sample(str_from_cstr(json_string_value(use)), smp, sizeof(smp)));
        return CORE_ENOTFOUND;
    }
    int alg = -1;
    if (jalg) {
        alg = auth_alg_from_name((str_t){json_string_value(jalg), json_string_length(jalg)});
        if (alg < 0) {
            core_errf(msg, msglen, "unsupported \"alg\" \"%s\"",
                    core_sample(str_from_cstr(json_string_value(jalg)), smp, sizeof(smp)));
            return CORE_ENOTFOUND;
        }
    }
    const char *t = json_string_value(kty);
    const char *c = crv ? json_string_value(crv) : "";
    if (strcmp(t, "oct") == 0) {
        if ((rc = jwk_bytes(o, "k", &a, &alen, msg, msglen)) != CORE_OK) goto out;
        if (alen < HMAC_MIN_BYTES) {
            rc = CORE_EINVAL;
            core_errf(msg, msglen, "\"k\" must be at least %d bytes", HMAC_MIN_BYTES);
            goto out;
        }
        rc = oct_key(k, a, alen);
        if (rc != CORE_OK) core_errf(msg, msglen, "out of memory");
    } else if (strcmp(t, "RSA") == 0) {
        if ((rc = jwk_bytes(o, "n", &a, &alen, msg, msglen)) != CORE_OK ||
            (rc = jwk_bytes(o, "e", &b, &blen, msg, msglen)) != CORE_OK)
            goto out;
        rc = rsa_key(k, a, alen, b, blen, msg, msglen);
    } else if (strcmp(t, "EC") == 0) {
        static const struct {
            const char *crv;
            size_t len;
            auth_alg_t alg;
        } curves[] = {{"P-256", 32, AUTH_ALG_ES256},
                      {"P-384", 48, AUTH_ALG_ES384},
                      {"P-521", 66, AUTH_ALG_ES512}};
        size_t i = 0;
        while (i < 3 && strcmp(c, curves[i].crv) != 0) i++;
        if (i == 3) {
            rc = CORE_ENOTFOUND;
            core_errf(msg, msglen, "unsupported EC curve \"%s\"",
                    core_sample(str_from_cstr(c), smp, sizeof(smp)));
            goto out;
        }
        if ((rc = jwk_bytes(o, "x", &a, &alen, msg, msglen)) != CORE_OK ||
            (rc = jwk_bytes(o, "y", &b, &blen, msg, msglen)) != CORE_OK)
            goto out;
        rc = ec_key(k, curves[i].crv, curves[i].len, a, alen, b, blen, msg, msglen);
        k->algs = AUTH_ALG_BIT(curves[i].alg);
    } else if (strcmp(t, "OKP") == 0) {
        size_t want = strcmp(c, "Ed25519") == 0 ? 32 : strcmp(c, "Ed448") == 0 ? 57 : 0;
        if (!want) {
            rc = CORE_ENOTFOUND;
            core_errf(msg, msglen, "unsupported OKP curve \"%s\"",
                    core_sample(str_from_cstr(c), smp, sizeof(smp)));
            goto out;
        }
        if ((rc = jwk_bytes(o, "x", &a, &alen, msg, msglen)) != CORE_OK) goto out;
        if (alen != want) {
            rc = CORE_EINVAL;
            core_errf(msg, msglen, "\"x\" must be %zu bytes for %s", want, c);
            goto out;
        }
        k->pkey = EVP_PKEY_new_raw_public_key_ex(NULL, want == 32 ? "ED25519" : "ED448", NULL,
                                                 a, alen);
        if (!k->pkey) {
            rc = CORE_EINVAL;
            core_errf(msg, msglen, "not a usable %s public key", c);
            goto out;
        }
        k->kty = AUTH_KTY_OKP;
        k->algs = AUTH_ALG_BIT(AUTH_ALG_EDDSA);
        rc = CORE_OK;
    } else {
        rc = CORE_ENOTFOUND;
        core_errf(msg, msglen, "unsupported \"kty\" \"%s\"", core_sample(str_from_cstr(t), smp, sizeof(smp)));
    }
    if (rc != CORE_OK) goto out;
    if (alg >= 0) {
        if (!(k->algs & AUTH_ALG_BIT(alg))) {
            rc = CORE_EINVAL;
            core_errf(msg, msglen, "\"alg\" %s does not fit a \"%s\" key", alg_names[alg], t);
            goto out;
        }
        k->algs = AUTH_ALG_BIT(alg);
    }
    if (kid) {
        k->kid_len = json_string_length(kid);
        k->kid = core_strndup(json_string_value(kid), k->kid_len);
        if (!k->kid) {
            rc = CORE_ENOMEM;
            core_errf(msg, msglen, "out of memory");
        }
    }
out:
    free_secret(a, alen);
    core_free(b);
    if (rc != CORE_OK) auth_key_clear(k);
    ERR_clear_error();
    return rc;
}

static int load_json(auth_jwt_t *v, json_t *root, char *err, size_t errlen)
{
    char msg[160], smp[48];
    json_t *keys = json_object_get(root, "keys");
    if (!keys) {
        v->keys = core_calloc(1, sizeof(auth_key_t));
        if (!v->keys) {
            core_errf(err, errlen, "jwt-secret: out of memory");
            return CORE_ENOMEM;
        }
        int rc = parse_jwk(root, &v->keys[0], msg, sizeof(msg));
        if (rc != CORE_OK) {
            core_errf(err, errlen, "jwt-secret: %s JWK: %s",
                    rc == CORE_ENOTFOUND ? "unsupported" : "invalid", msg);
            return rc == CORE_ENOMEM ? CORE_ENOMEM : CORE_EINVAL;
        }
        v->nkeys = 1;
        return CORE_OK;
    }
    if (!json_is_array(keys)) {
        core_errf(err, errlen, "jwt-secret: the JWKS member \"keys\" must be an array");
        return CORE_EINVAL;
    }
    size_t n = json_array_size(keys);
    v->keys = core_calloc(n ? n : 1, sizeof(auth_key_t));
    if (!v->keys) {
        core_errf(err, errlen, "jwt-secret: out of memory");
        return CORE_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *jk = json_array_get(keys, i);
        int rc = parse_jwk(jk, &v->keys[v->nkeys], msg, sizeof(msg));
        if (rc == CORE_ENOTFOUND) {
            json_t *kid = json_object_get(jk, "kid");
            LOG_WARN("jwt-secret: JWKS key %zu (kid \"%s\") is skipped: %s", i,
                     json_is_string(kid) ? core_sample(str_from_cstr(json_string_value(kid)), smp,
                                                  sizeof(smp))
                                         : "",
                     msg);
            continue;
        }
        if (rc != CORE_OK) {
            core_errf(err, errlen, "jwt-secret: JWKS key %zu: %s", i, msg);
            return rc == CORE_ENOMEM ? CORE_ENOMEM : CORE_EINVAL;
        }
        v->nkeys++;
    }
    if (v->nkeys == 0) {
        core_errf(err, errlen, "jwt-secret: the JWKS has no key Strata can verify signatures with");
        return CORE_EINVAL;
    }
    return CORE_OK;
}

static int read_file(const char *path, core_buf_t *out, char *err, size_t errlen)
{
    char smp[48], chunk[4096];
    str_t p = str_from_cstr(path);
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        core_errf(err, errlen, "jwt-secret: cannot open \"%s\": %s", core_sample(p, smp, sizeof(smp)),
                strerror(e));
        return CORE_EINVAL;
    }
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        core_buf_append(out, chunk, n);
        if (core_buf_status(out) != CORE_OK) break;
    }
    bool failed = ferror(f) != 0;
    fclose(f);
    OPENSSL_cleanse(chunk, sizeof(chunk));
    if (core_buf_status(out) == CORE_ELIMIT) {
        core_errf(err, errlen, "jwt-secret: \"%s\" is larger than 1 MiB",
                core_sample(p, smp, sizeof(smp)));
        return CORE_EINVAL;
    }
    if (core_buf_status(out) != CORE_OK) {
        core_errf(err, errlen, "jwt-secret: out of memory");
        return CORE_ENOMEM;
    }
    if (failed) {
        core_errf(err, errlen, "jwt-secret: cannot read \"%s\"", core_sample(p, smp, sizeof(smp)));
        return CORE_EINVAL;
    }
    return CORE_OK;
}

/* PostgREST's jwt-secret-is-base64: trimmed, either alphabet, '.' accepted as padding. */
static int decode_base64_secret(str_t text, unsigned char **out, size_t *outlen, char *err,
                                size_t errlen)
{
    while (text.len && is_space(text.ptr[0])) {
        text.ptr++;
        text.len--;
    }
    while (text.len && is_space(text.ptr[text.len - 1])) text.len--;
    char *copy = core_malloc(text.len + 1);
    *out = core_malloc(auth_b64_max(text.len));
    int rc = CORE_ENOMEM;
    if (!copy || !*out) {
        core_errf(err, errlen, "jwt-secret: out of memory");
        goto out;
    }
    for (size_t i = 0; i < text.len; i++) copy[i] = text.ptr[i] == '.' ? '=' : text.ptr[i];
    rc = auth_b64_decode((str_t){copy, text.len}, AUTH_B64_URL | AUTH_B64_STD | AUTH_B64_PAD_OK,
                         *out, outlen);
    if (rc != CORE_OK)
        core_errf(err, errlen, "jwt-secret: not valid base64 (jwt-secret-is-base64 is true)");
out:
    free_secret((unsigned char *)copy, text.len);
    if (rc != CORE_OK) {
        core_free(*out);
        *out = NULL;
    }
    return rc;
}

int auth_keys_load(auth_jwt_t *v, const char *secret, bool is_base64, char *err, size_t errlen)
{
    core_buf_t file;
    unsigned char *decoded = NULL;
    size_t declen = 0;
    json_t *root = NULL;
    int rc = CORE_OK;
    str_t text = str_from_cstr(secret);
    core_buf_init(&file, SECRET_MAX_BYTES);

    if (text.len > 0 && text.ptr[0] == '@') {
        if ((rc = read_file(secret + 1, &file, err, errlen)) != CORE_OK) goto out;
        text = core_buf_str(&file);
        /* PostgREST drops exactly one trailing newline, which editors add. */
        if (text.len && text.ptr[text.len - 1] == '\n') text.len--;
    }
    if (is_base64) {
        if ((rc = decode_base64_secret(text, &decoded, &declen, err, errlen)) != CORE_OK)
            goto out;
        text = (str_t){(const char *)decoded, declen};
    }
    if (text.len > SECRET_MAX_BYTES) {
        rc = CORE_EINVAL;
        core_errf(err, errlen, "jwt-secret: larger than 1 MiB");
        goto out;
    }

    size_t i = 0;
    while (i < text.len && is_space(text.ptr[i])) i++;
    if (i < text.len && text.ptr[i] == '{') {
        json_error_t jerr;
        root = json_loadb(text.ptr, text.len, JSON_REJECT_DUPLICATES, &jerr);
        if (json_is_object(root)) {
            rc = load_json(v, root, err, errlen);
            goto out;
        }
        /* PostgREST reads text that is not a JWK as an HMAC secret; say so, since a JWK
         * with a typo would otherwise fail every token without a hint why. */
        if (!root)
            LOG_WARN("jwt-secret: starts with '{' but is not JSON (%s, line %d); using it as "
                     "an HMAC secret",
                     jerr.text, jerr.line);
    }
    if (text.len < HMAC_MIN_BYTES) {
        rc = CORE_EINVAL;
        core_errf(err, errlen, "jwt-secret: the JWT secret must be at least %d characters long",
                HMAC_MIN_BYTES);
        goto out;
    }
    v->keys = core_calloc(1, sizeof(auth_key_t));
    if (!v->keys || oct_key(&v->keys[0], (const unsigned char *)text.ptr, text.len) != CORE_OK) {
        if (v->keys) auth_key_clear(&v->keys[0]);
        rc = CORE_ENOMEM;
        core_errf(err, errlen, "jwt-secret: out of memory");
        goto out;
    }
    v->nkeys = 1;
out:
    json_decref(root);
    free_secret(decoded, declen);
    if (file.ptr) OPENSSL_cleanse(file.ptr, file.len);
    core_buf_free(&file);
    ERR_clear_error();
    return rc;
}
