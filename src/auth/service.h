/*
 * auth service: the GoTrue-compatible routes under /auth/v1 that @supabase/auth-js calls for
 * email + password (signup, token, user, logout, settings, health, admin users). See
 * docs/auth.md.
 *
 * One auth_service_t per process: built at startup from the config and the JWT verifier,
 * then shared read-only by the workers (its rate limiter has its own mutex). One
 * auth_worker_t per worker loop: it owns that loop's password-hashing queue and uses the
 * worker's db pool and verified-token cache. Users live in schema auth (migration 10);
 * every statement runs through the pool as the NOLOGIN role strata_auth.
 */
#ifndef STRATA_AUTH_SERVICE_H
#define STRATA_AUTH_SERVICE_H

#include <uv.h>

#include "auth/auth.h"
#include "core/config.h"
#include "db/db.h"
#include "http/http.h"

typedef struct auth_service auth_service_t;
typedef struct auth_worker auth_worker_t;

/* Builds the service. `unavailable` is NULL when the auth schema is ready, else a reason
 * (one line) the service gives in every 503 until a restart. A verifier whose key is not an
 * HMAC secret cannot sign tokens: the service then logs that and answers 503 too, until a
 * reload brings one. The service takes its own reference to verifier (auth_jwt_ref).
 * Returns 0 and *out (free with auth_service_free once no worker uses it), or CORE_ENOMEM.
 * Call once, before the workers start (it initialises libsodium and computes the dummy
 * hash that logins for unknown emails verify against). */
int auth_service_create(const core_config_t *cfg, auth_jwt_t *verifier, const char *unavailable,
                        unsigned nworkers, auth_service_t **out) CORE_WUR;
/* A config reload: the service's settings (token lifetime, password rules, rate limit,
 * hash cost, refresh-token reuse interval, anonymous sign-ins) and its key become those of
 * cfg and verifier (referenced, not copied; cfg is read only during the call). Each worker
 * adopts them at its next /auth/v1 request; requests already running finish with the
 * generation they started with. Any thread. Returns 0, or CORE_ENOMEM (the current
 * configuration stays). */
int auth_service_reload(auth_service_t *s, const core_config_t *cfg, auth_jwt_t *verifier) CORE_WUR;
void auth_service_free(auth_service_t *s);

/* Per worker loop. jwt_cache is the worker's cache (may be NULL); pool its db pool. NULL
 * when out of memory. Free after the loop has ended (no request in flight). */
auth_worker_t *auth_worker_create(auth_service_t *s, uv_loop_t *loop, db_pool_t *pool,
                                  auth_cache_t *jwt_cache) CORE_WUR;
void auth_worker_free(auth_worker_t *w);

/* Handles a request whose path is below /auth/v1 (`path` is what follows it, e.g.
 * "/token"). Always ends the request, possibly later from a db or thread-pool callback. */
void auth_handle(auth_worker_t *w, http_req_t *req, str_t path);

#endif
