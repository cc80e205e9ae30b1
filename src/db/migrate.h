/*
 * migrate: Strata's own versioned SQL migrations (recorded in strata_meta.migrations) and
 * the optional demo schema. Blocking libpq: runs once at start, before any loop.
 */
#ifndef STRATA_DB_MIGRATE_H
#define STRATA_DB_MIGRATE_H

#include "core/core.h"

/* Applies pending migrations over admin_conninfo under an advisory lock (several instances
 * may start at once), then, when demo is set, loads the demo schema idempotently.
 * Returns 0, or a negative status with one line in err. */
int db_migrate(const char *admin_conninfo, bool demo, char *err, size_t errlen) CORE_WUR;

/* Checks that the auth schema is in place (migration 10) and lets the role the API
 * connections log in as (read from api_conninfo) switch to strata_auth, granting it over
 * admin_conninfo when it is not a member yet. Returns 0, or a negative status with one line
 * in err; the caller then serves /auth/v1 with 503s. */
int db_migrate_auth_ready(const char *admin_conninfo, const char *api_conninfo, char *err,
                          size_t errlen) CORE_WUR;

#endif
