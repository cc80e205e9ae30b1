/* Unit tests for the auth service's pure parts: rate limiter, token signing and claims,
 * refresh tokens, request bodies, email/UUID checks, and hashing on the thread pool. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/service_int.h"
#include "test.h"

#define SECRET "unit-test-secret-that-is-at-least-32-bytes"

static void test_ratelimit(void)
{
    auth_ratelimit_t *rl = auth_ratelimit_create(64, 3);
    CHECK(rl != NULL);
    str_t k = STR_LIT("token:ip:127.0.0.1");
    uint64_t t = 1000000;
    CHECK_INT(auth_ratelimit_take(rl, k, t), 0);
    CHECK_INT(auth_ratelimit_take(rl, k, t), 0);
    CHECK_INT(auth_ratelimit_take(rl, k, t), 0);
    unsigned wait = auth_ratelimit_take(rl, k, t);
    CHECK(wait >= 1 && wait <= 20); /* one token every 20 s */
    /* Another key has its own bucket. */
    CHECK_INT(auth_ratelimit_take(rl, STR_LIT("token:ip:10.0.0.1"), t), 0);
    /* Refill: 20 s later one more request is allowed, not two. */
    CHECK_INT(auth_ratelimit_take(rl, k, t + 20000), 0);
    CHECK(auth_ratelimit_take(rl, k, t + 20000) > 0);
    /* After a whole idle minute the bucket is full again. */
    t += 200000;
    for (int i = 0; i < 3; i++) CHECK_INT(auth_ratelimit_take(rl, k, t), 0);
    CHECK(auth_ratelimit_take(rl, k, t) > 0);
    auth_ratelimit_free(rl);

    /* Bounded: many distinct keys never grow the table past its slots. */
    rl = auth_ratelimit_create(16, 1);
    char key[32];
    for (int i = 0; i < 1000; i++) {
        int n = snprintf(key, sizeof(key), "k%d", i);
        CHECK_INT(auth_ratelimit_take(rl, (str_t){key, (size_t)n}, 5000), 0);
    }
    CHECK(auth_ratelimit_entries(rl) <= 16);
    /* A recent key still limited while the table churns only within its window. */
    CHECK(auth_ratelimit_take(rl, STR_LIT("k999"), 5000) > 0);
    auth_ratelimit_free(rl);

    /* per_min 0: off. */
    rl = auth_ratelimit_create(16, 0);
    for (int i = 0; i < 100; i++) CHECK_INT(auth_ratelimit_take(rl, k, 1), 0);
    auth_ratelimit_free(rl);
    /* A reload changes the rate of a live limiter: off, then a bigger bucket refilling
     * faster, then back to one a minute (buckets keep their tokens, capped at the size). */
    rl = auth_ratelimit_create(16, 1);
    CHECK_INT(auth_ratelimit_take(rl, k, 1000), 0);
    CHECK(auth_ratelimit_take(rl, k, 1000) > 0);
    auth_ratelimit_set_rate(rl, 0);
    for (int i = 0; i < 10; i++) CHECK_INT(auth_ratelimit_take(rl, k, 1000), 0);
    auth_ratelimit_set_rate(rl, 120); /* one every 500 ms */
    CHECK_INT(auth_ratelimit_take(rl, k, 1500), 0);
    CHECK(auth_ratelimit_take(rl, k, 1500) > 0);
    CHECK_INT(auth_ratelimit_take(rl, k, 2000), 0);
    auth_ratelimit_set_rate(rl, 1);
    CHECK(auth_ratelimit_take(rl, k, 30000) > 0);
    CHECK_INT(auth_ratelimit_take(rl, k, 62000), 0);
    CHECK(auth_ratelimit_take(rl, k, 62000) > 0);
    auth_ratelimit_free(rl);
    /* Very long keys are fine (truncated and hashed). */
    rl = auth_ratelimit_create(16, 1);
    char big[400];
    memset(big, 'x', sizeof(big));
    CHECK_INT(auth_ratelimit_take(rl, (str_t){big, sizeof(big)}, 1), 0);
    CHECK(auth_ratelimit_take(rl, (str_t){big, sizeof(big)}, 1) > 0);
    auth_ratelimit_free(rl);
}

