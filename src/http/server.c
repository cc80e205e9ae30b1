/*
 * http/server.c: the HTTP/1.1 connection layer (see docs/internals/http.md).
 *
 * Shape of a connection's life:
 *
 *   accept → IDLE ──first byte──▶ READING ──message complete──▶ HANDLING (handler owns req)
 *             ▲                      │ limit / parse error / timeout        │ http_respond
 *             │                      ▼                                      ▼
 *             │                    ERROR (error answer queued)           WRITING
 *             │                      │ written                              │ written
 *             └──── keep-alive ──────┴──────────── otherwise ──▶ LINGER ──▶ closed
 *
 * http_parser pauses itself at the end of every message, so bytes that follow (pipelined
 * requests) stay unparsed in the connection's pending buffer until the response to the
 * current request has been written. That gives "one request in flight per connection" and
 * in-order responses without any queue of requests.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <http_parser.h>

#include "http/http.h"
#include "http/http_int.h"

const uint64_t HTTP_LATENCY_BOUNDS_US[HTTP_LATENCY_NBUCKETS] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000,
};

/* Static answer for when memory runs out while building a response: it needs no
 * allocation, so an out-of-memory request still gets a well-formed 503. */
#define OOM_BODY "{\"code\":\"HTTP503\",\"details\":null,\"hint\":null,\"message\":\"Out of memory\"}"
_Static_assert(sizeof(OOM_BODY) - 1 == 71, "OOM_BODY length is spelled out below");
/* HTTP_PEND_CAP >= HTTP_RBUF_SIZE (http_int.h): the unparsed tail of one read must fit. */
static const char oom_response[] = "HTTP/1.1 503 Service Unavailable\r\n"
                                   "Server: strata\r\n"
                                   "Content-Type: application/json; charset=utf-8\r\n"
                                   "Content-Length: 71\r\n"
                                   "Connection: close\r\n"
                                   "\r\n" OOM_BODY;
static const char continue_response[] = "HTTP/1.1 100 Continue\r\n\r\n";
static const char last_chunk[] = "0\r\n\r\n";

/* ---- connection -------------------------------------------------------------------- */

typedef enum {
    CONN_IDLE,     /* between requests; keep-alive timer runs */
    CONN_READING,  /* a request has begun; request timer runs */
    CONN_HANDLING, /* the handler owns the request (it may be streaming) */
    CONN_WRITING,  /* the handler is done; the last write of the response is queued */
    CONN_ERROR,    /* a transport-level error answer is queued; the connection then closes */
    CONN_LINGER,   /* write side shut down; input is drained until EOF or the linger timer */
} conn_state_t;

typedef enum {
    TM_NONE,
    TM_IDLE,    /* keep-alive: close an idle connection */
    TM_REQUEST, /* a request must arrive completely: 408 */
    TM_SEND,    /* the response write must make progress: close */
    TM_LINGER,  /* stop draining a closing connection */
    TM_FINISH,  /* end a response that has nothing more to write, from a fresh stack */
} timer_mode_t;

enum { HS_NONE, HS_FIELD, HS_VALUE };

enum { FRAME_NONE, FRAME_LENGTH, FRAME_CHUNKED };

/* Offsets into conn->text: the text buffer may move while it grows, so spans are kept as
 * offsets until the headers are complete and copied into the request arena. */
typedef struct {
    size_t name_off, name_len, value_off, value_len;
} hdr_span_t;

typedef struct http_conn http_conn_t;

struct http_conn {
    union { /* the stream: TCP, or a Unix socket when the server listens on one */
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    };
    uv_timer_t timer;
    uv_write_t final_w;    /* the last write of a response (or of an error answer) */
    uv_write_t continue_w; /* "100 Continue" */
    uv_shutdown_t shut;
    http_parser parser;
    http_server_t *srv;
    http_conn_t *prev, *next;

    /* One reference per libuv handle (released in its close callback) and one while the
     * handler owns a request: the struct outlives a vanished client until http_respond. */
    unsigned refs;
    conn_state_t state;
    timer_mode_t tmode;
    bool closing;          /* uv_close called: nothing more is sent or read */
    bool reading;          /* uv_read_start active */
    bool owned;            /* the handler owns c->req */
    bool final_pending;    /* final_w is queued; its callback ends the request */
    http_conn_t *done_next; /* in the server's list of final writes that completed at once */
    bool continue_pending; /* continue_w is queued */
    bool keep_alive;       /* the current request allows another one after it */
    bool msg_ready;        /* on_message_complete paused the parser on a whole request */
    bool hdr_done;         /* the current message's headers are complete */
    bool chunked;          /* the current request body is chunked */
    bool is_head;
    bool streaming;
    bool stream_raw;    /* HTTP/1.0 stream: no chunked framing, close at the end */
    bool stream_nobody; /* HEAD / 204 / 304 stream: writes are dropped */
    bool responded;     /* resp_status is set: log and count the request when it ends */

    /* The request being read or handled; both live in (or are) the request arena. */
    core_arena_t *arena;
    http_req_t *req;
    uint64_t msg_start_ns;

    /* Parse scratch, reused across the requests of the connection. */
    core_buf_t text;       /* URL, then header names and values, as received */
    core_buf_t spans;      /* hdr_span_t[] into text */
    core_buf_t chunk_body; /* a chunked body being reassembled (handed to the arena) */
    hdr_span_t cur;
    int hstate;
    size_t url_len;
    size_t hdr_prev;         /* header-phase bytes consumed by earlier parser calls */
    const char *chunk_start; /* the buffer of the current http_parser_execute call */
    size_t trailer_bytes;
    char *body; /* fixed-length body, in the arena */
    size_t body_len, body_cap;

    /* Set by a parser callback that returns non-zero; answered after the parser returns. */
    int perr_status;
    const char *perr_code;
    const char *perr_msg;
    const char *perr_details;

    /* Input received but not parsed yet: the tail after a complete request, and whatever
     * arrives while that request is handled. Bounded by HTTP_PEND_CAP. */
    char *pend;
    size_t pend_off, pend_len;

    core_buf_t out;   /* response head scratch */
    char *final_heap; /* heap data of the final write, freed in its callback */
    int resp_status;
    uint64_t resp_bytes;
    size_t last_queue; /* TM_SEND: write queue size at the previous tick */
    size_t linger_bytes;
};

typedef struct {
    uv_write_t w;
    http_conn_t *c;
    char data[];
} part_write_t;

struct http_server {
    uv_loop_t *loop;
    union {
        uv_tcp_t listener;
        uv_pipe_t pipe_listener;
    };
    bool is_unix; /* listening on a Unix socket (http_server_start_fd) */
    uv_timer_t grace_timer;
    uv_timer_t retry_timer; /* retries an accept that failed for lack of memory */
    http_limits_t limits;
    http_handler_fn handler;
    void *udata;
    http_conn_t *conns;
    unsigned nconns; /* connection structs alive, including those kept by a handler */
    unsigned inflight;
    unsigned handles; /* server-owned handles not yet closed */
    bool stopping;
    bool timers_closing;
    void (*on_stopped)(void *);
    void *stop_arg;
    int port;
    char *rbuf; /* shared read buffer: a connection with nothing pending reads here */
    uint64_t rng;
    time_t date_sec;
    char date[64];
    struct { /* http_stats_t's fields, written on this loop and read by http_server_stats */
        core_counter_t requests_by_class[6], latency_buckets[HTTP_LATENCY_NBUCKETS + 1];
        core_counter_t latency_sum_us, latency_count, connections_open;
    } stats;
    core_buf_t alog;          /* access-log lines not yet written */
    uv_prepare_t alog_flush;  /* before the loop waits for I/O: ends the requests whose final
                               * write completed at once, then writes the access log */
    http_conn_t *done_head;   /* those connections (each holds a reference) */
    char alog_ts[40];         /* the last timestamp formatted, and its millisecond */
    uint64_t alog_ts_ms;
};

static void conn_close(http_conn_t *c);
static void conn_fail(http_conn_t *c, int status, const char *code, const char *msg,
                      const char *details);
static void conn_after_response(http_conn_t *c, int status);
static void conn_update_reading(http_conn_t *c);
static void server_check_drained(http_server_t *s);
static void on_conn_timer(uv_timer_t *t);

/* ---- small helpers --------------------------------------------------------------------- */

void http_limits_default(http_limits_t *l)
{
    l->max_header_bytes = HTTP_DEFAULT_MAX_HEADER_BYTES;
    l->max_body_bytes = HTTP_DEFAULT_MAX_BODY_BYTES;
    l->request_timeout_ms = 30000;
    l->keepalive_timeout_ms = 60000;
    l->max_connections = 10000;
    l->access_log = false;
}

