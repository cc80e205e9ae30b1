/*
 * The embedded cluster against a real PostgreSQL 15: first start (initdb), connecting as
 * authenticator, the supervisor restarting a postmaster killed with SIGKILL, an orderly
 * stop, a fast second start on the same cluster, a postmaster left behind by an earlier run,
 * and the /var/lib/strata fallback for a data dir under a 0700 root-owned parent.
 * Runs as root (as the tests here do); as another user only the first case runs.
 */
#include <errno.h>
#include <ftw.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "core/core.h"
#include "db/embedded.h"
#include "db/embedded_int.h"
#include "test.h"

#define CHECK_CSTR(p, lit) CHECK_STR(str_from_cstr(p), lit)

static uint64_t ms_since(uint64_t t0) { return (core_now_ns() - t0) / 1000000u; }

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_rf(const char *path)
{
    if (path && path[0] == '/' && strlen(path) > 5)
        (void)nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Runs `sql` on a new connection and returns the first value (static buffer), or NULL. */
static const char *query1(const char *conninfo, const char *sql)
{
    static char value[256];
    const char *ret = NULL;
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "connect failed: %s", PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0) {
        snprintf(value, sizeof(value), "%s", PQgetvalue(r, 0, 0));
        ret = value;
    } else if (PQresultStatus(r) == PGRES_COMMAND_OK) {
        value[0] = '\0';
        ret = value;
    } else {
        fprintf(stderr, "query \"%s\" failed: %s", sql, PQresultErrorMessage(r));
    }
    PQclear(r);
    PQfinish(c);
    return ret;
}

static int read_pidfile_pid(const char *cluster)
{
    char path[512];
    int pid = 0;
    snprintf(path, sizeof(path), "%s/postmaster.pid", cluster);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    if (fscanf(f, "%d", &pid) != 1) pid = 0;
    fclose(f);
    return pid;
}

/* Exists and is not a zombie: an orphan's zombie stays until its new parent (pid 1 or a
 * subreaper, not us) reaps it. */
