/*
 * libFuzzer target for what the auth service reads from clients: request bodies
 * (auth_body_parse), the email and UUID checks, and, for bodies that parse as an object, the
 * access-token claims built from them as if they were a user row (auth_claims_build) and
 * signed (auth_token_sign). Must never crash or leak (ASan/UBSan build).
 */
#include <stdint.h>
#include <string.h>

#include "auth/service_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static auth_jwt_t *verifier(void)
{
    static auth_jwt_t *v;
    if (!v) {
        core_config_t cfg;
        char err[256];
        core_config_defaults(&cfg);
        cfg.jwt_secret = (char *)(uintptr_t) "fuzz-secret-that-is-at-least-32-bytes-long";
        if (auth_jwt_config_create(&cfg, &v, err, sizeof(err)) != CORE_OK) v = NULL;
    }
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > AUTH_MAX_BODY_BYTES) return 0;
    core_arena_t *a = core_arena_create(4096);
    if (!a) return 0;
    str_t in = {(const char *)data, size};
    auth_body_t b;
    const char *msg = NULL;
    if (auth_body_parse(a, in, &b, &msg) == CORE_OK) {
        if (b.email) (void)auth_email_valid(b.email);
        if (b.refresh_token) {
            char h[AUTH_REFRESH_HASH_LEN + 1];
            auth_refresh_token_hash(str_from_cstr(b.refresh_token), h);
        }
        core_buf_t claims, tok;
        core_buf_init(&claims, 256 * 1024);
        core_buf_init(&tok, 512 * 1024);
        if (auth_claims_build(b.root, "11111111-2222-3333-4444-555555555555", NULL, 1700000000, 1700003600,
                              &claims) == CORE_OK &&
            verifier())
            (void)auth_token_sign(verifier(), core_buf_str(&claims), &tok);
        core_buf_free(&claims);
        core_buf_free(&tok);
    }
    (void)auth_uuid_valid(in);
    char *c = core_arena_strdup(a, in);
    if (c) (void)auth_email_valid(c);
    core_arena_destroy(a);
    return 0;
}
