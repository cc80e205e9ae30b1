/*
 * JSON log lines on stderr.
 *
 * Two paths. Before core_log_writer_start and after core_log_writer_stop, a line is one
 * blocking write(2) from the calling thread (startup and configuration errors reach stderr
 * at once). In between, callers only copy their bytes into a bounded queue under a mutex and
 * a dedicated writer thread owns every write(2) to stderr, so a slow or stuck stderr (a full
 * pipe, a paused terminal) never stalls an event loop. See docs/internals/logging.md.
 *
 * POSIX threads rather than uv_thread: core does not depend on libuv, and the statically
 * initialised mutex makes the "is the writer running" check safe from any thread at any time.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core.h"

/* How long the writer gathers lines after the first one before writing, and how many
 * queued bytes end the gathering early. */
#define LOG_GATHER_NS 50000000L
#define LOG_GATHER_BYTES ((size_t)256 * 1024)

static atomic_int log_level = CORE_LOG_INFO;
static const char *const level_names[] = {"error", "warn", "info", "debug"};

void core_log_set_level(int level) { atomic_store(&log_level, level); }
int core_log_level(void) { return atomic_load(&log_level); }

int core_log_level_parse(str_t s, int *out)
{
    if (str_eq(s, STR_LIT("crit")) || str_eq(s, STR_LIT("error"))) *out = CORE_LOG_ERROR;
    else if (str_eq(s, STR_LIT("warn"))) *out = CORE_LOG_WARN;
    else if (str_eq(s, STR_LIT("info"))) *out = CORE_LOG_INFO;
    else if (str_eq(s, STR_LIT("debug"))) *out = CORE_LOG_DEBUG;
    else return CORE_EINVAL;
    return CORE_OK;
}

uint64_t core_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void core_wallclock_rfc3339(char *out, size_t outlen)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char base[32];
    size_t n = strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, outlen, "%.*s.%03dZ", (int)n, base, (int)(ts.tv_nsec / 1000000L) % 1000);
}

/* ---- the writer ----------------------------------------------------------------------
 * Everything below `mu` is guarded by it, except dropped_total (atomic, read by /metrics).
 * Invariants: `running` is true from start until the thread has written the last queued
 * byte after a stop request; while it is true every line goes to `q`, so lines keep call
 * order (per thread, and globally in queue order). The thread clears `running` itself,
 * under the mutex, once the queue is empty and a stop was asked: a caller that sees it false
 * writes directly, and nothing it writes can overtake a queued line. */
#define LOG_QUEUE_INITIAL ((size_t)64 * 1024)
#define LOG_QUEUE_CAP_DEFAULT ((size_t)4 * 1024 * 1024)
#define LOG_STOP_WAIT_S 10

typedef struct {
    char *ptr;
    size_t len;
    size_t cap;
} log_queue_t;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;    /* writer: something to do */
static pthread_cond_t stopped = PTHREAD_COND_INITIALIZER; /* stop: the writer has finished */
static pthread_t writer;
static bool running;      /* lines go to the queue */
static bool stopping;     /* stop asked: drain, then clear running */
static bool thread_alive; /* created and not joined */
static bool thread_done;  /* the thread has left its loop */
static log_queue_t q;     /* callers append here */
static log_queue_t spare; /* the writer's side of the swap */
static size_t queue_cap = LOG_QUEUE_CAP_DEFAULT;
static uint64_t dropped_pending; /* dropped since the last notice */
static atomic_uint_fast64_t dropped_total;

/* One write(2) loop to stderr. Partial writes and EINTR continue; EAGAIN (a non-blocking
 * stderr) waits in poll(). Any other failure gives up on the rest: there is nowhere to report
 * a failing stderr, and retrying would spin. Returns false when bytes were lost. */
static bool write_all(const char *p, size_t n, bool may_poll)
{
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && may_poll) {
            struct pollfd pfd = {.fd = STDERR_FILENO, .events = POLLOUT};
            int pr = poll(&pfd, 1, 1000);
            if (pr < 0 && errno != EINTR) return false;
            if (pr > 0 && (pfd.revents & (POLLERR | POLLHUP | POLLNVAL))) return false;
            continue;
        }
        return false;
    }
    return true;
}

static uint64_t count_lines(const char *p, size_t n)
{
    uint64_t lines = 0;
    const char *end = p + n;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        lines++;
        if (!nl) break;
        p = nl + 1;
    }
    return lines;
}