/* RFC 9110 IMF-fixdate, formatted by hand so the C locale's day names never leak in;
 * recomputed once per second per server (no sharing between loops). */
static const char *server_date(http_server_t *s)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t now = time(NULL);
    if (now != s->date_sec || s->date[0] == '\0') {
        struct tm tm;
        if (!gmtime_r(&now, &tm) || tm.tm_wday < 0 || tm.tm_wday > 6 || tm.tm_mon < 0 ||
            tm.tm_mon > 11)
            return s->date;
        (void)snprintf(s->date, sizeof(s->date), "%s, %02d %s %04d %02d:%02d:%02d GMT",
                       days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900,
                       tm.tm_hour, tm.tm_min, tm.tm_sec);
        s->date_sec = now;
    }
    return s->date;
}

/* splitmix64: request ids only need to be unique-ish, not secret. */
static uint64_t server_rand(http_server_t *s)
{
    uint64_t z = (s->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static bool status_has_body(int status)
{
    return !(status < 200 || status == 204 || status == 304);
}

static bool is_token_char(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* Headers the layer writes itself: a second copy from the caller would break framing. */
static bool header_is_ours(str_t name)
{
    return str_eq_nocase(name, STR_LIT("Content-Length")) ||
           str_eq_nocase(name, STR_LIT("Transfer-Encoding")) ||
           str_eq_nocase(name, STR_LIT("Connection")) ||
           str_eq_nocase(name, STR_LIT("Keep-Alive")) || str_eq_nocase(name, STR_LIT("Date")) ||
           str_eq_nocase(name, STR_LIT("Server"));
}

/* A caller header that would split the response (CR/LF in it) or is not a token is
 * dropped rather than sent: one bad header must not let a value inject others. */
static bool header_is_sendable(const http_header_t *h)
{
    if (h->name.len == 0) return false;
    for (size_t i = 0; i < h->name.len; i++)
        if (!is_token_char((unsigned char)h->name.ptr[i])) return false;
    for (size_t i = 0; i < h->value.len; i++) {
        char ch = h->value.ptr[i];
        if (ch == '\r' || ch == '\n' || ch == '\0') return false;
    }
    return true;
}

static str_t trim_ows(str_t s)
{
    while (s.len && (s.ptr[0] == ' ' || s.ptr[0] == '\t')) {
        s.ptr++;
        s.len--;
    }
    while (s.len && (s.ptr[s.len - 1] == ' ' || s.ptr[s.len - 1] == '\t')) s.len--;
    return s;
}

static int hex_digit(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* ---- stats and access log ------------------------------------------------------------ */

#define HTTP_ALOG_FLUSH 32768u

static void alog_write(http_server_t *s)
{
    if (s->alog.len == 0) return;
    core_log_write_raw(s->alog.ptr, s->alog.len);
    core_buf_reset(&s->alog);
}

static void on_final_written(uv_write_t *w, int status);
static void conn_unref(http_conn_t *c);

/* Ends the requests whose final write went out at once (see conn_write_final). Ending one
 * may start the connection's next pipelined request, whose answer may land here again: the
 * loop runs until the list is empty, so nothing waits for the next I/O event. */
static void on_alog_flush(uv_prepare_t *h)
{
    http_server_t *s = h->data;
    while (s->done_head) {
        http_conn_t *c = s->done_head;
        s->done_head = c->done_next;
        c->done_next = NULL;
        on_final_written(&c->final_w, 0);
        conn_unref(c);
    }
    alog_write(s);
}

static void record_request(http_server_t *s, int status, uint64_t bytes, uint64_t start_ns,
                           const http_req_t *r)
{
    uint64_t now = core_now_ns();
    uint64_t us = (start_ns && now > start_ns) ? (now - start_ns) / 1000u : 0;
    if (status >= 100 && status < 600) core_counter_add(&s->stats.requests_by_class[status / 100], 1);
    size_t b = 0;
    while (b < HTTP_LATENCY_NBUCKETS && us > HTTP_LATENCY_BOUNDS_US[b]) b++;
    core_counter_add(&s->stats.latency_buckets[b], 1);
    core_counter_add(&s->stats.latency_sum_us, us);
    core_counter_add(&s->stats.latency_count, 1);
    if (!s->limits.access_log) return;

    /* Lines are gathered per loop iteration and written with one write(2) (alog_flush). */
    uint64_t ms = now / 1000000u;
    if (ms != s->alog_ts_ms) {
        core_wallclock_rfc3339(s->alog_ts, sizeof(s->alog_ts));
        s->alog_ts_ms = ms;
    }
    core_buf_t *j = &s->alog;
    size_t mark = j->len;
    core_buf_append_cstr(j, "{\"time\":\"");
    core_buf_append_cstr(j, s->alog_ts);
    core_buf_append_cstr(j, "\",\"request_id\":");
    if (r) core_buf_append_json(j, str_from_cstr(r->request_id));
    else core_buf_append_cstr(j, "null");
    core_buf_append_cstr(j, ",\"method\":");
    core_buf_append_json_or_null(j, r ? r->method : STR_NULL);
    core_buf_append_cstr(j, ",\"path\":");
    core_buf_append_json_or_null(j, r ? r->path : STR_NULL);
    core_buf_append_cstr(j, ",\"status\":");
    core_buf_append_u64(j, (uint64_t)(status > 0 ? status : 0));
    core_buf_append_cstr(j, ",\"bytes\":");
    core_buf_append_u64(j, bytes);
    core_buf_append_cstr(j, ",\"duration_us\":");
    core_buf_append_u64(j, us);
    core_buf_append_cstr(j, ",\"role\":");
    core_buf_append_json_or_null(j, str_from_cstr(r ? r->log_role : NULL));
    core_buf_append_cstr(j, "}\n");
    if (core_buf_status(j) != CORE_OK) { /* a line too long or no memory: drop it, keep the rest */
        core_buf_truncate(j, mark);
    }
    if (j->len >= HTTP_ALOG_FLUSH) alog_write(s);
}

/* ---- connection lifetime --------------------------------------------------------------- */

static void conn_free(http_conn_t *c)
{
    http_server_t *s = c->srv;
    if (c->prev) c->prev->next = c->next;
    else s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    s->nconns--;
    core_counter_set(&s->stats.connections_open, s->nconns);
    if (c->arena) core_arena_destroy(c->arena);
    core_buf_free(&c->text);
    core_buf_free(&c->spans);
    core_buf_free(&c->chunk_body);
    core_buf_free(&c->out);
    core_free(c->pend);
    core_free(c->final_heap);
    core_free(c);
    server_check_drained(s);
}

static void conn_unref(http_conn_t *c)
{
    if (--c->refs == 0) conn_free(c);
}

static void on_conn_handle_closed(uv_handle_t *h) { conn_unref(h->data); }

/* Ends the current request: logs and counts it when an answer was given, then frees its
 * arena. The caller decides what happens to the connection. */
static void request_finish(http_conn_t *c)
{
    if (c->responded) {
        record_request(c->srv, c->resp_status, c->resp_bytes,
                       c->req ? c->req->start_ns : c->msg_start_ns, c->req);
        c->responded = false;
    }
    if (c->arena) core_arena_destroy(c->arena);
    c->arena = NULL;
    c->req = NULL;
    c->streaming = c->stream_raw = c->stream_nobody = false;
}

static void conn_timer(http_conn_t *c, timer_mode_t mode, uint64_t ms)
{
    if (c->closing) return;
    c->tmode = mode;
    if (mode == TM_NONE || (ms == 0 && mode != TM_FINISH)) {
        (void)uv_timer_stop(&c->timer);
        c->tmode = TM_NONE;
        return;
    }
    c->last_queue = SIZE_MAX;
    (void)uv_timer_start(&c->timer, on_conn_timer, ms, mode == TM_SEND ? ms : 0);
}

static void conn_close(http_conn_t *c)
{
    if (c->closing) return;
    c->closing = true;
    c->reading = false;
    /* A request nobody else will end: one still being read, or one waiting for TM_FINISH
     * (that timer will never fire now). One owned by the handler ends in http_respond, one
     * with a queued final write ends in that write's (cancelled) callback. */
    if ((c->req || c->arena) && !c->owned && !c->final_pending) request_finish(c);
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

static void on_conn_timer(uv_timer_t *t)
{
    http_conn_t *c = t->data;
    switch (c->tmode) {
    case TM_IDLE:
        LOG_DEBUG("http: closing idle connection");
        conn_close(c);
        break;
    case TM_REQUEST:
        if (c->state == CONN_READING)
            conn_fail(c, 408, "HTTP408", "Request timeout",
                      "the request was not received completely in time");
        break;
    case TM_SEND: {
        size_t q = uv_stream_get_write_queue_size((const uv_stream_t *)&c->tcp);
        if (q > 0 && q >= c->last_queue) {
            LOG_INFO("http: closing connection: client stopped reading the response");
            conn_close(c);
        } else {
            c->last_queue = q;
        }
        break;
    }
    case TM_LINGER:
        conn_close(c);
        break;
    case TM_FINISH:
        c->tmode = TM_NONE;
        conn_after_response(c, 0);
        break;
    case TM_NONE:
        break;
    }
}

/* ---- pending input ------------------------------------------------------------------- */

static void pend_trim(http_conn_t *c)
{
    if (c->pend_off < c->pend_len) return;
    core_free(c->pend);
    c->pend = NULL;
    c->pend_off = c->pend_len = 0;
}

/* Makes the pending buffer exist with its unparsed bytes at the front; false on OOM. */
static bool pend_reserve(http_conn_t *c)
{
    if (!c->pend) {
        c->pend = core_malloc(HTTP_PEND_CAP);
        if (!c->pend) return false;
        c->pend_off = c->pend_len = 0;
    }
    if (c->pend_off > 0) {
        memmove(c->pend, c->pend + c->pend_off, c->pend_len - c->pend_off);
        c->pend_len -= c->pend_off;
        c->pend_off = 0;
    }
    return true;
}

static bool pend_append(http_conn_t *c, const char *data, size_t n)
{
    if (!pend_reserve(c) || n > HTTP_PEND_CAP - c->pend_len) return false;
    memcpy(c->pend + c->pend_len, data, n);
    c->pend_len += n;
    return true;
}

static bool conn_busy(const http_conn_t *c)
{
    return c->state == CONN_HANDLING || c->state == CONN_WRITING;
}

/* ---- parser callbacks -------------------------------------------------------------------
 * They copy what they keep (the input buffer is reused) and never answer the client
 * themselves: an error is recorded in perr_* and answered once http_parser_execute has
 * returned, so no callback frees something the parser still uses. */

static int perr(http_conn_t *c, int status, const char *code, const char *msg, const char *det)
{
    c->perr_status = status;
    c->perr_code = code;
    c->perr_msg = msg;
    c->perr_details = det;
    return -1;
}

static int perr_431(http_conn_t *c)
{
    return perr(c, 431, "HTTP431", "Request header fields too large", NULL);
}

static int perr_413(http_conn_t *c)
{
    return perr(c, 413, "HTTP413", "Request body too large", NULL);
}

static int perr_503(http_conn_t *c)
{
    return perr(c, 503, "HTTP503", "Out of memory", NULL);
}

/* Header-phase bytes so far, up to the end of the piece [at, at+len) of the current
 * parser input. Exact for the request line and headers; the few bytes after the last
 * value (CRLF CRLF) are counted after the parser returns. */
static bool header_over(http_conn_t *c, const char *at, size_t len)
{
    size_t used = c->hdr_prev + (size_t)(at - c->chunk_start) + len;
    return used > c->srv->limits.max_header_bytes;
}

static int on_message_begin(http_parser *p)
{
    http_conn_t *c = p->data;
    http_server_t *s = c->srv;
    c->state = CONN_READING;
    c->msg_start_ns = core_now_ns();
    conn_timer(c, TM_REQUEST, s->limits.request_timeout_ms);
    core_buf_reset(&c->text);
    core_buf_reset(&c->spans);
    core_buf_free(&c->chunk_body);
    core_buf_init(&c->chunk_body, s->limits.max_body_bytes);
    c->hstate = HS_NONE;
    c->url_len = 0;
    c->trailer_bytes = 0;
    c->chunked = false;
    c->body = NULL;
    c->body_len = c->body_cap = 0;
    c->arena = core_arena_create(8192); /* a request with a JWT and its statement fits */
    if (!c->arena) return perr_503(c);
    c->req = core_arena_zalloc(c->arena, sizeof(*c->req));
    if (!c->req) return perr_503(c);
    c->req->arena = c->arena;
    c->req->start_ns = c->msg_start_ns;
    c->req->internal = c;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    http_conn_t *c = p->data;
    if (header_over(c, at, len)) return perr_431(c);
    core_buf_append(&c->text, at, len);
    c->url_len += len;
    return 0;
}

static int span_push(http_conn_t *c)
{
    if (c->hstate == HS_NONE) return 0;
    core_buf_append(&c->spans, &c->cur, sizeof(c->cur));
    c->hstate = HS_NONE;
    return core_buf_status(&c->spans);
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    http_conn_t *c = p->data;
    if (c->hdr_done) { /* chunked trailers: bounded, not kept */
        c->trailer_bytes += len;
        return c->trailer_bytes > c->srv->limits.max_header_bytes ? perr_431(c) : 0;
    }
    if (header_over(c, at, len)) return perr_431(c);
    if (c->hstate == HS_VALUE) (void)span_push(c); /* status checked at headers_complete */
    if (c->hstate != HS_FIELD) {
        c->cur = (hdr_span_t){c->text.len, 0, c->text.len, 0};
        c->hstate = HS_FIELD;
    }
    core_buf_append(&c->text, at, len);
    c->cur.name_len += len;
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    http_conn_t *c = p->data;
    if (c->hdr_done) {
        c->trailer_bytes += len;
        return c->trailer_bytes > c->srv->limits.max_header_bytes ? perr_431(c) : 0;
    }
    if (header_over(c, at, len)) return perr_431(c);
    if (c->hstate != HS_VALUE) {
        c->cur.value_off = c->text.len;
        c->cur.value_len = 0;
        c->hstate = HS_VALUE;
    }
    core_buf_append(&c->text, at, len);
    c->cur.value_len += len;
    return 0;
}

/* Percent-decodes the path into the arena; 400 for a bad escape or a decoded NUL, which
 * no later layer could represent safely. */
static int decode_path(http_conn_t *c, str_t raw, str_t *out)
{
    char *d = core_arena_alloc(c->arena, raw.len + 1);
    if (!d) return perr_503(c);
    size_t n = 0;
    for (size_t i = 0; i < raw.len; i++) {
        char ch = raw.ptr[i];
        if (ch == '%') {
            int hi = i + 2 < raw.len ? hex_digit(raw.ptr[i + 1]) : -1;
            int lo = i + 2 < raw.len ? hex_digit(raw.ptr[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return perr(c, 400, "HTTP400", "Invalid request path",
                            "malformed percent-encoding");
            ch = (char)((hi << 4) | lo);
            i += 2;
            if (ch == '\0')
                return perr(c, 400, "HTTP400", "Invalid request path",
                            "percent-encoded NUL byte");
        }
        d[n++] = ch;
    }
    d[n] = '\0';
    *out = (str_t){d, n};
    return 0;
}

/* Splits the raw target into path (decoded) and query (raw, without any #fragment). */
static int split_target(http_conn_t *c, http_req_t *r)
{
    str_t t = r->target;
    size_t start = 0;
    if (r->method_id == HTTP_CONNECT) { /* authority-form: no path at all */
        r->path = STR_LIT("");
        r->query = STR_LIT("");
        return 0;
    }
    if (t.len > 0 && t.ptr[0] != '/' && !(t.len == 1 && t.ptr[0] == '*')) {
        /* absolute-form (RFC 9112 3.2.2): use the parser's own URL splitter */
        struct http_parser_url u;
        http_parser_url_init(&u);
        if (t.len > UINT16_MAX || http_parser_parse_url(t.ptr, t.len, 0, &u) != 0)
            return perr(c, 400, "HTTP400", "Invalid request target", NULL);
        if (u.field_set & (1u << UF_PATH)) start = u.field_data[UF_PATH].off;
        else if (u.field_set & (1u << UF_QUERY)) start = (size_t)u.field_data[UF_QUERY].off - 1;
        else start = t.len;
    }
    str_t rest = {t.ptr + start, t.len - start};
    long f = str_find_char(rest, '#');
    size_t end = f >= 0 ? (size_t)f : rest.len;
    long q = str_find_char((str_t){rest.ptr, end}, '?');
    str_t raw_path = rest;
    if (q >= 0) {
        raw_path.len = (size_t)q;
        r->query = (str_t){rest.ptr + q + 1, end - (size_t)q - 1};
    } else {
        raw_path.len = end;
        r->query = (str_t){rest.ptr + end, 0};
    }
    if (raw_path.len == 0 && start > 0) raw_path = STR_LIT("/");
    return decode_path(c, raw_path, &r->path);
}

static bool request_id_ok(str_t v)
{
    if (v.len < 1 || v.len > 36) return false;
    for (size_t i = 0; i < v.len; i++) {
        char ch = v.ptr[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.';
        if (!ok) return false;
    }
    return true;
}

static void set_request_id(http_server_t *s, http_req_t *r)
{
    str_t v = http_req_header(r, STR_LIT("X-Request-Id"));
    if (request_id_ok(v)) {
        memcpy(r->request_id, v.ptr, v.len);
        r->request_id[v.len] = '\0';
        return;
    }
    static const char hex[] = "0123456789abcdef";
    uint64_t w[2] = {server_rand(s), server_rand(s)};
    for (int i = 0; i < 32; i++)
        r->request_id[i] = hex[(w[i / 16] >> (4 * (i % 16))) & 15u];
    r->request_id[32] = '\0';
}

static void on_continue_written(uv_write_t *w, int status)
{
    http_conn_t *c = w->data;
    c->continue_pending = false;
    if (status < 0 && !c->closing) conn_close(c);
}

static int on_headers_complete(http_parser *p)
{
    http_conn_t *c = p->data;
    http_server_t *s = c->srv;
    http_req_t *r = c->req;
    if (span_push(c) == CORE_ENOMEM) return perr_503(c);
    int ts = core_buf_status(&c->text), ss = core_buf_status(&c->spans);
    if (ts == CORE_ENOMEM || ss == CORE_ENOMEM) return perr_503(c);
    if (ts != CORE_OK || ss != CORE_OK) return perr_431(c);

    /* One copy of everything received into the arena; the request points into it. */
    char *base = core_arena_alloc(c->arena, c->text.len + 1);
    if (!base) return perr_503(c);
    if (c->text.len) memcpy(base, c->text.ptr, c->text.len);
    base[c->text.len] = '\0';
    size_t nh = c->spans.len / sizeof(hdr_span_t);
    if (nh) {
        r->headers = core_arena_alloc(c->arena, nh * sizeof(http_header_t));
        if (!r->headers) return perr_503(c);
        for (size_t i = 0; i < nh; i++) {
            hdr_span_t sp;
            memcpy(&sp, c->spans.ptr + i * sizeof(sp), sizeof(sp));
            r->headers[i].name = (str_t){base + sp.name_off, sp.name_len};
            r->headers[i].value = trim_ows((str_t){base + sp.value_off, sp.value_len});
        }
    }
    r->nheaders = nh;
    r->method_id = (int)p->method;
    r->method = str_from_cstr(http_method_str((enum http_method)p->method));
    r->target = (str_t){base, c->url_len};
    if (split_target(c, r) != 0) return -1;
    set_request_id(s, r);
    c->is_head = p->method == HTTP_HEAD;
    c->hdr_done = true;

    bool has_body = false;
    if (p->flags & F_CHUNKED) {
        c->chunked = true;
        has_body = true;
    } else if (p->content_length != UINT64_MAX && p->content_length > 0) {
        /* Checked before a single body byte is read. */
        if (p->content_length > s->limits.max_body_bytes) return perr_413(c);
        c->body_cap = (size_t)p->content_length;
        c->body = core_arena_alloc(c->arena, c->body_cap);
        if (!c->body) return perr_503(c);
        has_body = true;
    }
    if (has_body && p->http_major == 1 && p->http_minor >= 1 && !c->continue_pending &&
        str_eq_nocase(http_req_header(r, STR_LIT("Expect")), STR_LIT("100-continue"))) {
        uv_buf_t b = uv_buf_init((char *)continue_response, sizeof(continue_response) - 1);
        c->continue_w.data = c;
        if (uv_write(&c->continue_w, (uv_stream_t *)&c->tcp, &b, 1, on_continue_written) == 0)
            c->continue_pending = true;
    }
    return 0;
}

static int on_chunk_header(http_parser *p)
{
    http_conn_t *c = p->data;
    /* parser->content_length is the size of the chunk that follows */
    if (p->content_length > c->srv->limits.max_body_bytes - c->chunk_body.len) return perr_413(c);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    http_conn_t *c = p->data;
    if (c->chunked) {
        core_buf_append(&c->chunk_body, at, len);
        int st = core_buf_status(&c->chunk_body);
        if (st == CORE_ELIMIT) return perr_413(c);
        if (st != CORE_OK) return perr_503(c);
        return 0;
    }
    if (len > c->body_cap - c->body_len) /* the parser counts Content-Length itself */
        return perr(c, 400, "HTTP400", "Invalid request body", NULL);
    memcpy(c->body + c->body_len, at, len);
    c->body_len += len;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    http_conn_t *c = p->data;
    http_req_t *r = c->req;
    if (c->chunked && c->chunk_body.len > 0) {
        /* Hand the reassembled body to the arena instead of copying it. */
        if (core_arena_defer(c->arena, core_free, c->chunk_body.ptr) != CORE_OK)
            return perr_503(c);
        r->body = (str_t){c->chunk_body.ptr, c->chunk_body.len};
        core_buf_init(&c->chunk_body, c->srv->limits.max_body_bytes);
    } else if (c->body) {
        r->body = (str_t){c->body, c->body_len};
    } else {
        r->body = (str_t){"", 0};
    }
    c->keep_alive = http_should_keep_alive(p) && !p->upgrade;
    c->msg_ready = true;
    http_parser_pause(p, 1); /* stop at the message boundary; pipelined bytes wait */
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
    .on_chunk_header = on_chunk_header,
};

/* Runs the parser over data; returns the bytes consumed. Stops after a whole request
 * (c->msg_ready) or on an error, which it answers (the rest of the input is dropped). */
static size_t conn_feed(http_conn_t *c, const char *data, size_t len)
{
    c->chunk_start = data;
    size_t n = http_parser_execute(&c->parser, &parser_settings, data, len);
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (c->perr_status) {
        conn_fail(c, c->perr_status, c->perr_code, c->perr_msg, c->perr_details);
        return len;
    }
    if (e == HPE_PAUSED && c->msg_ready) return n;
    if (e == HPE_HEADER_OVERFLOW) {
        conn_fail(c, 431, "HTTP431", "Request header fields too large", NULL);
        return len;
    }
    if (e != HPE_OK) {
        conn_fail(c, 400, "HTTP400", "Malformed HTTP request", http_errno_description(e));
        return len;
    }
    if (!c->hdr_done) {
        c->hdr_prev += n;
        if (c->hdr_prev > c->srv->limits.max_header_bytes) {
            conn_fail(c, 431, "HTTP431", "Request header fields too large", NULL);
            return len;
        }
    }
    if (n != len) { /* only after an upgrade, which pauses first; be safe anyway */
        conn_fail(c, 400, "HTTP400", "Malformed HTTP request", NULL);
        return len;
    }
    return n;
}

/* ---- handing requests over ------------------------------------------------------------ */

static void conn_dispatch(http_conn_t *c)
{
    http_server_t *s = c->srv;
    c->msg_ready = false; /* the parser stays paused until conn_resume */
    c->state = CONN_HANDLING;
    c->owned = true;
    c->refs++;
    s->inflight++;
    conn_timer(c, TM_NONE, 0);
    s->handler(c->req, s->udata);
}

/* Parses pending input while the connection is free to take a request. */
static void conn_parse_pend(http_conn_t *c)
{
    if (c->pend_len > c->pend_off) {
        size_t n = conn_feed(c, c->pend + c->pend_off, c->pend_len - c->pend_off);
        if (c->closing || c->state == CONN_ERROR) return;
        c->pend_off += n;
    }
    pend_trim(c);
    if (c->msg_ready) conn_dispatch(c);
}

static void conn_resume(http_conn_t *c)
{
    c->state = CONN_IDLE;
    c->msg_ready = false;
    c->hdr_done = false;
    c->hdr_prev = 0;
    http_parser_pause(&c->parser, 0);
    conn_timer(c, TM_IDLE, c->srv->limits.keepalive_timeout_ms);
    conn_parse_pend(c);
    if (!c->closing) conn_update_reading(c);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    http_conn_t *c = req->data;
    if (status < 0 && !c->closing) conn_close(c);
}

/* Closes gracefully: shut the write side after the queued writes, then drain what the
 * client still sends, so a close with unread input does not reset the answer away. */
static void conn_linger(http_conn_t *c)
{
    if (c->closing) return;
    c->state = CONN_LINGER;
    if (c->srv->stopping) {
        conn_close(c);
        return;
    }
    c->pend_off = c->pend_len = 0;
    pend_trim(c);
    c->shut.data = c;
    if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        conn_close(c);
        return;
    }
    conn_timer(c, TM_LINGER, HTTP_LINGER_MS);
    conn_update_reading(c);
}

/* The last write of a response (or error answer) is done, or nothing had to be written. */
static void conn_after_response(http_conn_t *c, int status)
{
    bool was_error = c->state == CONN_ERROR;
    request_finish(c);
    core_free(c->final_heap);
    c->final_heap = NULL;
    if (c->closing) return;
    if (status < 0) {
        LOG_DEBUG("http: write failed: %s", uv_strerror(status));
        conn_close(c);
        return;
    }
    if (was_error || !c->keep_alive || c->srv->stopping) {
        conn_linger(c);
        return;
    }
    conn_resume(c);
}

static void on_final_written(uv_write_t *w, int status)
{
    http_conn_t *c = w->data;
    c->final_pending = false;
    conn_timer(c, TM_NONE, 0);
    conn_after_response(c, status);
}

/* Queues the last write of a response. bufs must stay valid until its callback: they
 * live in the request arena, in c->final_heap, or in static storage. */
static void conn_write_final(http_conn_t *c, uv_buf_t *bufs, unsigned nbufs)
{
    c->final_w.data = c;
    c->final_pending = true;
    /* Try the write right away: when it all goes out (the usual case), the request ends
     * before the loop next waits, without a write request — libuv would otherwise re-arm
     * the socket's epoll registration (one epoll_ctl) for every response. */
    uv_buf_t rest[8];
    unsigned nrest = 0;
    int n = nbufs <= 8 ? uv_try_write((uv_stream_t *)&c->tcp, bufs, nbufs) : UV_EAGAIN;
    if (n >= 0) {
        size_t done = (size_t)n;
        for (unsigned i = 0; i < nbufs; i++) {
            if (done >= bufs[i].len) {
                done -= bufs[i].len;
                continue;
            }
            rest[nrest++] = uv_buf_init(bufs[i].base + done, (unsigned)(bufs[i].len - done));
            done = 0;
        }
        if (nrest == 0) {
            c->refs++; /* released once the request has ended in on_alog_flush */
            c->done_next = c->srv->done_head;
            c->srv->done_head = c;
            return;
        }
        bufs = rest;
        nbufs = nrest;
    } else if (n != UV_EAGAIN && n != UV_ENOSYS) {
        c->final_pending = false;
        LOG_DEBUG("http: write failed: %s", uv_strerror(n));
        conn_close(c); /* ends the request too */
        return;
    }
    int rc = uv_write(&c->final_w, (uv_stream_t *)&c->tcp, bufs, nbufs, on_final_written);
    if (rc != 0) {
        c->final_pending = false;
        LOG_DEBUG("http: write failed: %s", uv_strerror(rc));
        conn_close(c); /* ends the request too */
        return;
    }
    conn_timer(c, TM_SEND, c->srv->limits.request_timeout_ms);
}

static void write_oom_response(http_conn_t *c)
{
    c->keep_alive = false;
    c->resp_status = 503;
    c->resp_bytes = sizeof(OOM_BODY) - 1;
    c->state = CONN_WRITING;
    uv_buf_t b = uv_buf_init((char *)oom_response, sizeof(oom_response) - 1);
    conn_write_final(c, &b, 1);
}

#define HTTP_EXTRA_HEADERS_MAX 8

/* The handler's extra headers for this response (http_req_t.extra_headers), or none. */
static size_t req_extra_headers(http_req_t *req, int status, http_header_t *out)
{
    if (!req || !req->extra_headers) return 0;
    size_t n = req->extra_headers(req, status, out, HTTP_EXTRA_HEADERS_MAX);
    return n > HTTP_EXTRA_HEADERS_MAX ? HTTP_EXTRA_HEADERS_MAX : n;
}

/* Builds a response head into c->out; returns the buffer's status. The extra headers x
 * are merged into a caller header of the same name ("value, extra") or added after. */
static int build_head(http_conn_t *c, int status, const http_header_t *h, size_t n, int framing,
                      uint64_t clen, bool keep, const http_header_t *x, size_t nx)
{
    bool used[HTTP_EXTRA_HEADERS_MAX] = {false};
    core_buf_t *b = &c->out;
    core_buf_reset(b);
    const char *reason = http_status_str((enum http_status)status);
    if (!reason || reason[0] == '<') reason = "Unknown";
    core_buf_appendf(b, "HTTP/1.1 %d %s\r\nDate: %s\r\nServer: strata\r\n", status, reason,
                     server_date(c->srv));
    if (framing == FRAME_LENGTH) core_buf_appendf(b, "Content-Length: %" PRIu64 "\r\n", clen);
    else if (framing == FRAME_CHUNKED) core_buf_append_cstr(b, "Transfer-Encoding: chunked\r\n");
    core_buf_append_cstr(b, keep ? "Connection: keep-alive\r\n" : "Connection: close\r\n");
    for (size_t i = 0; i < n; i++) {
        if (header_is_ours(h[i].name)) continue;
        if (!header_is_sendable(&h[i])) {
            LOG_WARN("http: dropping invalid response header \"%.*s\"",
                     (int)(h[i].name.len > 64 ? 64 : h[i].name.len),
                     h[i].name.ptr ? h[i].name.ptr : "");
            continue;
        }
        core_buf_append_str(b, h[i].name);
        core_buf_append(b, ": ", 2);
        core_buf_append_str(b, h[i].value);
        for (size_t k = 0; k < nx && k < HTTP_EXTRA_HEADERS_MAX; k++) {
            if (used[k] || !str_eq_nocase(x[k].name, h[i].name) || !header_is_sendable(&x[k])) continue;
            used[k] = true;
            core_buf_append(b, ", ", 2);
            core_buf_append_str(b, x[k].value);
        }
        core_buf_append(b, "\r\n", 2);
    }
    for (size_t k = 0; k < nx && k < HTTP_EXTRA_HEADERS_MAX; k++) {
        if (used[k] || header_is_ours(x[k].name) || !header_is_sendable(&x[k])) continue;
        core_buf_append_str(b, x[k].name);
        core_buf_append(b, ": ", 2);
        core_buf_append_str(b, x[k].value);
        core_buf_append(b, "\r\n", 2);
    }
    core_buf_append(b, "\r\n", 2);
    return core_buf_status(b);
}

/* Answers a transport-level problem (limits, timeouts, malformed input) and closes. */
static void conn_fail(http_conn_t *c, int status, const char *code, const char *msg,
                      const char *details)
{
    if (c->closing || c->state == CONN_ERROR) return;
    LOG_INFO("http: answering %d: %s%s%s", status, msg, details ? ": " : "",
             details ? details : "");
    uint64_t start = c->state == CONN_READING ? c->msg_start_ns : 0;
    c->perr_status = 0;
    c->responded = false;
    request_finish(c); /* drops the partial request */
    c->pend_off = c->pend_len = 0;
    pend_trim(c);
    c->state = CONN_ERROR;
    c->keep_alive = false;
    conn_update_reading(c);
    conn_timer(c, TM_NONE, 0);

    core_err_t e = core_err_make(status, code, msg, str_from_cstr(details));
    core_buf_t body;
    core_buf_init(&body, 4096);
    core_err_write_json(&body, &e);
    const http_header_t ct = {STR_LIT("Content-Type"),
                              STR_LIT("application/json; charset=utf-8")};
    int rc = core_buf_status(&body);
    if (rc == CORE_OK) rc = build_head(c, status, &ct, 1, FRAME_LENGTH, body.len, false, NULL, 0);
    char *data = rc == CORE_OK ? core_malloc(c->out.len + body.len) : NULL;
    if (!data) {
        core_buf_free(&body);
        conn_close(c);
        return;
    }
    memcpy(data, c->out.ptr, c->out.len);
    memcpy(data + c->out.len, body.ptr, body.len);
    uv_buf_t b = uv_buf_init(data, (unsigned)(c->out.len + body.len));
    record_request(c->srv, status, body.len, start, NULL);
    core_buf_free(&body);
    c->final_heap = data;
    conn_write_final(c, &b, 1);
}

/* ---- reading --------------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    http_conn_t *c = h->data;
    if (c->state == CONN_LINGER || (!conn_busy(c) && c->pend_off == c->pend_len)) {
        /* Nothing to keep: parse straight from the server's shared buffer. */
        *buf = uv_buf_init(c->srv->rbuf, HTTP_RBUF_SIZE);
        return;
    }
    if (!pend_reserve(c) || c->pend_len == HTTP_PEND_CAP) {
        *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS: the connection closes */
        return;
    }
    *buf = uv_buf_init(c->pend + c->pend_len, (unsigned)(HTTP_PEND_CAP - c->pend_len));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    http_conn_t *c = stream->data;
    if (nread == 0 || c->closing) return;
    if (nread < 0) {
        if (c->state == CONN_HANDLING) LOG_DEBUG("http: client went away during a request");
        conn_close(c);
        return;
    }
    size_t n = (size_t)nread;
    if (c->state == CONN_LINGER) {
        c->linger_bytes += n;
        if (c->linger_bytes > HTTP_LINGER_MAX_BYTES) conn_close(c);
        return;
    }
    if (buf->base == c->srv->rbuf) {
        size_t used = conn_feed(c, buf->base, n);
        if (c->closing || c->state == CONN_ERROR) return;
        if (used < n && !pend_append(c, buf->base + used, n - used)) {
            conn_fail(c, 503, "HTTP503", "Out of memory", NULL);
            return;
        }
        if (c->msg_ready) conn_dispatch(c);
    } else {
        c->pend_len += n;
        if (!conn_busy(c)) conn_parse_pend(c);
    }
    if (!c->closing) conn_update_reading(c);
}

/* Reads whenever there is room: while a request is handled input goes to the pending
 * buffer (so a vanished client is noticed) until it is full. */
static void conn_update_reading(http_conn_t *c)
{
    if (c->closing) return;
    bool want;
    switch (c->state) {
    case CONN_ERROR:
        want = false;
        break;
    case CONN_HANDLING:
    case CONN_WRITING:
        want = c->pend_len - c->pend_off < HTTP_PEND_CAP;
        break;
    default:
        want = true;
        break;
    }
    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
            conn_close(c);
            return;
        }
        c->reading = true;
    } else if (!want && c->reading) {
        (void)uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

/* ---- accepting -------------------------------------------------------------------------- */

static void on_retry_accept(uv_timer_t *t);

static void accept_one(http_server_t *s)
{
    http_conn_t *c = core_calloc(1, sizeof(*c));
    if (!c) {
        /* libuv stops polling the listener until we accept, so try again shortly. */
        LOG_ERROR("http: out of memory accepting a connection");
        if (!uv_is_active((uv_handle_t *)&s->retry_timer))
            (void)uv_timer_start(&s->retry_timer, on_retry_accept, HTTP_ACCEPT_RETRY_MS, 0);
        return;
    }
    c->srv = s;
    if (s->is_unix) (void)uv_pipe_init(s->loop, &c->pipe, 0);
    else (void)uv_tcp_init(s->loop, &c->tcp); /* AF_UNSPEC: no socket is created, cannot fail */
    (void)uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->refs = 2;
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    core_counter_set(&s->stats.connections_open, s->nconns);
    core_buf_init(&c->text, s->limits.max_header_bytes);
    core_buf_init(&c->spans, (s->limits.max_header_bytes / 4 + 8) * sizeof(hdr_span_t));
    core_buf_init(&c->chunk_body, s->limits.max_body_bytes);
    core_buf_init(&c->out, HTTP_HEAD_MAX);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->state = CONN_IDLE;

    int rc = uv_accept((uv_stream_t *)&s->listener, (uv_stream_t *)&c->tcp);
    if (rc != 0) {
        if (rc != UV_EAGAIN) LOG_WARN("http: accept failed: %s", uv_strerror(rc));
        conn_close(c);
        return;
    }
    if (s->limits.max_connections && s->nconns > s->limits.max_connections) {
        LOG_WARN("http: too many connections (%u), closing a new one",
                 s->limits.max_connections);
        conn_close(c);
        return;
    }
    if (!s->is_unix) (void)uv_tcp_nodelay(&c->tcp, 1);
    conn_timer(c, TM_IDLE, s->limits.keepalive_timeout_ms);
    conn_update_reading(c);
}

static void on_retry_accept(uv_timer_t *t)
{
    http_server_t *s = t->data;
    if (!s->stopping) accept_one(s);
}

static void on_connection(uv_stream_t *listener, int status)
{
    http_server_t *s = listener->data;
    if (status < 0) {
        LOG_WARN("http: listener error: %s", uv_strerror(status));
        return;
    }
    accept_one(s);
}

/* ---- listener ------------------------------------------------------------------------- */

static pthread_once_t parser_once = PTHREAD_ONCE_INIT;

/* http_parser caps headers at 80 KiB process-wide; we enforce max_header_bytes per server
 * ourselves, so lift the library's cap once to our ceiling. */
static void parser_init_once(void) { http_parser_set_max_header_size(HTTP_MAX_HEADER_CEILING); }

static int resolve_host(const char *host, int port, struct sockaddr_storage *ss, int *v6only,
                        bool *any)
{
    memset(ss, 0, sizeof(*ss));
    *v6only = -1;
    *any = false;
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    str_t h = str_from_cstr(host);
    if (h.len == 0 || str_eq(h, STR_LIT("!4")) || str_eq(h, STR_LIT("*4"))) {
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(INADDR_ANY);
        sin->sin_port = htons((uint16_t)port);
        return 0;
    }
    if (str_eq(h, STR_LIT("!6")) || str_eq(h, STR_LIT("*6")) || str_eq(h, STR_LIT("*"))) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_addr = in6addr_any;
        sin6->sin6_port = htons((uint16_t)port);
        *v6only = str_eq(h, STR_LIT("!6")) ? 1 : 0; /* "*" and "*6" take IPv4 too */
        *any = !str_eq(h, STR_LIT("!6"));
        return 0;
    }
    if (str_eq_nocase(h, STR_LIT("localhost"))) host = "127.0.0.1";
    if (uv_ip4_addr(host, port, sin) == 0) return 0;
    if (uv_ip6_addr(host, port, sin6) == 0) return 0;
    /* A host name: resolved once, at startup, before the loop serves anything. */
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0 || !res) {
        LOG_ERROR("http: cannot resolve server host \"%s\": %s", host, gai_strerror(rc));
        return CORE_EINVAL;
    }
    if (res->ai_addrlen <= sizeof(*ss)) memcpy(ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    if (ss->ss_family == AF_INET) sin->sin_port = htons((uint16_t)port);
    else if (ss->ss_family == AF_INET6) sin6->sin6_port = htons((uint16_t)port);
    else return CORE_EINVAL;
    return 0;
}

static int open_listener(const char *host, int port, int *fd_out, int *port_out)
{
    struct sockaddr_storage ss;
    int v6only;
    bool any;
    if (port < 0 || port > 65535) {
        LOG_ERROR("http: invalid server port %d", port);
        return CORE_EINVAL;
    }
    int rc = resolve_host(host, port, &ss, &v6only, &any);
    if (rc != 0) return rc;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 && any && (errno == EAFNOSUPPORT || errno == EPROTONOSUPPORT)) {
        /* "*" on a host without IPv6: all IPv4 addresses will do. */
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        memset(&ss, 0, sizeof(ss));
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(INADDR_ANY);
        sin->sin_port = htons((uint16_t)port);
        v6only = -1;
        fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    }
    if (fd < 0) {
        LOG_ERROR("http: socket: %s", uv_strerror(-errno));
        return CORE_EIO;
    }
    int one = 1;
    socklen_t sl = ss.ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                           : sizeof(struct sockaddr_in6);
    const char *step = "setsockopt";
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) goto fail;
    /* SO_REUSEPORT lets every worker thread bind its own listener on the same port; the
     * kernel spreads new connections across them. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) goto fail;
    if (v6only >= 0 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)) != 0)
        goto fail;
    step = "bind";
    if (bind(fd, (struct sockaddr *)&ss, sl) != 0) goto fail;
    step = "listen";
    if (listen(fd, HTTP_BACKLOG) != 0) goto fail;
    step = "getsockname";
    union {
        struct sockaddr_storage ss;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
    } bound;
    memset(&bound, 0, sizeof(bound));
    socklen_t bl = sizeof(bound);
    if (getsockname(fd, (struct sockaddr *)&bound.ss, &bl) != 0) goto fail;
    uint16_t nport = bound.ss.ss_family == AF_INET ? bound.in4.sin_port : bound.in6.sin6_port;
    *port_out = ntohs(nport);
    *fd_out = fd;
    return 0;
fail:;
    int err = errno;
    LOG_ERROR("http: cannot listen on %s:%d: %s: %s", host ? host : "", port, step,
              uv_strerror(-err));
    close(fd);
    return CORE_EIO;
}

/* ---- server lifetime ---------------------------------------------------------------- */

static void on_server_handle_closed(uv_handle_t *h)
{
    http_server_t *s = h->data;
    if (--s->handles > 0 || s->nconns > 0) return;
    void (*cb)(void *) = s->on_stopped;
    void *arg = s->stop_arg;
    if (cb) cb(arg);
    core_buf_free(&s->alog);
    core_free(s->rbuf);
    core_free(s);
}

/* Once stopping and every connection is gone, close the timers; the last close callback
 * reports the stop and frees the server (the listener was closed by http_server_stop). */
static void server_check_drained(http_server_t *s)
{
    if (!s->stopping || s->nconns > 0 || s->timers_closing) return;
    s->timers_closing = true;
    alog_write(s);
    uv_close((uv_handle_t *)&s->grace_timer, on_server_handle_closed);
    uv_close((uv_handle_t *)&s->retry_timer, on_server_handle_closed);
    uv_close((uv_handle_t *)&s->alog_flush, on_server_handle_closed);
}

static void server_close_all(http_server_t *s)
{
    for (http_conn_t *c = s->conns; c; c = c->next) conn_close(c); /* frees nothing now */
}

static void on_grace(uv_timer_t *t)
{
    http_server_t *s = t->data;
    if (s->nconns) LOG_INFO("http: grace period over, closing %u connection(s)", s->nconns);
    server_close_all(s);
}

/* Starts a server on an open listening socket fd (TCP when !is_unix); owns fd from here. */
static int server_start(uv_loop_t *loop, int fd, bool is_unix, int bound, const http_limits_t *limits,
                        http_handler_fn handler, void *udata, http_server_t **out)
{
    int rc;

    http_server_t *s = core_calloc(1, sizeof(*s));
    char *rbuf = core_malloc(HTTP_RBUF_SIZE);
    if (!s || !rbuf) {
        LOG_ERROR("http: out of memory starting the server");
        core_free(s);
        core_free(rbuf);
        close(fd);
        return CORE_ENOMEM;
    }
    s->loop = loop;
    s->rbuf = rbuf;
    s->handler = handler;
    s->udata = udata;
    s->port = bound;
    if (limits) s->limits = *limits;
    else http_limits_default(&s->limits);
    /* 0 for a size means "the default"; 0 for a timeout means "none". */
    if (s->limits.max_header_bytes == 0) s->limits.max_header_bytes = HTTP_DEFAULT_MAX_HEADER_BYTES;
    if (s->limits.max_header_bytes > HTTP_MAX_HEADER_CEILING)
        s->limits.max_header_bytes = HTTP_MAX_HEADER_CEILING;
    if (s->limits.max_body_bytes == 0) s->limits.max_body_bytes = HTTP_DEFAULT_MAX_BODY_BYTES;
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed))
        seed = core_now_ns() ^ (uint64_t)(uintptr_t)s;
    s->rng = seed;

    s->is_unix = is_unix;
    if (is_unix) (void)uv_pipe_init(loop, &s->pipe_listener, 0);
    else (void)uv_tcp_init(loop, &s->listener);
    (void)uv_timer_init(loop, &s->grace_timer);
    (void)uv_timer_init(loop, &s->retry_timer);
    (void)uv_prepare_init(loop, &s->alog_flush);
    s->listener.data = s->grace_timer.data = s->retry_timer.data = s->alog_flush.data = s;
    s->handles = 4;
    core_buf_init(&s->alog, (size_t)HTTP_ALOG_FLUSH * 4);
    (void)uv_prepare_start(&s->alog_flush, on_alog_flush);
    rc = is_unix ? uv_pipe_open(&s->pipe_listener, fd) : uv_tcp_open(&s->listener, fd);
    if (rc != 0) close(fd);
    else rc = uv_listen((uv_stream_t *)&s->listener, HTTP_BACKLOG, on_connection);
    if (rc != 0) {
        LOG_ERROR("http: cannot listen: %s", uv_strerror(rc));
        /* Handles exist now, so the server is freed from their close callbacks. */
        s->stopping = true;
        uv_close((uv_handle_t *)&s->listener, on_server_handle_closed);
        server_check_drained(s);
        return CORE_EIO;
    }
    *out = s;
    return CORE_OK;
}

int http_server_start(uv_loop_t *loop, const char *host, int port, const http_limits_t *limits,
                      http_handler_fn handler, void *udata, http_server_t **out)
{
    if (!loop || !handler || !out) return CORE_EINVAL;
    *out = NULL;
    (void)pthread_once(&parser_once, parser_init_once);
    int fd = -1, bound = 0;
    int rc = open_listener(host, port, &fd, &bound);
    if (rc != 0) return rc;
    return server_start(loop, fd, false, bound, limits, handler, udata, out);
}

int http_unix_listen(const char *path, int mode, int *fd_out)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    size_t len = path ? strlen(path) : 0;
    if (len == 0 || len >= sizeof(sa.sun_path)) {
        LOG_ERROR("http: server-unix-socket: the path must have 1 to %zu bytes", sizeof(sa.sun_path) - 1);
        return CORE_EINVAL;
    }
    memcpy(sa.sun_path, path, len);
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            LOG_ERROR("http: server-unix-socket %s exists and is not a socket", path);
            return CORE_EINVAL;
        }
        /* A socket nobody accepts on is left over from an earlier run: remove it. One that
         * answers belongs to a running server: leave it alone. */
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool live = probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0;
        if (probe >= 0) close(probe);
        if (live) {
            LOG_ERROR("http: server-unix-socket %s is in use by another process", path);
            return CORE_EIO;
        }
        if (unlink(path) != 0) {
            LOG_ERROR("http: cannot remove the stale socket %s: %s", path, uv_strerror(-errno));
            return CORE_EIO;
        }
        LOG_INFO("http: removed the stale socket %s", path);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        LOG_ERROR("http: socket: %s", uv_strerror(-errno));
        return CORE_EIO;
    }
    const char *step = "bind";
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) goto fail;
    step = "chmod";
    if (chmod(path, (mode_t)mode) != 0) goto fail;
    step = "listen";
    if (listen(fd, HTTP_BACKLOG) != 0) goto fail;
    *fd_out = fd;
    return CORE_OK;
