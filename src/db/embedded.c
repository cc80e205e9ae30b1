/*
 * The embedded PostgreSQL cluster: created on first run, started as a supervised child of
 * Strata, listening only on a Unix socket in a private directory.
 *
 * Why it is built this way (see docs/internals/embedded.md):
 * - initdb and postgres refuse to run as root, so as root both run as the `postgres` system
 *   user; that user must be able to traverse every ancestor of the cluster's directory,
 *   which is why an unreachable data dir moves the cluster to /var/lib/strata/<hash>/pg
 *   instead of chmod-ing the user's directories.
 * - postgres is spawned directly (not through pg_ctl) so libuv reports its exit at once and
 *   the supervisor can restart it; UV_PROCESS_DETACHED puts it in its own session so a
 *   Ctrl-C in the terminal reaches only Strata, which then stops it in order.
 * - Blocking work (initdb, waiting for readiness, bootstrap SQL with blocking libpq) is
 *   allowed here because db_embedded_start runs before any worker loop exists. After
 *   start, everything runs from callbacks on the caller's loop and never blocks.
 */
#include "db/embedded.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <locale.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "db/embedded_int.h"

#define EMB_BINDIR_DEFAULT "/usr/lib/postgresql/15/bin"
#define EMB_FALLBACK_ROOT "/var/lib/strata"
#define EMB_PORT "5432"
#define EMB_DBNAME "strata"
#define EMB_READY_TIMEOUT_MS 30000u
#define EMB_BACKOFF_MIN_MS 250u
#define EMB_BACKOFF_MAX_MS 5000u
#define EMB_STABLE_NS (10ull * 1000000000ull) /* up this long: the next crash starts over */
#define EMB_STOP_QUIT_MS 10000u /* SIGINT (fast shutdown), then SIGQUIT (immediate) */
#define EMB_STOP_KILL_MS 5000u  /* ... then SIGKILL as the last resort */
#define EMB_LOG_ROTATE_BYTES ((off_t)16 << 20)
#define EMB_MAX_STR 8192u
#define EMB_SOCKET_PATH_MAX 107u /* sizeof(sun_path) - 1 */

struct db_embedded {
    uv_loop_t *loop;
    unsigned max_connections; /* written to strata.conf */
    char *data_dir;    /* absolute and canonical; jwt-secret and postgres.log live here */
    char *cluster_dir; /* PGDATA */
    char *socket_dir;
    char *log_path;
    char *bindir;
    char *conninfo;       /* authenticator @ strata */
    char *admin_conninfo; /* postgres @ strata */
    char *ping_conninfo;  /* postgres @ postgres: usable before "strata" exists */
    char *jwt_secret;
    char *env[4]; /* the children's environment: PATH, LANG, TZ (if set), NULL */
    char hash[65]; /* hex SHA-256 of data_dir */
    const char *locale;
    bool as_root; /* run children as the postgres user */
    uid_t uid;
    gid_t gid;
    int log_fd; /* <data_dir>/postgres.log, the children's stdout and stderr */
    off_t log_mark; /* log size when the current postmaster was spawned */

    uv_process_t proc;
    bool proc_open;  /* proc is initialised and its close callback has not run */
    bool proc_alive; /* spawned and its exit callback has not run */
    int pid;
    int last_pid; /* the postmaster that exited last, to find its own log lines */
    uint64_t spawned_ns;
    int64_t exit_status;
    int term_signal;

    uv_timer_t restart_timer;
    uv_timer_t kill_timer;
    bool restart_timer_open;
    bool kill_timer_open;
    unsigned backoff_ms;
    unsigned restarts;
    bool supervising; /* start succeeded: unexpected exits are restarted */
    bool stopping;
    int kill_stage;
    void (*done)(void *);
    void *done_arg;
    bool done_called;
};

/* ---- small helpers ------------------------------------------------------------------ */

static char *emb_printf(const char *fmt, ...) CORE_PRINTF(1, 2);

/* A heap string (core_free) built with printf, or NULL when out of memory. */
static char *emb_printf(const char *fmt, ...)
{
    core_buf_t b;
    core_buf_init(&b, EMB_MAX_STR);
    va_list ap;
    va_start(ap, fmt);
    char small[512];
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) return NULL;
    if ((size_t)n < sizeof(small)) {
        core_buf_append(&b, small, (size_t)n);
    } else {
        char *big = core_malloc((size_t)n + 1);
        if (!big) return NULL;
        va_start(ap, fmt);
        (void)vsnprintf(big, (size_t)n + 1, fmt, ap);
        va_end(ap);
        core_buf_append(&b, big, (size_t)n);
        core_free(big);
    }
    if (core_buf_status(&b) != CORE_OK) {
        core_buf_free(&b);
        return NULL;
    }
    return b.ptr;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return CORE_EIO;
        p += w;
        n -= (size_t)w;
    }
    return CORE_OK;
}

/* Reads at most `max` bytes of a small file into b (b's own max should be >= max). */
static int read_small_file(const char *path, size_t max, core_buf_t *b)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return errno == ENOENT ? CORE_ENOTFOUND : CORE_EIO;
    char chunk[4096];
    int rc = CORE_OK;
    for (;;) {
        ssize_t r = read(fd, chunk, sizeof(chunk));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            rc = CORE_EIO;
            break;
        }
        if (r == 0) break;
        if (b->len + (size_t)r > max) {
            rc = CORE_ELIMIT;
            break;
        }
        core_buf_append(b, chunk, (size_t)r);
    }
    close(fd);
    if (rc == CORE_OK) rc = core_buf_status(b);
    return rc;
}

/* Replaces `path` with `data` (write a temporary file, then rename), mode `mode`, owned by
 * the postgres user when we are root (PostgreSQL must be able to read it). */
static int write_file_replace(const db_embedded_t *e, const char *path, str_t data, mode_t mode)
{
    int rc = CORE_EIO;
    char *tmp = emb_printf("%s.tmp", path);
    if (!tmp) return CORE_ENOMEM;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) goto out;
    if (write_all(fd, data.ptr, data.len) != CORE_OK || fchmod(fd, mode) != 0 ||
        (e->as_root && fchown(fd, e->uid, e->gid) != 0) || fsync(fd) != 0) {
        close(fd);
        unlink(tmp);
        goto out;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        goto out;
    }
    rc = CORE_OK;
