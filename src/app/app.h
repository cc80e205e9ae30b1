/*
 * app: wires the modules into a running server — the embedded or external database,
 * migrations, the schema listener, N worker threads (one libuv loop each, SO_REUSEPORT
 * listeners, a db pool each), the admin server, signals and graceful shutdown.
 */
#ifndef STRATA_APP_H
#define STRATA_APP_H

#include "core/config.h"

/* Runs the server until SIGINT/SIGTERM. Returns the process exit status (0 after a clean
 * shutdown, 1 when starting failed). */
int app_serve(core_config_t *cfg);

#endif
