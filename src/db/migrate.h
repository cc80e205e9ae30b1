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

#endif