fail:;
    int err = errno;
    LOG_ERROR("http: cannot listen on %s: %s: %s", path, step, uv_strerror(-err));
    close(fd);
    (void)unlink(path);
    return CORE_EIO;
}

int http_server_start_fd(uv_loop_t *loop, int listen_fd, const http_limits_t *limits, http_handler_fn handler,
                         void *udata, http_server_t **out)
{
    if (!loop || !handler || !out || listen_fd < 0) return CORE_EINVAL;
    *out = NULL;
    (void)pthread_once(&parser_once, parser_init_once);
    /* Each worker's loop accepts on its own descriptor of the one socket. */
    int fd = fcntl(listen_fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) {
        LOG_ERROR("http: cannot share the Unix socket: %s", uv_strerror(-errno));
        return CORE_EIO;
    }
    return server_start(loop, fd, true, 0, limits, handler, udata, out);
}

void http_server_stop(http_server_t *s, unsigned grace_ms, void (*on_stopped)(void *), void *arg)
{
    if (!s || s->stopping) return;
    s->stopping = true;
    s->on_stopped = on_stopped;
    s->stop_arg = arg;
    uv_close((uv_handle_t *)&s->listener, on_server_handle_closed);
    (void)uv_timer_stop(&s->retry_timer);
    for (http_conn_t *c = s->conns; c; c = c->next)
        if (c->state == CONN_IDLE || c->state == CONN_LINGER) conn_close(c);
    if (grace_ms == 0) server_close_all(s);
    else (void)uv_timer_start(&s->grace_timer, on_grace, grace_ms, 0);
    server_check_drained(s);
}

