/*
 * JWT verification: every algorithm with keys generated here by OpenSSL (so JWKs are built
 * from real keys), PostgREST's own test vectors, the attacks (alg none, algorithm
 * confusion, kid games, tampering), claim timing with and without leeway, aud, role paths,
 * malformed tokens, the header scheme, the cache, config errors and allocation failures.
 *
 * STRATA_JWT_BENCH=1 also prints the cost of one verification (cached and not).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "auth/auth.h"
#include "auth/auth_int.h"
#include "test.h"

static const char *or_null(const char *p) { return p ? p : "(null)"; }
#define CHECK_CSTR(p, lit) CHECK_STR(str_from_cstr(or_null(p)), lit)

static const int64_t NOW = 1700000000;
static const char SECRET[] = "reallyreallyreallyreallyverysafe"; /* PostgREST's test secret */

/* ---- building tokens ------------------------------------------------------------------ */

static void b64url(const unsigned char *in, size_t n, core_buf_t *out)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        char q[4] = {tbl[v >> 18], tbl[(v >> 12) & 63], tbl[(v >> 6) & 63], tbl[v & 63]};
        core_buf_append(out, q, 4);
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        char q[2] = {tbl[v >> 18], tbl[(v >> 12) & 63]};
        core_buf_append(out, q, 2);
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        char q[3] = {tbl[v >> 18], tbl[(v >> 12) & 63], tbl[(v >> 6) & 63]};
        core_buf_append(out, q, 3);
    }
}

static void b64url_str(const char *s, core_buf_t *out)
{
    b64url((const unsigned char *)s, strlen(s), out);
}

typedef enum { SIGN_HMAC, SIGN_PKEY } sign_kind_t;

typedef struct {
    sign_kind_t kind;
    const EVP_MD *md;         /* NULL for EdDSA */
    const unsigned char *key; /* HMAC key */
    size_t keylen;
    EVP_PKEY *pkey;           /* private key */
    bool pss;
    size_t ec_len;            /* ECDSA: convert DER to raw r||s of 2*ec_len */
} signer_t;

static signer_t hs(const EVP_MD *md, const char *key)
{
    return (signer_t){SIGN_HMAC, md, (const unsigned char *)key, strlen(key), NULL, false, 0};
}

static signer_t pk(const EVP_MD *md, EVP_PKEY *p, bool pss, size_t ec_len)
{
    return (signer_t){SIGN_PKEY, md, NULL, 0, p, pss, ec_len};
}

/* "Bearer " + b64(header) + "." + b64(payload) + "." + b64(signature). Caller frees. */
static char *make_token(const char *header, const char *payload, signer_t s)
{
    core_buf_t t;
    core_buf_init(&t, 1 << 20);
    core_buf_append_cstr(&t, "Bearer ");
    size_t start = t.len;
    b64url_str(header, &t);
    core_buf_append_char(&t, '.');
    b64url_str(payload, &t);
    const unsigned char *input = (const unsigned char *)t.ptr + start;
    size_t inlen = t.len - start;
    unsigned char sig[1024];
    size_t siglen = sizeof(sig);
    if (s.kind == SIGN_HMAC) {
        unsigned int ml = 0;
        HMAC(s.md, s.key, (int)s.keylen, input, inlen, sig, &ml);
        siglen = ml;
    } else {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        EVP_PKEY_CTX *pctx = NULL;
        CHECK(EVP_DigestSignInit(ctx, &pctx, s.md, NULL, s.pkey) == 1);
        if (s.pss) {
            CHECK(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0);
            CHECK(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) > 0);
        }
        CHECK(EVP_DigestSign(ctx, sig, &siglen, input, inlen) == 1);
        EVP_MD_CTX_free(ctx);
        if (s.ec_len) {
            const unsigned char *p = sig;
            ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)siglen);
            CHECK(es != NULL);
            unsigned char raw[132];
            BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, (int)s.ec_len);
            BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + s.ec_len, (int)s.ec_len);
            ECDSA_SIG_free(es);
            memcpy(sig, raw, 2 * s.ec_len);
            siglen = 2 * s.ec_len;
        }
    }
    core_buf_append_char(&t, '.');
    b64url(sig, siglen, &t);
    CHECK_INT(core_buf_status(&t), CORE_OK);
    return t.ptr;
}

