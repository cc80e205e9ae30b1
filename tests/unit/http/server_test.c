/*
 * http server: real sockets against a server running on a libuv loop in a second thread.
 * The client side is plain blocking sockets plus http_parser in response mode, so every
 * answer is checked as a client would see it (framing included).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <http_parser.h>

#include "core/core.h"
#include "http/http.h"
#include "http/http_int.h"
#include "test.h"

/* ---- the server side (runs on the loop thread) ----------------------------------------- */

static uv_loop_t loop;
static uv_async_t stop_async;
static http_server_t *srv;       /* general server: small limits, short timeouts */
static http_server_t *srv_small; /* max_connections = 1 */
static int port, port_small;

static atomic_int gone_seen;     /* /slow handlers that saw their client gone */
static atomic_int slow_answered; /* /slow handlers that answered */
static atomic_int stopped;       /* on_stopped calls */
static atomic_int stats_ok;      /* stats checked in on_stopped */
static atomic_int flood_gone;    /* /flood handlers cut off as slow readers */

typedef struct {
    uv_timer_t t;
    http_req_t *req;
} later_t;

static void later_closed(uv_handle_t *h) { free(h->data); }

static void respond_text(http_req_t *req, int status, const char *text)
{
    const http_header_t h[] = {{STR_LIT("Content-Type"), STR_LIT("text/plain")}};
    http_respond(req, status, h, 1, str_from_cstr(text));
}

static void on_later(uv_timer_t *t)
{
    later_t *l = t->data;
    respond_text(l->req, 200, "later");
    uv_close((uv_handle_t *)t, later_closed);
}

static void on_slow(uv_timer_t *t)
{
    later_t *l = t->data;
    if (http_req_client_gone(l->req)) atomic_fetch_add(&gone_seen, 1);
    atomic_fetch_add(&slow_answered, 1);
    respond_text(l->req, 200, "slow");
    uv_close((uv_handle_t *)t, later_closed);
}

static void answer_later(http_req_t *req, uv_timer_cb cb, uint64_t ms)
{
    later_t *l = malloc(sizeof(*l));
    if (!l) {
        respond_text(req, 500, "test: no memory");
        return;
    }
    l->req = req;
    uv_timer_init(&loop, &l->t);
    l->t.data = l;
    uv_timer_start(&l->t, cb, ms, 0);
}

/* Echo: a summary line then the body, built in the request arena (the body must outlive
 * http_respond). */
static void handle_echo(http_req_t *req)
{
    core_buf_t b;
    core_buf_init(&b, 1 << 20);
    size_t na = 0;
    for (size_t i = 0; i < req->nheaders; i++)
        if (str_eq_nocase(req->headers[i].name, STR_LIT("X-A"))) na++;
    core_buf_appendf(&b, "%.*s %.*s q=%.*s a=%zu\n", STR_FMT(req->method), STR_FMT(req->path),
                     STR_FMT(req->query), na);
    core_buf_append_str(&b, req->body);
    char *body = core_buf_status(&b) == CORE_OK ? core_arena_alloc(req->arena, b.len) : NULL;
    if (!body) {
        core_buf_free(&b);
        core_err_t e = core_err_make(503, "HTTP503", "Out of memory", STR_NULL);
        http_respond_error(req, &e);
        return;
    }
    memcpy(body, b.ptr, b.len);
    const http_header_t h[] = {
        {STR_LIT("Content-Type"), STR_LIT("text/plain")},
        {STR_LIT("X-Request-Id"), str_from_cstr(req->request_id)},
        {STR_LIT("Content-Length"), STR_LIT("999")},      /* dropped: the layer owns it */
        {STR_LIT("X-Bad"), STR_LIT("a\r\nInjected: yes")}, /* dropped: would split */
    };
    http_respond(req, 200, h, 4, (str_t){body, b.len});
    core_buf_free(&b);
}