unsigned http_server_inflight(const http_server_t *s) { return s ? s->inflight : 0; }

int http_server_port(const http_server_t *s) { return s ? s->port : -1; }

void http_server_stats(const http_server_t *s, http_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    for (int k = 0; k < 6; k++) out->requests_by_class[k] = core_counter_get(&s->stats.requests_by_class[k]);
    for (int k = 0; k <= HTTP_LATENCY_NBUCKETS; k++) out->latency_buckets[k] = core_counter_get(&s->stats.latency_buckets[k]);
    out->latency_sum_us = core_counter_get(&s->stats.latency_sum_us);
    out->latency_count = core_counter_get(&s->stats.latency_count);
    out->connections_open = core_counter_get(&s->stats.connections_open);
}

/* ---- requests and responses ------------------------------------------------------------ */

str_t http_req_header(const http_req_t *req, str_t name)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (str_eq_nocase(req->headers[i].name, name)) return req->headers[i].value;
    return STR_NULL;
}

bool http_req_client_gone(const http_req_t *req)
{
    const http_conn_t *c = req->internal;
    return c ? c->closing : false;
}

int http_req_peer(const http_req_t *req, char *out, size_t outlen)
{
    const http_conn_t *c = req->internal;
    struct sockaddr_storage ss;
    int len = (int)sizeof(ss);
    if (outlen) out[0] = '\0';
    if (c->closing || uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0) return CORE_EIO;
    int rc = ss.ss_family == AF_INET6 ? uv_ip6_name((const struct sockaddr_in6 *)&ss, out, outlen)
                                      : uv_ip4_name((const struct sockaddr_in *)&ss, out, outlen);
    return rc == 0 ? CORE_OK : CORE_EIO;
}

