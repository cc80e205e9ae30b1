/*
 * Host name resolution for the pool, off the loop (see resolve_int.h for why and how).
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "db/resolve_int.h"

#define PARAM_LISTS_MAX ((size_t)64 * 1024) /* host + hostaddr + port lists, bytes */

static const char *opt_value(const PQconninfoOption *opts, const char *key)
{
    for (const PQconninfoOption *o = opts; o->keyword; o++)
        if (strcmp(o->keyword, key) == 0) return o->val;
    return NULL;
}

bool db_host_is_numeric(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1) return true;
    /* An IPv6 literal with a zone ("fe80::1%eth0"): getaddrinfo takes it numerically. */
    const char *pct = strchr(host, '%');
    if (!pct || pct == host || pct[1] == '\0') return false;
    char lit[INET6_ADDRSTRLEN];
    size_t n = (size_t)(pct - host);
    if (n >= sizeof(lit)) return false;
    memcpy(lit, host, n);
    lit[n] = '\0';
    return inet_pton(AF_INET6, lit, buf) == 1;
}

/* Splits s in place at each comma into out[]; returns the count, or max + 1 when longer. */
static unsigned split_list(char *s, const char **out, unsigned max)
{
    unsigned n = 0;
    for (;;) {
        if (n == max) return max + 1;
        out[n++] = s;
        char *comma = strchr(s, ',');
        if (!comma) return n;
        *comma = '\0';
        s = comma + 1;
    }
}

int db_target_parse(const char *conninfo, db_target_t *t)
{
    memset(t, 0, sizeof(*t));
    char *errmsg = NULL;
    t->opts = PQconninfoParse(conninfo, &errmsg);
    if (!t->opts) {
        /* Without a message it ran out of memory; with one, libpq says it again at connect. */
        int rc = errmsg ? CORE_OK : CORE_ENOMEM;
        PQfreemem(errmsg);
        return rc;
    }
    const char *host = opt_value(t->opts, "host");
    const char *hostaddr = opt_value(t->opts, "hostaddr");
    const char *port = opt_value(t->opts, "port");
    const char *service = opt_value(t->opts, "service");
    /* libpq takes an option the string leaves out from its environment variable. */
    if (!host) host = getenv("PGHOST");
    if (!hostaddr) hostaddr = getenv("PGHOSTADDR");
    if (!port) port = getenv("PGPORT");
    if (!service) service = getenv("PGSERVICE");
    /* A service file may name hosts and addresses we do not read; libpq handles it. */
    if (!host || (hostaddr && *hostaddr) || (service && *service)) return CORE_OK;

    size_t hl = strlen(host), pl = port ? strlen(port) : 0;
    t->lists = core_malloc(hl + pl + 2);
    if (!t->lists) return CORE_ENOMEM;
    memcpy(t->lists, host, hl + 1);
    unsigned nhosts = split_list(t->lists, t->host, DB_TARGET_MAX_HOSTS);
    if (nhosts > DB_TARGET_MAX_HOSTS) return CORE_OK;
    if (port && strchr(port, ',')) {
        char *ports = t->lists + hl + 1;
        memcpy(ports, port, pl + 1);
        /* A port list must match the host list; otherwise libpq refuses it at connect. */
        if (split_list(ports, t->port, DB_TARGET_MAX_HOSTS) != nhosts) return CORE_OK;
    }
    unsigned nlookup = 0;
    for (unsigned i = 0; i < nhosts; i++) {
        const char *h = t->host[i];
        /* "" is libpq's default host (a socket); '/' and '@' start socket paths. */
        if (h[0] == '\0' || h[0] == '/' || h[0] == '@') continue;
        if (db_host_is_numeric(h)) t->numeric[i] = true;
        else {
            t->lookup[i] = true;
            nlookup++;
        }
    }
    t->nhosts = nhosts;
    t->nlookup = nlookup;
    return CORE_OK;
}

void db_target_free(db_target_t *t)
{
    if (t->opts) PQconninfoFree(t->opts);
    core_free(t->lists);
    memset(t, 0, sizeof(*t));
}

static void list_add(core_buf_t *b, unsigned *n, const char *s)
{
    if ((*n)++) core_buf_append_char(b, ',');
    core_buf_append_cstr(b, s);
}

/* Copies b's text and its NUL to dst; returns the byte after them. */
static char *copy_list(char *dst, const core_buf_t *b)
{
    if (b->len) memcpy(dst, b->ptr, b->len);
    dst[b->len] = '\0';
    return dst + b->len + 1;
}