static void handler(http_req_t *req, void *udata)
{
    (void)udata;
    str_t p = req->path;
    req->log_role = "tester";
    if (str_eq(p, STR_LIT("/later"))) {
        answer_later(req, on_later, 50);
    } else if (str_eq(p, STR_LIT("/slow"))) {
        answer_later(req, on_slow, 300);
    } else if (str_eq(p, STR_LIT("/inflight"))) {
        char *s = core_arena_alloc(req->arena, 16);
        if (!s) {
            respond_text(req, 500, "oom");
            return;
        }
        int n = snprintf(s, 16, "%u", http_server_inflight(srv));
        http_respond(req, 200, NULL, 0, (str_t){s, (size_t)n});
    } else if (str_eq(p, STR_LIT("/stream"))) {
        const http_header_t h[] = {{STR_LIT("Content-Type"), STR_LIT("text/plain")}};
        http_stream_start(req, 200, h, 1);
        char tmp[16];
        memcpy(tmp, "hello ", 6); /* a reused stack buffer: stream writes copy */
        http_stream_write(req, (str_t){tmp, 6});
        memcpy(tmp, "world", 5);
        http_stream_write(req, (str_t){tmp, 5});
        http_stream_write(req, STR_LIT(""));
        http_stream_end(req);
    } else if (str_eq(p, STR_LIT("/flood"))) {
        /* a client that never reads: the stream must be cut off, not buffered forever */
        static char blk[256 * 1024];
        memset(blk, 'f', sizeof(blk));
        http_stream_start(req, 200, NULL, 0);
        for (int i = 0; i < 400 && !http_req_client_gone(req); i++)
            http_stream_write(req, (str_t){blk, sizeof(blk)});
        if (http_req_client_gone(req)) atomic_fetch_add(&flood_gone, 1);
        http_stream_end(req);
    } else if (str_eq(p, STR_LIT("/big"))) {
        size_t n = (size_t)64 << 20;
        char *b = core_arena_alloc(req->arena, n);
        if (!b) {
            respond_text(req, 500, "oom");
            return;
        }
        memset(b, 'b', n);
        http_respond(req, 200, NULL, 0, (str_t){b, n});
    } else if (str_eq(p, STR_LIT("/nocontent"))) {
        http_respond(req, 204, NULL, 0, STR_LIT("ignored"));
    } else if (str_eq(p, STR_LIT("/error"))) {
        core_err_t e = core_err_make(404, "PGRST205", "Not found", STR_LIT("no such thing"));
        http_respond_error(req, &e);
    } else {
        handle_echo(req);
    }
}

static void check_stats(http_server_t *s)
{
    http_stats_t copy;
    http_server_stats(s, &copy);
    const http_stats_t *st = &copy;
    uint64_t sum = 0;
    for (int i = 0; i <= HTTP_LATENCY_NBUCKETS; i++) sum += st->latency_buckets[i];
    uint64_t classes = 0;
    for (int i = 1; i < 6; i++) classes += st->requests_by_class[i];
    if (st->requests_by_class[2] > 10 && st->requests_by_class[4] >= 5 && sum == st->latency_count &&
        classes == st->latency_count && st->connections_open == 0)
        atomic_fetch_add(&stats_ok, 1);
    else
        fprintf(stderr, "stats: 2xx=%llu 4xx=%llu sum=%llu count=%llu classes=%llu open=%llu\n",
                (unsigned long long)st->requests_by_class[2],
                (unsigned long long)st->requests_by_class[4], (unsigned long long)sum,
                (unsigned long long)st->latency_count, (unsigned long long)classes,
                (unsigned long long)st->connections_open);
}

static void on_stopped(void *arg)
{
    http_server_t *s = arg;
    if (s == srv) check_stats(s);
    atomic_fetch_add(&stopped, 1);
}

static void on_stop_async(uv_async_t *a)
{
    http_server_stop(srv, 3000, on_stopped, srv);
    http_server_stop(srv, 3000, on_stopped, srv); /* second call: no-op */
    http_server_stop(srv_small, 0, on_stopped, srv_small);
    uv_close((uv_handle_t *)a, NULL);
}

static void *loop_main(void *arg)
{
    (void)arg;
    uv_run(&loop, UV_RUN_DEFAULT);
    return NULL;
}

/* ---- the client side -------------------------------------------------------------------- */

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int client_connect(int p)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in sin = {0};
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)p);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void send_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w <= 0) return;
        s += w;
        n -= (size_t)w;
    }
}

static void send_str(int fd, const char *s) { send_all(fd, s, strlen(s)); }

typedef struct {
    int status;
    char body[70000];
    size_t body_len;
    char connection[32], ctype[64], clen[32], te[32], reqid[64], date[64], server[32];
    char injected[8];
} resp_t;

typedef struct {
    resp_t *rs;
    int max, n;
    unsigned head_mask; /* bit i: response i answers a HEAD request */
    int hstate;
    char field[64], value[256];
    size_t flen, vlen;
} rctx_t;