/* The handler gives the request back: true when the caller may go on writing. */
static http_conn_t *owned_conn(http_req_t *req, const char *what)
{
    http_conn_t *c = req ? req->internal : NULL;
    if (!c || !c->owned || c->req != req) {
        LOG_ERROR("http: %s on a request the handler does not own", what);
        return NULL;
    }
    return c;
}

static void release_request(http_conn_t *c)
{
    c->owned = false;
    c->srv->inflight--;
}

void http_respond(http_req_t *req, int status, const http_header_t *headers, size_t nheaders,
                  str_t body)
{
    if (req && req->capture && !req->internal) { /* a handler-made request: hand it over */
        http_header_t extra[HTTP_EXTRA_HEADERS_MAX];
        size_t nextra = req_extra_headers(req, status, extra);
        http_header_t *all = nextra ? core_arena_alloc(req->arena, (nheaders + nextra) * sizeof(http_header_t)) : NULL;
        if (all) {
            if (nheaders) memcpy(all, headers, nheaders * sizeof(http_header_t));
            memcpy(all + nheaders, extra, nextra * sizeof(http_header_t));
            headers = all;
            nheaders += nextra;
        }
        req->capture(req, status, headers, nheaders, body);
        return;
    }
    http_conn_t *c = owned_conn(req, "http_respond");
    if (!c || c->streaming) {
        if (c) LOG_ERROR("http: http_respond during a stream");
        return;
    }
    if (status < 100 || status > 999) {
        LOG_ERROR("http: invalid response status %d", status);
        status = 500;
        body = (str_t){"", 0};
    }
    release_request(c);
    c->responded = true;
    c->resp_status = status;
    c->resp_bytes = 0;
    if (c->closing) { /* nobody to answer: just end the request */
        request_finish(c);
        conn_unref(c);
        return;
    }
    bool with_body = status_has_body(status);
    c->keep_alive = c->keep_alive && !c->srv->stopping;
    char *head = NULL;
    http_header_t extra[HTTP_EXTRA_HEADERS_MAX];
    size_t nextra = req_extra_headers(req, status, extra);
    if (build_head(c, status, headers, nheaders, with_body ? FRAME_LENGTH : FRAME_NONE,
                   (uint64_t)body.len, c->keep_alive, extra, nextra) == CORE_OK)
        head = core_arena_alloc(c->arena, c->out.len);
    c->state = CONN_WRITING;
    if (!head) {
        write_oom_response(c);
    } else {
        memcpy(head, c->out.ptr, c->out.len);
        uv_buf_t bufs[2];
        bufs[0] = uv_buf_init(head, (unsigned)c->out.len);
        unsigned nbufs = 1;
        if (with_body && !c->is_head && body.len > 0) {
            /* Not copied: the body lives in the arena (or longer) until the write ends. */
            bufs[1].base = (char *)body.ptr;
            bufs[1].len = body.len;
            nbufs = 2;
            c->resp_bytes = body.len;
        }
        conn_write_final(c, bufs, nbufs);
    }
    conn_unref(c); /* the handler's reference; the handles still hold the connection */
}