/* Makes room for `need` more bytes; false when the cap would be passed or memory is short.
 * Growth doubles, so a queue that reached its working size never allocates again. */
static bool queue_reserve(log_queue_t *b, size_t need)
{
    if (b->len + need <= b->cap) return true;
    if (b->len + need > queue_cap) return false;
    size_t cap = b->cap ? b->cap : LOG_QUEUE_INITIAL;
    while (cap < b->len + need) cap *= 2;
    if (cap > queue_cap) cap = queue_cap;
    char *p = core_realloc(b->ptr, cap);
    if (!p) return false;
    b->ptr = p;
    b->cap = cap;
    return true;
}

/* Queues p[0..n) (and a newline when nl), all or nothing. Returns false when the writer
 * is not running: the caller writes directly. Called with any thread, never blocks on I/O. */
static bool queue_line(const char *p, size_t n, bool nl)
{
    pthread_mutex_lock(&mu);
    if (!running) {
        pthread_mutex_unlock(&mu);
        return false;
    }
    size_t need = n + (nl ? 1u : 0u);
    if (!queue_reserve(&q, need)) {
        /* Dropped whole: every line of this call, never a part of one. */
        uint64_t lines = nl ? 1u : count_lines(p, n);
        dropped_pending += lines;
        atomic_fetch_add(&dropped_total, lines);
        pthread_mutex_unlock(&mu);
        return true;
    }
    bool was_empty = q.len == 0;
    memcpy(q.ptr + q.len, p, n);
    q.len += n;
    if (nl) q.ptr[q.len++] = '\n';
    /* The first append wakes the writer, which then gathers for a moment; a queue that grows
     * past LOG_GATHER_BYTES meanwhile cuts the moment short. */
    if (was_empty || (q.len >= LOG_GATHER_BYTES && q.len - need < LOG_GATHER_BYTES)) pthread_cond_signal(&wake);
    pthread_mutex_unlock(&mu);
    return true;
}

static void write_dropped_notice(uint64_t n)
{
    if (atomic_load(&log_level) < CORE_LOG_WARN) return;
    char ts[40], line[256];
    core_wallclock_rfc3339(ts, sizeof(ts));
    int len = snprintf(line, sizeof(line),
                       "{\"time\":\"%s\",\"level\":\"warn\",\"msg\":\"log: %llu lines dropped (stderr too slow)\"}\n",
                       ts, (unsigned long long)n);
    if (len > 0 && (size_t)len < sizeof(line)) (void)write_all(line, (size_t)len, true);
}

static void *writer_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    for (;;) {
        while (q.len == 0 && dropped_pending == 0 && !stopping) pthread_cond_wait(&wake, &mu);
        if (q.len == 0 && dropped_pending == 0) break; /* stopping, and all written */
        /* Gather: under load every loop iteration queues its access-log lines, and a wake-up
         * and a write per iteration cost a context switch each on a busy machine (measured:
         * a fifth of W1's throughput on 2 cores; waking every 5 ms still cost W2 a tenth).
         * Waiting LOG_GATHER_NS for more makes it one write per moment; stopping or a large
         * queue ends the wait at once. See docs/internals/logging.md. */
        if (!stopping && q.len < LOG_GATHER_BYTES) {
            struct timespec deadline;
            clock_gettime(CLOCK_REALTIME, &deadline);
            deadline.tv_nsec += LOG_GATHER_NS;
            if (deadline.tv_nsec >= 1000000000L) {
                deadline.tv_sec++;
                deadline.tv_nsec -= 1000000000L;
            }
            while (!stopping && q.len < LOG_GATHER_BYTES)
                if (pthread_cond_timedwait(&wake, &mu, &deadline) == ETIMEDOUT) break;
        }
        /* Swap: callers keep appending to the other buffer while this one is written. */
        log_queue_t batch = q;
        q = spare;
        q.len = 0;
        uint64_t dropped = dropped_pending;
        dropped_pending = 0;
        pthread_mutex_unlock(&mu);
        if (batch.len > 0 && !write_all(batch.ptr, batch.len, true))
            atomic_fetch_add(&dropped_total, count_lines(batch.ptr, batch.len));
        /* The notice comes after the lines that were queued when the drops happened. */
        if (dropped > 0) write_dropped_notice(dropped);
        pthread_mutex_lock(&mu);
        spare = batch;
    }
    running = false;
    stopping = false;
    thread_done = true;
    pthread_cond_broadcast(&stopped);
    pthread_mutex_unlock(&mu);
    return NULL;
}

