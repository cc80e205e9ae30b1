/* The schema-cache keeper thread (see listener.h). Blocking libpq is allowed in this file:
 * this thread is never a loop, so PQconnectdb may resolve db-uri's host names itself (a
 * blocking getaddrinfo) here. The worker loops' pools resolve theirs off the loop
 * (src/db/resolve.c). */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "db/listener.h"
#include "db/schema.h"

struct db_listener {
    db_listener_config_t cfg;
    char *conninfo, *schemas, *channel;
    pthread_t thread;
    int efd;
    atomic_bool stop;
    atomic_bool reload;
    atomic_bool reload_config;
    atomic_bool up;
};

static void wake(db_listener_t *l)
{
    uint64_t one = 1;
    ssize_t w = write(l->efd, &one, sizeof(one));
    (void)w; /* a full eventfd counter already means "wake up" */
}

/* Sleeps up to ms, returning early when woken. */
static void nap(db_listener_t *l, int ms)
{
    struct pollfd p = {.fd = l->efd, .events = POLLIN};
    if (poll(&p, 1, ms) > 0) {
        uint64_t v;
        ssize_t r = read(l->efd, &v, sizeof(v));
        (void)r;
    }
}

static bool load_and_publish(db_listener_t *l, PGconn *c)
{
    db_schema_t *s = NULL;
    char err[512];
    if (db_schema_load(c, l->schemas, &s, err, sizeof(err)) != CORE_OK) {
        LOG_ERROR("schema cache load failed: %s", err);
        return false;
    }
    LOG_INFO("schema cache loaded: %zu relations, %zu foreign keys, %zu functions in %llu ms",
             s->ntables, s->nfks, s->nfuncs, (unsigned long long)(s->load_us / 1000u));
    db_schema_publish(s);
    if (l->cfg.on_reload) l->cfg.on_reload(l->cfg.arg);
    return true;
}

static void *run(void *arg)
{
    db_listener_t *l = arg;
    int backoff = 100;
    bool logged = false;
    while (!atomic_load(&l->stop)) {
        PGconn *c = PQconnectdb(l->conninfo);
        if (PQstatus(c) != CONNECTION_OK) {
            if (!logged) {
                LOG_ERROR("schema listener cannot connect: %s", PQerrorMessage(c));
                logged = true;
            }
            PQfinish(c);
            atomic_store(&l->up, false);
            nap(l, backoff);
            backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
            continue;
        }
        if (l->channel) {
            char *q = PQescapeIdentifier(c, l->channel, strlen(l->channel));
            char sql[300];
            snprintf(sql, sizeof(sql), "LISTEN %s", q ? q : "pgrst");
            PQfreemem(q);
            PGresult *r = PQexec(c, sql);
            PQclear(r);
        }
        if (!load_and_publish(l, c)) {
            PQfinish(c);
            nap(l, backoff);
            backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
            continue;
        }
        if (logged) LOG_INFO("schema listener reconnected");
        logged = false;
        backoff = 100;
        atomic_store(&l->up, true);
        atomic_store(&l->reload, false);
        while (!atomic_load(&l->stop)) {
            struct pollfd p[2] = {{.fd = PQsocket(c), .events = POLLIN}, {.fd = l->efd, .events = POLLIN}};
            int n = poll(p, 2, 5000);
            if (n < 0 && errno != EINTR) break;
            if (p[1].revents & POLLIN) {
                uint64_t v;
                ssize_t rd = read(l->efd, &v, sizeof(v));
                (void)rd;
            }
            if (atomic_load(&l->stop)) break;
            bool want = atomic_exchange(&l->reload, false);
            if (p[0].revents) {
                if (!PQconsumeInput(c)) break;
                PGnotify *nt;
                while ((nt = PQnotifies(c)) != NULL) {
                    if (!strcmp(nt->extra, "reload schema") || nt->extra[0] == '\0') want = true;
                    else if (!strcmp(nt->extra, "reload config")) atomic_store(&l->reload_config, true);
                    PQfreemem(nt);
                }
            }
            if (n == 0) {
                /* Idle: check the connection is still alive so /ready notices a dead server. */
                PGresult *r = PQexec(c, "select 1");
                bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
                PQclear(r);
                if (!ok) break;
            }
            if (atomic_exchange(&l->reload_config, false) && l->cfg.on_reload_config)
                l->cfg.on_reload_config(l->cfg.arg);
            if (want && !load_and_publish(l, c)) break;
        }
        atomic_store(&l->up, false);
        if (!atomic_load(&l->stop)) LOG_ERROR("schema listener lost its connection; reconnecting");
        PQfinish(c);
    }
    return NULL;
}

int db_listener_start(const db_listener_config_t *cfg, db_listener_t **out)
{
    db_listener_t *l = core_calloc(1, sizeof(*l));
    if (!l) return CORE_ENOMEM;
    l->cfg = *cfg;
    l->conninfo = core_strndup(cfg->conninfo, strlen(cfg->conninfo));
    l->schemas = core_strndup(cfg->schemas_csv, strlen(cfg->schemas_csv));
    l->channel = cfg->channel ? core_strndup(cfg->channel, strlen(cfg->channel)) : NULL;
    l->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (!l->conninfo || !l->schemas || (cfg->channel && !l->channel) || l->efd < 0) goto fail;
    if (pthread_create(&l->thread, NULL, run, l) != 0) goto fail;
    *out = l;
    return CORE_OK;
fail:
    if (l->efd >= 0) close(l->efd);
    core_free(l->conninfo);
    core_free(l->schemas);
    core_free(l->channel);
    core_free(l);
    return CORE_ENOMEM;
}

void db_listener_reload(db_listener_t *l)
{
    atomic_store(&l->reload, true);
    wake(l);
}

void db_listener_reload_config(db_listener_t *l)
{
    atomic_store(&l->reload_config, true);
    wake(l);
}

bool db_listener_db_up(const db_listener_t *l) { return atomic_load(&l->up); }

void db_listener_stop(db_listener_t *l)
{
    atomic_store(&l->stop, true);
    wake(l);
    pthread_join(l->thread, NULL);
    close(l->efd);
    core_free(l->conninfo);
    core_free(l->schemas);
    core_free(l->channel);
    core_free(l);
}