void http_respond_error(http_req_t *req, const core_err_t *e)
{
    if (!(req && req->capture && !req->internal) && !owned_conn(req, "http_respond_error")) return;
    const http_header_t ct[] = {
        {STR_LIT("Content-Type"), STR_LIT("application/json; charset=utf-8")}};
    core_buf_t b;
    core_buf_init(&b, HTTP_HEAD_MAX);
    core_err_write_json(&b, e);
    char *p = core_buf_status(&b) == CORE_OK ? core_arena_alloc(req->arena, b.len) : NULL;
    int status = e->status;
    str_t body;
    if (p) {
        memcpy(p, b.ptr, b.len);
        body = (str_t){p, b.len};
    } else {
        status = 503;
        body = STR_LIT(OOM_BODY);
    }
    core_buf_free(&b);
    http_respond(req, status, ct, 1, body);
}

/* A heap copy for stream writes: a chunk may live in a buffer the caller reuses, and a long
 * stream must not pile its chunks up in the request arena. */
static void on_part_written(uv_write_t *w, int status)
{
    part_write_t *pw = w->data;
    http_conn_t *c = pw->c;
    core_free(pw);
    if (status < 0 && !c->closing) conn_close(c);
}

static void conn_write_part(http_conn_t *c, str_t a, str_t b, str_t z)
{
    size_t len = a.len + b.len + z.len;
    part_write_t *pw = core_malloc(sizeof(*pw) + len);
    if (!pw) {
        LOG_ERROR("http: out of memory writing a stream; closing the connection");
        conn_close(c);
        return;
    }
    pw->c = c;
    pw->w.data = pw;
    char *d = pw->data;
    if (a.len) memcpy(d, a.ptr, a.len);
    if (b.len) memcpy(d + a.len, b.ptr, b.len);
    if (z.len) memcpy(d + a.len + b.len, z.ptr, z.len);
    uv_buf_t buf;
    buf.base = d;
    buf.len = len;
    if (uv_write(&pw->w, (uv_stream_t *)&c->tcp, &buf, 1, on_part_written) != 0) {
        core_free(pw);
        conn_close(c);
    }
}

