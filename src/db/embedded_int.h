/*
 * embedded internals shared with tests and diagnostics (not part of db's public surface).
 */
#ifndef STRATA_DB_EMBEDDED_INT_H
#define STRATA_DB_EMBEDDED_INT_H

#include "db/embedded.h"

/* The cluster's data directory (PGDATA): <data_dir>/pg, or /var/lib/strata/<hash>/pg when
 * the postgres user cannot reach data_dir. Owned by *e. */
const char *db_embedded_cluster_dir(const db_embedded_t *e);

/* The private Unix socket directory (/tmp/strata-<hash>). Owned by *e. */
const char *db_embedded_socket_dir(const db_embedded_t *e);

/* How many times the supervisor has restarted the postmaster since db_embedded_start. */
unsigned db_embedded_restarts(const db_embedded_t *e);

#endif
