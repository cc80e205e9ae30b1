/*
 * http: Strata's small HTTP/1.1 server layer on libuv, parsing by http-parser.
 *
 * One http_server_t per worker loop. Each accepted connection parses requests with its own
 * http_parser; complete requests are handed to the handler one at a time per connection
 * (pipelined requests wait, so responses go out in order). Keep-alive, chunked and
 * fixed-length request bodies, limits and timeouts are handled here and answered with
 * PostgREST-shaped JSON errors.
 */
#ifndef STRATA_HTTP_H
#define STRATA_HTTP_H

#include <uv.h>

#include "core/core.h"

typedef struct {
    str_t name;
    str_t value;
} http_header_t;

typedef struct http_server http_server_t;
typedef struct http_req http_req_t;

/* A parsed request. Everything in it (and everything the handler allocates from `arena`)
 * lives until the response has been written or the connection is gone — the arena is
 * destroyed by the http layer after http_respond / http_stream_end, never before. */
struct http_req {
    core_arena_t *arena;
    str_t method;        /* "GET", "POST", ... */
    int method_id;       /* http_parser's enum http_method */
    str_t target;        /* raw request target, e.g. "/items?id=eq.1" */
    str_t path;          /* percent-decoded path, without the query */
    str_t query;         /* raw query string after '?', not decoded (may be empty) */
    http_header_t *headers; /* names as sent; lookup with http_req_header */
    size_t nheaders;
    str_t body;          /* complete body (chunked bodies are reassembled); ptr is never
                          * NULL, len 0 when there is none */
    char request_id[40]; /* the X-Request-Id sent by the client if sane, else generated */
    uint64_t start_ns;   /* core_now_ns() when the request line arrived */
    const char *log_role; /* set by the handler for the access log; may stay NULL */
    void *internal;      /* owned by the http layer */
    void *user;          /* the handler's per-request state (in the arena); NULL initially */
    /* A request made by a handler rather than read from a socket (a batch's operations):
     * http_respond hands its response to capture instead of writing it. Such a request has
     * internal == NULL and lives in its creator's arena. */
    void (*capture)(http_req_t *req, int status, const http_header_t *headers, size_t nheaders, str_t body);
    void *capture_arg;
    /* Optional, set by the handler: called once by http_respond / http_stream_start just
     * before the head is built, with the status; writes up to `cap` headers into out (values
     * must live in the arena) and returns how many. A header whose name the caller also
     * passed is merged into it as "caller's value, extra value" (list-valued headers such
     * as Preference-Applied or Vary); the others are added. */
    size_t (*extra_headers)(http_req_t *req, int status, http_header_t *out, size_t cap);
};

typedef void (*http_handler_fn)(http_req_t *req, void *udata);

/* Sizes given as 0 take the default; timeouts and max_connections given as 0 are off.
 * request_timeout_ms also bounds how long a response write may make no progress. */
typedef struct {
    size_t max_header_bytes;   /* request line + headers; over → 431 */
    size_t max_body_bytes;     /* over → 413 */
    unsigned request_timeout_ms;   /* from the first byte of a request to its full receipt; 408 */
    unsigned keepalive_timeout_ms; /* idle connection is closed after this */
    unsigned max_connections;  /* per server; beyond it new connections are closed at once */
    bool access_log; /* one JSON line per request: time, request_id, method, path, status,
                      * bytes (body bytes sent), duration_us, role */
} http_limits_t;

void http_limits_default(http_limits_t *l);

/* Creates a listener on host:port bound with SO_REUSEPORT (so several workers may bind the
 * same port) and starts accepting on `loop`. The handler runs on `loop` for every complete
 * request. Returns 0 and *out, or a negative status (and logs why). */
int http_server_start(uv_loop_t *loop, const char *host, int port, const http_limits_t *limits,
                      http_handler_fn handler, void *udata, http_server_t **out) CORE_WUR;

/* Unix-socket listening (server-unix-socket). http_unix_listen creates the socket once, before
 * the loops start (blocking calls): a stale socket file nobody accepts on is removed first, a
 * path that is not a socket or that a live server answers on is an error; the socket gets
 * `mode` (e.g. 0660). Returns 0 and the listening descriptor, which the caller closes and
 * whose path it unlinks at the end. Each worker then serves it with http_server_start_fd,
 * which takes its own duplicate of the descriptor (the server's port is 0). */