void http_stream_start(http_req_t *req, int status, const http_header_t *headers, size_t nheaders)
{
    http_conn_t *c = owned_conn(req, "http_stream_start");
    if (!c) return;
    if (c->streaming) {
        LOG_ERROR("http: http_stream_start called twice");
        return;
    }
    if (status < 100 || status > 999) {
        LOG_ERROR("http: invalid response status %d", status);
        status = 500;
    }
    c->streaming = true;
    c->responded = true;
    c->resp_status = status;
    c->resp_bytes = 0;
    c->stream_nobody = c->is_head || !status_has_body(status);
    /* HTTP/1.0 has no chunked coding: send the body raw and end it by closing. */
    c->stream_raw = !c->stream_nobody && c->parser.http_major == 1 && c->parser.http_minor == 0;
    if (c->stream_raw) c->keep_alive = false;
    if (c->closing) return;
    c->keep_alive = c->keep_alive && !c->srv->stopping;
    int framing = (c->stream_nobody && !c->is_head) || c->stream_raw ? FRAME_NONE
                                                                      : FRAME_CHUNKED;
    http_header_t extra[HTTP_EXTRA_HEADERS_MAX];
    size_t nextra = req_extra_headers(req, status, extra);
    if (build_head(c, status, headers, nheaders, framing, 0, c->keep_alive, extra, nextra) != CORE_OK) {
        LOG_ERROR("http: cannot build a stream head; closing the connection");
        conn_close(c);
        return;
    }
    conn_write_part(c, core_buf_str(&c->out), STR_NULL, STR_NULL);
}

