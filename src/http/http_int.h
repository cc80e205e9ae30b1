/* http internals shared by server.c and its tests: sizes and timings of the connection
 * layer that are not configurable (http_limits_t holds the ones that are). */
#ifndef STRATA_HTTP_INT_H
#define STRATA_HTTP_INT_H

/* Defaults for http_limits_t sizes (also used when a limit is given as 0). */
#define HTTP_DEFAULT_MAX_HEADER_BYTES ((size_t)32 * 1024)
#define HTTP_DEFAULT_MAX_BODY_BYTES ((size_t)16 * 1024 * 1024)

/* The largest max_header_bytes honoured; http_parser's own process-wide cap is raised to
 * this once so that the per-server limit is the one that bites. */
#define HTTP_MAX_HEADER_CEILING ((size_t)64 * 1024 * 1024)

/* Shared per-server read buffer: a connection with nothing pending parses from it. */
#define HTTP_RBUF_SIZE ((size_t)64 * 1024)
/* Per-connection buffer for input that must wait (pipelined requests, bytes received
 * while a request is handled). Must be >= HTTP_RBUF_SIZE: the unparsed tail of one read
 * always fits. When it is full the connection stops reading. */
#define HTTP_PEND_CAP ((size_t)64 * 1024)
/* A stream whose unsent bytes exceed this is read too slowly: the connection is closed. */
#define HTTP_WRITE_QUEUE_MAX ((size_t)4 * 1024 * 1024)
/* Response head (status line + headers) size cap. */
#define HTTP_HEAD_MAX ((size_t)1024 * 1024)
/* After the last answer on a connection: how long and how much input is drained. */
#define HTTP_LINGER_MS 2000u
#define HTTP_LINGER_MAX_BYTES ((size_t)1024 * 1024)
/* Retry delay after running out of memory while accepting. */
#define HTTP_ACCEPT_RETRY_MS 100u
#define HTTP_BACKLOG 511

#endif
