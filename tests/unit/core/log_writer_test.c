/* The log writer thread: order and integrity of lines from several threads, the cap on
 * queued bytes with a stderr nobody reads, the dropped-lines notice, flushing at stop.
 * stderr is redirected (dup2) to a pipe read by a thread of the test; results are checked
 * only after stderr is restored, so failures print where they should. */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "test.h"

typedef struct {
    int fd;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool go; /* the reader waits for this before its first read */
    char *data;
    size_t len, cap;
} reader_t;

static void *reader_main(void *arg)
{
    reader_t *r = arg;
    pthread_mutex_lock(&r->mu);
    while (!r->go) pthread_cond_wait(&r->cond, &r->mu);
    pthread_mutex_unlock(&r->mu);
    char buf[65536];
    for (;;) {
        ssize_t n = read(r->fd, buf, sizeof(buf));
        if (n <= 0) break;
        if (r->len + (size_t)n + 1 > r->cap) {
            r->cap = (r->len + (size_t)n + 1) * 2;
            r->data = realloc(r->data, r->cap);
            if (!r->data) exit(3);
        }
        memcpy(r->data + r->len, buf, (size_t)n);
        r->len += (size_t)n;
        r->data[r->len] = '\0';
    }
    return NULL;
}

typedef struct {
    int saved_stderr;
    int wfd;
    pthread_t thread;
    reader_t r;
} capture_t;

/* stderr becomes a pipe; the reader starts reading at once or only on capture_go. */
static void capture_begin(capture_t *c, bool read_now)
{
    int p[2];
    if (pipe(p) != 0) exit(3);
    memset(&c->r, 0, sizeof(c->r));
    c->r.fd = p[0];
    c->r.go = read_now;
    pthread_mutex_init(&c->r.mu, NULL);
    pthread_cond_init(&c->r.cond, NULL);
    fflush(stderr);
    c->saved_stderr = dup(STDERR_FILENO);
    c->wfd = p[1];
    dup2(p[1], STDERR_FILENO);
    pthread_create(&c->thread, NULL, reader_main, &c->r);
}

static void capture_go(capture_t *c)
{
    pthread_mutex_lock(&c->r.mu);
    c->r.go = true;
    pthread_cond_signal(&c->r.cond);
    pthread_mutex_unlock(&c->r.mu);
}

/* Restores stderr and returns everything that was written to the pipe (caller frees). */
static str_t capture_end(capture_t *c)
{
    dup2(c->saved_stderr, STDERR_FILENO);
    close(c->saved_stderr);
    close(c->wfd);
    capture_go(c);
    pthread_join(c->thread, NULL);
    close(c->r.fd);
    return (str_t){c->r.data, c->r.len};
}

/* ---- ordering from several threads ------------------------------------------------- */

#define NTHREADS 4
#define NLINES 4000

typedef struct {
    int id;
} producer_t;

/* Line k of thread t: "t=<t> k=<k> <pad>" where pad's length varies with k, so a torn or
 * interleaved line cannot look whole. Every 7th call writes two lines in one call. */
static size_t make_line(char *out, size_t outlen, int t, int k)
{
    int pad = (k * 37 + t * 11) % 150;
    int n = snprintf(out, outlen, "t=%d k=%d len=%d ", t, k, pad);
    for (int i = 0; i < pad; i++) out[n++] = (char)('a' + (k + i) % 26);
    return (size_t)n;
}

static void *producer_main(void *arg)
{
    producer_t *p = arg;
    char line[512];
    for (int k = 0; k < NLINES; k++) {
        size_t n = make_line(line, sizeof(line) - 1, p->id, k);
        if (k % 7 == 0 && k + 1 < NLINES) {
            line[n++] = '\n';
            n += make_line(line + n, sizeof(line) - n - 1, p->id, k + 1);
            line[n++] = '\n';
            core_log_write_raw(line, n);
            k++;
        } else if (k % 3 == 0) {
            core_log_json_line((str_t){line, n});
        } else {
            line[n++] = '\n';
            core_log_write_raw(line, n);
        }
    }
    return NULL;
}

/* Checks one line against make_line; returns the thread id or -1, and its k. */
static int parse_line(str_t l, int *k)
{
    int t = -1, len = -1, off = 0;
    char tmp[600];
    if (l.len >= sizeof(tmp)) return -1;
    memcpy(tmp, l.ptr, l.len);
    tmp[l.len] = '\0';
    if (sscanf(tmp, "t=%d k=%d len=%d %n", &t, k, &len, &off) != 3) return -1;
    if (t < 0 || t >= NTHREADS || len < 0 || (size_t)off + (size_t)len != l.len) return -1;
    char want[600];
    size_t wn = make_line(want, sizeof(want), t, *k);
    if (wn != l.len || memcmp(want, l.ptr, wn) != 0) return -1;
    return t;
}

