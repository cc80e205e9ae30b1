/*
 * libFuzzer target for the JWT verifier. The first byte picks what the rest is:
 *   0: an Authorization header value, verified as is against an HS256 verifier (with a
 *      cache, twice, so the cache paths run too);
 *   1: "header JSON \n payload JSON": the harness encodes and signs them with the secret,
 *      so the fuzzer reaches claim checks and role extraction behind a valid signature;
 *   2: "role claim key \n payload JSON": a verifier is built with that jwt-role-claim-key
 *      (most are refused), then a signed token with that payload is verified.
 * Must never crash or leak (ASan/UBSan build); every call returns a status.
 */
#include <stdint.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth/auth.h"
#include "auth/auth_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char SECRET[] = "reallyreallyreallyreallyverysafe";
static const int64_t NOW = 1700000000;

static auth_jwt_t *make(const char *role_key)
{
    core_config_t cfg;
    char err[256];
    auth_jwt_t *v = NULL;
    core_config_defaults(&cfg);
    cfg.jwt_secret = (char *)(uintptr_t)SECRET;
    cfg.jwt_aud = (char *)(uintptr_t)"api";
    if (role_key) cfg.jwt_role_claim_key = (char *)(uintptr_t)role_key;
    if (auth_jwt_config_create(&cfg, &v, err, sizeof(err)) != CORE_OK) return NULL;
    return v;
}

static void b64url(const uint8_t *in, size_t n, core_buf_t *out)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n) v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n) v |= in[i + 2];
        char q[4] = {tbl[v >> 18], tbl[(v >> 12) & 63], tbl[(v >> 6) & 63], tbl[v & 63]};
        core_buf_append(out, q, n - i >= 3 ? 4 : n - i + 1);
    }
}

static void verify(const auth_jwt_t *v, auth_cache_t *c, str_t header)
{
    core_arena_t *a = core_arena_create(4096);
    if (!a) return;
    for (int i = 0; i < 2; i++) {
        auth_claims_t cl;
        core_err_t e;
        int rc = auth_jwt_verify_at(v, c, header, a, &cl, &e, NOW + i * 20);
        if (rc == CORE_OK) {
            /* Touch what the caller will read. */
            volatile size_t n = strlen(cl.claims_json) + (cl.role ? strlen(cl.role) : 0);
            (void)n;
        } else {
            (void)auth_www_authenticate(a, &e);
        }
    }
    core_arena_destroy(a);
}

/* Verifies "Bearer b64(h).b64(p).HMAC" for the two given parts. */
static void signed_token(const auth_jwt_t *v, auth_cache_t *c, str_t h, str_t p)
{
    core_buf_t t;
    core_buf_init(&t, 1 << 16);
    core_buf_append_cstr(&t, "Bearer ");
    b64url((const uint8_t *)h.ptr, h.len, &t);
    core_buf_append_char(&t, '.');
    b64url((const uint8_t *)p.ptr, p.len, &t);
    if (core_buf_status(&t) == CORE_OK) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int ml = 0;
        HMAC(EVP_sha256(), SECRET, (int)sizeof(SECRET) - 1, (const unsigned char *)t.ptr + 7,
             t.len - 7, mac, &ml);
        core_buf_append_char(&t, '.');
        b64url(mac, ml, &t);
        if (core_buf_status(&t) == CORE_OK) verify(v, c, core_buf_str(&t));
    }
    core_buf_free(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static auth_jwt_t *v;
    static auth_cache_t *cache;
    if (!v) {
        core_log_set_level(CORE_LOG_ERROR);
        v = make(NULL);
        cache = auth_cache_create(64, 0);
        if (!v || !cache) return 0;
    }
    if (size == 0) return 0;
    unsigned mode = data[0] % 3;
    str_t rest = {(const char *)data + 1, size - 1};
    if (mode == 0) {
        verify(v, cache, rest);
        return 0;
    }
    long nl = str_find_char(rest, '\n');
    str_t first = nl < 0 ? rest : (str_t){rest.ptr, (size_t)nl};
    str_t second = nl < 0 ? STR_NULL : (str_t){rest.ptr + nl + 1, rest.len - (size_t)nl - 1};
    if (mode == 1) {
        signed_token(v, cache, first, second);
        return 0;
    }
    char *key = core_strndup(first.ptr ? first.ptr : "", first.len);
    if (!key) return 0;
    auth_jwt_t *w = strlen(key) == first.len ? make(key) : NULL;
    if (w) {
        signed_token(w, NULL, STR_LIT("{\"alg\":\"HS256\"}"), second);
        auth_jwt_free(w);
    }
    core_free(key);
    return 0;
}