static auth_jwt_t *verifier(const char *secret)
{
    core_config_t cfg;
    core_config_defaults(&cfg);
    cfg.jwt_secret = (char *)(uintptr_t)secret;
    auth_jwt_t *v = NULL;
    char err[256];
    CHECK_INT(auth_jwt_config_create(&cfg, &v, err, sizeof(err)), CORE_OK);
    return v;
}

static void test_tokens(void)
{
    auth_jwt_t *v = verifier(SECRET);
    CHECK(auth_token_can_sign(v));
    json_error_t je;
    json_t *user = json_loads("{\"id\":\"0d6f3f5e-8d6b-4b8e-9d3a-3c3a1b1b1b1b\",\"role\":\"authenticated\","
                              "\"email\":\"a@b.co\",\"app_metadata\":{\"provider\":\"email\"},"
                              "\"user_metadata\":{\"name\":\"\\\"q\\\"\"}}",
                              0, &je);
    CHECK(user != NULL);
    int64_t now = 1700000000;
    core_buf_t claims, tok;
    core_buf_init(&claims, 65536);
    core_buf_init(&tok, 65536);
    CHECK_INT(auth_claims_build(user, "11111111-2222-3333-4444-555555555555", NULL, now, now + 3600, &claims), CORE_OK);
    json_t *c = json_loads(claims.ptr, 0, &je);
    CHECK(c != NULL);
    CHECK_STR(str_from_cstr(json_string_value(json_object_get(c, "sub"))), "0d6f3f5e-8d6b-4b8e-9d3a-3c3a1b1b1b1b");
    CHECK_STR(str_from_cstr(json_string_value(json_object_get(c, "aud"))), "authenticated");
    CHECK_STR(str_from_cstr(json_string_value(json_object_get(c, "role"))), "authenticated");
    CHECK_STR(str_from_cstr(json_string_value(json_object_get(c, "aal"))), "aal1");
    CHECK_STR(str_from_cstr(json_string_value(json_object_get(c, "session_id"))), "11111111-2222-3333-4444-555555555555");
    CHECK_INT(json_integer_value(json_object_get(c, "exp")), now + 3600);
    CHECK_INT(json_integer_value(json_object_get(c, "iat")), now);
    CHECK(json_is_false(json_object_get(c, "is_anonymous")));
    CHECK_INT(json_array_size(json_object_get(c, "amr")), 1);
    CHECK_STR(str_from_cstr(json_string_value(json_object_get(json_object_get(c, "user_metadata"), "name"))), "\"q\"");
    json_decref(c);

    /* Signed with jwt-secret; Strata's own verifier accepts it (role, claims text). */
    CHECK_INT(auth_token_sign(v, core_buf_str(&claims), &tok), CORE_OK);
    core_buf_t hdr;
    core_buf_init(&hdr, 65536);
    core_buf_append_cstr(&hdr, "Bearer ");
    core_buf_append_str(&hdr, core_buf_str(&tok));
    core_arena_t *a = core_arena_create(4096);
    auth_claims_t out;
    core_err_t err = {0};
    CHECK_INT(auth_jwt_verify_at(v, NULL, core_buf_str(&hdr), a, &out, &err, now + 10), CORE_OK);
    CHECK_STR(str_from_cstr(out.role), "authenticated");
    CHECK_INT(out.exp, now + 3600);
    CHECK_STR(((str_t){out.claims_json, out.claims_len}), claims.ptr);
    /* Expired an hour later (plus leeway); another secret rejects it. */
    CHECK(auth_jwt_verify_at(v, NULL, core_buf_str(&hdr), a, &out, &err, now + 3700) != CORE_OK);
    auth_jwt_t *other = verifier("another-secret-that-is-at-least-32-bytes!");
    CHECK(auth_jwt_verify_at(other, NULL, core_buf_str(&hdr), a, &out, &err, now + 10) != CORE_OK);
    auth_jwt_free(other);
    /* aud follows jwt-aud when set. */
    core_buf_reset(&claims);
    CHECK_INT(auth_claims_build(user, NULL, "my-app", now, now + 60, &claims), CORE_OK);
    CHECK(strstr(claims.ptr, "\"aud\":\"my-app\"") != NULL);
    CHECK(strstr(claims.ptr, "session_id") == NULL);
    /* An anonymous user: is_anonymous and amr say so. */
    json_t *anon = json_loads("{\"id\":\"0d6f3f5e-8d6b-4b8e-9d3a-3c3a1b1b1b1c\",\"email\":\"\","
                              "\"role\":\"authenticated\",\"is_anonymous\":true}", 0, &je);
    core_buf_reset(&claims);
    CHECK_INT(auth_claims_build(anon, NULL, NULL, now, now + 60, &claims), CORE_OK);
    CHECK(strstr(claims.ptr, "\"is_anonymous\":true") != NULL);
    CHECK(strstr(claims.ptr, "\"method\":\"anonymous\"") != NULL);
    CHECK(strstr(claims.ptr, "\"email\":\"\"") != NULL);
    json_decref(anon);
    /* A user without an id is refused. */
    json_t *bad = json_loads("{\"email\":\"x@y.z\"}", 0, &je);
    CHECK_INT(auth_claims_build(bad, NULL, NULL, now, now + 60, &claims), CORE_EINVAL);
    json_decref(bad);
    core_arena_destroy(a);
    core_buf_free(&hdr);
    core_buf_free(&claims);
    core_buf_free(&tok);
    json_decref(user);
    auth_jwt_free(v);

    /* A JWK (RSA) or no secret: nothing to sign with. */
    CHECK(!auth_token_can_sign(NULL));
    auth_jwt_t *none = verifier(NULL);
    CHECK(!auth_token_can_sign(none));
    auth_jwt_free(none);

    /* Refresh tokens: 43 base64url characters, random; stored as hex SHA-256. */
    char r1[AUTH_REFRESH_LEN + 1], r2[AUTH_REFRESH_LEN + 1], h1[AUTH_REFRESH_HASH_LEN + 1], h2[AUTH_REFRESH_HASH_LEN + 1];
    auth_refresh_token_new(r1);
    auth_refresh_token_new(r2);
    CHECK_INT(strlen(r1), AUTH_REFRESH_LEN);
    CHECK(strcmp(r1, r2) != 0);
    CHECK_INT(strspn(r1, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), AUTH_REFRESH_LEN);
    auth_refresh_token_hash(str_from_cstr("abc"), h1);
    CHECK_STR(str_from_cstr(h1), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    auth_refresh_token_hash(str_from_cstr(r1), h2);
    CHECK_INT(strlen(h2), 64);
}

static void test_body(void)
{
    core_arena_t *a = core_arena_create(4096);
    auth_body_t b;
    const char *msg;
    CHECK_INT(auth_body_parse(a, STR_LIT("{\"email\":\"  Ann@Example.COM \",\"password\":\"pw\\u00e9\","
                                         "\"data\":{\"x\":1},\"gotrue_meta_security\":{},\"code_challenge\":null}"),
                              &b, &msg),
              CORE_OK);
    CHECK_STR(str_from_cstr(b.email), "ann@example.com");
    CHECK_STR(((str_t){b.password, b.password_len}), "pw\xc3\xa9");
    CHECK(json_is_object(b.data));
    CHECK_INT(b.email_confirm, -1);
    CHECK_INT(auth_body_parse(a, STR_LIT("{\"user_metadata\":{},\"app_metadata\":{\"r\":1},\"email_confirm\":true}"),
                              &b, &msg),
              CORE_OK);
    CHECK(b.email == NULL && b.password == NULL);
    CHECK(json_is_object(b.data) && json_is_object(b.app_metadata));
    CHECK_INT(b.email_confirm, 1);
    CHECK_INT(auth_body_parse(a, STR_LIT("{\"refresh_token\":\"abc\",\"email\":null}"), &b, &msg), CORE_OK);
    CHECK_STR(str_from_cstr(b.refresh_token), "abc");
    CHECK(b.email == NULL);
    static const char *const bad[] = {
        "", "{", "[]", "\"s\"", "1", "{\"email\":1}", "{\"password\":{}}", "{\"refresh_token\":[]}",
        "{\"data\":\"x\"}", "{\"data\":[1]}", "{\"app_metadata\":1}", "{\"email_confirm\":\"yes\"}",
        "{\"email\":\"a\",\"email\":\"b\"}", "{\"email\":\"a\\u0000b\"}", "{\"a\":1} x", "\xff",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        msg = NULL;
        CHECK_INT(auth_body_parse(a, str_from_cstr(bad[i]), &b, &msg), CORE_EINVAL);
        CHECK(msg != NULL);
    }
    core_arena_destroy(a);

    CHECK(auth_email_valid("a@b.co"));
    CHECK(auth_email_valid("first.last+tag@sub.example.org"));
    static const char *const bad_emails[] = {"", "a@", "@b.co", "ab.co", "a@@b.co", "a b@c.co", "a@b..co",
                                             "a@.b.co", "a@b.co.", "a\"@b.co", "a@b;c.co", "a\t@b.co"};
    for (size_t i = 0; i < sizeof(bad_emails) / sizeof(bad_emails[0]); i++) CHECK(!auth_email_valid(bad_emails[i]));
    char longmail[300];
    memset(longmail, 'a', sizeof(longmail));
    memcpy(longmail + 280, "@example.com", 13);
    CHECK(!auth_email_valid(longmail));

    CHECK(auth_uuid_valid(STR_LIT("0d6f3f5e-8d6b-4b8e-9d3a-3c3a1b1b1b1b")));
    CHECK(auth_uuid_valid(STR_LIT("0D6F3F5E-8D6B-4B8E-9D3A-3C3A1B1B1B1B")));
    CHECK(!auth_uuid_valid(STR_LIT("0d6f3f5e8d6b4b8e9d3a3c3a1b1b1b1b")));
    CHECK(!auth_uuid_valid(STR_LIT("0d6f3f5e-8d6b-4b8e-9d3a-3c3a1b1b1b1g")));
    CHECK(!auth_uuid_valid(STR_LIT("0d6f3f5e-8d6b-4b8e-9d3a-3c3a1b1b1b1b0")));
    CHECK(!auth_uuid_valid(STR_NULL));
}

/* ---- hashing on the thread pool ---------------------------------------------------------- */

static int done_order[8];
static int ndone;

static void on_hashed(auth_hash_job_t *job, int status)
{
    CHECK_INT(status, CORE_OK);
    done_order[ndone++] = (int)(intptr_t)job->arg;
}

static void test_hashing(void)
{
    unsigned long long ops;
    size_t mem;
    CHECK(auth_hash_limits("interactive", &ops, &mem));
    CHECK_INT(mem, crypto_pwhash_MEMLIMIT_INTERACTIVE);
    CHECK(auth_hash_limits("moderate", &ops, &mem));
    CHECK(!auth_hash_limits("fast", &ops, &mem));
    CHECK(auth_hash_limits("min", &ops, &mem));

    uv_loop_t loop;
    CHECK_INT(uv_loop_init(&loop), 0);
    auth_hasher_t *h = auth_hasher_create(&loop, 1, ops, mem);
    CHECK(h != NULL);
    static auth_hash_job_t jobs[4];
    memset(jobs, 0, sizeof(jobs));
    for (int i = 0; i < 3; i++) {
        jobs[i].kind = AUTH_HASH_MAKE;
        jobs[i].password = "correct horse";
        jobs[i].password_len = 13;
        jobs[i].done = on_hashed;
        jobs[i].arg = (void *)(intptr_t)i;
        CHECK_INT(auth_hash_submit(h, &jobs[i]), CORE_OK);
    }
    CHECK_INT(ndone, 0); /* never from inside submit */
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(ndone, 3);
    CHECK_INT(done_order[0], 0);
    CHECK_INT(done_order[1], 1);
    CHECK_INT(done_order[2], 2);
    CHECK(strncmp(jobs[0].hash, "$argon2id$", 10) == 0);
    CHECK(strcmp(jobs[0].hash, jobs[1].hash) != 0); /* salted */

    jobs[3].kind = AUTH_HASH_VERIFY;
    jobs[3].password = "correct horse";
    jobs[3].password_len = 13;
    jobs[3].stored = jobs[1].hash;
    jobs[3].done = on_hashed;
    jobs[3].arg = (void *)(intptr_t)3;
    CHECK_INT(auth_hash_submit(h, &jobs[3]), CORE_OK);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(jobs[3].verify_ok);
    jobs[3].password = "correct horsE";
    CHECK_INT(auth_hash_submit(h, &jobs[3]), CORE_OK);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(!jobs[3].verify_ok);
    jobs[3].stored = "not a hash";
    CHECK_INT(auth_hash_submit(h, &jobs[3]), CORE_OK);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(!jobs[3].verify_ok);
    auth_hasher_free(h);
    CHECK_INT(uv_loop_close(&loop), 0);
}

/* The service's lifetime across reloads: it takes its own reference to each verifier, so
 * the config generation that built one may go first (ASan/LSan see any double free or
 * leak); a verifier that cannot sign, then one that can, then out of memory on a reload. */
static void test_service_reload(void)
{
    core_config_t cfg;
    core_config_defaults(&cfg);
    cfg.auth_password_hash = (char *)(uintptr_t)"min";
    auth_jwt_t *none = verifier(NULL);
    CHECK(auth_jwt_ref(none) == none);
    auth_jwt_free(none); /* back to one reference */
    auth_service_t *s = NULL;
    CHECK_INT(auth_service_create(&cfg, none, NULL, 2, &s), CORE_OK);
    auth_jwt_free(none); /* the generation goes; the service keeps the verifier */
    uv_loop_t loop;
    CHECK_INT(uv_loop_init(&loop), 0);
    auth_worker_t *w = auth_worker_create(s, &loop, NULL, NULL);
    CHECK(w != NULL);
    auth_jwt_t *v = verifier(SECRET);
    cfg.auth_refresh_token_reuse_interval_s = 0;
    CHECK_INT(auth_service_reload(s, &cfg, v), CORE_OK);
    auth_jwt_free(v);
    for (long n = 1; n < 6; n++) {
        auth_jwt_t *v2 = verifier(SECRET);
        core_alloc_fail_after(n);
        int rc = auth_service_reload(s, &cfg, v2);
        core_alloc_fail_after(0);
        CHECK(rc == CORE_OK || rc == CORE_ENOMEM);
        auth_jwt_free(v2);
    }
    auth_worker_free(w); /* drops the worker's generation */
    auth_service_free(s);
    CHECK_INT(uv_loop_close(&loop), 0);
}

/* Out of memory at every allocation in turn: each call fails cleanly or succeeds, never
 * crashes or leaks (ASan run). */
static void test_alloc_failures(void)
{
    json_error_t je;
    json_t *user = json_loads("{\"id\":\"u\",\"email\":\"a@b.co\"}", 0, &je);
    for (long n = 1; n < 40; n++) {
        core_alloc_fail_after(n);
        auth_ratelimit_t *rl = auth_ratelimit_create(64, 3);
        if (rl) {
            CHECK_INT(auth_ratelimit_take(rl, STR_LIT("k"), 1), 0);
            auth_ratelimit_free(rl);
        }
        core_arena_t *a = core_arena_create(64);
        if (a) {
            auth_body_t b;
            const char *msg;
            int rc = auth_body_parse(a, STR_LIT("{\"email\":\"Some.Body@Example.com\",\"password\":\"x\"}"), &b, &msg);
            CHECK(rc == CORE_OK || rc == CORE_ENOMEM);
            core_arena_destroy(a);
        }
        core_buf_t out;
        core_buf_init(&out, 65536);
        int rc = auth_claims_build(user, "s", NULL, 1, 2, &out);
        CHECK(rc == CORE_OK || rc == CORE_ENOMEM);
        core_buf_free(&out);
        core_alloc_fail_after(0);
    }
    json_decref(user);
}

int main(void)
{
    if (sodium_init() < 0) return 1;
    test_ratelimit();
    test_tokens();
    test_body();
    test_hashing();
    test_service_reload();
    test_alloc_failures();
    TEST_MAIN_END();
}