int core_log_writer_start_cap(size_t cap)
{
    int rc = CORE_OK;
    pthread_mutex_lock(&mu);
    if (running || thread_alive) goto out; /* already started (or a stuck writer remains) */
    queue_cap = cap > 0 ? cap : LOG_QUEUE_CAP_DEFAULT;
    dropped_pending = 0;
    q.len = spare.len = 0;
    size_t initial = queue_cap < LOG_QUEUE_INITIAL ? queue_cap : LOG_QUEUE_INITIAL;
    if (!queue_reserve(&q, initial) || !queue_reserve(&spare, initial)) {
        rc = CORE_ENOMEM;
        goto out;
    }
    /* The writer takes no signals: they belong to the loops' handlers, and a write(2)
     * interrupted for nothing only costs a retry. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    thread_done = false;
    running = true;
    if (pthread_create(&writer, NULL, writer_main, NULL) != 0) {
        running = false;
        rc = CORE_EIO;
    } else {
        thread_alive = true;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
out:
    pthread_mutex_unlock(&mu);
    return rc;
}

int core_log_writer_start(void) { return core_log_writer_start_cap(0); }

void core_log_writer_stop(void)
{
    pthread_mutex_lock(&mu);
    if (!thread_alive) {
        pthread_mutex_unlock(&mu);
        return;
    }
    stopping = true;
    pthread_cond_signal(&wake);
    /* Everything queued is written before this returns, unless stderr stays stuck for
     * LOG_STOP_WAIT_S: then the process exits without it rather than hanging. */
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += LOG_STOP_WAIT_S;
    while (!thread_done) {
        if (pthread_cond_timedwait(&stopped, &mu, &deadline) == ETIMEDOUT) break;
    }
    bool done = thread_done;
    pthread_mutex_unlock(&mu);
    if (!done) return; /* the thread is left blocked in write(2); still running */
    pthread_join(writer, NULL);
    pthread_mutex_lock(&mu);
    thread_alive = false;
    core_free(q.ptr);
    core_free(spare.ptr);
    q = spare = (log_queue_t){0};
    pthread_mutex_unlock(&mu);
}

uint64_t core_log_dropped_total(void) { return atomic_load(&dropped_total); }

/* ---- the public entry points --------------------------------------------------------- */

void core_log_write_raw(const char *p, size_t n)
{
    if (n == 0 || queue_line(p, n, false)) return;
    (void)write_all(p, n, false);
}

void core_log_json_line(str_t json)
{
    if (queue_line(json.ptr, json.len, true)) return;
    /* Direct path: one write(2) per line, so threads never interleave. */
    char stackbuf[4096];
    if (json.len + 1 <= sizeof(stackbuf)) {
        memcpy(stackbuf, json.ptr, json.len);
        stackbuf[json.len] = '\n';
        (void)write_all(stackbuf, json.len + 1, false);
    } else {
        core_buf_t b;
        core_buf_init(&b, json.len + 2);
        core_buf_append_str(&b, json);
        core_buf_append_char(&b, '\n');
        if (core_buf_status(&b) == CORE_OK) (void)write_all(b.ptr, b.len, false);
        core_buf_free(&b);
    }
}

static void build_line(core_buf_t *b, const char *ts, int level, str_t msg)
{
    core_buf_append_cstr(b, "{\"time\":\"");
    core_buf_append_cstr(b, ts);
    core_buf_append_cstr(b, "\",\"level\":\"");
    core_buf_append_cstr(b, level_names[level]);
    core_buf_append_cstr(b, "\",\"msg\":");
    core_buf_append_json(b, msg);
    core_buf_append_char(b, '}');
}

void core_log(int level, const char *fmt, ...)
{
    if (level > atomic_load(&log_level) || level < 0) return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0) return;
    size_t mlen = (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1;
    char ts[40];
    core_wallclock_rfc3339(ts, sizeof(ts));
    /* A stack buffer fits almost every line; escaping-heavy messages take the heap. */
    char stack[4096];
    core_buf_t b;
    core_buf_init_over(&b, stack, sizeof(stack));
    build_line(&b, ts, level, (str_t){msg, mlen});
    if (core_buf_status(&b) != CORE_OK) {
        core_buf_init(&b, 16384);
        build_line(&b, ts, level, (str_t){msg, mlen});
        if (core_buf_status(&b) == CORE_OK) core_log_json_line(core_buf_str(&b));
        core_buf_free(&b);
        return;
    }
    core_log_json_line(core_buf_str(&b));
}