out:
    if (rc != CORE_OK) LOG_ERROR("could not write \"%s\": %s", path, strerror(errno));
    core_free(tmp);
    return rc;
}

/* mkdir -p. Directories created here get exactly `mode` (umask aside); existing ones are
 * left alone: they may be the user's. */
static int mkdir_p(const char *path, mode_t mode)
{
    size_t len = strlen(path);
    if (len == 0 || len >= EMB_MAX_STR) return CORE_EINVAL;
    char *p = core_strndup(path, len);
    if (!p) return CORE_ENOMEM;
    int rc = CORE_OK;
    for (size_t i = 1; i <= len; i++) {
        if (p[i] != '/' && p[i] != '\0') continue;
        char saved = p[i];
        p[i] = '\0';
        if (mkdir(p, mode) == 0) {
            if (chmod(p, mode) != 0) rc = CORE_EIO;
        } else if (errno != EEXIST) {
            LOG_ERROR("could not create directory \"%s\": %s", p, strerror(errno));
            rc = CORE_EIO;
        } else {
            struct stat st;
            if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
                LOG_ERROR("\"%s\" exists and is not a directory", p);
                rc = CORE_EIO;
            }
        }
        p[i] = saved;
        if (rc != CORE_OK) break;
    }
    core_free(p);
    return rc;
}

/* A directory that must belong to the user PostgreSQL runs as: created with `mode` and
 * handed to that user, or, when it exists, checked (never changed). */
static int ensure_own_dir(const db_embedded_t *e, const char *path, mode_t mode)
{
    if (mkdir(path, mode) == 0) {
        if (chmod(path, mode) != 0 || (e->as_root && chown(path, e->uid, e->gid) != 0)) {
            LOG_ERROR("could not set up directory \"%s\": %s", path, strerror(errno));
            return CORE_EIO;
        }
        return CORE_OK;
    }
    if (errno != EEXIST) {
        LOG_ERROR("could not create directory \"%s\": %s", path, strerror(errno));
        return CORE_EIO;
    }
    struct stat st;
    if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        LOG_ERROR("\"%s\" exists and is not a directory", path);
        return CORE_EIO;
    }
    if (st.st_uid != e->uid) {
        LOG_ERROR("\"%s\" belongs to uid %ld, but PostgreSQL runs as uid %ld; remove it or "
                  "give it to that user",
                  path, (long)st.st_uid, (long)e->uid);
        return CORE_EIO;
    }
    return CORE_OK;
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Whether the user PostgreSQL runs as can traverse `dir` and every ancestor. As root the
 * only faithful answer (groups, ACLs) comes from asking as that user, so a short child
 * drops to it — the same way libuv does for the real children — and calls access(). */
