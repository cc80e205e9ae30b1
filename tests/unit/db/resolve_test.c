/*
 * Host name resolution for the pool (src/db/resolve.c): which conninfo strings need a lookup,
 * the keyword/value arrays built from the addresses (key=value and URI forms, lists, sockets,
 * IPv6 literals, %2F-encoded socket paths), and the asynchronous resolver on a real loop
 * (localhost from /etc/hosts, a name that does not resolve, shutdown mid-lookup).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "core/core.h"
#include "db/resolve_int.h"
#include "test.h"

#define CHECK_CSTR(p, lit) CHECK_STR(str_from_cstr((p) ? (p) : "(null)"), lit)

static const char *param(const db_params_t *p, const char *key)
{
    for (size_t i = 0; p->keys && p->keys[i]; i++)
        if (strcmp(p->keys[i], key) == 0) return p->vals[i];
    return NULL;
}

static size_t param_count(const db_params_t *p, const char *key)
{
    size_t n = 0;
    for (size_t i = 0; p->keys && p->keys[i]; i++) n += strcmp(p->keys[i], key) == 0;
    return n;
}

static unsigned nlookup(const char *conninfo)
{
    db_target_t t;
    if (db_target_parse(conninfo, &t) != CORE_OK) return 99;
    unsigned n = t.nlookup;
    db_target_free(&t);
    return n;
}

static void test_numeric(void)
{
    CHECK(db_host_is_numeric("127.0.0.1"));
    CHECK(db_host_is_numeric("::1"));
    CHECK(db_host_is_numeric("2001:db8::17"));
    CHECK(db_host_is_numeric("::ffff:10.0.0.1"));
    CHECK(db_host_is_numeric("fe80::1%lo"));
    CHECK(!db_host_is_numeric("localhost"));
    CHECK(!db_host_is_numeric("db.example"));
    CHECK(!db_host_is_numeric("[::1]"));
    CHECK(!db_host_is_numeric(""));
    CHECK(!db_host_is_numeric("%lo"));
    CHECK(!db_host_is_numeric("fe80::1%"));
    CHECK(!db_host_is_numeric("localhost%lo"));
    CHECK(!db_host_is_numeric("1.2.3.4.5"));
}

static void test_needs_lookup(void)
{
    unsetenv("PGHOST");
    unsetenv("PGHOSTADDR");
    unsetenv("PGPORT");
    unsetenv("PGSERVICE");
    /* names */
    CHECK_INT(nlookup("host=localhost dbname=x user=u"), 1);
    CHECK_INT(nlookup("postgres://u@db.example:5432/x"), 1);
    CHECK_INT(nlookup("postgresql://db.example"), 1);
    CHECK_INT(nlookup("host=a.example,b.example port=1,2"), 2);
    CHECK_INT(nlookup("host=a.example,/tmp,10.0.0.1"), 1);
    /* nothing to look up */
    CHECK_INT(nlookup("dbname=x user=u"), 0); /* the default socket */
    CHECK_INT(nlookup("host='' dbname=x"), 0);
    CHECK_INT(nlookup("host=/var/run/postgresql dbname=x"), 0);
    CHECK_INT(nlookup("host=@abstract dbname=x"), 0);
    CHECK_INT(nlookup("host=127.0.0.1 port=5432"), 0);
    CHECK_INT(nlookup("host=::1 port=5432"), 0);
    CHECK_INT(nlookup("postgresql://u@[::1]:5433/x"), 0);
    CHECK_INT(nlookup("postgresql://u@127.0.0.1/x"), 0);
    CHECK_INT(nlookup("postgresql://%2Fvar%2Frun%2Fpostgresql/db"), 0);
    CHECK_INT(nlookup("postgresql:///db?host=%2Ftmp"), 0);
    CHECK_INT(nlookup("host=/tmp,127.0.0.1,::1"), 0);
    CHECK_INT(nlookup("host=db.example hostaddr=10.0.0.1"), 0);
    CHECK_INT(nlookup("postgresql://u@db.example/x?hostaddr=10.0.0.1"), 0);
    CHECK_INT(nlookup("service=mydb host=db.example"), 0);
    /* libpq rejects these at connect; the pool leaves them to it */
    CHECK_INT(nlookup("host=a.example,b.example port=1,2,3"), 0);
    CHECK_INT(nlookup("host='unterminated"), 0);
    CHECK_INT(nlookup("nosuchoption=1 host=db.example"), 0);
    CHECK_INT(nlookup("host=a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q"), 0); /* over DB_TARGET_MAX_HOSTS */
    CHECK_INT(nlookup("host=a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p"), 16);

    /* the environment, as libpq reads it */
    setenv("PGHOST", "env-db.example", 1);
    CHECK_INT(nlookup("dbname=x"), 1);
    CHECK_INT(nlookup("host=/tmp dbname=x"), 0); /* the string wins */
    CHECK_INT(nlookup("host='' dbname=x"), 0);     /* an empty value too */
    setenv("PGHOSTADDR", "10.0.0.1", 1);
    CHECK_INT(nlookup("dbname=x"), 0);
    unsetenv("PGHOSTADDR");
    setenv("PGSERVICE", "mydb", 1);
    CHECK_INT(nlookup("dbname=x"), 0);
    unsetenv("PGSERVICE");
    setenv("PGPORT", "1,2", 1);
    CHECK_INT(nlookup("dbname=x"), 0); /* one host, two ports */
    CHECK_INT(nlookup("host=a.example,b.example"), 2);
    unsetenv("PGPORT");
    unsetenv("PGHOST");
}

