/*
 * embedded: the private PostgreSQL cluster that `strata serve` runs when no PGRST_DB_URI is
 * given. Created on first run (initdb) under <data_dir>/pg (or /var/lib/strata/<hash>/pg
 * when the postgres user cannot reach data_dir), started as a supervised child process
 * listening only on a Unix socket in a short private directory, restarted with backoff if
 * it dies, stopped in order on shutdown.
 *
 * Runs on the main thread's loop. db_embedded_start blocks (initdb, waiting for readiness,
 * bootstrap SQL with blocking libpq): it is called before any worker loop starts.
 */
#ifndef STRATA_DB_EMBEDDED_H
#define STRATA_DB_EMBEDDED_H

#include <uv.h>

#include "core/core.h"

typedef struct db_embedded db_embedded_t;

/* Initialises (first run) and starts the cluster, waits until it accepts connections, and
 * makes sure the roles anon, authenticated, service_role (NOLOGIN) and authenticator (LOGIN
 * NOINHERIT, granted the other three) and the database "strata" exist. Creates
 * <data_dir>/jwt-secret (mode 0600, 64 random hex chars) if missing. The supervisor that
 * restarts PostgreSQL when it exits unexpectedly runs on `loop`.
 * Returns 0 and *out, or a negative status after logging one clear line. */
/* max_connections: what the cluster must accept (every worker's pool, the schema listener,
 * migrations, a margin); below 100 (PostgreSQL's default) 100 is kept. */
int db_embedded_start(uv_loop_t *loop, const char *data_dir, unsigned max_connections, db_embedded_t **out) CORE_WUR;

/* libpq conninfo strings (owned by *e, valid until db_embedded_free):
 * the API's login role (authenticator) and the superuser for migrations. */
const char *db_embedded_conninfo(const db_embedded_t *e);
const char *db_embedded_admin_conninfo(const db_embedded_t *e);

/* The JWT secret read from (or created in) <data_dir>/jwt-secret. */
const char *db_embedded_jwt_secret(const db_embedded_t *e);

/* Stops PostgreSQL (fast shutdown: SIGINT, then SIGQUIT after 10 s) and disables restarts;
 * done(arg) runs on the loop when the postmaster has exited and its handles are closed. */
void db_embedded_stop(db_embedded_t *e, void (*done)(void *), void *arg);

/* Frees *e after db_embedded_stop has completed. */
void db_embedded_free(db_embedded_t *e);

/* The postmaster's pid (for tests and logs), or 0 when it is not running. */
int db_embedded_pid(const db_embedded_t *e);

#endif