static bool can_reach(const db_embedded_t *e, const char *dir)
{
    if (!e->as_root) return access(dir, X_OK) == 0;
    pid_t pid = fork();
    if (pid < 0) return false;
    if (pid == 0) {
        if (setgroups(0, NULL) != 0 || setgid(e->gid) != 0 || setuid(e->uid) != 0) _exit(2);
        _exit(access(dir, X_OK) == 0 ? 0 : 1);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) return false;
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static int sha256_hex(const char *s, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(s, strlen(s), md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
        return CORE_EIO;
    for (unsigned i = 0; i < 32; i++) {
        out[(size_t)2 * i] = hex[md[i] >> 4];
        out[(size_t)2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
    return CORE_OK;
}

/* ---- the JWT secret ------------------------------------------------------------------- */

static int load_jwt_secret(db_embedded_t *e)
{
    int rc;
    char *path = emb_printf("%s/jwt-secret", e->data_dir);
    if (!path) return CORE_ENOMEM;
    core_buf_t b;
    core_buf_init(&b, 4096);
    rc = read_small_file(path, 4096, &b);
    if (rc == CORE_ENOTFOUND) {
        /* O_EXCL: two processes starting at once must not write different secrets. */
        unsigned char raw[32];
        char hexs[65];
        static const char hex[] = "0123456789abcdef";
        if (RAND_bytes(raw, (int)sizeof(raw)) != 1) {
            LOG_ERROR("could not generate a JWT secret: no randomness");
            rc = CORE_EIO;
            goto out;
        }
        for (size_t i = 0; i < sizeof(raw); i++) {
            hexs[2 * i] = hex[raw[i] >> 4];
            hexs[2 * i + 1] = hex[raw[i] & 15];
        }
        hexs[64] = '\0';
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd >= 0) {
            rc = (fchmod(fd, 0600) == 0 && write_all(fd, hexs, 64) == CORE_OK && fsync(fd) == 0)
                     ? CORE_OK
                     : CORE_EIO;
            if (close(fd) != 0) rc = CORE_EIO;
            if (rc != CORE_OK) {
                LOG_ERROR("could not write \"%s\": %s", path, strerror(errno));
                unlink(path);
                goto out;
            }
            LOG_INFO("created a new JWT secret in %s", path);
        } else if (errno != EEXIST) {
            LOG_ERROR("could not create \"%s\": %s", path, strerror(errno));
            rc = CORE_EIO;
            goto out;
        }
        core_buf_reset(&b);
        rc = read_small_file(path, 4096, &b);
    }
    if (rc != CORE_OK) {
        LOG_ERROR("could not read \"%s\" (%s)", path,
                  rc == CORE_ELIMIT ? "larger than 4 KiB" : strerror(errno));
        goto out;
    }
    while (b.len > 0 && (b.ptr[b.len - 1] == '\n' || b.ptr[b.len - 1] == '\r' ||
                         b.ptr[b.len - 1] == ' ' || b.ptr[b.len - 1] == '\t'))
        b.len--;
    if (b.len < 32 || memchr(b.ptr, '\0', b.len)) {
        LOG_ERROR("\"%s\" must hold a secret of at least 32 characters", path);
        rc = CORE_EINVAL;
        goto out;
    }
    e->jwt_secret = core_strndup(b.ptr, b.len);
    rc = e->jwt_secret ? CORE_OK : CORE_ENOMEM;
out:
    core_buf_free(&b);
    core_free(path);
    return rc;
}

/* ---- where things go ------------------------------------------------------------------ */

/* Debian's layout: one directory per major version. 15 is what install-deps installs; the
 * others are accepted so a machine with another supported version still works. */
static const char *const BINDIR_CANDIDATES[] = {
    EMB_BINDIR_DEFAULT, "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin",
    "/usr/lib/postgresql/14/bin",
};

static int find_bindir(db_embedded_t *e)
{
    for (size_t i = 0; i < sizeof(BINDIR_CANDIDATES) / sizeof(BINDIR_CANDIDATES[0]); i++) {
        char *pg = emb_printf("%s/postgres", BINDIR_CANDIDATES[i]);
        char *init = emb_printf("%s/initdb", BINDIR_CANDIDATES[i]);
        bool ok = pg && init && access(pg, X_OK) == 0 && access(init, X_OK) == 0;
        core_free(pg);
        core_free(init);
        if (ok) {
            e->bindir = emb_printf("%s", BINDIR_CANDIDATES[i]);
            return e->bindir ? CORE_OK : CORE_ENOMEM;
        }
    }
    LOG_ERROR("PostgreSQL server binaries not found (looked in /usr/lib/postgresql/{14,15,16,17}/bin); "
              "install postgresql-15 or set PGRST_DB_URI");
    return CORE_ENOTFOUND;
}

static int find_run_user(db_embedded_t *e)
{
    e->as_root = geteuid() == 0;
    if (!e->as_root) {
        e->uid = geteuid();
        e->gid = getegid();
        return CORE_OK;
    }
    long sz = sysconf(_SC_GETPW_R_SIZE_MAX);
    size_t bufsz = sz > 0 ? (size_t)sz : 16384;
    char *buf = core_malloc(bufsz);
    if (!buf) return CORE_ENOMEM;
    struct passwd pw, *res = NULL;
    int err = getpwnam_r("postgres", &pw, buf, bufsz, &res);
    int rc = CORE_OK;
    if (err != 0 || !res) {
        LOG_ERROR("running as root needs the \"postgres\" system user for the embedded "
                  "PostgreSQL (PostgreSQL refuses to run as root); install postgresql-15 or "
                  "run Strata as a normal user");
        rc = CORE_ENOTFOUND;
    } else if (pw.pw_uid == 0) {
        LOG_ERROR("the \"postgres\" user has uid 0; PostgreSQL refuses to run as root");
        rc = CORE_EINVAL;
    } else {
        e->uid = pw.pw_uid;
        e->gid = pw.pw_gid;
    }
    core_free(buf);
    return rc;
}

/* An existing directory PostgreSQL will own: it must already belong to that user (it is
 * never chown-ed or chmod-ed here: it may be the user's). */
static int check_own_dir(const db_embedded_t *e, const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        LOG_ERROR("\"%s\" exists and is not a directory", path);
        return CORE_EIO;
    }
    if (st.st_uid != e->uid) {
        LOG_ERROR("\"%s\" belongs to uid %ld, but PostgreSQL runs as uid %ld; remove it or "
                  "give it to that user",
                  path, (long)st.st_uid, (long)e->uid);
        return CORE_EIO;
    }
    return CORE_OK;
}

/* <data_dir>/pg when the postgres user can reach it, else /var/lib/strata/<hash>/pg. The
 * directory itself is made by init_cluster; only its parent is prepared here. */
static int choose_cluster_dir(db_embedded_t *e)
{
    char *inside = emb_printf("%s/pg", e->data_dir);
    char *outside_parent = emb_printf(EMB_FALLBACK_ROOT "/%.16s", e->hash);
    char *outside = emb_printf(EMB_FALLBACK_ROOT "/%.16s/pg", e->hash);
    int rc = CORE_ENOMEM;
    if (!inside || !outside_parent || !outside) goto out;

    bool reachable = can_reach(e, e->data_dir);
    if (file_exists(inside)) {
        if (!reachable) {
            LOG_ERROR("\"%s\" exists but the postgres user cannot reach it (a parent "
                      "directory is not searchable by uid %ld)",
                      inside, (long)e->uid);
            rc = CORE_EIO;
            goto out;
        }
        rc = check_own_dir(e, inside);
    } else if (reachable) {
        rc = CORE_OK;
    } else {
        LOG_INFO("the postgres user cannot reach %s, so the embedded cluster is kept in %s "
                 "(other files stay in %s)",
                 e->data_dir, outside, e->data_dir);
        if (mkdir(EMB_FALLBACK_ROOT, 0755) != 0 && errno != EEXIST) {
            LOG_ERROR("could not create \"%s\": %s", EMB_FALLBACK_ROOT, strerror(errno));
            rc = CORE_EIO;
            goto out;
        }
        rc = ensure_own_dir(e, outside_parent, 0700);
        if (rc == CORE_OK && file_exists(outside)) rc = check_own_dir(e, outside);
        if (rc == CORE_OK) {
            e->cluster_dir = outside;
            outside = NULL;
        }
        goto out;
    }
    if (rc == CORE_OK) {
        e->cluster_dir = inside;
        inside = NULL;
    }
out:
    core_free(inside);
    core_free(outside_parent);
    core_free(outside);
    return rc;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

/* The socket directory lives in /tmp because socket paths are limited to 107 bytes and
 * data dirs can be deep. /tmp is shared, so an existing directory must already be ours. */
static int prepare_socket_dir(db_embedded_t *e)
{
    e->socket_dir = emb_printf("/tmp/strata-%.8s", e->hash);
    if (!e->socket_dir) return CORE_ENOMEM;
    if (strlen(e->socket_dir) + sizeof("/.s.PGSQL." EMB_PORT ".lock") > EMB_SOCKET_PATH_MAX)
        return CORE_EINVAL;
    return ensure_own_dir(e, e->socket_dir, 0700);
}

static int open_log(db_embedded_t *e)
{
    e->log_path = emb_printf("%s/postgres.log", e->data_dir);
    if (!e->log_path) return CORE_ENOMEM;
    struct stat st;
    if (stat(e->log_path, &st) == 0 && st.st_size > EMB_LOG_ROTATE_BYTES) {
        char *old = emb_printf("%s.1", e->log_path);
        if (old) (void)rename(e->log_path, old);
        core_free(old);
    }
    e->log_fd = open(e->log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
    if (e->log_fd < 0) {
        LOG_ERROR("could not open \"%s\": %s", e->log_path, strerror(errno));
        return CORE_EIO;
    }
    return CORE_OK;
}

static off_t log_size(const db_embedded_t *e)
{
    struct stat st;
    return fstat(e->log_fd, &st) == 0 ? st.st_size : 0;
}

/* The last line since `mark` in postgres.log that says why something failed (FATAL, PANIC,
 * or initdb's "error:"), copied into out; "" when there is none. With pid > 0 only lines of
 * that process count (the default log_line_prefix has "[pid]"): client sessions log FATALs
 * of their own ("the database system is starting up") that say nothing about the server. */
static void last_failure_line(const db_embedded_t *e, off_t mark, int pid, char *out,
                              size_t outlen)
{
    char tag[32] = "";
    if (pid > 0) snprintf(tag, sizeof(tag), "[%d] ", pid);
    out[0] = '\0';
    int fd = open(e->log_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    char buf[16384];
    off_t end = lseek(fd, 0, SEEK_END);
    off_t from = end - (off_t)sizeof(buf) + 1 > mark ? end - (off_t)sizeof(buf) + 1 : mark;
    ssize_t n = from >= 0 && from <= end ? pread(fd, buf, (size_t)(end - from), from) : -1;
    close(fd);
    if (n <= 0) return;
    buf[n] = '\0';
    const char *best = NULL;
    for (char *line = buf; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        if ((!tag[0] || strstr(line, tag)) &&
            (strstr(line, "FATAL:") || strstr(line, "PANIC:") || strstr(line, "error:")))
            best = line;
        line = nl ? nl + 1 : NULL;
    }
    if (best) {
        size_t len = strlen(best);
        if (len >= outlen) len = outlen - 1;
        memcpy(out, best, len);
        out[len] = '\0';
    }
}

/* A start that failed for one of these reasons is worth another try a moment later: the
 * previous postmaster's processes are still going away. */
static bool retryable_failure(const char *line)
{
    return strstr(line, "lock file") || strstr(line, "shared memory") ||
           strstr(line, "Unix-domain socket");
}

/* ---- children ------------------------------------------------------------------------ */

static int build_child_env(db_embedded_t *e)
{
    locale_t l = newlocale(LC_ALL_MASK, "C.UTF-8", (locale_t)0);
    e->locale = l ? "C.UTF-8" : "C";
    if (l) freelocale(l);
    /* A minimal environment: the server reads PGPORT, PGDATA and friends, which belong to
     * the user's own clients, not to this private cluster. */
    const char *tz = getenv("TZ");
    e->env[0] = emb_printf("PATH=%s:/usr/bin:/bin", e->bindir);
    e->env[1] = emb_printf("LANG=%s", e->locale);
    e->env[2] = tz ? emb_printf("TZ=%s", tz) : NULL;
    e->env[3] = NULL;
    if (!e->env[0] || !e->env[1] || (tz && !e->env[2])) return CORE_ENOMEM;
    return CORE_OK;
}

static void fill_options(db_embedded_t *e, uv_process_options_t *o, uv_stdio_container_t *stdio,
                         const char *file, char **args, uv_exit_cb cb)
{
    memset(o, 0, sizeof(*o));
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_INHERIT_FD;
    stdio[1].data.fd = e->log_fd;
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = e->log_fd;
    o->exit_cb = cb;
    o->file = file;
    o->args = args;
    o->env = e->env;
    o->cwd = "/"; /* the caller's cwd may not be searchable by the postgres user */
    o->stdio_count = 3;
    o->stdio = stdio;
    o->flags = UV_PROCESS_DETACHED;
    if (e->as_root) {
        o->flags |= UV_PROCESS_SETUID | UV_PROCESS_SETGID;
        o->uid = e->uid;
        o->gid = e->gid;
    }
}

typedef struct {
    bool exited;
    int64_t status;
    int signal;
} run_result_t;

static void on_blocking_exit(uv_process_t *p, int64_t status, int sig)
{
    run_result_t *r = p->data;
    r->exited = true;
    r->status = status;
    r->signal = sig;
    uv_close((uv_handle_t *)p, NULL);
}

/* Runs a short-lived program as the PostgreSQL user and waits for it. A private loop keeps
 * the caller's loop (and whatever it already holds) out of this. Returns its exit status,
 * or a negative status when it could not be run. */
static int run_blocking(db_embedded_t *e, const char *file, char **args)
{
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0) return CORE_EIO;
    uv_process_t p;
    uv_process_options_t o;
    uv_stdio_container_t stdio[3];
    run_result_t r = {0};
    fill_options(e, &o, stdio, file, args, on_blocking_exit);
    p.data = &r;
    int rc = uv_spawn(&loop, &p, &o);
    if (rc != 0) {
        LOG_ERROR("could not run %s: %s", file, uv_strerror(rc));
        uv_close((uv_handle_t *)&p, NULL);
    }
    (void)uv_run(&loop, UV_RUN_DEFAULT);
    (void)uv_loop_close(&loop);
    if (rc != 0) return CORE_EIO;
    if (r.signal) return 128 + r.signal;
    return (int)r.status;
}

/* initdb writes PG_VERSION early, so a killed initdb would leave a directory that looks
 * like a cluster. It works in <cluster>.initdb instead, which is renamed into place only
 * when it succeeded: an existing PG_VERSION always means a complete cluster. */
static int init_cluster(db_embedded_t *e)
{
    int rc = CORE_ENOMEM;
    char *tmp = emb_printf("%s.initdb", e->cluster_dir);
    char *initdb = emb_printf("%s/initdb", e->bindir);
    char *locale = emb_printf("--locale=%s", e->locale);
    if (!tmp || !initdb || !locale) goto out;
    /* A leftover of an interrupted first run: ours (made below), never the user's. */
    if (nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT) {
        LOG_ERROR("could not remove \"%s\": %s", tmp, strerror(errno));
        rc = CORE_EIO;
        goto out;
    }
    if ((rc = ensure_own_dir(e, tmp, 0700)) != CORE_OK) goto out;

    char *args[] = {initdb, "-D", tmp, "-U", "postgres", "--auth=trust", "--no-sync",
                    "-E", "UTF8", locale, NULL};
    LOG_INFO("creating the embedded PostgreSQL cluster in %s (first run)", e->cluster_dir);
    uint64_t t0 = core_now_ns();
    off_t mark = log_size(e);
    int status = run_blocking(e, initdb, args);
    if (status != 0) {
        char why[512];
        last_failure_line(e, mark, 0, why, sizeof(why));
        LOG_ERROR("initdb failed (status %d)%s%s; see %s", status, why[0] ? ": " : "", why,
                  e->log_path);
        (void)nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        rc = CORE_EIO;
        goto out;
    }
    /* rename replaces an empty directory; a non-empty one that is not a cluster stays. */
    if (rename(tmp, e->cluster_dir) != 0) {
        LOG_ERROR("could not move the new cluster to \"%s\": %s", e->cluster_dir,
                  strerror(errno));
        (void)nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        rc = CORE_EIO;
        goto out;
    }
    LOG_INFO("initdb finished in %llu ms", (unsigned long long)((core_now_ns() - t0) / 1000000u));
    rc = CORE_OK;
out:
    core_free(tmp);
    core_free(initdb);
    core_free(locale);
    return rc;
}

/* Strata's settings live in their own file, included from postgresql.conf and rewritten at
 * every start, so upgrades can change them; ALTER SYSTEM still overrides them. */
static int write_settings(db_embedded_t *e)
{
    int rc;
    char *conf = emb_printf("%s/strata.conf", e->cluster_dir);
    char *main_conf = emb_printf("%s/postgresql.conf", e->cluster_dir);
    char *text = emb_printf("# Written by Strata at every start: edits here are lost.\n"
                            "# Tune with ALTER SYSTEM, which overrides this file.\n"
                            "listen_addresses = ''\n"
                            "port = " EMB_PORT "\n"
                            "unix_socket_directories = '%s'\n"
                            "unix_socket_permissions = 0700\n"
                            "cluster_name = 'strata'\n"
                            "wal_level = logical\n"
                            "max_wal_senders = 10\n"
                            "max_replication_slots = 10\n"
                            "shared_buffers = 128MB\n"
                            "max_connections = %u\n",
                            e->socket_dir, e->max_connections);
    core_buf_t b;
    core_buf_init(&b, 1u << 20);
    rc = CORE_ENOMEM;
    if (!conf || !main_conf || !text) goto out;
    rc = write_file_replace(e, conf, str_from_cstr(text), 0600);
    if (rc != CORE_OK) goto out;
    static const char include[] = "include_if_exists = 'strata.conf'";
    rc = read_small_file(main_conf, 1u << 20, &b);
    if (rc != CORE_OK) {
        LOG_ERROR("could not read \"%s\"", main_conf);
        goto out;
    }
    if (!strstr(b.ptr ? b.ptr : "", include)) {
        int fd = open(main_conf, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
        static const char add[] = "\n# Strata's settings (rewritten at every start)\n"
                                  "include_if_exists = 'strata.conf'\n";
        rc = fd >= 0 ? write_all(fd, add, sizeof(add) - 1) : CORE_EIO;
        if (fd >= 0 && close(fd) != 0) rc = CORE_EIO;
        if (rc != CORE_OK) LOG_ERROR("could not update \"%s\": %s", main_conf, strerror(errno));
    }
out:
    core_buf_free(&b);
    core_free(conf);
    core_free(main_conf);
    core_free(text);
    return rc;
}

/* ---- postmaster.pid and processes left behind ---------------------------------------- */

static int read_pidfile(const db_embedded_t *e, char **path_out)
{
    *path_out = emb_printf("%s/postmaster.pid", e->cluster_dir);
    if (!*path_out) return CORE_ENOMEM;
    core_buf_t b;
    core_buf_init(&b, 8192);
    int pid = 0;
    if (read_small_file(*path_out, 8192, &b) == CORE_OK && b.ptr) {
        long v;
        long nl = str_find_char(core_buf_str(&b), '\n');
        str_t first = {b.ptr, nl < 0 ? b.len : (size_t)nl};
        if (str_to_long(first, &v) == CORE_OK && v > 0 && v < INT32_MAX) pid = (int)v;
    }
    core_buf_free(&b);
    return pid;
}

/* /proc/<pid>/stat: the command name and state, and the parent's pid. */
static bool proc_stat(int pid, char *comm, size_t commlen, char *state, int *ppid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) return false;
    buf[n] = '\0';
    char *open_paren = strchr(buf, '(');
    char *close_paren = strrchr(buf, ')');
    if (!open_paren || !close_paren || close_paren < open_paren || close_paren[1] == '\0')
        return false;
    snprintf(comm, commlen, "%.*s", (int)(close_paren - open_paren - 1), open_paren + 1);
    /* After ") " come the state letter, a space and the parent pid. */
    const char *p = close_paren + 2;
    if (p[0] == '\0' || p[1] != ' ') return false;
    char st = p[0];
    char *end = NULL;
    errno = 0;
    long pp = strtol(p + 2, &end, 10);
    if (errno != 0 || end == p + 2 || pp < 0 || pp > INT_MAX) return false;
    *state = st;
    *ppid = (int)pp;
    return true;
}

/* Alive and not a zombie (an orphan's zombie lingers until its new parent reaps it). */
static bool pid_running(int pid)
{
    if (kill(pid, 0) != 0 && errno == ESRCH) return false;
    char comm[64], state;
    int ppid;
    if (!proc_stat(pid, comm, sizeof(comm), &state, &ppid))
        return kill(pid, 0) == 0 || errno != ESRCH;
    return state != 'Z' && state != 'X';
}

static bool same_exe(int pid)
{
    char a[64], mine[1024], theirs[1024];
    snprintf(a, sizeof(a), "/proc/%d/exe", pid);
    ssize_t n1 = readlink("/proc/self/exe", mine, sizeof(mine) - 1);
    ssize_t n2 = readlink(a, theirs, sizeof(theirs) - 1);
    return n1 > 0 && n1 == n2 && memcmp(mine, theirs, (size_t)n1) == 0;
}

static bool wait_gone(int pid, unsigned ms)
{
    for (unsigned waited = 0; waited < ms; waited += 50) {
        if (!pid_running(pid)) return true;
        uv_sleep(50);
    }
    return !pid_running(pid);
}

/* Before the first start: a postmaster.pid whose process is gone is removed (PostgreSQL
 * would refuse to start while a live process holds the pid). A live postmaster on our
 * cluster was left behind by an earlier Strata that died without stopping it (it runs in
 * its own session, so it survives kill -9 of Strata): it is stopped, unless another Strata
 * process is its parent and still using it. */
static int clear_leftover_postmaster(db_embedded_t *e, bool at_start)
{
    char *path = NULL;
    int pid = read_pidfile(e, &path);
    int rc = CORE_OK;
    if (pid < 0 || !path) {
        rc = CORE_ENOMEM;
        goto out;
    }
    if (pid == 0) goto out;
    char comm[64] = "", state = '?';
    int ppid = 0;
    bool alive = pid_running(pid);
    bool is_postgres = alive && proc_stat(pid, comm, sizeof(comm), &state, &ppid) &&
                       (strcmp(comm, "postgres") == 0 || strcmp(comm, "postmaster") == 0);
    if (!alive || !is_postgres) {
        /* Dead, or the pid now belongs to something else. */
        if (unlink(path) != 0 && errno != ENOENT)
            LOG_ERROR("could not remove stale \"%s\": %s", path, strerror(errno));
        goto out;
    }
    if (!at_start) goto out; /* supervisor: let postgres report it, retry on the next tick */
    if (ppid == (int)getpid() || (ppid > 1 && same_exe(ppid))) {
        LOG_ERROR("the embedded PostgreSQL in %s is already in use by process %d", e->cluster_dir,
                  ppid);
        rc = CORE_EIO;
        goto out;
    }
    LOG_INFO("stopping PostgreSQL (pid %d) left running on %s by an earlier run", pid,
             e->cluster_dir);
    (void)kill(pid, SIGINT);
    if (!wait_gone(pid, EMB_STOP_QUIT_MS)) {
        (void)kill(pid, SIGQUIT);
        if (!wait_gone(pid, EMB_STOP_KILL_MS)) {
            (void)kill(pid, SIGKILL);
            if (!wait_gone(pid, EMB_STOP_KILL_MS)) {
                LOG_ERROR("PostgreSQL (pid %d) on %s does not stop", pid, e->cluster_dir);
                rc = CORE_EIO;
            }
        }
    }
out:
    core_free(path);
    return rc;
}

/* ---- the supervised postmaster -------------------------------------------------------- */

static void maybe_done(db_embedded_t *e)
{
    if (!e->stopping || e->done_called || e->proc_open || e->restart_timer_open ||
        e->kill_timer_open)
        return;
    e->done_called = true;
    if (e->done) e->done(e->done_arg);
}

static void on_proc_closed(uv_handle_t *h)
{
    db_embedded_t *e = h->data;
    e->proc_open = false;
    maybe_done(e);
}

static void on_restart_timer_closed(uv_handle_t *h)
{
    db_embedded_t *e = h->data;
    e->restart_timer_open = false;
    maybe_done(e);
}

static void on_kill_timer_closed(uv_handle_t *h)
{
    db_embedded_t *e = h->data;
    e->kill_timer_open = false;
    maybe_done(e);
}

static void schedule_restart(db_embedded_t *e);

static void on_postmaster_exit(uv_process_t *p, int64_t status, int sig)
{
    db_embedded_t *e = p->data;
    e->proc_alive = false;
    e->last_pid = e->pid;
    e->pid = 0;
    e->exit_status = status;
    e->term_signal = sig;
    uv_close((uv_handle_t *)p, on_proc_closed);
    if (e->stopping) {
        LOG_INFO("embedded PostgreSQL stopped");
        if (e->kill_timer_open) {
            uv_timer_stop(&e->kill_timer);
            uv_close((uv_handle_t *)&e->kill_timer, on_kill_timer_closed);
        }
        return;
    }
    if (!e->supervising) return; /* db_embedded_start's wait loop handles it */
    if (core_now_ns() - e->spawned_ns >= EMB_STABLE_NS) e->backoff_ms = EMB_BACKOFF_MIN_MS;
    char why[512];
    last_failure_line(e, e->log_mark, e->last_pid, why, sizeof(why));
    LOG_ERROR("embedded PostgreSQL exited unexpectedly (status %lld, signal %d)%s%s; "
              "restarting in %u ms; see %s",
              (long long)status, sig, why[0] ? ": " : "", why, e->backoff_ms, e->log_path);
    schedule_restart(e);
}

/* Spawns the postmaster on e->loop. The handle must be closed (proc_open false). */
static int spawn_postmaster(db_embedded_t *e, bool at_start)
{
    int rc = clear_leftover_postmaster(e, at_start);
    if (rc != CORE_OK) return rc;
    char *postgres = emb_printf("%s/postgres", e->bindir);
    if (!postgres) return CORE_ENOMEM;
    char *args[] = {postgres, "-D", e->cluster_dir, "-k", e->socket_dir, "-p", EMB_PORT, NULL};
    uv_process_options_t o;
    uv_stdio_container_t stdio[3];
    fill_options(e, &o, stdio, postgres, args, on_postmaster_exit);
    e->log_mark = log_size(e);
    e->proc.data = e;
    int uvrc = uv_spawn(e->loop, &e->proc, &o);
    e->proc_open = true; /* initialised even when uv_spawn fails: it must be closed */
    if (uvrc != 0) {
        LOG_ERROR("could not start %s: %s", postgres, uv_strerror(uvrc));
        uv_close((uv_handle_t *)&e->proc, on_proc_closed);
        core_free(postgres);
        return CORE_EIO;
    }
    e->proc_alive = true;
    e->pid = e->proc.pid;
    e->spawned_ns = core_now_ns();
    core_free(postgres);
    return CORE_OK;
}

static void on_restart_timer(uv_timer_t *t)
{
    db_embedded_t *e = t->data;
    if (e->stopping) return;
    if (e->proc_open) { /* the old handle's close callback has not run yet */
        uv_timer_start(&e->restart_timer, on_restart_timer, 20, 0);
        return;
    }
    e->restarts++;
    if (spawn_postmaster(e, false) != CORE_OK) {
        schedule_restart(e);
        return;
    }
    LOG_INFO("embedded PostgreSQL restarted (pid %d)", e->pid);
}

static void schedule_restart(db_embedded_t *e)
{
    uv_timer_start(&e->restart_timer, on_restart_timer, e->backoff_ms, 0);
    e->backoff_ms = e->backoff_ms * 2 > EMB_BACKOFF_MAX_MS ? EMB_BACKOFF_MAX_MS : e->backoff_ms * 2;
}

static void on_kill_timer(uv_timer_t *t)
{
    db_embedded_t *e = t->data;
    if (!e->proc_alive) return;
    if (e->kill_stage == 0) {
        LOG_INFO("embedded PostgreSQL still running after %u ms; sending SIGQUIT",
                 EMB_STOP_QUIT_MS);
        (void)uv_process_kill(&e->proc, SIGQUIT);
        e->kill_stage = 1;
        uv_timer_start(&e->kill_timer, on_kill_timer, EMB_STOP_KILL_MS, 0);
    } else {
        LOG_ERROR("embedded PostgreSQL ignores SIGQUIT; sending SIGKILL");
        (void)uv_process_kill(&e->proc, SIGKILL);
    }
}

/* ---- start ---------------------------------------------------------------------------- */

/* Waits until the postmaster accepts connections. Runs e->loop without blocking between
 * pings so the exit of a postmaster that gave up is noticed; a start that failed because
 * the previous postmaster's processes are still around is tried again. */
static int wait_ready(db_embedded_t *e)
{
    uint64_t deadline = core_now_ns() + (uint64_t)EMB_READY_TIMEOUT_MS * 1000000u;
    unsigned backoff = EMB_BACKOFF_MIN_MS, pause = 10;
    for (;;) {
        (void)uv_run(e->loop, UV_RUN_NOWAIT);
        if (!e->proc_alive) {
            while (e->proc_open) (void)uv_run(e->loop, UV_RUN_ONCE);
            char why[512];
            last_failure_line(e, e->log_mark, e->last_pid, why, sizeof(why));
            if (retryable_failure(why) &&
                core_now_ns() + (uint64_t)backoff * 1000000u < deadline) {
                LOG_INFO("embedded PostgreSQL did not start (%s); trying again in %u ms", why,
                         backoff);
                uv_sleep(backoff);
                backoff = backoff * 2 > EMB_BACKOFF_MAX_MS ? EMB_BACKOFF_MAX_MS : backoff * 2;
                int rc = spawn_postmaster(e, true);
                if (rc != CORE_OK) return rc;
                continue;
            }
            LOG_ERROR("embedded PostgreSQL exited during startup (status %lld, signal %d)%s%s; "
                      "see %s",
                      (long long)e->exit_status, e->term_signal, why[0] ? ": " : "", why,
                      e->log_path);
            return CORE_EIO;
        }
        if (PQping(e->ping_conninfo) == PQPING_OK) return CORE_OK;
        if (core_now_ns() > deadline) {
            LOG_ERROR("embedded PostgreSQL did not accept connections within %u s; see %s",
                      EMB_READY_TIMEOUT_MS / 1000u, e->log_path);
            return CORE_EIO;
        }
        uv_sleep(pause);
        if (pause < 100) pause *= 2;
    }
}

static void quiet_notices(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

static int exec_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) ? CORE_OK : CORE_EIO;
    if (rc != CORE_OK) {
        const char *msg = PQresultErrorMessage(r);
        LOG_ERROR("embedded PostgreSQL setup failed: %.*s", (int)strcspn(msg, "\n"), msg);
    }
    PQclear(r);
    return rc;
}

static PGconn *connect_admin(const char *conninfo)
{
    PGconn *c = PQconnectdb(conninfo);
    if (!c) {
        LOG_ERROR("embedded PostgreSQL: out of memory connecting");
        return NULL;
    }
    if (PQstatus(c) != CONNECTION_OK) {
        const char *msg = PQerrorMessage(c);
        LOG_ERROR("could not connect to the embedded PostgreSQL: %.*s", (int)strcspn(msg, "\n"),
                  msg);
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeProcessor(c, quiet_notices, NULL);
    return c;
}

/* The database and the PostgREST/Supabase roles; safe to run at every start. */
static int bootstrap(db_embedded_t *e)
{
    PGconn *c = connect_admin(e->ping_conninfo);
    if (!c) return CORE_EIO;
    PGresult *r = PQexec(c, "SELECT 1 FROM pg_database WHERE datname = '" EMB_DBNAME "'");
    int rc = CORE_EIO;
    if (PQresultStatus(r) == PGRES_TUPLES_OK) {
        if (PQntuples(r) == 1) {
            rc = CORE_OK;
        } else {
            PGresult *cr = PQexec(c, "CREATE DATABASE " EMB_DBNAME);
            const char *state = PQresultErrorField(cr, PG_DIAG_SQLSTATE);
            /* 42P04: another process created it between the check and here. */
            rc = (PQresultStatus(cr) == PGRES_COMMAND_OK || (state && !strcmp(state, "42P04")))
                     ? CORE_OK
                     : CORE_EIO;
            if (rc != CORE_OK) {
                const char *msg = PQresultErrorMessage(cr);
                LOG_ERROR("could not create database " EMB_DBNAME ": %.*s",
                          (int)strcspn(msg, "\n"), msg);
            }
            PQclear(cr);
        }
    } else {
        const char *msg = PQresultErrorMessage(r);
        LOG_ERROR("embedded PostgreSQL setup failed: %.*s", (int)strcspn(msg, "\n"), msg);
    }
    PQclear(r);
    PQfinish(c);
    if (rc != CORE_OK) return rc;

    c = connect_admin(e->admin_conninfo);
    if (!c) return CORE_EIO;
    rc = exec_ok(c, "SET client_min_messages = warning;\n"
                    "DO $strata$\n"
                    "BEGIN\n"
                    "  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'anon') THEN\n"
                    "    CREATE ROLE anon NOLOGIN;\n"
                    "  END IF;\n"
                    "  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticated') THEN\n"
                    "    CREATE ROLE authenticated NOLOGIN;\n"
                    "  END IF;\n"
                    "  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'service_role') THEN\n"
                    "    CREATE ROLE service_role NOLOGIN;\n"
                    "  END IF;\n"
                    "  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticator') THEN\n"
                    "    CREATE ROLE authenticator LOGIN NOINHERIT;\n"
                    "  END IF;\n"
                    "END\n"
                    "$strata$;\n"
                    "GRANT anon, authenticated, service_role TO authenticator;\n"
                    "GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;\n");
    PQfinish(c);
    return rc;
}

static void on_sync_stop_done(void *arg) { *(bool *)arg = true; }

int db_embedded_start(uv_loop_t *loop, const char *data_dir, unsigned max_connections, db_embedded_t **out)
{
    int rc = CORE_ENOMEM;
    bool timers = false;
    uint64_t t0 = core_now_ns();
    *out = NULL;
    if (!loop || !data_dir || !*data_dir) {
        LOG_ERROR("embedded PostgreSQL: no data directory given");
        return CORE_EINVAL;
    }
    db_embedded_t *e = core_calloc(1, sizeof(*e));
    if (!e) return CORE_ENOMEM;
    e->loop = loop;
    e->log_fd = -1;
    e->max_connections = max_connections < 100 ? 100 : max_connections > 10000 ? 10000 : max_connections;
    e->backoff_ms = EMB_BACKOFF_MIN_MS;

    /* data_dir is the user's (or created here, 0755); its canonical path names the hash. */
    rc = mkdir_p(data_dir, 0755);
    if (rc != CORE_OK) goto fail;
    char *real = realpath(data_dir, NULL);
    if (!real) {
        LOG_ERROR("could not resolve \"%s\": %s", data_dir, strerror(errno));
        rc = CORE_EIO;
        goto fail;
    }
    e->data_dir = core_strndup(real, strlen(real));
    free(real); /* realpath's memory comes from malloc, not the hook */
    rc = CORE_ENOMEM;
    if (!e->data_dir) goto fail;
    if ((rc = sha256_hex(e->data_dir, e->hash)) != CORE_OK) goto fail;
    if ((rc = find_run_user(e)) != CORE_OK) goto fail;
    if ((rc = find_bindir(e)) != CORE_OK) goto fail;
    if ((rc = load_jwt_secret(e)) != CORE_OK) goto fail;
    if ((rc = open_log(e)) != CORE_OK) goto fail;
    if ((rc = choose_cluster_dir(e)) != CORE_OK) goto fail;
    if ((rc = prepare_socket_dir(e)) != CORE_OK) goto fail;
    if ((rc = build_child_env(e)) != CORE_OK) goto fail;
    rc = CORE_ENOMEM;
    e->conninfo = emb_printf("host=%s port=" EMB_PORT " dbname=" EMB_DBNAME " user=authenticator",
                             e->socket_dir);
    e->admin_conninfo =
        emb_printf("host=%s port=" EMB_PORT " dbname=" EMB_DBNAME " user=postgres", e->socket_dir);
    e->ping_conninfo = emb_printf(
        "host=%s port=" EMB_PORT " dbname=postgres user=postgres connect_timeout=5", e->socket_dir);
    if (!e->conninfo || !e->admin_conninfo || !e->ping_conninfo) goto fail;

    char *version = emb_printf("%s/PG_VERSION", e->cluster_dir);
    if (!version) goto fail;
    bool fresh = !file_exists(version);
    core_free(version);
    if (fresh && (rc = init_cluster(e)) != CORE_OK) goto fail;
    if ((rc = write_settings(e)) != CORE_OK) goto fail;

    uv_timer_init(loop, &e->restart_timer);
    uv_timer_init(loop, &e->kill_timer);
    e->restart_timer.data = e->kill_timer.data = e;
    e->restart_timer_open = e->kill_timer_open = timers = true;

    if ((rc = spawn_postmaster(e, true)) != CORE_OK) goto fail;
    if ((rc = wait_ready(e)) != CORE_OK) goto fail;
    if ((rc = bootstrap(e)) != CORE_OK) goto fail;

    e->supervising = true;
    LOG_INFO("embedded PostgreSQL ready in %llu ms (pid %d, cluster %s, socket %s)",
             (unsigned long long)((core_now_ns() - t0) / 1000000u), e->pid, e->cluster_dir,
             e->socket_dir);
    *out = e;
    return CORE_OK;

fail:
    if (timers) {
        /* Same path as a normal stop, driven to the end here: handles must be closed on
         * the loop before e can be freed. */
        bool stopped = false;
        db_embedded_stop(e, on_sync_stop_done, &stopped);
        while (!stopped) (void)uv_run(loop, UV_RUN_ONCE);
    }
    db_embedded_free(e);
    return rc < 0 ? rc : CORE_EIO;
}

/* ---- public accessors and stop -------------------------------------------------------- */

const char *db_embedded_conninfo(const db_embedded_t *e) { return e->conninfo; }
const char *db_embedded_admin_conninfo(const db_embedded_t *e) { return e->admin_conninfo; }
const char *db_embedded_jwt_secret(const db_embedded_t *e) { return e->jwt_secret; }
int db_embedded_pid(const db_embedded_t *e) { return e->proc_alive ? e->pid : 0; }
const char *db_embedded_cluster_dir(const db_embedded_t *e) { return e->cluster_dir; }
const char *db_embedded_socket_dir(const db_embedded_t *e) { return e->socket_dir; }
unsigned db_embedded_restarts(const db_embedded_t *e) { return e->restarts; }

void db_embedded_stop(db_embedded_t *e, void (*done)(void *), void *arg)
{
    DEBUG_CHECK(!e->stopping);
    if (e->stopping) return;
    e->stopping = true;
    e->done = done;
    e->done_arg = arg;
    if (e->restart_timer_open) {
        uv_timer_stop(&e->restart_timer);
        uv_close((uv_handle_t *)&e->restart_timer, on_restart_timer_closed);
    }
    if (e->proc_alive) {
        /* SIGINT is PostgreSQL's fast shutdown: sessions are ended, no data is lost. */
        (void)uv_process_kill(&e->proc, SIGINT);
        if (e->kill_timer_open) uv_timer_start(&e->kill_timer, on_kill_timer, EMB_STOP_QUIT_MS, 0);
    } else if (e->kill_timer_open) {
        uv_close((uv_handle_t *)&e->kill_timer, on_kill_timer_closed);
    }
    /* Nothing open at all (start failed before any handle existed): done on the spot. */
    maybe_done(e);
}

void db_embedded_free(db_embedded_t *e)
{
    if (!e) return;
    if (e->proc_open || e->restart_timer_open || e->kill_timer_open) {
        /* Freeing memory a live handle points to would corrupt the loop; leak instead. */
        LOG_ERROR("db_embedded_free called before db_embedded_stop completed");
        DEBUG_CHECK(false);
        return;
    }
    if (e->log_fd >= 0) close(e->log_fd);
    core_free(e->data_dir);
    core_free(e->cluster_dir);
    core_free(e->socket_dir);
    core_free(e->log_path);
    core_free(e->bindir);
    core_free(e->conninfo);
    core_free(e->admin_conninfo);
    core_free(e->ping_conninfo);
    if (e->jwt_secret) OPENSSL_cleanse(e->jwt_secret, strlen(e->jwt_secret));
    core_free(e->jwt_secret);
    for (size_t i = 0; i < sizeof(e->env) / sizeof(e->env[0]); i++) core_free(e->env[i]);
    core_free(e);
}
