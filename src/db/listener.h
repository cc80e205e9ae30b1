/*
 * listener: the schema-cache keeper. A thread of its own (blocking libpq is allowed here,
 * it never runs on a loop) that connects, LISTENs on the configured channel (PostgREST's
 * "pgrst"), loads the schema cache and publishes it (db_schema_publish), reloads it on
 * NOTIFY pgrst 'reload schema' (or an empty payload), on db_listener_reload() (SIGUSR1),
 * and after every reconnect; NOTIFY pgrst 'reload config' calls cfg.on_reload_config. While the database is unreachable it retries with backoff.
 */
#ifndef STRATA_DB_LISTENER_H
#define STRATA_DB_LISTENER_H

#include "core/core.h"

typedef struct db_listener db_listener_t;

typedef struct {
    const char *conninfo;
    const char *schemas_csv;
    const char *channel;  /* NULL: don't LISTEN */
    /* Called on the listener thread after each publish; must be thread-safe (uv_async_send). */
    void (*on_reload)(void *arg);
    void *arg;
    /* Called on the listener thread for NOTIFY <channel>, 'reload config' and
     * db_listener_reload_config(); blocking work (reading the config file) is fine there. */
    void (*on_reload_config)(void *arg);
} db_listener_config_t;

int db_listener_start(const db_listener_config_t *cfg, db_listener_t **out) CORE_WUR;
/* Asks for a reload; safe from any thread (not from a signal handler). */
void db_listener_reload(db_listener_t *l);
/* Asks for a configuration reload (cfg.on_reload_config on the listener thread); safe from
 * any thread (not from a signal handler). */
void db_listener_reload_config(db_listener_t *l);
/* True while the listener's connection is up. */
bool db_listener_db_up(const db_listener_t *l);
/* Stops the thread, joins it, frees l. */
void db_listener_stop(db_listener_t *l);

#endif