static void copy_field(char *dst, size_t cap, const char *v, size_t n)
{
    if (n >= cap) n = cap - 1;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

static void rc_store(rctx_t *x)
{
    if (x->hstate == 0 || x->n >= x->max) return;
    resp_t *r = &x->rs[x->n];
    str_t f = {x->field, x->flen};
    struct {
        const char *name;
        char *dst;
        size_t cap;
    } map[] = {
        {"Connection", r->connection, sizeof(r->connection)},
        {"Content-Type", r->ctype, sizeof(r->ctype)},
        {"Content-Length", r->clen, sizeof(r->clen)},
        {"Transfer-Encoding", r->te, sizeof(r->te)},
        {"X-Request-Id", r->reqid, sizeof(r->reqid)},
        {"Date", r->date, sizeof(r->date)},
        {"Server", r->server, sizeof(r->server)},
        {"Injected", r->injected, sizeof(r->injected)},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (str_eq_nocase(f, str_from_cstr(map[i].name)))
            copy_field(map[i].dst, map[i].cap, x->value, x->vlen);
    x->hstate = 0;
    x->flen = x->vlen = 0;
}

static int rc_begin(http_parser *p)
{
    rctx_t *x = p->data;
    if (x->n < x->max) memset(&x->rs[x->n], 0, sizeof(resp_t));
    return 0;
}

static int rc_field(http_parser *p, const char *at, size_t n)
{
    rctx_t *x = p->data;
    if (x->hstate == 2) rc_store(x);
    x->hstate = 1;
    if (x->flen + n < sizeof(x->field)) {
        memcpy(x->field + x->flen, at, n);
        x->flen += n;
    }
    return 0;
}

static int rc_value(http_parser *p, const char *at, size_t n)
{
    rctx_t *x = p->data;
    x->hstate = 2;
    if (x->vlen + n < sizeof(x->value)) {
        memcpy(x->value + x->vlen, at, n);
        x->vlen += n;
    }
    return 0;
}

static int rc_headers_complete(http_parser *p)
{
    rctx_t *x = p->data;
    rc_store(x);
    if (x->n < x->max) x->rs[x->n].status = (int)p->status_code;
    return (x->head_mask >> x->n) & 1u ? 1 : 0; /* a HEAD answer has no body */
}

static int rc_body(http_parser *p, const char *at, size_t n)
{
    rctx_t *x = p->data;
    if (x->n >= x->max) return 0;
    resp_t *r = &x->rs[x->n];
    if (r->body_len + n < sizeof(r->body)) {
        memcpy(r->body + r->body_len, at, n);
        r->body_len += n;
        r->body[r->body_len] = '\0';
    }
    return 0;
}

static int rc_complete(http_parser *p)
{
    rctx_t *x = p->data;
    x->n++;
    if (x->n >= x->max) http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings rc_settings = {
    .on_message_begin = rc_begin,
    .on_header_field = rc_field,
    .on_header_value = rc_value,
    .on_headers_complete = rc_headers_complete,
    .on_body = rc_body,
    .on_message_complete = rc_complete,
};

/* Reads until `max` whole responses arrived, EOF, or timeout_ms passed without data.
 * Returns the number of responses; *eof tells whether the server closed. */
static int read_responses(int fd, resp_t *rs, int max, unsigned head_mask, int timeout_ms,
                          bool *eof)
{
    http_parser p;
    rctx_t x = {.rs = rs, .max = max, .head_mask = head_mask};
    http_parser_init(&p, HTTP_RESPONSE);
    p.data = &x;
    if (eof) *eof = false;
    char buf[16384];
    while (x.n < max) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, timeout_ms) <= 0) break;
        ssize_t r = recv(fd, buf, sizeof(buf), 0);
        if (r <= 0) {
            http_parser_execute(&p, &rc_settings, buf, 0); /* EOF may end a response */
            if (eof) *eof = true;
            break;
        }
        http_parser_execute(&p, &rc_settings, buf, (size_t)r);
        enum http_errno e = HTTP_PARSER_ERRNO(&p);
        if (e != HPE_OK && e != HPE_PAUSED) {
            fprintf(stderr, "client parse error: %s\n", http_errno_description(e));
            break;
        }
    }
    return x.n;
}

/* True when the server closes (EOF or reset) within timeout_ms, reading nothing else. */
static bool expect_close(int fd, int timeout_ms)
{
    struct pollfd pfd = {fd, POLLIN, 0};
    if (poll(&pfd, 1, timeout_ms) <= 0) return false;
    char b[64];
    ssize_t r = recv(fd, b, sizeof(b), 0);
    return r == 0 || (r < 0 && errno == ECONNRESET);
}

static bool has(const char *hay, const char *needle) { return strstr(hay, needle) != NULL; }

/* One request on a fresh connection; returns the status (0: none). */
static int one_shot(const char *req, resp_t *r)
{
    int fd = client_connect(port);
    if (fd < 0) return 0;
    send_str(fd, req);
    int n = read_responses(fd, r, 1, 0, 3000, NULL);
    close(fd);
    return n == 1 ? r->status : 0;
}

/* ---- the cases ------------------------------------------------------------------------- */

static resp_t rs[8];