static void test_order(void)
{
    capture_t c;
    capture_begin(&c, true);
    core_log_write_raw("before start\n", 13); /* direct path */
    int rc = core_log_writer_start();
    pthread_t th[NTHREADS];
    producer_t p[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        p[i].id = i;
        pthread_create(&th[i], NULL, producer_main, &p[i]);
    }
    for (int i = 0; i < NTHREADS; i++) pthread_join(th[i], NULL);
    core_log_write_raw("last queued\n", 12);
    core_log_writer_stop();
    core_log_write_raw("after stop\n", 11); /* direct again */
    str_t out = capture_end(&c);

    CHECK_INT(rc, CORE_OK);
    CHECK_INT(core_log_dropped_total(), 0);
    int next[NTHREADS] = {0};
    int bad = 0, nlines = 0;
    const char *p0 = out.ptr, *end = out.ptr + out.len;
    str_t first = STR_NULL, last = STR_NULL, before_last = STR_NULL;
    while (p0 < end) {
        const char *nl = memchr(p0, '\n', (size_t)(end - p0));
        if (!nl) {
            bad++; /* an unterminated tail */
            break;
        }
        str_t l = {p0, (size_t)(nl - p0)};
        p0 = nl + 1;
        if (!first.ptr) {
            first = l;
            continue;
        }
        before_last = last;
        last = l;
        if (str_eq(l, STR_LIT("last queued")) || str_eq(l, STR_LIT("after stop"))) continue;
        int k = -1, t = parse_line(l, &k);
        if (t < 0 || k != next[t]) {
            if (bad++ < 5) fprintf(stderr, "bad line (expected k=%d): %.*s\n", t >= 0 ? next[t] : -1, (int)l.len, l.ptr);
            if (t >= 0) next[t] = k + 1;
            continue;
        }
        next[t]++;
        nlines++;
    }
    CHECK_INT(bad, 0);
    CHECK_INT(nlines, NTHREADS * NLINES);
    for (int i = 0; i < NTHREADS; i++) CHECK_INT(next[i], NLINES);
    CHECK_STR(first, "before start");
    CHECK_STR(before_last, "last queued");
    CHECK_STR(last, "after stop");
    free(c.r.data);
}

/* ---- the cap with a stderr nobody reads --------------------------------------------- */

#define CAP_LINES 20000
#define CAP_PAD "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"

static void test_cap(void)
{
    uint64_t dropped_before = core_log_dropped_total();
    capture_t c;
    capture_begin(&c, false); /* nobody reads: the writer blocks once the pipe is full */
    int rc = core_log_writer_start_cap(32 * 1024);
    char line[160];
    for (int k = 0; k < CAP_LINES; k++) {
        /* Each append returns at once even with the writer stuck; if one blocked, the test
         * would hang here (and ctest's timeout would say so). */
        int n = snprintf(line, sizeof(line), "cap k=%d %s\n", k, CAP_PAD);
        core_log_write_raw(line, (size_t)n);
    }
    uint64_t dropped = core_log_dropped_total() - dropped_before;
    capture_go(&c); /* the reader drains; the writer catches up and reports the drops */
    core_log_writer_stop();
    str_t out = capture_end(&c);

    CHECK_INT(rc, CORE_OK);
    CHECK(dropped > 0);
    CHECK(dropped < CAP_LINES);
    CHECK_INT(core_log_dropped_total() - dropped_before, dropped);
    /* Every line is whole, in order, and received + dropped = written; the notices (JSON, warn
     * level, same shape as core_log's lines) add up to the drops. */
    long received = 0, last_k = -1, bad = 0;
    unsigned long long noticed = 0;
    int notices = 0;
    const char *p0 = out.ptr, *end = out.ptr + out.len;
    while (p0 < end) {
        const char *nl = memchr(p0, '\n', (size_t)(end - p0));
        if (!nl) {
            bad++;
            break;
        }
        str_t l = {p0, (size_t)(nl - p0)};
        p0 = nl + 1;
        char tmp[200];
        if (l.len >= sizeof(tmp)) {
            bad++;
            continue;
        }
        memcpy(tmp, l.ptr, l.len);
        tmp[l.len] = '\0';
        int k = -1, off = 0;
        unsigned long long nd = 0;
        if (sscanf(tmp, "cap k=%d %n", &k, &off) == 1 && l.len == (size_t)off + sizeof(CAP_PAD) - 1 && k > last_k) {
            last_k = k;
            received++;
        } else if (strstr(tmp, "\"level\":\"warn\"") && strstr(tmp, "{\"time\":\"") == tmp &&
                   sscanf(strstr(tmp, "\"msg\":\"log: ") ? strstr(tmp, "\"msg\":\"log: ") : "", "\"msg\":\"log: %llu lines dropped", &nd) == 1) {
            noticed += nd;
            notices++;
        } else {
            bad++;
        }
    }
    CHECK_INT(bad, 0);
    CHECK_INT((uint64_t)received + dropped, CAP_LINES);
    CHECK(notices >= 1);
    CHECK_INT(noticed, dropped);
    free(c.r.data);
}