static void add_addr(db_addrs_t *a, unsigned host, const char *addr)
{
    snprintf(a->addr[host][a->n[host]++], DB_ADDR_LEN, "%s", addr);
}

static void test_params(void)
{
    db_target_t t;
    db_addrs_t a;
    db_params_t p;

    /* key=value, one name with two addresses: two entries, host stays the name */
    CHECK_INT(db_target_parse("host=db.example port=6432 dbname=app user=u password='a b\\'c' sslmode=prefer", &t),
              CORE_OK);
    CHECK_INT(t.nhosts, 1);
    CHECK(t.lookup[0]);
    memset(&a, 0, sizeof(a));
    add_addr(&a, 0, "10.0.0.7");
    add_addr(&a, 0, "fd00::7");
    CHECK_INT(db_target_params(&t, &a, &p), CORE_OK);
    CHECK_INT(p.nentries, 2);
    CHECK_CSTR(param(&p, "host"), "db.example,db.example");
    CHECK_CSTR(param(&p, "hostaddr"), "10.0.0.7,fd00::7");
    CHECK_CSTR(param(&p, "port"), "6432"); /* one port: passed as it was */
    CHECK_CSTR(param(&p, "dbname"), "app");
    CHECK_CSTR(param(&p, "user"), "u");
    CHECK_CSTR(param(&p, "password"), "a b'c"); /* parsed, never re-quoted */
    CHECK_CSTR(param(&p, "sslmode"), "prefer");
    CHECK_INT(param_count(&p, "host"), 1);
    CHECK_INT(param_count(&p, "hostaddr"), 1);
    CHECK_INT(param_count(&p, "port"), 1);
    CHECK(param(&p, "options") == NULL); /* unset options stay unset */
    db_params_free(&p);
    /* the lookup found nothing */
    memset(&a, 0, sizeof(a));
    CHECK_INT(db_target_params(&t, &a, &p), CORE_ENOTFOUND);
    CHECK(p.mem == NULL);
    db_target_free(&t);

    /* URI with a host list, per-host ports and target_session_attrs */
    CHECK_INT(db_target_parse("postgresql://u@h1.example:5432,10.1.1.1:5433,h3.example:5434/db"
                              "?target_session_attrs=read-write&application_name=x%20y",
                              &t),
              CORE_OK);
    CHECK_INT(t.nhosts, 3);
    CHECK_INT(t.nlookup, 2);
    CHECK(t.numeric[1]);
    memset(&a, 0, sizeof(a));
    add_addr(&a, 0, "10.0.0.1");
    add_addr(&a, 0, "10.0.0.2");
    add_addr(&a, 2, "::1");
    CHECK_INT(db_target_params(&t, &a, &p), CORE_OK);
    CHECK_INT(p.nentries, 4);
    CHECK_CSTR(param(&p, "host"), "h1.example,h1.example,10.1.1.1,h3.example");
    CHECK_CSTR(param(&p, "hostaddr"), "10.0.0.1,10.0.0.2,10.1.1.1,::1");
    CHECK_CSTR(param(&p, "port"), "5432,5432,5433,5434");
    CHECK_CSTR(param(&p, "dbname"), "db");
    CHECK_CSTR(param(&p, "user"), "u");
    CHECK_CSTR(param(&p, "target_session_attrs"), "read-write");
    CHECK_CSTR(param(&p, "application_name"), "x y");
    db_params_free(&p);
    /* one name unresolved: its entry is left out, the others stay in order */
    memset(&a, 0, sizeof(a));
    add_addr(&a, 2, "10.0.0.3");
    CHECK_INT(db_target_params(&t, &a, &p), CORE_OK);
    CHECK_INT(p.nentries, 2);
    CHECK_CSTR(param(&p, "host"), "10.1.1.1,h3.example");
    CHECK_CSTR(param(&p, "hostaddr"), "10.1.1.1,10.0.0.3");
    CHECK_CSTR(param(&p, "port"), "5433,5434");
    db_params_free(&p);
    db_target_free(&t);

    /* names beside sockets (URI-encoded and not) and an IPv6 literal */
    CHECK_INT(db_target_parse("postgresql://%2Fvar%2Frun%2Fpg,db.example,[::1],%40abs/db", &t), CORE_OK);
    CHECK_INT(t.nhosts, 4);
    CHECK_INT(t.nlookup, 1);
    CHECK_CSTR(t.host[0], "/var/run/pg");
    CHECK_CSTR(t.host[2], "::1");
    memset(&a, 0, sizeof(a));
    add_addr(&a, 1, "192.0.2.1");
    CHECK_INT(db_target_params(&t, &a, &p), CORE_OK);
    CHECK_CSTR(param(&p, "host"), "/var/run/pg,db.example,::1,@abs");
    CHECK_CSTR(param(&p, "hostaddr"), ",192.0.2.1,::1,"); /* empty: the socket */
    CHECK_CSTR(param(&p, "port"), ",,,"); /* the URI form gives an empty port per host */
    db_params_free(&p);
    db_target_free(&t);

    /* a dbname that looks like a connection string stays a name (expand_dbname = 0) */
    CHECK_INT(db_target_parse("host=db.example dbname='host=evil.example'", &t), CORE_OK);
    memset(&a, 0, sizeof(a));
    add_addr(&a, 0, "192.0.2.2");
    CHECK_INT(db_target_params(&t, &a, &p), CORE_OK);
    CHECK_CSTR(param(&p, "dbname"), "host=evil.example");
    CHECK_CSTR(param(&p, "hostaddr"), "192.0.2.2");
    db_params_free(&p);
    db_target_free(&t);
}