static bool pid_running(int pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return false;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

/* A backend busy in a loop that never waits: it does not notice the postmaster's death,
 * keeps the old shared memory attached, and so makes the next postmaster refuse to start
 * ("pre-existing shared memory block is still in use") until it is gone. */
static PGconn *busy_backend(const char *conninfo, int *pid)
{
    PGconn *c = PQconnectdb(conninfo);
    *pid = 0;
    if (PQstatus(c) != CONNECTION_OK || !PQsendQuery(c, "do $$ begin loop end loop; end $$")) {
        PQfinish(c);
        return NULL;
    }
    *pid = PQbackendPID(c);
    return c;
}

/* A child process that SIGKILLs pid after ms; reap it with waitpid. */
static pid_t kill_later(int pid, unsigned ms)
{
    pid_t child = fork();
    if (child == 0) {
        uv_sleep(ms);
        (void)kill(pid, SIGKILL);
        _exit(0);
    }
    return child;
}

static void on_stopped(void *arg) { *(bool *)arg = true; }

/* Stops e, runs the loop until done runs, checks the postmaster is gone, frees e. */
static void stop_and_free(uv_loop_t *loop, db_embedded_t *e)
{
    int pid = db_embedded_pid(e);
    bool stopped = false;
    uint64_t t0 = core_now_ns();
    db_embedded_stop(e, on_stopped, &stopped);
    CHECK(!stopped); /* done runs on the loop, not inside stop */
    while (!stopped && ms_since(t0) < 30000) (void)uv_run(loop, UV_RUN_ONCE);
    CHECK(stopped);
    CHECK_INT(db_embedded_pid(e), 0);
    CHECK(pid > 0);
    errno = 0;
    CHECK(kill(pid, 0) == -1 && errno == ESRCH);
    char pidfile[4096];
    snprintf(pidfile, sizeof(pidfile), "%s/postmaster.pid", db_embedded_cluster_dir(e));
    CHECK(access(pidfile, F_OK) != 0); /* a clean shutdown removes it */
    printf("stop: %llu ms\n", (unsigned long long)ms_since(t0));
    db_embedded_free(e);
}

static void check_jwt_secret(const char *data_dir, const db_embedded_t *e)
{
    char path[4096], buf[128];
    snprintf(path, sizeof(path), "%s/jwt-secret", data_dir);
    struct stat st;
    CHECK_INT(stat(path, &st), 0);
    CHECK_INT(st.st_mode & 0777, 0600);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    if (!f) return;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    CHECK_INT(n, 64);
    CHECK_INT(strspn(buf, "0123456789abcdef"), 64);
    CHECK_CSTR(db_embedded_jwt_secret(e), buf);
}

/* Case 1: a data dir the postgres user can reach: the cluster goes into <data_dir>/pg. */
static void test_reachable(uv_loop_t *loop)
{
    char base[] = "/tmp/strata-emb-XXXXXX";
    CHECK(mkdtemp(base) != NULL);
    CHECK_INT(chmod(base, 0755), 0);
    char data[256], want_cluster[300];
    snprintf(data, sizeof(data), "%s/data", base);
    snprintf(want_cluster, sizeof(want_cluster), "%s/pg", data);

    /* What an initdb killed half-way leaves behind: replaced, never taken for a cluster. */
    char junk[400];
    CHECK_INT(mkdir(data, 0755), 0);
    snprintf(junk, sizeof(junk), "%s/pg.initdb", data);
    CHECK_INT(mkdir(junk, 0700), 0);
    snprintf(junk, sizeof(junk), "%s/pg.initdb/PG_VERSION", data);
    FILE *jf = fopen(junk, "w");
    CHECK(jf != NULL);
    if (jf) fclose(jf);

    /* First start: initdb, start, bootstrap. */
    db_embedded_t *e = NULL;
    uint64_t t0 = core_now_ns();
    CHECK_INT(db_embedded_start(loop, data, 150, &e), CORE_OK);
    printf("first start (initdb + start + bootstrap): %llu ms\n",
           (unsigned long long)ms_since(t0));
    if (!e) {
        rm_rf(base);
        return;
    }
    CHECK_CSTR(db_embedded_cluster_dir(e), want_cluster);
    snprintf(junk, sizeof(junk), "%s/pg.initdb", data);
    CHECK(access(junk, F_OK) != 0);
    CHECK(db_embedded_pid(e) > 0);
    CHECK(strlen(db_embedded_socket_dir(e)) + sizeof("/.s.PGSQL.5432") <= 108);
    struct stat st;
    CHECK_INT(stat(db_embedded_socket_dir(e), &st), 0);
    CHECK_INT(st.st_mode & 0777, 0700);
    CHECK_INT(stat(data, &st), 0);
    CHECK_INT(st.st_mode & 0777, 0755);
    check_jwt_secret(data, e);
    char secret[128], sockdir[128];
    snprintf(secret, sizeof(secret), "%s", db_embedded_jwt_secret(e));
    snprintf(sockdir, sizeof(sockdir), "%s", db_embedded_socket_dir(e));

    const char *v = query1(db_embedded_conninfo(e), "select current_user");
    CHECK(v != NULL);
    if (v) CHECK_CSTR(v, "authenticator");
    v = query1(db_embedded_conninfo(e), "select current_database()");
    if (v) CHECK_CSTR(v, "strata");
    /* room for every worker's pool: what the caller asked for (at least PostgreSQL's 100) */
    v = query1(db_embedded_conninfo(e), "show max_connections");
    if (v) CHECK_CSTR(v, "150");
    /* authenticator may switch to each API role (that is how requests run). */
    v = query1(db_embedded_conninfo(e),
               "select string_agg(r, ',' order by r) from unnest(array['anon','authenticated',"
               "'service_role']) r where pg_has_role('authenticator', r, 'member')");
    if (v) CHECK_CSTR(v, "anon,authenticated,service_role");
    v = query1(db_embedded_conninfo(e),
               "select rolcanlogin::text || rolinherit::text from pg_roles where rolname = "
               "'authenticator'");
    if (v) CHECK_CSTR(v, "truefalse");
    v = query1(db_embedded_admin_conninfo(e), "select current_user");
    if (v) CHECK_CSTR(v, "postgres");
    v = query1(db_embedded_admin_conninfo(e), "show wal_level");
    if (v) CHECK_CSTR(v, "logical");
    v = query1(db_embedded_admin_conninfo(e), "show listen_addresses");
    if (v) CHECK_CSTR(v, "");
    v = query1(db_embedded_admin_conninfo(e),
               "create table kept(x int); insert into kept values (42)");
    CHECK(v != NULL);

    /* Supervision: SIGKILL the postmaster while a busy backend keeps the old shared
     * memory for 1.5 s; the supervisor must retry until it can bring it back. */
    int busy = 0;
    PGconn *bc = busy_backend(db_embedded_admin_conninfo(e), &busy);
    CHECK(bc != NULL && busy > 0);
    uv_sleep(100); /* let the loop start running */
    int old = db_embedded_pid(e);
    CHECK_INT(kill(old, SIGKILL), 0);
    pid_t killer = kill_later(busy, 1500);
    t0 = core_now_ns();
    bool back = false;
    while (ms_since(t0) < 20000) {
        (void)uv_run(loop, UV_RUN_NOWAIT);
        int now = db_embedded_pid(e);
        if (now > 0 && now != old && PQping(db_embedded_conninfo(e)) == PQPING_OK) {
            back = true;
            break;
        }
        uv_sleep(50);
    }
    CHECK(back);
    printf("back after SIGKILL: %llu ms (%u restarts)\n", (unsigned long long)ms_since(t0),
           db_embedded_restarts(e));
    CHECK(db_embedded_restarts(e) >= 2); /* the first restart met the old backend */
    CHECK(ms_since(t0) >= 1000);
    CHECK(killer > 0 && waitpid(killer, NULL, 0) == killer);
    PQfinish(bc);
    v = query1(db_embedded_conninfo(e), "select current_user");
    if (v) CHECK_CSTR(v, "authenticator");
    v = query1(db_embedded_admin_conninfo(e), "select x from kept");
    if (v) CHECK_CSTR(v, "42");

    stop_and_free(loop, e);

    /* Second start: same cluster, no initdb, fast; data and secret survive. */
    e = NULL;
    t0 = core_now_ns();
    CHECK_INT(db_embedded_start(loop, data, 0, &e), CORE_OK);
    printf("second start: %llu ms\n", (unsigned long long)ms_since(t0));
    if (e) {
        CHECK_CSTR(db_embedded_jwt_secret(e), secret);
        v = query1(db_embedded_admin_conninfo(e), "select x from kept");
        if (v) CHECK_CSTR(v, "42");
        v = query1(db_embedded_conninfo(e), "select current_user");
        if (v) CHECK_CSTR(v, "authenticator");
        stop_and_free(loop, e);
    }

    /* Stop while the supervisor waits to restart: done still runs, nothing is restarted,
     * and the dead postmaster's postmaster.pid stays behind for the next start. */
    e = NULL;
    bc = NULL;
    CHECK_INT(db_embedded_start(loop, data, 0, &e), CORE_OK);
    if (e) {
        int pid = db_embedded_pid(e);
        bc = busy_backend(db_embedded_admin_conninfo(e), &busy);
        CHECK(bc != NULL && busy > 0);
        uv_sleep(100);
        CHECK_INT(kill(pid, SIGKILL), 0);
        t0 = core_now_ns();
        while (db_embedded_pid(e) != 0 && ms_since(t0) < 5000) {
            (void)uv_run(loop, UV_RUN_NOWAIT);
            uv_sleep(10);
        }
        CHECK_INT(db_embedded_pid(e), 0);
        bool stopped = false;
        db_embedded_stop(e, on_stopped, &stopped);
        while (!stopped) (void)uv_run(loop, UV_RUN_ONCE);
        CHECK_INT(db_embedded_restarts(e), 0);
        CHECK(read_pidfile_pid(want_cluster) == pid); /* stale: its process is dead */
        db_embedded_free(e);
    }

    /* The next start removes that stale postmaster.pid and retries while the old busy
     * backend still holds the shared memory. */
    killer = kill_later(busy, 1500);
    e = NULL;
    t0 = core_now_ns();
    CHECK_INT(db_embedded_start(loop, data, 0, &e), CORE_OK);
    printf("start after a killed postmaster (old backend for 1.5 s): %llu ms\n",
           (unsigned long long)ms_since(t0));
    CHECK(ms_since(t0) >= 1000);
    CHECK(killer > 0 && waitpid(killer, NULL, 0) == killer);
    if (bc) PQfinish(bc);
    if (e) stop_and_free(loop, e);

    /* A postmaster.pid whose pid now belongs to an unrelated live process (this one). */
    char pidpath[512];
    snprintf(pidpath, sizeof(pidpath), "%s/postmaster.pid", want_cluster);
    FILE *pf = fopen(pidpath, "w");
    CHECK(pf != NULL);
    if (pf) {
        fprintf(pf, "%d\n%s\n", (int)getpid(), want_cluster);
        fclose(pf);
    }
    e = NULL;
    CHECK_INT(db_embedded_start(loop, data, 0, &e), CORE_OK);
    if (e) stop_and_free(loop, e);

    /* A postmaster left running by an earlier run (Strata killed with -9): started here
     * the way it would survive, detached, so its parent is no longer a Strata process. */
    if (geteuid() == 0) {
        char cmd[2048];
        snprintf(cmd, sizeof(cmd),
                 "runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D %s -l /dev/null "
                 "-w -s start",
                 want_cluster);
        CHECK_INT(system(cmd), 0);
        int orphan = read_pidfile_pid(want_cluster);
        CHECK(orphan > 0);
        e = NULL;
        t0 = core_now_ns();
        CHECK_INT(db_embedded_start(loop, data, 0, &e), CORE_OK);
        printf("start over a leftover postmaster: %llu ms\n", (unsigned long long)ms_since(t0));
        if (e) {
            CHECK(db_embedded_pid(e) != orphan);
            CHECK(!pid_running(orphan));
            v = query1(db_embedded_admin_conninfo(e), "select x from kept");
            if (v) CHECK_CSTR(v, "42");
            stop_and_free(loop, e);
        }
    }

    /* A data dir that cannot be created fails cleanly (no handles left, nothing leaked). */
    char bad[300];
    snprintf(bad, sizeof(bad), "%s/jwt-secret/sub", data);
    e = (db_embedded_t *)1;
    CHECK(db_embedded_start(loop, bad, 0, &e) < 0);
    CHECK(e == NULL);

    rm_rf(sockdir);
    rm_rf(base);
}

/* Case 2: data dir under a 0700 root-owned parent: the postgres user cannot reach it, so
 * the cluster goes to /var/lib/strata/<hash>/pg and the secret stays in the data dir. */
static void test_fallback(uv_loop_t *loop)
{
    char parent[] = "/tmp/strata-emb-XXXXXX"; /* mkdtemp: 0700, owned by root */
    CHECK(mkdtemp(parent) != NULL);
    char data[256], inside[300];
    snprintf(data, sizeof(data), "%s/data", parent);
    snprintf(inside, sizeof(inside), "%s/pg", data);
    db_embedded_t *e = NULL;
    uint64_t t0 = core_now_ns();
    CHECK_INT(db_embedded_start(loop, data, 0, &e), CORE_OK);
    printf("fallback first start: %llu ms\n", (unsigned long long)ms_since(t0));
    if (!e) {
        rm_rf(parent);
        return;
    }
    const char *cluster = db_embedded_cluster_dir(e);
    CHECK(strncmp(cluster, "/var/lib/strata/", 16) == 0);
    CHECK(access(inside, F_OK) != 0);
    check_jwt_secret(data, e);
    char hashdir[512];
    snprintf(hashdir, sizeof(hashdir), "%s", cluster);
    char *hd = dirname(hashdir); /* /var/lib/strata/<hash> */
    struct stat st;
    CHECK_INT(stat(hd, &st), 0);
    CHECK_INT(st.st_mode & 0777, 0700);
    CHECK(st.st_uid != 0);
    CHECK_INT(stat(parent, &st), 0);
    CHECK_INT(st.st_mode & 0777, 0700); /* the user's directory was not touched */

    const char *v = query1(db_embedded_conninfo(e), "select current_user");
    CHECK(v != NULL);
    if (v) CHECK_CSTR(v, "authenticator");

    char hashcopy[512], sockdir[128];
    snprintf(hashcopy, sizeof(hashcopy), "%s", hd);
    snprintf(sockdir, sizeof(sockdir), "%s", db_embedded_socket_dir(e));
    stop_and_free(loop, e);
    rm_rf(hashcopy);
    rm_rf(sockdir);
    (void)rmdir("/var/lib/strata"); /* only if nothing else lives there */
    rm_rf(parent);
}

int main(void)
{
    uv_loop_t loop;
    CHECK_INT(uv_loop_init(&loop), 0);
    test_reachable(&loop);
    if (geteuid() == 0) test_fallback(&loop);
    else printf("not root: skipping the /var/lib/strata fallback case\n");
    CHECK_INT(uv_loop_close(&loop), 0); /* every handle was closed */
    TEST_MAIN_END();
}