int db_target_params(const db_target_t *t, const db_addrs_t *a, db_params_t *out)
{
    memset(out, 0, sizeof(*out));
    bool port_list = t->nhosts > 0 && t->port[0] != NULL;
    core_buf_t hosts, addrs, ports;
    core_buf_init(&hosts, PARAM_LISTS_MAX);
    core_buf_init(&addrs, PARAM_LISTS_MAX);
    core_buf_init(&ports, PARAM_LISTS_MAX);
    unsigned nh = 0, na = 0, np = 0;
    for (unsigned i = 0; i < t->nhosts; i++) {
        unsigned count = t->lookup[i] ? a->n[i] : 1;
        for (unsigned k = 0; k < count && k < DB_TARGET_HOST_ADDRS; k++) {
            list_add(&hosts, &nh, t->host[i]);
            list_add(&addrs, &na, t->lookup[i] ? a->addr[i][k] : t->numeric[i] ? t->host[i] : "");
            if (port_list) list_add(&ports, &np, t->port[i]);
        }
    }
    int rc = CORE_ENOTFOUND;
    if (nh == 0) goto out;
    rc = core_buf_status(&hosts) ? core_buf_status(&hosts)
         : core_buf_status(&addrs) ? core_buf_status(&addrs)
                                   : core_buf_status(&ports);
    if (rc != CORE_OK) goto out;
    rc = CORE_ENOMEM;

    size_t nkeys = 3; /* host, hostaddr, port (or one fewer) */
    for (const PQconninfoOption *o = t->opts; o->keyword; o++) nkeys += o->val != NULL;
    size_t ptrs = (nkeys + 1) * 2 * sizeof(char *);
    size_t text = hosts.len + 1 + addrs.len + 1 + (port_list ? ports.len + 1 : 0);
    out->mem = core_malloc(ptrs + text);
    if (!out->mem) goto out;
    out->keys = (const char **)(void *)out->mem;
    out->vals = out->keys + nkeys + 1;
    char *s = out->mem + ptrs;
    size_t k = 0;
    /* The strings of the other options are the target's (it outlives the params). */
    for (const PQconninfoOption *o = t->opts; o->keyword; o++) {
        if (!o->val || strcmp(o->keyword, "host") == 0 || strcmp(o->keyword, "hostaddr") == 0 ||
            (port_list && strcmp(o->keyword, "port") == 0))
            continue;
        out->keys[k] = o->keyword;
        out->vals[k++] = o->val;
    }
    out->keys[k] = "host";
    out->vals[k++] = s;
    s = copy_list(s, &hosts);
    out->keys[k] = "hostaddr";
    out->vals[k++] = s;
    s = copy_list(s, &addrs);
    if (port_list) {
        out->keys[k] = "port";
        out->vals[k++] = s;
        (void)copy_list(s, &ports);
    }
    out->keys[k] = NULL;
    out->vals[k] = NULL;
    out->nentries = nh;
    rc = CORE_OK;
out:
    core_buf_free(&ports);
    core_buf_free(&addrs);
    core_buf_free(&hosts);
    if (rc != CORE_OK) db_params_free(out);
    return rc;
}

void db_params_free(db_params_t *p)
{
    core_free(p->mem);
    memset(p, 0, sizeof(*p));
}

/* ---- the asynchronous resolver ------------------------------------------------------------ */

typedef struct {
    uv_getaddrinfo_t req;
    db_resolver_t *r;
    unsigned host;
    bool active;
} lookup_t;

struct db_resolver {
    uv_loop_t *loop;
    const db_target_t *t;
    db_resolved_fn done;
    void *arg;
    db_addrs_t addrs;
    lookup_t lk[DB_TARGET_MAX_HOSTS];
    unsigned pending;
    int err_status;    /* the first failed lookup of the round (0: none) */
    unsigned err_host;
    bool closing;
    void (*on_closed)(void *);
    void *on_closed_arg;
};

int db_resolver_create(uv_loop_t *loop, const db_target_t *t, db_resolved_fn done, void *arg, db_resolver_t **out)
{
    db_resolver_t *r = core_calloc(1, sizeof(*r));
    if (!r) return CORE_ENOMEM;
    r->loop = loop;
    r->t = t;
    r->done = done;
    r->arg = arg;
    for (unsigned i = 0; i < DB_TARGET_MAX_HOSTS; i++) {
        r->lk[i].r = r;
        r->lk[i].host = i;
        r->lk[i].req.data = &r->lk[i];
    }
    *out = r;
    return CORE_OK;
}