static void test_simple_get(void)
{
    int fd = client_connect(port);
    CHECK(fd >= 0);
    send_str(fd, "GET /echo?x=1&y=%20 HTTP/1.1\r\nHost: t\r\nX-Request-Id: abc-123_X.9\r\n"
                 "X-A: 1\r\nX-A: 2\r\n\r\n");
    CHECK_INT(read_responses(fd, rs, 1, 0, 3000, NULL), 1);
    CHECK_INT(rs[0].status, 200);
    CHECK_STR(str_from_cstr(rs[0].body), "GET /echo q=x=1&y=%20 a=2\n");
    CHECK_STR(str_from_cstr(rs[0].connection), "keep-alive");
    CHECK_STR(str_from_cstr(rs[0].server), "strata");
    CHECK_STR(str_from_cstr(rs[0].ctype), "text/plain");
    CHECK_STR(str_from_cstr(rs[0].reqid), "abc-123_X.9");
    CHECK_INT(strtol(rs[0].clen, NULL, 10), (long long)rs[0].body_len);
    CHECK(has(rs[0].date, " GMT"));
    CHECK_STR(str_from_cstr(rs[0].injected), "");
    close(fd);

    /* an unusable X-Request-Id is replaced by a generated one */
    CHECK_INT(one_shot("GET /echo HTTP/1.1\r\nX-Request-Id: bad id!\r\n\r\n", &rs[0]), 200);
    CHECK_INT(strlen(rs[0].reqid), 32);
    CHECK_INT(one_shot("GET /echo HTTP/1.1\r\n\r\n", &rs[0]), 200);
    CHECK_INT(strlen(rs[0].reqid), 32);
}

static void test_paths(void)
{
    CHECK_INT(one_shot("GET /caf%C3%A9/x%2Fy?a=%20#frag HTTP/1.1\r\n\r\n", &rs[0]), 200);
    CHECK_STR(str_from_cstr(rs[0].body), "GET /caf\xC3\xA9/x/y q=a=%20 a=0\n");
    CHECK_INT(one_shot("GET http://example.com:8080/abs/p?q=1 HTTP/1.1\r\n\r\n", &rs[0]), 200);
    CHECK_STR(str_from_cstr(rs[0].body), "GET /abs/p q=q=1 a=0\n");
    CHECK_INT(one_shot("GET /a%zz HTTP/1.1\r\n\r\n", &rs[0]), 400);
    CHECK(has(rs[0].body, "\"code\":\"HTTP400\""));
    CHECK_STR(str_from_cstr(rs[0].ctype), "application/json; charset=utf-8");
    CHECK_INT(one_shot("GET /a%00b HTTP/1.1\r\n\r\n", &rs[0]), 400);
    CHECK_INT(one_shot("GET /a%4 HTTP/1.1\r\n\r\n", &rs[0]), 400);
}