int http_unix_listen(const char *path, int mode, int *fd_out) CORE_WUR;
int http_server_start_fd(uv_loop_t *loop, int listen_fd, const http_limits_t *limits, http_handler_fn handler,
                         void *udata, http_server_t **out) CORE_WUR;

/* The port the server is bound to (useful when started on port 0). */
int http_server_port(const http_server_t *srv);

/* The port the listener is bound to (useful with port 0), or -1 for NULL. */
int http_server_port(const http_server_t *srv);

/* Stops accepting; idle connections are closed; connections with a request in progress are
 * closed after it is answered or after `grace_ms` (0: at once). on_stopped runs on the loop
 * once every handle is closed and every handler has answered (a request still owned by a
 * handler keeps the server alive until http_respond/http_stream_end); the server is freed
 * after it returns. Calling it again is a no-op. */
void http_server_stop(http_server_t *srv, unsigned grace_ms, void (*on_stopped)(void *), void *arg);

/* Number of requests currently being handled (for graceful shutdown and metrics). */
unsigned http_server_inflight(const http_server_t *srv);

/* Case-insensitive header lookup; STR_NULL when absent. */
str_t http_req_header(const http_req_t *req, str_t name);

/* The client's address as text ("127.0.0.1", "::1") into out (>= 46 bytes). Returns 0, or
 * a negative status (and "" in out) when the connection is already gone. */
int http_req_peer(const http_req_t *req, char *out, size_t outlen) CORE_WUR;

/* True when the client has gone: responding is still required (it frees the request) but
 * nothing will be sent. */
bool http_req_client_gone(const http_req_t *req);

/* Sends a complete response and ends the request. Must be called exactly once per request
 * (or the stream trio below), on the request's loop, possibly from a later callback. Adds
 * Content-Length, Date, Server and Connection headers (caller headers with those names or
 * Transfer-Encoding/Keep-Alive are dropped, as are names that are not tokens and values
 * with CR/LF). `headers` are copied before return. `body` is NOT copied: it is written from
 * where it lies, so it must stay valid until the request ends — keep it in req->arena (or
 * static storage), never in a buffer the caller frees after the call.
 * HEAD: headers only, Content-Length of body. 1xx/204/304: no body, no Content-Length.
 * After this call `req` must not be touched. */
void http_respond(http_req_t *req, int status, const http_header_t *headers, size_t nheaders,
                  str_t body);

/* Convenience: a JSON error body built from e, with its status. */
void http_respond_error(http_req_t *req, const core_err_t *e);

/* Streaming: start a chunked response, write chunks, end it. Same exactly-once rule:
 * http_stream_end ends the request. Headers and chunks are copied, so they may live
 * anywhere. A client that lets more than a few MiB queue up unread is disconnected
 * (http_req_client_gone turns true; further writes are dropped). HTTP/1.0 clients get the
 * body unframed and the connection closed at the end. */
void http_stream_start(http_req_t *req, int status, const http_header_t *headers, size_t nheaders);
void http_stream_write(http_req_t *req, str_t chunk);
void http_stream_end(http_req_t *req);

/* Per-server counters for /metrics, as copied by http_server_stats (from any thread). */
typedef struct {
    uint64_t requests_by_class[6]; /* index status/100 (1xx..5xx), [0] unused */
    /* NOT cumulative: [i] counts requests with bounds[i-1] < duration <= bounds[i]
     * (i < HTTP_LATENCY_NBUCKETS), [HTTP_LATENCY_NBUCKETS] those slower than the last
     * bound. A Prometheus exporter sums them up. Duration: request line → last byte
     * written. */
    uint64_t latency_buckets[12];
    uint64_t latency_sum_us;
    uint64_t latency_count;
    uint64_t connections_open; /* connection structs alive (accepted, not yet freed) */
} http_stats_t;

/* Upper bounds in µs: 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000,
 * 250000. */
#define HTTP_LATENCY_NBUCKETS 11
extern const uint64_t HTTP_LATENCY_BOUNDS_US[HTTP_LATENCY_NBUCKETS];

void http_server_stats(const http_server_t *srv, http_stats_t *out);

#endif
