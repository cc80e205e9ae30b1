/*
 * db internals: resolving the database's host names off the loop (src/db/resolve.c).
 * Not part of db's public surface; pool.c and the unit tests use it.
 *
 * libpq resolves a host name with a blocking getaddrinfo() inside PQconnectStart /
 * PQconnectPoll, which would stall a worker loop for as long as DNS takes. Its documented
 * way out is `hostaddr`: given a numeric address next to `host`, libpq looks nothing up
 * (and still uses `host` for TLS verification and .pgpass). So before each connection
 * attempt the pool resolves the names itself with uv_getaddrinfo (on the thread pool) and
 * connects with PQconnectStartParams: the conninfo's own options plus host/hostaddr/port
 * lists with one entry per resolved address.
 *
 * Two layers: a pure one (parse the conninfo once, decide what needs a lookup, build the
 * keyword/value arrays from addresses) that the unit tests drive directly, and the
 * asynchronous resolver the pool owns.
 */
#ifndef STRATA_DB_RESOLVE_INT_H
#define STRATA_DB_RESOLVE_INT_H

#include <libpq-fe.h>
#include <uv.h>

#include "core/core.h"

#define DB_TARGET_MAX_HOSTS 16  /* host list entries looked at; a longer list goes to libpq as is */
#define DB_TARGET_HOST_ADDRS 8  /* addresses kept per name (getaddrinfo's order) */
#define DB_ADDR_LEN 64          /* a numeric IPv6 address with a scope id fits */

/* The conninfo, parsed once (PQconninfoParse: key=value and URI forms alike). */
typedef struct {
    PQconninfoOption *opts; /* PQconninfoParse's output; NULL when it failed */
    char *lists;            /* copies of the host and port lists, split at the commas */
    unsigned nhosts;
    const char *host[DB_TARGET_MAX_HOSTS]; /* each entry; "" is libpq's default (a socket) */
    const char *port[DB_TARGET_MAX_HOSTS]; /* each entry's port when the port is a list; else NULL */
    bool lookup[DB_TARGET_MAX_HOSTS];      /* a name (not a socket path, not an IP literal) */
    bool numeric[DB_TARGET_MAX_HOSTS];     /* an IPv4/IPv6 literal: its own hostaddr */
    unsigned nlookup; /* names to resolve; 0: connect with the conninfo string as today */
} db_target_t;

/* Addresses found for each host entry that needed a lookup (n[i] == 0: it failed). */
typedef struct {
    unsigned n[DB_TARGET_MAX_HOSTS];
    char addr[DB_TARGET_MAX_HOSTS][DB_TARGET_HOST_ADDRS][DB_ADDR_LEN];
} db_addrs_t;

/* Keyword/value arrays for PQconnectStartParams(keys, vals, 0), NULL-terminated. */
typedef struct {
    const char **keys, **vals;
    unsigned nentries; /* host entries after expansion */
    char *mem;         /* one allocation holding everything */
} db_params_t;

/* True when host names an IPv4 or IPv6 literal ("::1", "fe80::1%eth0", "10.0.0.1"). */
bool db_host_is_numeric(const char *host);

/* Parses conninfo into *t (zeroed first). Returns CORE_OK or CORE_ENOMEM. A conninfo that
 * needs no lookup (hostaddr given, only sockets and IP literals, a service file naming the
 * host) or that libpq would reject (bad syntax, port list not matching the host list), or a
 * host list longer than DB_TARGET_MAX_HOSTS, leaves t->nlookup 0: the pool then connects
 * with the string, as before, and libpq reports any error. Host, hostaddr, port and service
 * missing from the string come from PGHOST, PGHOSTADDR, PGPORT and PGSERVICE, as libpq
 * would take them. Release with db_target_free. */
int db_target_parse(const char *conninfo, db_target_t *t) CORE_WUR;
void db_target_free(db_target_t *t);

/* Builds the connection parameters: every option the conninfo set, except host, hostaddr
 * and port, which become lists with one entry per address of each name (host stays the
 * name), per socket path or IP literal as written (hostaddr = the literal, or empty for a
 * socket), and per port when the port was a list. Host entries whose lookup found nothing
 * are left out. Returns CORE_OK, CORE_ENOTFOUND when no entry is left, or CORE_ENOMEM.
 * Release with db_params_free. */
int db_target_params(const db_target_t *t, const db_addrs_t *a, db_params_t *out) CORE_WUR;
void db_params_free(db_params_t *p);

/* ---- the asynchronous resolver ------------------------------------------------------------ */

typedef struct db_resolver db_resolver_t;

/* Runs on the loop once the lookups of one round are done. params is NULL when no address
 * was found; err then says why (libpq's wording: could not translate host name ...). Both
 * are valid only during the call (PQconnectStartParams copies what it keeps). */
typedef void (*db_resolved_fn)(void *arg, const db_params_t *params, const char *err);

/* A resolver for t (which must outlive it) on loop; done(arg, ...) ends every round. */
int db_resolver_create(uv_loop_t *loop, const db_target_t *t, db_resolved_fn done, void *arg,
                       db_resolver_t **out) CORE_WUR;

/* Starts a round of lookups (one uv_getaddrinfo per name, in parallel) unless one is in
 * flight, in which case its result serves this caller too. Returns CORE_OK: done runs
 * later, never from inside this call; or CORE_EIO when no lookup could even start (or the
 * resolver is closing): done will not run for this call. */
int db_resolver_start(db_resolver_t *r) CORE_WUR;

bool db_resolver_busy(const db_resolver_t *r);

/* Cancels the lookups in flight (their callbacks get UV_ECANCELED; one already running on
 * the thread pool finishes first) and frees the resolver once none is left; done is not
 * called again. on_closed(arg) runs then: from inside this call when nothing was in flight,
 * else from the last lookup's callback. */
void db_resolver_close(db_resolver_t *r, void (*on_closed)(void *), void *arg);

#endif