static void test_keepalive(void)
{
    int fd = client_connect(port);
    send_str(fd, "GET /echo?n=1 HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK_INT(read_responses(fd, rs, 1, 0, 3000, NULL), 1);
    CHECK_STR(str_from_cstr(rs[0].body), "GET /echo q=n=1 a=0\n");
    send_str(fd, "POST /echo?n=2 HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc");
    CHECK_INT(read_responses(fd, rs, 1, 0, 3000, NULL), 1);
    CHECK_STR(str_from_cstr(rs[0].body), "POST /echo q=n=2 a=0\nabc");
    /* Connection: close is honoured: answered, then closed */
    send_str(fd, "GET /echo?n=3 HTTP/1.1\r\nConnection: close\r\n\r\n");
    bool eof = false;
    CHECK_INT(read_responses(fd, rs, 1, 0, 3000, &eof), 1);
    CHECK_STR(str_from_cstr(rs[0].connection), "close");
    CHECK(expect_close(fd, 3000));
    close(fd);

    /* HTTP/1.0 closes by default */
    CHECK_INT(one_shot("GET /echo HTTP/1.0\r\n\r\n", &rs[0]), 200);
    CHECK_STR(str_from_cstr(rs[0].connection), "close");
}

static void test_pipeline(void)
{
    int fd = client_connect(port);
    /* the first answer is asynchronous and slower, yet must come first */
    send_str(fd, "GET /later HTTP/1.1\r\nHost: t\r\n\r\n"
                 "POST /echo?second HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"
                 "GET /echo?third HTTP/1.1\r\n\r\n");
    CHECK_INT(read_responses(fd, rs, 3, 0, 3000, NULL), 3);
    CHECK_STR(str_from_cstr(rs[0].body), "later");
    CHECK_STR(str_from_cstr(rs[1].body), "POST /echo q=second a=0\nhi");
    CHECK_STR(str_from_cstr(rs[2].body), "GET /echo q=third a=0\n");
    close(fd);
}

static void test_chunked_body(void)
{
    int fd = client_connect(port);
    /* sent in pieces, so the parser sees chunks split across reads */
    send_str(fd, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel");
    sleep_ms(20);
    send_str(fd, "lo\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n");
    CHECK_INT(read_responses(fd, rs, 1, 0, 3000, NULL), 1);
    CHECK_INT(rs[0].status, 200);
    CHECK_STR(str_from_cstr(rs[0].body), "POST /echo q= a=0\nhello world");
    close(fd);
}

static void test_limits(void)
{
    /* 431: headers over max_header_bytes (4096) */
    char big[12000];
    int n = snprintf(big, sizeof(big), "GET /echo HTTP/1.1\r\nX-Big: ");
    memset(big + n, 'a', 9000);
    memcpy(big + n + 9000, "\r\n\r\n", 5);
    int fd = client_connect(port);
    send_str(fd, big);
    bool eof = false;
    CHECK_INT(read_responses(fd, rs, 1, 0, 3000, &eof), 1);
    CHECK_INT(rs[0].status, 431);
    CHECK(has(rs[0].body, "\"code\":\"HTTP431\""));
    CHECK(has(rs[0].body, "\"message\":\"Request header fields too large\""));
    CHECK_STR(str_from_cstr(rs[0].connection), "close");
    CHECK(expect_close(fd, 3000));
    close(fd);

    /* 431 also when the limit is crossed by many small headers */
    fd = client_connect(port);
    send_str(fd, "GET /echo HTTP/1.1\r\n");
    for (int i = 0; i < 400; i++) send_str(fd, "X-Many: 0123456789\r\n");
    send_str(fd, "\r\n");
    CHECK_INT(read_responses(fd, rs, 1, 0, 3000, NULL), 1);
    CHECK_INT(rs[0].status, 431);
    close(fd);

    /* 413: Content-Length over max_body_bytes, answered before the body is sent */
    fd = client_connect(port);
    send_str(fd, "POST /echo HTTP/1.1\r\nContent-Length: 100000000\r\n\r\n");
    CHECK_INT(read_responses(fd, rs, 1, 0, 3000, NULL), 1);
    CHECK_INT(rs[0].status, 413);
    CHECK(has(rs[0].body, "\"code\":\"HTTP413\""));
    CHECK(expect_close(fd, 3000));
    close(fd);

    /* 413: a chunked body whose running total crosses the limit (65536) */
    fd = client_connect(port);
    send_str(fd, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    static char chunk[40000];
    memset(chunk, 'x', sizeof(chunk));
    for (int i = 0; i < 2; i++) {
        send_str(fd, "9c40\r\n");
        send_all(fd, chunk, sizeof(chunk));
        send_str(fd, "\r\n");
    }
    CHECK_INT(read_responses(fd, rs, 1, 0, 3000, NULL), 1);
    CHECK_INT(rs[0].status, 413);
    close(fd);

    /* a body just under the limit is fine */
    fd = client_connect(port);
    send_str(fd, "POST /echo HTTP/1.1\r\nContent-Length: 40000\r\n\r\n");
    send_all(fd, chunk, sizeof(chunk));
    CHECK_INT(read_responses(fd, rs, 1, 0, 3000, NULL), 1);
    CHECK_INT(rs[0].status, 200);
    CHECK_INT(rs[0].body_len, 40000 + strlen("POST /echo q= a=0\n"));
    close(fd);
}

/* An answer given before the request body was read still reaches a client that sends
 * the body anyway (the server drains instead of resetting the connection). */
static void test_linger(void)
{
    int fd = client_connect(port);
    send_str(fd, "POST /echo HTTP/1.1\r\nContent-Length: 200000\r\n\r\n");
    static char body[200000];
    memset(body, 'z', sizeof(body));
    send_all(fd, body, sizeof(body));
    CHECK_INT(read_responses(fd, rs, 1, 0, 3000, NULL), 1);
    CHECK_INT(rs[0].status, 413);
    CHECK(expect_close(fd, 3000));
    close(fd);
}

/* More pipelined input than the pending buffer holds while a request is handled: reading
 * pauses and resumes, and every answer still comes, in order. */
static void test_pipeline_backpressure(void)
{
    size_t blen = 60000;
    size_t cap = 2 * HTTP_PEND_CAP;
    char *all = malloc(cap);
    CHECK(all != NULL);
    if (!all) return;
    int n = snprintf(all, cap, "GET /later HTTP/1.1\r\n\r\n"
                               "POST /echo?big HTTP/1.1\r\nContent-Length: %zu\r\n\r\n",
                     blen);
    size_t len = (size_t)n;
    memset(all + len, 'p', blen);
    len += blen;
    const char *tail = "GET /echo?last HTTP/1.1\r\n\r\n";
    memcpy(all + len, tail, strlen(tail));
    len += strlen(tail);
    const char *more = "GET /echo?more HTTP/1.1\r\n\r\n";
    for (int i = 0; i < 3; i++) {
        memcpy(all + len, more, strlen(more));
        len += strlen(more);
    }
    int fd = client_connect(port);
    send_all(fd, all, len);
    CHECK_INT(read_responses(fd, rs, 6, 0, 3000, NULL), 6);
    CHECK_STR(str_from_cstr(rs[0].body), "later");
    CHECK_INT(rs[1].body_len, strlen("POST /echo q=big a=0\n") + blen);
    CHECK_STR(str_from_cstr(rs[2].body), "GET /echo q=last a=0\n");
    CHECK_STR(str_from_cstr(rs[5].body), "GET /echo q=more a=0\n");
    close(fd);
    free(all);
}

/* Clients that stop reading: a stream is cut off once too much is queued, and a plain
 * response is abandoned when its write makes no progress (request_timeout_ms). */
static void test_slow_readers(void)
{
    int fd = client_connect(port);
    send_str(fd, "GET /flood HTTP/1.1\r\n\r\n");
    for (int i = 0; i < 100 && atomic_load(&flood_gone) == 0; i++) sleep_ms(20);
    CHECK_INT(atomic_load(&flood_gone), 1);
    close(fd);

    fd = client_connect(port);
    send_str(fd, "GET /big HTTP/1.1\r\n\r\n");
    sleep_ms(1500);
    size_t total = 0;
    char buf[65536];
    for (;;) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, 3000) <= 0) break;
        ssize_t r = recv(fd, buf, sizeof(buf), 0);
        if (r <= 0) break;
        total += (size_t)r;
    }
    CHECK(total > 0);
    CHECK(total < ((size_t)64 << 20)); /* cut off before the end */
    close(fd);
}