/* libpq itself accepts the arrays: the lists match, and it starts connecting to the given
 * address (a listening socket of ours on loopback) with the names intact. */
static void test_libpq_accepts(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t slen = sizeof(sin);
    CHECK(fd >= 0);
    CHECK_INT(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    CHECK_INT(listen(fd, 4), 0);
    CHECK_INT(getsockname(fd, (struct sockaddr *)&sin, &slen), 0);
    char conninfo[256];
    snprintf(conninfo, sizeof(conninfo),
             "postgresql://u@name-a.example:%u,127.0.0.1:2,name-b.example:3,%%2Ftmp:4/db?connect_timeout=2",
             (unsigned)ntohs(sin.sin_port));
    db_target_t t;
    db_addrs_t a;
    db_params_t p;
    CHECK_INT(db_target_parse(conninfo, &t), CORE_OK);
    memset(&a, 0, sizeof(a));
    add_addr(&a, 0, "127.0.0.1");
    add_addr(&a, 0, "::1");
    add_addr(&a, 2, "127.0.0.1");
    CHECK_INT(db_target_params(&t, &a, &p), CORE_OK);
    CHECK_INT(p.nentries, 5);
    PGconn *c = PQconnectStartParams(p.keys, p.vals, 0);
    CHECK(c != NULL);
    if (c) {
        if (PQstatus(c) == CONNECTION_BAD) fprintf(stderr, "libpq: %s", PQerrorMessage(c));
        CHECK(PQstatus(c) != CONNECTION_BAD);
        CHECK_CSTR(PQhost(c), "name-a.example");
        CHECK_CSTR(PQhostaddr(c), "127.0.0.1");
        CHECK_INT(strtol(PQport(c), NULL, 10), ntohs(sin.sin_port));
        CHECK_CSTR(PQdb(c), "db");
        PQfinish(c);
    }
    if (fd >= 0) close(fd);
    db_params_free(&p);
    db_target_free(&t);
}

/* ---- the resolver on a real loop ---------------------------------------------------------- */

typedef struct {
    int calls;
    char hostaddr[256];
    char host[256];
    char err[512];
    bool closed;
} result_t;

static void on_done(void *arg, const db_params_t *params, const char *err)
{
    result_t *r = arg;
    r->calls++;
    if (params) {
        snprintf(r->hostaddr, sizeof(r->hostaddr), "%s", param(params, "hostaddr"));
        snprintf(r->host, sizeof(r->host), "%s", param(params, "host"));
    } else {
        snprintf(r->err, sizeof(r->err), "%s", err);
    }
}

static void on_closed(void *arg) { ((result_t *)arg)->closed = true; }

static void test_resolver(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    db_target_t t;
    db_resolver_t *rs = NULL;
    result_t res;

    /* localhost (from /etc/hosts): two callers, one round, one result */
    memset(&res, 0, sizeof(res));
    CHECK_INT(db_target_parse("host=localhost port=1 dbname=x", &t), CORE_OK);
    CHECK_INT(t.nlookup, 1);
    CHECK_INT(db_resolver_create(&loop, &t, on_done, &res, &rs), CORE_OK);
    CHECK_INT(db_resolver_start(rs), CORE_OK);
    CHECK_INT(db_resolver_start(rs), CORE_OK);
    CHECK(db_resolver_busy(rs));
    CHECK_INT(res.calls, 0); /* never from inside start */
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(res.calls, 1);
    CHECK(strstr(res.hostaddr, "127.0.0.1") != NULL || strstr(res.hostaddr, "::1") != NULL);
    CHECK(strncmp(res.host, "localhost", 9) == 0);
    CHECK(res.err[0] == '\0');
    /* a second round */
    CHECK_INT(db_resolver_start(rs), CORE_OK);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(res.calls, 2);
    db_resolver_close(rs, on_closed, &res); /* idle: closes at once */
    CHECK(res.closed);
    db_target_free(&t);

    /* a name that does not resolve (.invalid is reserved: RFC 6761) */
    memset(&res, 0, sizeof(res));
    CHECK_INT(db_target_parse("host=strata-no-such-host.invalid dbname=x", &t), CORE_OK);
    CHECK_INT(db_resolver_create(&loop, &t, on_done, &res, &rs), CORE_OK);
    CHECK_INT(db_resolver_start(rs), CORE_OK);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(res.calls, 1);
    CHECK(strstr(res.err, "could not translate host name \"strata-no-such-host.invalid\" to address") != NULL);

    /* closed with a lookup in flight: done never runs, on_closed runs once it is over */
    memset(&res, 0, sizeof(res));
    CHECK_INT(db_resolver_start(rs), CORE_OK);
    db_resolver_close(rs, on_closed, &res);
    CHECK(!res.closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(res.closed);
    CHECK_INT(res.calls, 0);
    db_target_free(&t);

    /* a list where one name resolves and one does not: the good one is used */
    memset(&res, 0, sizeof(res));
    CHECK_INT(db_target_parse("host=strata-no-such-host.invalid,localhost,/tmp port=1,2,3", &t), CORE_OK);
    CHECK_INT(db_resolver_create(&loop, &t, on_done, &res, &rs), CORE_OK);
    CHECK_INT(db_resolver_start(rs), CORE_OK);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(res.calls, 1);
    CHECK(strncmp(res.host, "localhost", 9) == 0);
    CHECK(strstr(res.host, "/tmp") != NULL);
    db_resolver_close(rs, on_closed, &res);
    db_target_free(&t);

    CHECK_INT(uv_loop_close(&loop), 0);
}

int main(void)
{
    test_numeric();
    test_needs_lookup();
    test_params();
    test_libpq_accepts();
    test_resolver();
    TEST_MAIN_END();
}
