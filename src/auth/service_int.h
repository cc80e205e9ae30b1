/*
 * Internals of the auth service (src/auth/service.c, tokens.c, password.c, ratelimit.c):
 * the pure parts are here so unit tests can reach them.
 */
#ifndef STRATA_AUTH_SERVICE_INT_H
#define STRATA_AUTH_SERVICE_INT_H

#include <jansson.h>
#include <sodium.h>
#include <uv.h>

#include "auth/auth_int.h"
#include "auth/service.h"

/* Request bodies bigger than this are refused before parsing (413). */
#define AUTH_MAX_BODY_BYTES ((size_t)64 * 1024)
/* Refresh tokens: 32 random bytes, base64url without padding. */
#define AUTH_REFRESH_BYTES 32
#define AUTH_REFRESH_LEN 43
/* Hex SHA-256, what the database stores instead of the token. */
#define AUTH_REFRESH_HASH_LEN 64

/* ---- rate limiter (ratelimit.c) ----------------------------------------------------------
 * Token buckets keyed by text ("token:ip:127.0.0.1"), per_min tokens a minute, refilled
 * continuously. A fixed table of `slots` entries (power of two) with short linear probing:
 * a key that finds neither its entry nor a free or idle one takes over the least recently
 * used entry of its probe window, so memory is bounded whatever the traffic. One mutex:
 * the table is shared by every worker thread. */
typedef struct auth_ratelimit auth_ratelimit_t;

/* per_min 0 gives a limiter that allows everything. NULL when out of memory. */
auth_ratelimit_t *auth_ratelimit_create(size_t slots, unsigned per_min) CORE_WUR;
void auth_ratelimit_free(auth_ratelimit_t *rl);
/* Takes one request for key at now_ms (a monotonic clock). Returns 0 when allowed, else
 * the whole seconds (>= 1) until the key may try again (Retry-After). */
unsigned auth_ratelimit_take(auth_ratelimit_t *rl, str_t key, uint64_t now_ms);
/* Changes the rate (a config reload); safe while other threads take. */
void auth_ratelimit_set_rate(auth_ratelimit_t *rl, unsigned per_min);
/* Entries in use (tests). */
size_t auth_ratelimit_entries(auth_ratelimit_t *rl);

/* ---- tokens (tokens.c) ------------------------------------------------------------------- */

/* True when the verifier holds exactly one HMAC key, which can then sign HS256. */
bool auth_token_can_sign(const auth_jwt_t *v);
/* Appends header.payload.signature (HS256) for the claims JSON text to out. */
int auth_token_sign(const auth_jwt_t *v, str_t claims_json, core_buf_t *out) CORE_WUR;

/* The access-token claims GoTrue issues for a user (`user` is the user JSON the database
 * returned): aud, exp, iat, sub, email, phone, app_metadata, user_metadata, role, aal,
 * amr [{method: "password" ("anonymous" for an anonymous user), timestamp}], session_id,
 * is_anonymous (the user's). Appended to out as
 * compact JSON. CORE_EINVAL when user lacks an id. */
int auth_claims_build(json_t *user, const char *session_id, const char *aud, int64_t iat, int64_t exp,
                      core_buf_t *out) CORE_WUR;

/* A fresh refresh token (libsodium randombytes), NUL-terminated. */
void auth_refresh_token_new(char out[AUTH_REFRESH_LEN + 1]);
/* Its stored form: hex SHA-256, NUL-terminated. */
void auth_refresh_token_hash(str_t token, char out[AUTH_REFRESH_HASH_LEN + 1]);

/* ---- request bodies (service.c) ------------------------------------------------------------ */

typedef struct {
    json_t *root;          /* owned: json_decref when done */
    const char *email;     /* NULL when absent; trimmed and lower-cased (in the arena) */
    const char *password;  /* NULL when absent */
    size_t password_len;
    const char *refresh_token;
    json_t *data;          /* "data" (signup, PUT /user) or "user_metadata" (admin): object */
    json_t *app_metadata;  /* admin only: object */
    int email_confirm;     /* admin: -1 absent, 0 false, 1 true */
} auth_body_t;

/* Parses a JSON object body. Members of the wrong type are errors; unknown members are
 * ignored (auth-js sends gotrue_meta_security, code_challenge, ...). On failure returns
 * CORE_EINVAL with a static message in *msg (or CORE_ENOMEM). */
int auth_body_parse(core_arena_t *a, str_t body, auth_body_t *out, const char **msg) CORE_WUR;

/* Checks an email as GoTrue's simple rule does (one '@', something either side, no
 * spaces or controls, at most 255 bytes); true when acceptable. */
bool auth_email_valid(const char *email);
/* True when s is a canonical UUID text (8-4-4-4-12 hex digits). */
bool auth_uuid_valid(str_t s);

/* ---- password hashing off the loop (password.c) ----------------------------------------------
 * argon2id through libsodium on the libuv thread pool. At most max_running jobs of one
 * hasher run at a time; the rest wait in its FIFO queue (bounded by AUTH_HASH_MAX_QUEUED). */
#define AUTH_HASH_MAX_QUEUED 1024

typedef enum { AUTH_HASH_MAKE, AUTH_HASH_VERIFY } auth_hash_kind_t;
typedef struct auth_hasher auth_hasher_t;
typedef struct auth_hash_job auth_hash_job_t;
/* Runs on the hasher's loop. status: 0 done (hash made, or verify_ok set), negative on failure. */
typedef void (*auth_hash_done_fn)(auth_hash_job_t *job, int status);

struct auth_hash_job {
    uv_work_t work;
    auth_hasher_t *hasher;
    auth_hash_job_t *next;
    auth_hash_kind_t kind;
    const char *password;   /* not NUL-terminated necessarily: password_len bytes */
    size_t password_len;
    const char *stored;     /* VERIFY: the stored hash string (NUL-terminated) */
    unsigned long long ops; /* MAKE: argon2id limits; 0 = the hasher's own */
    size_t mem;
    char hash[crypto_pwhash_STRBYTES]; /* MAKE: the result */
    bool verify_ok;         /* VERIFY: the result */
    int status;
    auth_hash_done_fn done;
    void *arg;
};

/* Limits by name: "interactive" (libsodium's interactive limits, the default), "moderate",
 * "min" (tests). Returns false for another name. */
bool auth_hash_limits(const char *name, unsigned long long *ops, size_t *mem);
auth_hasher_t *auth_hasher_create(uv_loop_t *loop, unsigned max_running, unsigned long long ops,
                                  size_t mem) CORE_WUR;
void auth_hasher_free(auth_hasher_t *h);
/* Queues job (which the caller owns and keeps alive until done runs). Returns 0 (done
 * will run later on the loop), or CORE_ELIMIT when the queue is full (done never runs). */
int auth_hash_submit(auth_hasher_t *h, auth_hash_job_t *job) CORE_WUR;
/* The blocking hash itself, for startup (the dummy hash) and tests. */
int auth_hash_now(const char *password, size_t len, unsigned long long ops, size_t mem,
                  char out[crypto_pwhash_STRBYTES]) CORE_WUR;

#endif