static char *hs256(const char *payload)
{
    return make_token("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payload, hs(EVP_sha256(), SECRET));
}

/* ---- keys and JWKs ----------------------------------------------------------------------- */

static void bn_b64(EVP_PKEY *p, const char *param, size_t pad, core_buf_t *out)
{
    BIGNUM *bn = NULL;
    CHECK(EVP_PKEY_get_bn_param(p, param, &bn) == 1);
    unsigned char bin[1024];
    int n = pad ? BN_bn2binpad(bn, bin, (int)pad) : BN_bn2bin(bn, bin);
    b64url(bin, (size_t)n, out);
    BN_free(bn);
}

/* A public JWK for p, with optional kid and alg members. Caller frees. */
static char *jwk_of(EVP_PKEY *p, const char *kid, const char *alg)
{
    core_buf_t j;
    core_buf_init(&j, 1 << 16);
    core_buf_append_cstr(&j, "{");
    if (EVP_PKEY_is_a(p, "RSA")) {
        core_buf_append_cstr(&j, "\"kty\":\"RSA\",\"n\":\"");
        bn_b64(p, OSSL_PKEY_PARAM_RSA_N, 0, &j);
        core_buf_append_cstr(&j, "\",\"e\":\"");
        bn_b64(p, OSSL_PKEY_PARAM_RSA_E, 0, &j);
        core_buf_append_cstr(&j, "\"");
    } else if (EVP_PKEY_is_a(p, "EC")) {
        char group[32];
        size_t gl = 0;
        CHECK(EVP_PKEY_get_utf8_string_param(p, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                             sizeof(group), &gl) == 1);
        const char *crv = strcmp(group, "prime256v1") == 0 ? "P-256"
                          : strcmp(group, "secp384r1") == 0 ? "P-384"
                                                            : "P-521";
        size_t len = crv[2] == '2' ? 32 : crv[2] == '3' ? 48 : 66;
        core_buf_appendf(&j, "\"kty\":\"EC\",\"crv\":\"%s\",\"x\":\"", crv);
        bn_b64(p, OSSL_PKEY_PARAM_EC_PUB_X, len, &j);
        core_buf_append_cstr(&j, "\",\"y\":\"");
        bn_b64(p, OSSL_PKEY_PARAM_EC_PUB_Y, len, &j);
        core_buf_append_cstr(&j, "\"");
    } else {
        unsigned char raw[64];
        size_t rl = sizeof(raw);
        CHECK(EVP_PKEY_get_raw_public_key(p, raw, &rl) == 1);
        core_buf_appendf(&j, "\"kty\":\"OKP\",\"crv\":\"%s\",\"x\":\"",
                         EVP_PKEY_is_a(p, "ED25519") ? "Ed25519" : "Ed448");
        b64url(raw, rl, &j);
        core_buf_append_cstr(&j, "\"");
    }
    if (kid) core_buf_appendf(&j, ",\"kid\":\"%s\"", kid);
    if (alg) core_buf_appendf(&j, ",\"alg\":\"%s\"", alg);
    core_buf_append_cstr(&j, ",\"use\":\"sig\"}");
    CHECK_INT(core_buf_status(&j), CORE_OK);
    return j.ptr;
}

static EVP_PKEY *rsa_a, *rsa_b, *ec256, *ec384, *ec521, *ed25519, *ed448;

static void gen_keys(void)
{
    rsa_a = EVP_RSA_gen(2048);
    rsa_b = EVP_RSA_gen(2048);
    ec256 = EVP_EC_gen("P-256");
    ec384 = EVP_EC_gen("P-384");
    ec521 = EVP_EC_gen("P-521");
    ed25519 = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    ed448 = EVP_PKEY_Q_keygen(NULL, NULL, "ED448");
    CHECK(rsa_a && rsa_b && ec256 && ec384 && ec521 && ed25519 && ed448);
}

/* ---- verifier helpers ------------------------------------------------------------------ */

typedef struct {
    const char *secret;
    bool b64;
    const char *aud;
    const char *role_key;
    int cache_entries;
    int cache_lifetime;
} opts_t;

static int make_verifier(opts_t o, auth_jwt_t **v, char *err, size_t errlen)
{
    core_config_t cfg;
    core_config_defaults(&cfg);
    cfg.jwt_secret = (char *)(uintptr_t)o.secret;
    cfg.jwt_secret_is_base64 = o.b64;
    cfg.jwt_aud = (char *)(uintptr_t)o.aud;
    if (o.role_key) cfg.jwt_role_claim_key = (char *)(uintptr_t)o.role_key;
    if (o.cache_entries) cfg.jwt_cache_max_entries = o.cache_entries;
    if (o.cache_lifetime) cfg.jwt_cache_max_lifetime_s = o.cache_lifetime;
    return auth_jwt_config_create(&cfg, v, err, errlen);
}

static auth_jwt_t *verifier(opts_t o)
{
    auth_jwt_t *v = NULL;
    char err[256] = "";
    int rc = make_verifier(o, &v, err, sizeof(err));
    if (rc != CORE_OK) fprintf(stderr, "verifier: %s\n", err);
    CHECK_INT(rc, CORE_OK);
    return v;
}

/* Expects the config to be refused with exactly `want`. */
static void check_config_error(opts_t o, const char *want)
{
    auth_jwt_t *v = NULL;
    char err[256] = "";
    CHECK_INT(make_verifier(o, &v, err, sizeof(err)), CORE_EINVAL);
    CHECK(v == NULL);
    CHECK_CSTR(err, want);
}

typedef struct {
    int rc;
    int status;
    char code[16];
    char message[128];
    char details[128];
    char role[128];
    bool anon;
    bool cached;
    int64_t exp;
    char claims[512];
} result_t;

static result_t run_at(const auth_jwt_t *v, auth_cache_t *c, const char *header, int64_t now)
{
    result_t r;
    memset(&r, 0, sizeof(r));
    core_arena_t *a = core_arena_create(4096);
    auth_claims_t cl;
    core_err_t e;
    r.rc = auth_jwt_verify_at(v, c, str_from_cstr(header), a, &cl, &e, now);
    if (r.rc == CORE_OK) {
        r.anon = cl.role == NULL;
        snprintf(r.role, sizeof(r.role), "%s", cl.role ? cl.role : "");
        snprintf(r.claims, sizeof(r.claims), "%.*s", (int)cl.claims_len, cl.claims_json);
        CHECK_INT(strlen(cl.claims_json), cl.claims_len);
        r.cached = cl.cached;
        r.exp = cl.exp;
    } else {
        r.status = e.status;
        snprintf(r.code, sizeof(r.code), "%s", e.code ? e.code : "");
        snprintf(r.message, sizeof(r.message), "%.*s", STR_FMT(e.message));
        if (e.details.ptr) snprintf(r.details, sizeof(r.details), "%.*s", STR_FMT(e.details));
        else snprintf(r.details, sizeof(r.details), "(null)");
        CHECK(cl.role == NULL);
        CHECK_CSTR(cl.claims_json, "{}");
    }
    core_arena_destroy(a);
    return r;
}

static result_t run(const auth_jwt_t *v, const char *header) { return run_at(v, NULL, header, NOW); }

#define CHECK_ROLE(r, want)                                                                \
    do {                                                                                   \
        result_t r_ = (r);                                                                 \
        CHECK_INT(r_.rc, CORE_OK);                                                         \
        if (r_.rc) fprintf(stderr, "  (%s: %s / %s)\n", r_.code, r_.message, r_.details);  \
        CHECK_CSTR(r_.role, want);                                                         \
    } while (0)

#define CHECK_FAIL(r, want_code, want_msg, want_details)                                   \
    do {                                                                                   \
        result_t r_ = (r);                                                                 \
        CHECK_INT(r_.rc, CORE_EINVAL);                                                     \
        CHECK_INT(r_.status, 401);                                                         \
        CHECK_CSTR(r_.code, want_code);                                                    \
        CHECK_CSTR(r_.message, want_msg);                                                  \
        CHECK_CSTR(r_.details, want_details);                                              \
    } while (0)

#define KEYFAIL "No suitable key or wrong key type"
#define NONE_OF "None of the keys was able to decode the JWT"
#define NO_KEY "No suitable key was found to decode the JWT"
#define CRYPTO "JWT cryptographic operation failed"

/* ---- tests ------------------------------------------------------------------------------ */

static void test_hmac(void)
{
    auth_jwt_t *v = verifier((opts_t){.secret = SECRET});
    const char *payload = "{\"role\":\"web_user\",\"exp\":1700000100,\"n\":12345678901234567890}";
    char *t256 = make_token("{\"alg\":\"HS256\"}", payload, hs(EVP_sha256(), SECRET));
    char *t384 = make_token("{\"alg\":\"HS384\"}", payload, hs(EVP_sha384(), SECRET));
    char *t512 = make_token("{\"alg\":\"HS512\"}", payload, hs(EVP_sha512(), SECRET));
    result_t r = run(v, t256);
    CHECK_ROLE(r, "web_user");
    CHECK_CSTR(r.claims, payload); /* the payload as signed, big integer intact */
    CHECK_INT(r.exp, 1700000100);
    CHECK(!r.cached);
    CHECK_ROLE(run(v, t384), "web_user");
    CHECK_ROLE(run(v, t512), "web_user");

    /* Wrong secret, wrong alg label, tampered payload, truncated signature. */
    char *bad = make_token("{\"alg\":\"HS256\"}", payload,
                           hs(EVP_sha256(), "another-secret-another-secret-another"));
    CHECK_FAIL(run(v, bad), "PGRST301", KEYFAIL, NONE_OF);
    free(bad);
    bad = make_token("{\"alg\":\"HS512\"}", payload, hs(EVP_sha256(), SECRET));
    CHECK_FAIL(run(v, bad), "PGRST301", KEYFAIL, NONE_OF);
    free(bad);
    char *tam = strdup(t256);
    char *dot = strchr(tam + 7, '.');
    dot[3] = dot[3] == 'A' ? 'B' : 'A';
    CHECK_FAIL(run(v, tam), "PGRST301", KEYFAIL, NONE_OF);
    memcpy(tam, t256, strlen(t256) + 1);
    tam[strlen(tam) - 3] = '\0'; /* 43 → 40 characters: still valid base64url */
    CHECK_FAIL(run(v, tam), "PGRST301", KEYFAIL, NONE_OF);
    free(tam);

    /* PostgREST's own vectors (test/spec/Feature/Auth/AuthSpec.hs). */
    CHECK_ROLE(run(v, "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJyb2xlIjoicG9zdGdyZXN0X3Rlc3"
                      "RfYXV0aG9yIiwiaWQiOiJqZG9lIn0.B-lReuGNDwAlU1GOC476MlO0vAt9JNoHIlxg2vwMaO0"),
               "postgrest_test_author");
    CHECK_FAIL(run(v, "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHAiOjE0NDY2NzgxNDksInJvbG"
                      "UiOiJwb3N0Z3Jlc3RfdGVzdF9hdXRob3IiLCJpZCI6Impkb2UifQ.f8__E6VQwYcDqwHmr9PG0"
                      "3uaZn8Zh1b0vbJ9DYS0AdM"),
               "PGRST303", "JWT expired", "(null)");
    CHECK_FAIL(run(v, "Bearer eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.e30.yOBhlOIqn56T-4NvyEXCjfi3Um"
                      "yQZ-BzXtePMO2NgRI"),
               "PGRST301", "Wrong or unsupported encoding algorithm",
               "JWT is unsecured but expected 'alg' was not 'none'");
    CHECK_FAIL(run(v, "Bearer quifquirndsjagnrgniur.fonvoienqhhdj.iuqvnvhojah"), "PGRST301",
               CRYPTO, "(null)");
    CHECK_FAIL(run(v, "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.bm90IGFuIG9iamVjdA"),
               "PGRST301", "Expected 3 parts in JWT; got 2", "(null)");

    /* A 64-bit-overflowing integer elsewhere switches numbers to reals; roles still print
     * as written. */
    char *big = hs256("{\"role\":5,\"n\":123456789012345678901234,\"exp\":1700000100}");
    r = run(v, big);
    CHECK_ROLE(r, "5");
    CHECK_INT(r.exp, 1700000100);
    free(big);

    /* No role: anonymous, claims still passed on. */
    char *norole = hs256("{\"sub\":\"x\"}");
    r = run(v, norole);
    CHECK_INT(r.rc, CORE_OK);
    CHECK(r.anon);
    CHECK_CSTR(r.claims, "{\"sub\":\"x\"}");
    free(norole);
    free(t256);
    free(t384);
    free(t512);
    auth_jwt_free(v);

    /* jwt-secret-is-base64, a file, and an oct JWK. */
    v = verifier((opts_t){.secret = "cmVhbGx5cmVhbGx5cmVhbGx5cmVhbGx5dmVyeXNhZmU=", .b64 = true});
    char *t = hs256("{\"role\":\"b64\"}");
    CHECK_ROLE(run(v, t), "b64");
    auth_jwt_free(v);
    v = verifier((opts_t){.secret = " cmVhbGx5cmVhbGx5cmVhbGx5cmVhbGx5dmVyeXNhZmU.\n", .b64 = true});
    CHECK_ROLE(run(v, t), "b64");
    auth_jwt_free(v);
    char path[] = "/tmp/strata-jwt-secret-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    CHECK(write(fd, SECRET, strlen(SECRET)) == (ssize_t)strlen(SECRET));
    CHECK(write(fd, "\n", 1) == 1); /* one trailing newline is dropped, as PostgREST */
    close(fd);
    char at[64];
    snprintf(at, sizeof(at), "@%s", path);
    v = verifier((opts_t){.secret = at});
    CHECK_ROLE(run(v, t), "b64");
    auth_jwt_free(v);
    unlink(path);
    v = verifier((opts_t){.secret = "{\"kty\":\"oct\",\"k\":\"cmVhbGx5cmVhbGx5cmVhbGx5cmVhbGx5dm"
                                    "VyeXNhZmU\",\"alg\":\"HS256\"}"});
    CHECK_ROLE(run(v, t), "b64");
    char *t512b = make_token("{\"alg\":\"HS512\"}", "{}", hs(EVP_sha512(), SECRET));
    CHECK_FAIL(run(v, t512b), "PGRST301", KEYFAIL, NO_KEY); /* the JWK's alg narrows */
    free(t512b);
    auth_jwt_free(v);
    free(t);
}

static void test_asymmetric(void)
{
    const char *payload = "{\"role\":\"author\"}";
    struct {
        EVP_PKEY **key;
        const char *alg;
        const EVP_MD *md;
        bool pss;
        size_t ec_len;
    } cases[] = {
        {&rsa_a, "RS256", EVP_sha256(), false, 0}, {&rsa_a, "RS384", EVP_sha384(), false, 0},
        {&rsa_a, "RS512", EVP_sha512(), false, 0}, {&rsa_a, "PS256", EVP_sha256(), true, 0},
        {&rsa_a, "PS512", EVP_sha512(), true, 0},  {&ec256, "ES256", EVP_sha256(), false, 32},
        {&ec384, "ES384", EVP_sha384(), false, 48}, {&ec521, "ES512", EVP_sha512(), false, 66},
        {&ed25519, "EdDSA", NULL, false, 0},       {&ed448, "EdDSA", NULL, false, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *jwk = jwk_of(*cases[i].key, NULL, NULL);
        auth_jwt_t *v = verifier((opts_t){.secret = jwk});
        char hdr[64];
        snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\"}", cases[i].alg);
        char *t = make_token(hdr, payload, pk(cases[i].md, *cases[i].key, cases[i].pss,
                                              cases[i].ec_len));
        result_t r = run(v, t);
        if (r.rc) fprintf(stderr, "  case %s\n", cases[i].alg);
        CHECK_ROLE(r, "author");
        /* Flip one signature bit. */
        char *tam = strdup(t);
        size_t n = strlen(tam);
        tam[n - 2] = tam[n - 2] == 'A' ? 'Q' : 'A';
        CHECK_FAIL(run(v, tam), "PGRST301", KEYFAIL, NONE_OF);
        free(tam);
        /* The same token against another key of the same type. */
        EVP_PKEY *other = *cases[i].key == rsa_a ? rsa_b : NULL;
        if (other) {
            char *jwk2 = jwk_of(other, NULL, NULL);
            auth_jwt_t *v2 = verifier((opts_t){.secret = jwk2});
            CHECK_FAIL(run(v2, t), "PGRST301", KEYFAIL, NONE_OF);
            auth_jwt_free(v2);
            free(jwk2);
        }
        /* An HS256 token against an asymmetric key never reaches a signature check. */
        char *h = hs256(payload);
        CHECK_FAIL(run(v, h), "PGRST301", KEYFAIL, NO_KEY);
        free(h);
        free(t);
        auth_jwt_free(v);
        free(jwk);
    }

    /* A private JWK (as some tools export) verifies as its public half. */
    char *priv = jwk_of(ec256, NULL, NULL);
    priv[strlen(priv) - 1] = '\0';
    char privbuf[1024];
    snprintf(privbuf, sizeof(privbuf), "%s,\"d\":\"AAAA\"}", priv);
    auth_jwt_t *pv = verifier((opts_t){.secret = privbuf});
    char *pt = make_token("{\"alg\":\"ES256\"}", payload, pk(EVP_sha256(), ec256, false, 32));
    CHECK_ROLE(run(pv, pt), "author");
    free(pt);
    auth_jwt_free(pv);
    free(priv);

    /* ECDSA raw signatures of the wrong length, and a DER signature where raw belongs. */
    char *jwk = jwk_of(ec256, NULL, NULL);
    auth_jwt_t *v = verifier((opts_t){.secret = jwk});
    char *der = make_token("{\"alg\":\"ES256\"}", payload, pk(EVP_sha256(), ec256, false, 0));
    CHECK_FAIL(run(v, der), "PGRST301", KEYFAIL, NONE_OF);
    free(der);
    /* ES384 token (right length for nothing) against a P-256 key: no suitable key. */
    char *t384 = make_token("{\"alg\":\"ES384\"}", payload, pk(EVP_sha384(), ec384, false, 48));
    CHECK_FAIL(run(v, t384), "PGRST301", KEYFAIL, NO_KEY);
    free(t384);
    auth_jwt_free(v);
    free(jwk);

    /* PostgREST's RS256 vector (AsymmetricJwtSpec.hs): its payload ends in a newline. */
    v = verifier((opts_t){
        .secret = "{\"alg\":\"RS256\",\"e\":\"AQAB\",\"key_ops\":[\"verify\"],\"kty\":\"RSA\",\"n\":"
                  "\"0etQ2Tg187jb04MWfpuogYGV75IFrQQBxQaGH75eq_FpbkyoLcEpRUEWSbECP2eeFya2yZ9vIO"
                  "5ScD-lPmovePk4Aa4SzZ8jdjhmAbNykleRPCxMg0481kz6PQhnHRUv3nF5WP479CnObJKqTVdEag"
                  "VL66oxnX9VhZG9IZA7k0Th5PfKQwrKGyUeTGczpOjaPqbxlunP73j9AfnAt4XCS8epa-n3WGz1j-"
                  "wfpr_ys57Aq-zBCfqP67UYzNpeI1AoXsJhD9xSDOzvJgFRvc3vm2wjAW4LEMwi48rCplamOpZToI"
                  "HEPIaPzpveYQwDnB1HFTR1ove9bpKJsHmi-e2uzQ\",\"use\":\"sig\"}"});
    result_t r = run(v, "Bearer eyJhbGciOiJSUzI1NiJ9.eyJyb2xlIjogInBvc3RncmVzdF90ZXN0X2F1dGhvci"
                        "J9Cg.CBOYWDvqgAR0YYnZnyDGTQi6AJLc2Pds6_eV3YuBG6I36mj_h05eLhkEKNEDA5ZteMz"
                        "CiY83P60rC_xtxVd7B6vo3BeF5uoanPS3rrbuHzKPwzsrgrD_CqvEuJ4n7Q9epkQiLsNkcex"
                        "neENZDRqFjbwZx3DrXiCWwlK3Ytr5NAIGxmy0od-0xNpb2U1nXQyO_Q3mumWFViRt4tmFn_3"
                        "goDHNKG3Ha_AzImfUNvHnWL78kAc4rbn15vLtWXD8PwtSnZaB4lY4V6RfsaW937srQsmRetv"
                        "ytM1i_bHBnjkjQLAqGbXPyItjtlXPs0uGNBadE8-wgkLtfmSCC4v2DjUthw");
    CHECK_ROLE(r, "postgrest_test_author");
    CHECK_CSTR(r.claims, "{\"role\": \"postgrest_test_author\"}\n");
    auth_jwt_free(v);
}

/* The classic confusion attack: an HS256 token whose HMAC key is the server's public key
 * material (the JWK text, the PEM), presented to an RSA-configured verifier. */
static void test_alg_confusion(void)
{
    char *jwk = jwk_of(rsa_a, "k1", NULL);
    auth_jwt_t *v = verifier((opts_t){.secret = jwk});
    BIO *bio = BIO_new(BIO_s_mem());
    CHECK(PEM_write_bio_PUBKEY(bio, rsa_a) == 1);
    char *pem = NULL;
    long pl = BIO_get_mem_data(bio, &pem);
    char *pem_s = strndup(pem, (size_t)pl);
    BIO_free(bio);
    const char *keys[] = {jwk, pem_s};
    const char *hdrs[] = {"{\"alg\":\"HS256\"}", "{\"alg\":\"HS256\",\"kid\":\"k1\"}",
                          "{\"alg\":\"HS512\",\"kid\":\"k1\"}"};
    for (size_t i = 0; i < 2; i++)
        for (size_t j = 0; j < 3; j++) {
            char *t = make_token(hdrs[j], "{\"role\":\"admin\"}",
                                 hs(j == 2 ? EVP_sha512() : EVP_sha256(), keys[i]));
            CHECK_FAIL(run(v, t), "PGRST301", KEYFAIL, NO_KEY);
            free(t);
        }
    /* alg "none" with an empty signature and with the kid of a real key. */
    CHECK_FAIL(run(v, "Bearer eyJhbGciOiJub25lIiwia2lkIjoiazEifQ.eyJyb2xlIjoiYWRtaW4ifQ."),
               "PGRST301", "Wrong or unsupported encoding algorithm",
               "JWT is unsecured but expected 'alg' was not 'none'");
    /* Case games on alg are not "none" either, just unknown. */
    char *t = make_token("{\"alg\":\"None\"}", "{}", hs(EVP_sha256(), SECRET));
    CHECK_FAIL(run(v, t), "PGRST301", "Wrong or unsupported encoding algorithm", "(null)");
    free(t);
    free(pem_s);
    auth_jwt_free(v);
    free(jwk);
}

static void test_jwks(void)
{
    char *ka = jwk_of(rsa_a, "a", "RS256");
    char *kb = jwk_of(rsa_b, "b", NULL);
    char *ke = jwk_of(ec256, NULL, "ES256");
    core_buf_t s;
    core_buf_init(&s, 1 << 16);
    /* An IdP set carries more than signature keys: those are skipped, not fatal. */
    core_buf_appendf(&s,
                     "{\"keys\":[{\"kty\":\"RSA\",\"use\":\"enc\",\"alg\":\"RSA-OAEP\",\"n\":\"AQAB\","
                     "\"e\":\"AQAB\"},%s,{\"kty\":\"EC\",\"crv\":\"secp256k1\",\"x\":\"AA\",\"y\":"
                     "\"AA\"},%s,{\"kty\":\"OKP\",\"crv\":\"X25519\",\"x\":\"AA\"},%s]}",
                     ka, kb, ke);
    auth_jwt_t *v = verifier((opts_t){.secret = s.ptr});
    CHECK_INT(v->nkeys, 3);
    const char *p = "{\"role\":\"r\"}";
    char *tb = make_token("{\"alg\":\"RS256\",\"kid\":\"b\"}", p, pk(EVP_sha256(), rsa_b, false, 0));
    char *tb_nokid = make_token("{\"alg\":\"RS256\"}", p, pk(EVP_sha256(), rsa_b, false, 0));
    char *tb_as_a = make_token("{\"alg\":\"RS256\",\"kid\":\"a\"}", p, pk(EVP_sha256(), rsa_b, false, 0));
    char *tb_zz = make_token("{\"alg\":\"RS256\",\"kid\":\"zz\"}", p, pk(EVP_sha256(), rsa_b, false, 0));
    char *ta384 = make_token("{\"alg\":\"RS384\",\"kid\":\"a\"}", p, pk(EVP_sha384(), rsa_a, false, 0));
    char *te = make_token("{\"alg\":\"ES256\",\"kid\":\"zz\"}", p, pk(EVP_sha256(), ec256, false, 32));
    CHECK_ROLE(run(v, tb), "r");
    CHECK_ROLE(run(v, tb_nokid), "r"); /* no kid: every RSA key is tried */
    CHECK_FAIL(run(v, tb_as_a), "PGRST301", KEYFAIL, NONE_OF);
    CHECK_FAIL(run(v, tb_zz), "PGRST301", KEYFAIL, NO_KEY); /* unknown kid, all keys have one */
    CHECK_FAIL(run(v, ta384), "PGRST301", KEYFAIL, NO_KEY); /* key "a" says RS256 only */
    CHECK_ROLE(run(v, te), "r"); /* kid unknown, but the EC key has no kid: it is tried */
    free(tb);
    free(tb_nokid);
    free(tb_as_a);
    free(tb_zz);
    free(ta384);
    free(te);
    auth_jwt_free(v);

    /* A set whose keys are all unusable, and one with a broken key. */
    check_config_error((opts_t){.secret = "{\"keys\":[{\"kty\":\"RSA\",\"use\":\"enc\",\"n\":\"AQ\","
                                          "\"e\":\"AQ\"}]}"},
                       "jwt-secret: the JWKS has no key Strata can verify signatures with");
    check_config_error((opts_t){.secret = "{\"keys\":[]}"},
                       "jwt-secret: the JWKS has no key Strata can verify signatures with");
    check_config_error((opts_t){.secret = "{\"keys\":{}}"},
                       "jwt-secret: the JWKS member \"keys\" must be an array");
    core_buf_reset(&s);
    core_buf_appendf(&s, "{\"keys\":[%s,{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAA\",\"y\":\"AAAA\"}]}",
                     ka);
    check_config_error((opts_t){.secret = s.ptr}, "jwt-secret: JWKS key 1: not a point on P-256");
    core_buf_free(&s);
    free(ka);
    free(kb);
    free(ke);
}

static void test_config_errors(void)
{
    check_config_error((opts_t){.secret = "short"},
                       "jwt-secret: the JWT secret must be at least 32 characters long");
    check_config_error((opts_t){.secret = "c2hvcnQ=", .b64 = true},
                       "jwt-secret: the JWT secret must be at least 32 characters long");
    check_config_error((opts_t){.secret = "not*base64*at*all*not*base64*at*all", .b64 = true},
                       "jwt-secret: not valid base64 (jwt-secret-is-base64 is true)");
    check_config_error((opts_t){.secret = "@/nonexistent/strata/secret"},
                       "jwt-secret: cannot open \"/nonexistent/strata/secret\": No such file or "
                       "directory");
    check_config_error((opts_t){.secret = "{\"alg\":\"HS256\",\"k\":\"xx\"}"},
                       "jwt-secret: invalid JWK: \"kty\" is missing or not a string");
    check_config_error((opts_t){.secret = "{\"kty\":\"oct\",\"k\":\"c2hvcnQ\"}"},
                       "jwt-secret: invalid JWK: \"k\" must be at least 32 bytes");
    check_config_error((opts_t){.secret = "{\"kty\":\"oct\",\"k\":\"!!\"}"},
                       "jwt-secret: invalid JWK: \"k\" is not valid base64url");
    check_config_error((opts_t){.secret = "{\"kty\":\"RSA\",\"n\":\"AQAB\"}"},
                       "jwt-secret: invalid JWK: \"e\" is missing");
    check_config_error((opts_t){.secret = "{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}"},
                       "jwt-secret: invalid JWK: not a usable RSA public key (17-bit modulus; "
                       "1024 bits at least)");
    check_config_error((opts_t){.secret = "{\"kty\":\"XYZ\"}"},
                       "jwt-secret: unsupported JWK: unsupported \"kty\" \"XYZ\"");
    check_config_error((opts_t){.secret = "{\"kty\":\"RSA\",\"alg\":\"RSA-OAEP\"}"},
                       "jwt-secret: unsupported JWK: unsupported \"alg\" \"RSA-OAEP\"");
    check_config_error((opts_t){.secret = "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AAAA\"}"},
                       "jwt-secret: invalid JWK: \"x\" must be 32 bytes for Ed25519");
    char *ka = jwk_of(rsa_a, NULL, "HS256");
    check_config_error((opts_t){.secret = ka},
                       "jwt-secret: invalid JWK: \"alg\" HS256 does not fit a \"RSA\" key");
    free(ka);
    check_config_error((opts_t){.secret = SECRET, .role_key = "role"},
                       "jwt-role-claim-key: expected '.' or '[' at offset 0");
    /* Not JSON although it starts with '{': PostgREST's reading, an HMAC secret. */
    auth_jwt_t *v = verifier((opts_t){.secret = "{this is not json but long enough}"});
    CHECK(auth_jwt_has_secret(v));
    auth_jwt_free(v);
    /* No secret at all: Bearer tokens get PGRST300, other schemes are anonymous. */
    v = verifier((opts_t){0});
    CHECK(!auth_jwt_has_secret(v));
    result_t r = run(v, "Bearer abc.def.ghi");
    CHECK_INT(r.rc, CORE_EINVAL);
    CHECK_INT(r.status, 500);
    CHECK_CSTR(r.code, "PGRST300");
    CHECK_CSTR(r.message, "Server lacks JWT secret");
    r = run(v, "Basic dXNlcjpwYXNz");
    CHECK_INT(r.rc, CORE_OK);
    CHECK(r.anon);
    auth_jwt_free(v);
}

static void test_times(void)
{
    auth_jwt_t *v = verifier((opts_t){.secret = SECRET});
    struct {
        const char *payload;
        const char *want; /* NULL = valid */
    } cases[] = {
        {"{\"exp\":1699999970}", NULL},                  /* now - 30: inside the leeway */
        {"{\"exp\":1699999969}", "JWT expired"},         /* now - 31 */
        {"{\"exp\":1699999969.5}", "JWT expired"},
        {"{\"exp\":1700000000}", NULL},
        {"{\"exp\":null}", NULL},                        /* null counts as absent */
        {"{\"exp\":\"1800000000\"}", "The JWT 'exp' claim must be a number"},
        {"{\"exp\":true}", "The JWT 'exp' claim must be a number"},
        {"{\"exp\":1e300}", NULL},
        {"{\"exp\":-1}", "JWT expired"},
        {"{\"nbf\":1700000030}", NULL},
        {"{\"nbf\":1700000031}", "JWT not yet valid"},
        {"{\"nbf\":[]}", "The JWT 'nbf' claim must be a number"},
        {"{\"iat\":1700000030}", NULL},
        {"{\"iat\":1700000031}", "JWT issued at future"},
        {"{\"iat\":{}}", "The JWT 'iat' claim must be a number"},
        /* PostgREST reports the first failing claim in the order exp, nbf, iat, aud. */
        {"{\"exp\":1,\"nbf\":1800000000,\"iat\":\"x\"}", "JWT expired"},
        {"{\"nbf\":1800000000,\"iat\":\"x\"}", "JWT not yet valid"},
        {"{\"iat\":\"x\",\"aud\":5}", "The JWT 'iat' claim must be a number"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *t = hs256(cases[i].payload);
        result_t r = run(v, t);
        if (!cases[i].want) {
            CHECK_INT(r.rc, CORE_OK);
            if (r.rc) fprintf(stderr, "  case %zu: %s\n", i, r.message);
        } else {
            CHECK_FAIL(r, "PGRST303", cases[i].want, "(null)");
        }
        free(t);
    }
    auth_jwt_free(v);
}

static void test_aud(void)
{
    auth_jwt_t *with = verifier((opts_t){.secret = SECRET, .aud = "api"});
    auth_jwt_t *without = verifier((opts_t){.secret = SECRET});
    struct {
        const char *payload;
        const char *with_aud, *without_aud; /* NULL = valid */
    } cases[] = {
        {"{}", NULL, NULL},
        {"{\"aud\":null}", NULL, NULL},
        {"{\"aud\":\"api\"}", NULL, NULL},
        {"{\"aud\":\"apix\"}", "JWT not in audience", NULL},
        {"{\"aud\":[\"x\",\"api\"]}", NULL, NULL},
        {"{\"aud\":[\"x\",\"y\"]}", "JWT not in audience", NULL},
        {"{\"aud\":[]}", NULL, NULL},
        {"{\"aud\":[\"api\",1]}", "The JWT 'aud' claim must be a string or an array of strings",
         "The JWT 'aud' claim must be a string or an array of strings"},
        {"{\"aud\":{\"a\":\"api\"}}", "The JWT 'aud' claim must be a string or an array of strings",
         "The JWT 'aud' claim must be a string or an array of strings"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *t = hs256(cases[i].payload);
        const char *want[2] = {cases[i].with_aud, cases[i].without_aud};
        const auth_jwt_t *vs[2] = {with, without};
        for (int k = 0; k < 2; k++) {
            result_t r = run(vs[k], t);
            if (!want[k]) CHECK_INT(r.rc, CORE_OK);
            else CHECK_FAIL(r, "PGRST303", want[k], "(null)");
        }
        free(t);
    }
    auth_jwt_free(with);
    auth_jwt_free(without);
}

static void test_role_paths(void)
{
    const char *claims = "{\"role\":\"top\",\"app_metadata\":{\"role\":\"nested\"},"
                         "\"https://example.com/role\":\"uri\",\"roles\":[\"other\",\"author\","
                         "7],\"deep\":{\"a\":[{\"b\":[\"x\",\"deepest\"]}]},\"num\":42,"
                         "\"obj\":{\"k\":[1,2]},\"big\":1e20,\"t\":true,\"n\":null,\"e\":\"\"}";
    char *t = hs256(claims);
    struct {
        const char *path;
        const char *role; /* NULL = anonymous */
    } cases[] = {
        {".role", "top"},
        {".app_metadata.role", "nested"},
        {".\"https://example.com/role\"", "uri"},
        {".roles[0]", "other"},
        {".roles[1]", "author"},
        {".roles[2]", "7"},
        {".roles[3]", NULL},
        {".roles[?(@ == \"author\")]", "author"},
        {".roles[?(@ != \"other\")]", "author"},
        {".roles[?(@ ^== \"aut\")]", "author"},
        {".roles[?(@ ==^ \"her\")]", "other"},
        {".roles[?(@ *== \"utho\")]", "author"},
        {".roles[?(@==\"nobody\")]", NULL},
        {".deep.a[0].b[1]", "deepest"},
        {".num", "42"},
        {".obj", "{\"k\":[1,2]}"},
        {".big", "1e20"},
        {".t", "true"},
        {".n", "null"},
        {".e", ""},
        {".missing", NULL},
        {".role.x", NULL},
        {".app_metadata[0]", NULL},
        {"$.role", "top"},
        {"$$.role", "top"},
        {"$.app_metadata.role", "nested"},
        {"$['https://example.com/role']", "uri"},
        {"$[\"app_metadata\"]['role']", "nested"},
        {"$.roles[-1]", "7"},
        {"$.roles[-2]", "author"},
        {"$.roles[ 1 ]", "author"},
        {"$.roles[?@ == 'author']", "author"},
        {"$.roles[?(@ != 'other')]", "author"},
        {"$.deep.a[0].b[1]", "deepest"},
        {"$['\\u0072ole']", "top"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        auth_jwt_t *v = verifier((opts_t){.secret = SECRET, .role_key = cases[i].path});
        if (!v) continue;
        result_t r = run(v, t);
        CHECK_INT(r.rc, CORE_OK);
        if (cases[i].role) {
            CHECK_CSTR(r.role, cases[i].role);
            CHECK(!r.anon);
        } else {
            CHECK(r.anon);
        }
        if (r.anon != !cases[i].role || strcmp(r.role, cases[i].role ? cases[i].role : ""))
            fprintf(stderr, "  path %s\n", cases[i].path);
        auth_jwt_free(v);
    }
    /* RFC 9535's != matches non-strings; the DSL's filters only look at strings. */
    char *t2 = hs256("{\"r\":[1,\"s\"]}");
    auth_jwt_t *v = verifier((opts_t){.secret = SECRET, .role_key = "$.r[?@ != 'x']"});
    CHECK_ROLE(run(v, t2), "1");
    auth_jwt_free(v);
    v = verifier((opts_t){.secret = SECRET, .role_key = ".r[?(@ != \"x\")]"});
    CHECK_ROLE(run(v, t2), "s");
    auth_jwt_free(v);
    free(t2);
    free(t);

    const char *bad[] = {
        "",         "role",          ".",          ".a[",          ".a[x]",        ".a.",
        ".\"open",  ".a[?(@ = \"x\")]", ".a[?(@ == \"x\")].b", ".a[?(@ == x)]", "..a",
        "$..a",     "$.*",           "$.a[1:2]",   "$.a[0,1]",     "$.a[01]",      "$.a[-0]",
        "$.a[?search(@, 'x')]",      "$.a[?@ == 'x'].b", "$['a\\q']", "$.1a",     "$.a[99999999999]",
        "$[?@ < 'x']", ".a b",       "$['\\ud800']",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        auth_jwt_t *w = NULL;
        char err[256] = "";
        int rc = make_verifier((opts_t){.secret = SECRET, .role_key = bad[i]}, &w, err, sizeof(err));
        CHECK_INT(rc, CORE_EINVAL);
        if (rc == CORE_OK) fprintf(stderr, "  accepted bad path %s\n", bad[i]);
        CHECK(strncmp(err, "jwt-role-claim-key: ", 20) == 0);
        auth_jwt_free(w);
    }
}

static void test_malformed(void)
{
    auth_jwt_t *v = verifier((opts_t){.secret = SECRET});
    char *good = hs256("{\"role\":\"r\"}");
    CHECK_FAIL(run(v, "Bearer a.b"), "PGRST301", "Expected 3 parts in JWT; got 2", "(null)");
    CHECK_FAIL(run(v, "Bearer a.b.c.d"), "PGRST301", "Expected 3 parts in JWT; got 4", "(null)");
    CHECK_FAIL(run(v, "Bearer abc"), "PGRST301", "Expected 3 parts in JWT; got 1", "(null)");
    CHECK_FAIL(run(v, "Bearer"), "PGRST301", "Empty JWT is sent in Authorization header", "(null)");
    CHECK_FAIL(run(v, "Bearer    "), "PGRST301", "Empty JWT is sent in Authorization header",
               "(null)");

    /* Header problems. */
    struct {
        const char *header;
        const char *msg;
    } hdrs[] = {
        {"not json", CRYPTO},
        {"[\"HS256\"]", CRYPTO},
        {"{}", CRYPTO},
        {"{\"alg\":256}", CRYPTO},
        {"{\"alg\":\"HS256\",\"kid\":7}", CRYPTO},
        {"{\"alg\":\"HS256\",\"alg\":\"HS256\"}", CRYPTO}, /* duplicate keys */
        {"{\"alg\":\"HS999\"}", "Wrong or unsupported encoding algorithm"},
        {"{\"alg\":\"hs256\"}", "Wrong or unsupported encoding algorithm"},
        {"{\"alg\":\"HS256\",\"crit\":[\"b64\"],\"b64\":false}",
         "Wrong or unsupported encoding algorithm"},
    };
    for (size_t i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++) {
        char *t = make_token(hdrs[i].header, "{}", hs(EVP_sha256(), SECRET));
        result_t r = run(v, t);
        CHECK_INT(r.rc, CORE_EINVAL);
        CHECK_CSTR(r.code, "PGRST301");
        CHECK_CSTR(r.message, hdrs[i].msg);
        free(t);
    }

    /* Claims that are not one JSON object, after a good signature. */
    const char *payloads[] = {"[1]", "\"s\"", "5", "not json", "{\"a\":1,\"a\":2}", "{} x",
                              "{\"a\":\"\\u0000\"}", "{\"bad\":\"\xff\"}"};
    for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
        char *t = hs256(payloads[i]);
        CHECK_FAIL(run(v, t), "PGRST303", "Parsing claims failed", "(null)");
        free(t);
    }

    /* base64url: padding, the standard alphabet, stray bytes, non-zero trailing bits. */
    const char *h = good + 7;
    const char *d1 = strchr(h, '.'), *d2 = strchr(d1 + 1, '.');
    char buf[1024];
    snprintf(buf, sizeof(buf), "Bearer %.*s=.%s", (int)(d1 - h), h, d1 + 1);
    CHECK_FAIL(run(v, buf), "PGRST301", CRYPTO, "(null)");
    snprintf(buf, sizeof(buf), "Bearer %.*s==%s", (int)(d2 - h), h, d2);
    CHECK_FAIL(run(v, buf), "PGRST301", CRYPTO, "(null)");
    snprintf(buf, sizeof(buf), "Bearer %s=", h);
    CHECK_FAIL(run(v, buf), "PGRST301", CRYPTO, "(null)");
    snprintf(buf, sizeof(buf), "Bearer %s", h);
    for (char *p = buf + 7; *p; p++)
        if (*p == '-') *p = '+';
        else if (*p == '_') *p = '/';
    if (strcmp(buf + 7, h) != 0) CHECK_FAIL(run(v, buf), "PGRST301", CRYPTO, "(null)");
    snprintf(buf, sizeof(buf), "Bearer %.*s %s", (int)(d2 - h), h, d2);
    CHECK_FAIL(run(v, buf), "PGRST301", CRYPTO, "(null)");
    /* "e30" is "{}"; "e31" decodes to the same bytes with a stray low bit. */
    char *t = hs256("{}");
    CHECK_INT(run(v, t).rc, CORE_OK);
    char *p = strstr(t, ".e30.");
    CHECK(p != NULL);
    if (p) p[3] = '1';
    CHECK_FAIL(run(v, t), "PGRST301", CRYPTO, "(null)");
    free(t);

    /* Size cap, checked before anything is decoded. */
    size_t big = AUTH_JWT_MAX_BYTES + 8;
    char *huge = malloc(big + 1);
    memcpy(huge, "Bearer ", 7);
    memset(huge + 7, 'a', big - 7);
    huge[7 + 10] = '.';
    huge[7 + 20] = '.';
    huge[big] = '\0';
    CHECK_FAIL(run(v, huge), "PGRST301", "JWT couldn't be decoded",
               "The JWT is longer than 16384 bytes");
    free(huge);
    /* ...but a large valid token below the cap is fine. */
    char *pl = malloc(12000);
    snprintf(pl, 12000, "{\"role\":\"r\",\"pad\":\"%0*d\"}", 11000, 0);
    t = hs256(pl);
    CHECK(strlen(t) < AUTH_JWT_MAX_BYTES);
    CHECK_ROLE(run(v, t), "r");
    free(t);
    free(pl);

    free(good);
    auth_jwt_free(v);
}

static void test_scheme(void)
{
    auth_jwt_t *v = verifier((opts_t){.secret = SECRET});
    char *t = hs256("{\"role\":\"r\"}");
    const char *tok = t + 7;
    const char *prefixes[] = {"Bearer ", "bearer ", "BEARER ", "bEaReR\t", "Bearer    "};
    char buf[512];
    for (size_t i = 0; i < 5; i++) {
        snprintf(buf, sizeof(buf), "%s%s  ", prefixes[i], tok);
        CHECK_ROLE(run(v, buf), "r");
    }
    /* Other schemes and no scheme at all are not ours: anonymous, as PostgREST. */
    const char *others[] = {"Basic dXNlcjpwYXNz", "", "Token abc", "Bearertoken"};
    for (size_t i = 0; i < 4; i++) {
        result_t r = run(v, others[i]);
        CHECK_INT(r.rc, CORE_OK);
        CHECK(r.anon);
        CHECK_CSTR(r.claims, "{}");
    }
    snprintf(buf, sizeof(buf), "%s", tok);
    CHECK(run(v, buf).anon);
    free(t);
    auth_jwt_free(v);
}

static void test_www_authenticate(void)
{
    core_arena_t *a = core_arena_create(1024);
    core_err_t e = core_err_make(401, "PGRST301", "Expected 3 parts in JWT; got 2", STR_NULL);
    CHECK_STR(auth_www_authenticate(a, &e),
              "Bearer error=\"invalid_token\", error_description=\"Expected 3 parts in JWT; got 2\"");
    e = core_err_make(401, "PGRST303", "JWT expired", STR_NULL);
    CHECK_STR(auth_www_authenticate(a, &e),
              "Bearer error=\"invalid_token\", error_description=\"JWT expired\"");
    e = core_err_make(401, "PGRST301", "a \"quoted\" \\ x\r\ny", STR_NULL);
    CHECK_STR(auth_www_authenticate(a, &e),
              "Bearer error=\"invalid_token\", error_description=\"a \\\"quoted\\\" \\\\ x??y\"");
    e = auth_err_anonymous_disabled();
    CHECK_INT(e.status, 401);
    CHECK_STR(e.message, "Anonymous access is disabled");
    CHECK_STR(auth_www_authenticate(a, &e), "Bearer");
    e = core_err_make(401, "22023", "role \"x\" does not exist", STR_NULL);
    CHECK_STR(auth_www_authenticate(a, &e), "Bearer");
    e = core_err_make(500, "PGRST300", "Server lacks JWT secret", STR_NULL);
    CHECK(auth_www_authenticate(a, &e).ptr == NULL);
    core_arena_destroy(a);
}

static void test_cache(void)
{
    auth_jwt_t *v = verifier((opts_t){.secret = SECRET});
    auth_cache_t *c = auth_cache_create_for(v);
    auth_cache_stats_t st;
    char *t = hs256("{\"role\":\"r\",\"exp\":1700000100}");
    result_t r = run_at(v, c, t, NOW);
    CHECK_ROLE(r, "r");
    CHECK(!r.cached);
    r = run_at(v, c, t, NOW + 50);
    CHECK_ROLE(r, "r");
    CHECK(r.cached);
    CHECK_CSTR(r.claims, "{\"role\":\"r\",\"exp\":1700000100}");
    CHECK_INT(r.exp, 1700000100);
    CHECK_ROLE(run_at(v, c, t, NOW + 130), "r"); /* exp + 30: still valid, from the cache */
    /* exp + 31: the cache must not outlive the token. */
    r = run_at(v, c, t, NOW + 131);
    CHECK_FAIL(r, "PGRST303", "JWT expired", "(null)");
    auth_cache_stats(c, &st);
    CHECK_INT(st.hits, 2);
    CHECK_INT(st.inserts, 1);
    CHECK_INT(st.expired, 1);
    CHECK_INT(st.entries, 0);

    /* Failures are not cached; anonymous requests do not touch the cache. */
    char *bad = make_token("{\"alg\":\"HS256\"}", "{}", hs(EVP_sha256(), "x-wrong-secret-wrong-secret-wrong-x"));
    CHECK_INT(run_at(v, c, bad, NOW).rc, CORE_EINVAL);
    CHECK_INT(run_at(v, c, bad, NOW).rc, CORE_EINVAL);
    CHECK_INT(run_at(v, c, "Basic x", NOW).rc, CORE_OK);
    auth_cache_stats(c, &st);
    CHECK_INT(st.inserts, 1);
    CHECK_INT(st.entries, 0);
    free(bad);

    /* A token without exp, anonymous (no role). */
    char *noexp = hs256("{\"sub\":\"s\"}");
    CHECK(run_at(v, c, noexp, NOW).anon);
    r = run_at(v, c, noexp, NOW + 1000000);
    CHECK(r.anon && r.cached);
    CHECK_CSTR(r.claims, "{\"sub\":\"s\"}");
    free(noexp);
    auth_cache_free(c);

    /* jwt-cache-max-lifetime caps an entry's life even when exp is far away. */
    auth_jwt_t *lv = verifier((opts_t){.secret = SECRET, .cache_lifetime = 10});
    c = auth_cache_create_for(lv);
    CHECK(!run_at(lv, c, t, NOW).cached);
    CHECK(run_at(lv, c, t, NOW + 9).cached);
    CHECK(!run_at(lv, c, t, NOW + 10).cached);
    CHECK(run_at(lv, c, t, NOW + 11).cached);
    auth_cache_free(c);
    auth_jwt_free(lv);
    /* ...and 0 turns the cache off, as in PostgREST 12/13; so does max-entries 0. */
    lv = verifier((opts_t){.secret = SECRET, .cache_lifetime = -1});
    CHECK_INT(lv->cache_max_entries, 1000);
    auth_jwt_free(lv);
    core_config_t cfg;
    core_config_defaults(&cfg);
    cfg.jwt_secret = (char *)(uintptr_t)SECRET;
    cfg.jwt_cache_max_lifetime_s = 0;
    char err[128];
    CHECK_INT(auth_jwt_config_create(&cfg, &lv, err, sizeof(err)), CORE_OK);
    c = auth_cache_create_for(lv);
    CHECK(!run_at(lv, c, t, NOW).cached);
    CHECK(!run_at(lv, c, t, NOW).cached);
    auth_cache_free(c);
    auth_jwt_free(lv);
    cfg.jwt_cache_max_lifetime_s = -1;
    cfg.jwt_cache_max_entries = 0;
    CHECK_INT(auth_jwt_config_create(&cfg, &lv, err, sizeof(err)), CORE_OK);
    CHECK_INT(lv->cache_max_entries, 0);
    auth_jwt_free(lv);

    /* Bounded: 4 entries, 10 tokens. The one kept hot survives (second chance). */
    c = auth_cache_create(4, 0);
    char *hot = hs256("{\"role\":\"hot\"}");
    CHECK(!run_at(v, c, hot, NOW).cached);
    for (int i = 0; i < 10; i++) {
        char p[64];
        snprintf(p, sizeof(p), "{\"role\":\"r%d\"}", i);
        char *ti = hs256(p);
        CHECK(!run_at(v, c, ti, NOW).cached);
        CHECK(run_at(v, c, hot, NOW).cached);
        free(ti);
        auth_cache_stats(c, &st);
        CHECK(st.entries <= 4);
    }
    auth_cache_stats(c, &st);
    CHECK_INT(st.entries, 4);
    CHECK_INT(st.inserts, 11);
    CHECK_INT(st.evictions, 7);

    /* The same cache used with another verifier (config reload) starts over: a token the
     * old secret accepted must not be served to the new one. */
    auth_jwt_t *v2 = verifier((opts_t){.secret = "a-completely-different-secret-0123456789"});
    CHECK_FAIL(run_at(v2, c, hot, NOW), "PGRST301", KEYFAIL, NONE_OF);
    auth_cache_stats(c, &st);
    CHECK_INT(st.entries, 0);
    auth_jwt_free(v2);
    free(hot);
    auth_cache_free(c);

    /* A zero-sized cache stores nothing; a NULL cache is allowed. */
    c = auth_cache_create(0, 0);
    CHECK(!run_at(v, c, t, NOW).cached);
    CHECK(!run_at(v, c, t, NOW).cached);
    auth_cache_free(c);
    auth_cache_free(NULL);
    auth_cache_stats(NULL, &st);
    CHECK_INT(st.hits, 0);
    free(t);
    auth_jwt_free(v);
}

/* Allocation failures anywhere (ours: OpenSSL and jansson use malloc) fail cleanly. */
static void test_alloc_failure(void)
{
    char *jwk = jwk_of(rsa_a, "a", NULL);
    core_buf_t s;
    core_buf_init(&s, 1 << 16);
    core_buf_appendf(&s, "{\"keys\":[%s]}", jwk);
    const char *secrets[] = {SECRET, s.ptr};
    for (size_t k = 0; k < 2; k++) {
        int failures = 0;
        for (long n = 1; n < 40; n++) {
            auth_jwt_t *v = NULL;
            char err[256] = "";
            core_alloc_fail_after(n);
            int rc = make_verifier((opts_t){.secret = secrets[k], .aud = "a", .role_key = "$.a.b"},
                                   &v, err, sizeof(err));
            core_alloc_fail_after(0);
            if (rc != CORE_OK) {
                failures++;
                CHECK(v == NULL);
                CHECK_INT(rc, CORE_ENOMEM);
            }
            auth_jwt_free(v);
        }
        CHECK(failures > 0);
    }
    core_buf_free(&s);
    free(jwk);

    auth_jwt_t *v = verifier((opts_t){.secret = SECRET});
    char pl[4096]; /* larger than an arena block, so the arena has to grow */
    snprintf(pl, sizeof(pl), "{\"role\":\"r\",\"exp\":1700000100,\"pad\":\"%0*d\"}", 3000, 0);
    char *t = hs256(pl);
    int failures = 0;
    for (long n = 1; n < 20; n++) {
        auth_cache_t *c = auth_cache_create(8, 0);
        core_arena_t *a = core_arena_create(64);
        auth_claims_t cl;
        core_err_t e;
        core_alloc_fail_after(n);
        int rc = auth_jwt_verify_at(v, c, str_from_cstr(t), a, &cl, &e, NOW);
        if (rc == CORE_OK) rc = auth_jwt_verify_at(v, c, str_from_cstr(t), a, &cl, &e, NOW);
        core_alloc_fail_after(0);
        if (rc != CORE_OK) {
            failures++;
            CHECK_INT(rc, CORE_ENOMEM);
            CHECK_INT(e.status, 503);
        }
        core_arena_destroy(a);
        auth_cache_free(c);
    }
    CHECK(failures > 0);
    free(t);
    auth_jwt_free(v);
}

/* One verifier shared by threads, one cache each (the production shape; TSan-clean). */
typedef struct {
    const auth_jwt_t *v;
    const char *tokens[2];
    int failures;
} thread_arg_t;

static void *thread_main(void *p)
{
    thread_arg_t *ta = p;
    auth_cache_t *c = auth_cache_create(16, 0);
    for (int i = 0; i < 200; i++) {
        core_arena_t *a = core_arena_create(1024);
        auth_claims_t cl;
        core_err_t e;
        auth_cache_t *use = (i % 3 == 0) ? NULL : c;
        if (auth_jwt_verify_at(ta->v, use, str_from_cstr(ta->tokens[i % 2]), a, &cl, &e, NOW) !=
                CORE_OK ||
            !cl.role)
            ta->failures++;
        core_arena_destroy(a);
    }
    auth_cache_free(c);
    return NULL;
}

static void test_threads(void)
{
    char *jwk = jwk_of(rsa_a, NULL, NULL);
    core_buf_t s;
    core_buf_init(&s, 1 << 16);
    core_buf_appendf(&s, "{\"keys\":[%s,{\"kty\":\"oct\",\"k\":\"cmVhbGx5cmVhbGx5cmVhbGx5cmVhbG"
                         "x5dmVyeXNhZmU\"}]}",
                     jwk);
    auth_jwt_t *v = verifier((opts_t){.secret = s.ptr});
    char *t1 = make_token("{\"alg\":\"RS256\"}", "{\"role\":\"a\"}", pk(EVP_sha256(), rsa_a, false, 0));
    char *t2 = hs256("{\"role\":\"b\"}");
    pthread_t th[4];
    thread_arg_t args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thread_arg_t){v, {t1, t2}, 0};
        CHECK_INT(pthread_create(&th[i], NULL, thread_main, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK_INT(args[i].failures, 0);
    }
    free(t1);
    free(t2);
    auth_jwt_free(v);
    core_buf_free(&s);
    free(jwk);
}

/* ---- cost of one verification --------------------------------------------------------- */

static double bench_one(const auth_jwt_t *v, auth_cache_t *c, const char *token, int iters)
{
    core_arena_t *a = core_arena_create(1 << 16);
    uint64_t t0 = core_now_ns();
    for (int i = 0; i < iters; i++) {
        auth_claims_t cl;
        core_err_t e;
        if (auth_jwt_verify_at(v, c, str_from_cstr(token), a, &cl, &e, NOW) != CORE_OK) {
            fprintf(stderr, "bench: verify failed: %.*s\n", STR_FMT(e.message));
            break;
        }
        if (i % 256 == 255) {
            core_arena_destroy(a);
            a = core_arena_create(1 << 16);
        }
    }
    double ns = (double)(core_now_ns() - t0) / iters;
    core_arena_destroy(a);
    return ns / 1000.0;
}

static void bench(void)
{
    const char *claims = "{\"aud\":\"authenticated\",\"exp\":1700003600,\"iat\":1699996400,"
                         "\"sub\":\"3f2b8f4e-5a7c-4d21-9e1b-6a0f5c2d9e77\",\"email\":"
                         "\"someone@example.com\",\"role\":\"authenticated\",\"app_metadata\":{"
                         "\"provider\":\"email\"},\"session_id\":\"b8a9c0d1-e2f3-4a5b-8c7d-9e0f1a2b3c4d\"}";
    char *jrsa = jwk_of(rsa_a, NULL, NULL), *jec = jwk_of(ec256, NULL, NULL),
         *jed = jwk_of(ed25519, NULL, NULL);
    struct {
        const char *name;
        const char *secret;
        char *token;
    } b[] = {
        {"HS256", SECRET, hs256(claims)},
        {"RS256", jrsa, make_token("{\"alg\":\"RS256\"}", claims, pk(EVP_sha256(), rsa_a, false, 0))},
        {"ES256", jec, make_token("{\"alg\":\"ES256\"}", claims, pk(EVP_sha256(), ec256, false, 32))},
        {"EdDSA", jed, make_token("{\"alg\":\"EdDSA\"}", claims, pk(NULL, ed25519, false, 0))},
    };
    printf("verify cost per token (%zu-byte token, one thread):\n", strlen(b[0].token) - 7);
    for (size_t i = 0; i < 4; i++) {
        auth_jwt_t *v = verifier((opts_t){.secret = b[i].secret, .aud = "authenticated"});
        auth_cache_t *c = auth_cache_create_for(v);
        int iters = i == 0 ? 200000 : 20000;
        double un = bench_one(v, NULL, b[i].token, iters);
        double ca = bench_one(v, c, b[i].token, 200000);
        printf("  %s: uncached %.2f us, cached %.2f us\n", b[i].name, un, ca);
        auth_cache_free(c);
        auth_jwt_free(v);
        free(b[i].token);
    }
    free(jrsa);
    free(jec);
    free(jed);
}

int main(void)
{
    core_log_set_level(CORE_LOG_ERROR); /* skipped-key warnings are expected here */
    gen_keys();
    test_hmac();
    test_asymmetric();
    test_alg_confusion();
    test_jwks();
    test_config_errors();
    test_times();
    test_aud();
    test_role_paths();
    test_malformed();
    test_scheme();
    test_www_authenticate();
    test_cache();
    test_alloc_failure();
    test_threads();
    const char *b = getenv("STRATA_JWT_BENCH");
    if (b && *b && strcmp(b, "0") != 0) bench();
    EVP_PKEY *all[] = {rsa_a, rsa_b, ec256, ec384, ec521, ed25519, ed448};
    for (size_t i = 0; i < 7; i++) EVP_PKEY_free(all[i]);
    TEST_MAIN_END();
}