void http_stream_write(http_req_t *req, str_t chunk)
{
    http_conn_t *c = owned_conn(req, "http_stream_write");
    if (!c) return;
    if (!c->streaming) {
        LOG_ERROR("http: http_stream_write before http_stream_start");
        return;
    }
    /* A zero-length chunk would end the chunked body early, so it is never sent. */
    if (c->closing || c->stream_nobody || chunk.len == 0) return;
    if (uv_stream_get_write_queue_size((const uv_stream_t *)&c->tcp) > HTTP_WRITE_QUEUE_MAX) {
        LOG_INFO("http: closing connection: client reads the stream too slowly");
        conn_close(c);
        return;
    }
    c->resp_bytes += chunk.len;
    if (c->stream_raw) {
        conn_write_part(c, chunk, STR_NULL, STR_NULL);
        return;
    }
    char size[24];
    int n = snprintf(size, sizeof(size), "%zx\r\n", chunk.len);
    conn_write_part(c, (str_t){size, n > 0 ? (size_t)n : 0}, chunk, STR_LIT("\r\n"));
}

void http_stream_end(http_req_t *req)
{
    http_conn_t *c = owned_conn(req, "http_stream_end");
    if (!c) return;
    if (!c->streaming) {
        LOG_ERROR("http: http_stream_end before http_stream_start");
        return;
    }
    release_request(c);
    if (c->closing) {
        request_finish(c);
        conn_unref(c);
        return;
    }
    c->state = CONN_WRITING;
    if (c->stream_nobody || c->stream_raw) {
        /* Nothing left to write; end the request from the loop, not from inside the
         * handler's call (the next pipelined request would run in the handler's stack). */
        conn_timer(c, TM_FINISH, 0);
    } else {
        uv_buf_t b = uv_buf_init((char *)last_chunk, sizeof(last_chunk) - 1);
        conn_write_final(c, &b, 1);
    }
    conn_unref(c);
}