/* ---- a non-blocking stderr (EAGAIN: poll, then retry) -------------------------------- */

static void test_nonblocking(void)
{
    uint64_t dropped_before = core_log_dropped_total();
    capture_t c;
    capture_begin(&c, false);
    int fl = fcntl(c.wfd, F_GETFL);
    int nb = fl >= 0 ? fcntl(c.wfd, F_SETFL, fl | O_NONBLOCK) : -1;
    int rc = core_log_writer_start();
    char line[160];
    enum { NB_LINES = 3000 }; /* ~270 KB: more than the pipe holds, less than the cap */
    for (int k = 0; k < NB_LINES; k++) {
        int n = snprintf(line, sizeof(line), "nb k=%d %s\n", k, CAP_PAD);
        core_log_write_raw(line, (size_t)n);
    }
    capture_go(&c);
    core_log_writer_stop();
    str_t out = capture_end(&c);
    CHECK_INT(nb, 0);
    CHECK_INT(rc, CORE_OK);
    CHECK_INT(core_log_dropped_total() - dropped_before, 0);
    int next = 0, bad = 0;
    const char *p0 = out.ptr, *end = out.ptr + out.len;
    while (p0 < end) {
        const char *nl = memchr(p0, '\n', (size_t)(end - p0));
        if (!nl) break;
        int k = -1, off = 0;
        if (sscanf(p0, "nb k=%d %n", &k, &off) != 1 || k != next || (size_t)(nl - p0) != (size_t)off + sizeof(CAP_PAD) - 1)
            bad++;
        next = k + 1;
        p0 = nl + 1;
    }
    CHECK_INT(bad, 0);
    CHECK_INT(next, NB_LINES);
    CHECK(p0 == end);
    free(c.r.data);
}

/* ---- a failing stderr (no reader: EPIPE) loses lines, counted, and stop returns ------ */

static void test_failing(void)
{
    uint64_t dropped_before = core_log_dropped_total();
    void (*old)(int) = signal(SIGPIPE, SIG_IGN);
    int p[2];
    if (pipe(p) != 0) exit(3);
    close(p[0]);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(p[1], STDERR_FILENO);
    int rc = core_log_writer_start();
    for (int k = 0; k < 100; k++) core_log_write_raw("lost\n", 5);
    core_log_writer_stop();
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(p[1]);
    signal(SIGPIPE, old);
    CHECK_INT(rc, CORE_OK);
    CHECK_INT(core_log_dropped_total() - dropped_before, 100);
}

/* ---- stop with nothing running, start twice ------------------------------------------ */

static void test_idempotent(void)
{
    core_log_writer_stop(); /* not running: nothing to do */
    capture_t c;
    capture_begin(&c, true);
    int rc1 = core_log_writer_start();
    int rc2 = core_log_writer_start(); /* already running: a no-op */
    core_log(CORE_LOG_INFO, "hello %d", 42);
    core_log_writer_stop();
    core_log_writer_stop();
    str_t out = capture_end(&c);
    CHECK_INT(rc1, CORE_OK);
    CHECK_INT(rc2, CORE_OK);
    CHECK(out.len > 0 && out.ptr[out.len - 1] == '\n');
    CHECK(out.len > 0 && strstr(out.ptr, "\"level\":\"info\",\"msg\":\"hello 42\"}\n") != NULL);
    free(c.r.data);
}

int main(void)
{
    test_order();
    test_cap();
    test_nonblocking();
    test_failing();
    test_idempotent();
    TEST_MAIN_END();
}