bool db_resolver_busy(const db_resolver_t *r) { return r->pending > 0; }

static void note_error(db_resolver_t *r, unsigned host, int status)
{
    if (r->err_status == 0) {
        r->err_status = status;
        r->err_host = host;
    }
}

/* Keeps each distinct numeric address of res, in getaddrinfo's order. */
static void keep_addrs(db_resolver_t *r, unsigned host, const struct addrinfo *res)
{
    unsigned *n = &r->addrs.n[host];
    for (const struct addrinfo *ai = res; ai && *n < DB_TARGET_HOST_ADDRS; ai = ai->ai_next) {
        char *dst = r->addrs.addr[host][*n];
        /* NI_NUMERICHOST: formatting only, no lookup. */
        if (getnameinfo(ai->ai_addr, ai->ai_addrlen, dst, DB_ADDR_LEN, NULL, 0, NI_NUMERICHOST) != 0) continue;
        bool dup = false;
        for (unsigned k = 0; k < *n && !dup; k++) dup = strcmp(r->addrs.addr[host][k], dst) == 0;
        if (!dup) (*n)++;
    }
}

static void round_finish(db_resolver_t *r)
{
    db_params_t params;
    int rc = db_target_params(r->t, &r->addrs, &params);
    if (rc == CORE_OK) {
        r->done(r->arg, &params, NULL);
        db_params_free(&params);
        return;
    }
    char msg[512];
    if (rc == CORE_ENOTFOUND && r->err_status != 0)
        snprintf(msg, sizeof(msg), "could not translate host name \"%s\" to address: %s", r->t->host[r->err_host],
                 uv_strerror(r->err_status));
    else if (rc == CORE_ENOTFOUND)
        snprintf(msg, sizeof(msg), "could not translate host name \"%s\" to address: no usable address",
                 r->t->host[r->err_host]);
    else
        snprintf(msg, sizeof(msg), "%s", rc == CORE_ENOMEM ? "out of memory" : "connection parameters too long");
    r->done(r->arg, NULL, msg);
}

static void lookup_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    lookup_t *lk = req->data;
    db_resolver_t *r = lk->r;
    lk->active = false;
    if (status == 0 && !r->closing) {
        keep_addrs(r, lk->host, res);
        if (r->addrs.n[lk->host] == 0) note_error(r, lk->host, UV_EAI_NODATA);
    } else if (status != 0) {
        note_error(r, lk->host, status);
    }
    uv_freeaddrinfo(res);
    if (--r->pending > 0) return;
    if (r->closing) {
        void (*cb)(void *) = r->on_closed;
        void *arg = r->on_closed_arg;
        core_free(r);
        if (cb) cb(arg);
        return;
    }
    round_finish(r);
}

int db_resolver_start(db_resolver_t *r)
{
    if (r->closing) return CORE_EIO;
    if (r->pending > 0) return CORE_OK; /* the round in flight serves this caller too */
    memset(r->addrs.n, 0, sizeof(r->addrs.n));
    r->err_status = 0;
    r->err_host = 0;
    /* As libpq asks: any family, stream sockets. */
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    for (unsigned i = 0; i < r->t->nhosts; i++) {
        if (!r->t->lookup[i]) continue;
        int rc = uv_getaddrinfo(r->loop, &r->lk[i].req, lookup_cb, r->t->host[i], NULL, &hints);
        if (rc != 0) {
            note_error(r, i, rc);
            continue;
        }
        r->lk[i].active = true;
        r->pending++;
    }
    /* Nothing started (out of memory, or every uv_getaddrinfo refused): the caller's
     * connection attempt fails now, and done does not run for it. */
    return r->pending > 0 ? CORE_OK : CORE_EIO;
}

void db_resolver_close(db_resolver_t *r, void (*on_closed)(void *), void *arg)
{
    r->closing = true;
    r->on_closed = on_closed;
    r->on_closed_arg = arg;
    if (r->pending == 0) {
        core_free(r);
        if (on_closed) on_closed(arg);
        return;
    }
    /* A lookup already running on the thread pool cannot be cancelled: it finishes, and
     * its callback frees the resolver when it is the last. */
    for (unsigned i = 0; i < DB_TARGET_MAX_HOSTS; i++)
        if (r->lk[i].active) (void)uv_cancel((uv_req_t *)&r->lk[i].req);
}