static void test_garbage(void)
{
    int fd = client_connect(port);
    send_str(fd, "GARBAGE\r\n\r\n");
    bool eof = false;
    CHECK_INT(read_responses(fd, rs, 1, 0, 3000, &eof), 1);
    CHECK_INT(rs[0].status, 400);
    CHECK(has(rs[0].body, "\"code\":\"HTTP400\""));
    CHECK(has(rs[0].body, "\"details\":\"invalid HTTP method\""));
    CHECK(expect_close(fd, 3000));
    close(fd);

    /* request smuggling shape: both Content-Length and chunked */
    CHECK_INT(one_shot("POST /echo HTTP/1.1\r\nContent-Length: 3\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                       &rs[0]),
              400);
    /* a valid request followed by garbage: the first is still answered */
    fd = client_connect(port);
    send_str(fd, "GET /echo HTTP/1.1\r\n\r\n\x01\x02garbage\r\n\r\n");
    CHECK_INT(read_responses(fd, rs, 2, 0, 3000, NULL), 2);
    CHECK_INT(rs[0].status, 200);
    CHECK_INT(rs[1].status, 400);
    close(fd);
}

static void test_async_and_inflight(void)
{
    CHECK_INT(one_shot("GET /later HTTP/1.1\r\n\r\n", &rs[0]), 200);
    CHECK_STR(str_from_cstr(rs[0].body), "later");

    int a = client_connect(port);
    send_str(a, "GET /slow HTTP/1.1\r\n\r\n");
    sleep_ms(50);
    CHECK_INT(one_shot("GET /inflight HTTP/1.1\r\n\r\n", &rs[1]), 200);
    CHECK_STR(str_from_cstr(rs[1].body), "2"); /* /slow and /inflight itself */
    CHECK_INT(read_responses(a, rs, 1, 0, 3000, NULL), 1);
    CHECK_STR(str_from_cstr(rs[0].body), "slow");
    close(a);
}

static void test_disconnect(void)
{
    int before = atomic_load(&gone_seen);
    int answered = atomic_load(&slow_answered);
    int fd = client_connect(port);
    send_str(fd, "GET /slow HTTP/1.1\r\n\r\n");
    sleep_ms(50);
    close(fd); /* the handler still owns the request */
    for (int i = 0; i < 100 && atomic_load(&slow_answered) == answered; i++) sleep_ms(20);
    CHECK_INT(atomic_load(&gone_seen), before + 1);
    /* the server is fine afterwards */
    CHECK_INT(one_shot("GET /echo HTTP/1.1\r\n\r\n", &rs[0]), 200);
}

static void test_head_and_nobody(void)
{
    int fd = client_connect(port);
    send_str(fd, "HEAD /echo HTTP/1.1\r\n\r\n");
    CHECK_INT(read_responses(fd, rs, 1, 1u, 3000, NULL), 1);
    CHECK_INT(rs[0].status, 200);
    CHECK_INT(strtol(rs[0].clen, NULL, 10), (long long)strlen("HEAD /echo q= a=0\n"));
    CHECK_INT(rs[0].body_len, 0);
    /* no stray body bytes: the next answer parses cleanly on the same connection */
    send_str(fd, "GET /echo HTTP/1.1\r\n\r\n");
    CHECK_INT(read_responses(fd, rs, 1, 0, 3000, NULL), 1);
    CHECK_STR(str_from_cstr(rs[0].body), "GET /echo q= a=0\n");
    /* 204: no body, no Content-Length */
    send_str(fd, "GET /nocontent HTTP/1.1\r\n\r\nGET /echo?after HTTP/1.1\r\n\r\n");
    CHECK_INT(read_responses(fd, rs, 2, 0, 3000, NULL), 2);
    CHECK_INT(rs[0].status, 204);
    CHECK_STR(str_from_cstr(rs[0].clen), "");
    CHECK_STR(str_from_cstr(rs[1].body), "GET /echo q=after a=0\n");
    /* HEAD of a stream: chunked header, no body, keep-alive intact */
    send_str(fd, "HEAD /stream HTTP/1.1\r\n\r\nGET /echo?x HTTP/1.1\r\n\r\n");
    CHECK_INT(read_responses(fd, rs, 2, 1u, 3000, NULL), 2);
    CHECK_INT(rs[0].status, 200);
    CHECK_STR(str_from_cstr(rs[1].body), "GET /echo q=x a=0\n");
    close(fd);
}

static void test_stream_and_error(void)
{
    int fd = client_connect(port);
    send_str(fd, "GET /stream HTTP/1.1\r\n\r\nGET /error HTTP/1.1\r\n\r\n");
    CHECK_INT(read_responses(fd, rs, 2, 0, 3000, NULL), 2);
    CHECK_INT(rs[0].status, 200);
    CHECK_STR(str_from_cstr(rs[0].te), "chunked");
    CHECK_STR(str_from_cstr(rs[0].body), "hello world");
    CHECK_INT(rs[1].status, 404);
    CHECK_STR(str_from_cstr(rs[1].body), "{\"code\":\"PGRST205\",\"details\":\"no such thing\","
                                         "\"hint\":null,\"message\":\"Not found\"}");
    CHECK_STR(str_from_cstr(rs[1].ctype), "application/json; charset=utf-8");
    close(fd);

    /* HTTP/1.0 gets the stream unframed, ended by close */
    fd = client_connect(port);
    send_str(fd, "GET /stream HTTP/1.0\r\n\r\n");
    bool eof = false;
    CHECK_INT(read_responses(fd, rs, 1, 0, 3000, &eof), 1);
    CHECK_STR(str_from_cstr(rs[0].body), "hello world");
    CHECK_STR(str_from_cstr(rs[0].te), "");
    close(fd);
}

static void test_expect_continue(void)
{
    int fd = client_connect(port);
    send_str(fd, "POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
    CHECK_INT(read_responses(fd, rs, 1, 0, 3000, NULL), 1);
    CHECK_INT(rs[0].status, 100);
    send_str(fd, "body");
    CHECK_INT(read_responses(fd, rs, 1, 0, 3000, NULL), 1);
    CHECK_INT(rs[0].status, 200);
    CHECK_STR(str_from_cstr(rs[0].body), "POST /echo q= a=0\nbody");
    close(fd);
}

static void test_timeouts(void)
{
    /* 408: request_timeout_ms = 300 */
    int fd = client_connect(port);
    send_str(fd, "GET /echo HTTP/1.1\r\nHost: t\r\n");
    CHECK_INT(read_responses(fd, rs, 1, 0, 3000, NULL), 1);
    CHECK_INT(rs[0].status, 408);
    CHECK(has(rs[0].body, "\"code\":\"HTTP408\""));
    CHECK(expect_close(fd, 3000));
    close(fd);

    /* idle keep-alive connection closed after keepalive_timeout_ms = 600 */
    fd = client_connect(port);
    send_str(fd, "GET /echo HTTP/1.1\r\n\r\n");
    CHECK_INT(read_responses(fd, rs, 1, 0, 3000, NULL), 1);
    uint64_t t0 = core_now_ns();
    CHECK(expect_close(fd, 3000));
    uint64_t ms = (core_now_ns() - t0) / 1000000u;
    CHECK(ms >= 400 && ms < 2500);
    close(fd);
}

static void test_max_connections(void)
{
    int a = client_connect(port_small);
    send_str(a, "GET /echo HTTP/1.1\r\n\r\n");
    CHECK_INT(read_responses(a, rs, 1, 0, 3000, NULL), 1);
    CHECK_INT(rs[0].status, 200);
    int b = client_connect(port_small); /* over max_connections = 1: closed at once */
    CHECK(b >= 0);
    send_str(b, "GET /echo HTTP/1.1\r\n\r\n");
    CHECK(expect_close(b, 3000));
    close(b);
    close(a);
    sleep_ms(50);
    int c = client_connect(port_small); /* room again */
    send_str(c, "GET /echo HTTP/1.1\r\n\r\n");
    CHECK_INT(read_responses(c, rs, 1, 0, 3000, NULL), 1);
    CHECK_INT(rs[0].status, 200);
    close(c);
}

/* Every allocation from the n-th on fails for a moment: each request ends with a proper
 * answer (200 or 503) or a closed connection — never a crash or a leak (ASan checks). */
static void test_alloc_failures(void)
{
    int answered = 0, unavailable = 0, closed = 0, bad = 0;
    for (long n = 1; n <= 40; n++) {
        int fd = client_connect(port);
        core_alloc_fail_after(n);
        send_str(fd, "POST /echo?oom HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "3\r\nabc\r\n0\r\n\r\n");
        sleep_ms(30);
        core_alloc_fail_after(0);
        bool eof = false;
        int got = read_responses(fd, rs, 1, 0, 2000, &eof);
        if (got == 1 && rs[0].status == 200) answered++;
        else if (got == 1 && rs[0].status == 503) unavailable++;
        else if (got == 0 && eof) closed++;
        else bad++;
        close(fd);
    }
    CHECK_INT(bad, 0);
    CHECK(answered > 0);
    CHECK(unavailable > 0);
    if (getenv("HTTP_TEST_VERBOSE"))
        fprintf(stderr, "alloc failures: %d ok, %d 503, %d closed\n", answered, unavailable,
                closed);
    CHECK_INT(one_shot("GET /echo HTTP/1.1\r\n\r\n", &rs[0]), 200);
}

static void test_graceful_stop(void)
{
    int idle = client_connect(port);
    send_str(idle, "GET /echo HTTP/1.1\r\n\r\n");
    CHECK_INT(read_responses(idle, rs, 1, 0, 3000, NULL), 1);
    int busy = client_connect(port);
    send_str(busy, "GET /slow HTTP/1.1\r\n\r\n");
    /* srv_small stops with grace 0: its in-flight request loses its connection at once,
     * and the server waits for the handler to answer before it reports the stop */
    int forced = client_connect(port_small);
    send_str(forced, "GET /slow HTTP/1.1\r\n\r\n");
    sleep_ms(50);
    uv_async_send(&stop_async);
    CHECK(expect_close(idle, 1000)); /* idle: closed at once */
    CHECK(expect_close(forced, 1000));
    close(forced);
    bool eof = false;
    CHECK_INT(read_responses(busy, rs, 1, 0, 3000, &eof), 1); /* in flight: answered */
    CHECK_INT(rs[0].status, 200);
    CHECK_STR(str_from_cstr(rs[0].body), "slow");
    CHECK_STR(str_from_cstr(rs[0].connection), "close");
    CHECK(expect_close(busy, 3000));
    close(idle);
    close(busy);
    CHECK(client_connect(port) < 0); /* nobody listens any more */
}

static void test_listen_variants(void)
{
    http_limits_t l;
    http_limits_default(&l);
    const char *hosts[] = {"!4", "*4", "*", "localhost", "127.0.0.1"};
    for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
        http_server_t *s = NULL;
        CHECK_INT(http_server_start(&loop, hosts[i], 0, &l, handler, NULL, &s), 0);
        CHECK(http_server_port(s) > 0);
        http_server_stop(s, 0, NULL, NULL);
    }
    /* SO_REUSEPORT: a second listener on the same port (as another worker would) */
    http_server_t *dup = NULL;
    CHECK_INT(http_server_start(&loop, "127.0.0.1", port, &l, handler, NULL, &dup), 0);
    CHECK_INT(http_server_port(dup), port);
    http_server_stop(dup, 0, NULL, NULL);
    http_server_t *bad = NULL;
    CHECK(http_server_start(&loop, "not an address", 0, &l, handler, NULL, &bad) != 0);
    CHECK(bad == NULL);
    CHECK(http_server_start(&loop, "127.0.0.1", 70000, &l, handler, NULL, &bad) != 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    core_log_set_level(getenv("HTTP_TEST_VERBOSE") ? CORE_LOG_DEBUG : CORE_LOG_ERROR);
    CHECK_INT(uv_loop_init(&loop), 0);
    CHECK_INT(uv_async_init(&loop, &stop_async, on_stop_async), 0);

    http_limits_t l;
    http_limits_default(&l);
    l.max_header_bytes = 4096;
    l.max_body_bytes = 65536;
    l.request_timeout_ms = 300;
    l.keepalive_timeout_ms = 600;
    l.access_log = true;
    CHECK_INT(http_server_start(&loop, "127.0.0.1", 0, &l, handler, NULL, &srv), 0);
    port = http_server_port(srv);
    CHECK(port > 0);
    l.max_connections = 1;
    l.access_log = false;
    CHECK_INT(http_server_start(&loop, "127.0.0.1", 0, &l, handler, NULL, &srv_small), 0);
    port_small = http_server_port(srv_small);
    test_listen_variants(); /* before the loop thread starts: the loop is ours alone */

    pthread_t th;
    CHECK_INT(pthread_create(&th, NULL, loop_main, NULL), 0);

    test_simple_get();
    test_paths();
    test_keepalive();
    test_pipeline();
    test_chunked_body();
    test_limits();
    test_linger();
    test_pipeline_backpressure();
    test_slow_readers();
    test_garbage();
    test_async_and_inflight();
    test_disconnect();
    test_head_and_nobody();
    test_stream_and_error();
    test_expect_continue();
    test_timeouts();
    test_max_connections();
    test_alloc_failures();
    test_graceful_stop();

    pthread_join(th, NULL);
    CHECK_INT(atomic_load(&stopped), 2);
    CHECK_INT(atomic_load(&stats_ok), 1);
    CHECK_INT(uv_loop_close(&loop), 0);
    TEST_MAIN_END();
}
