/*
 * core: the pieces every other module stands on — status codes, the allocation hook,
 * length-carrying strings, request arenas, bounded buffers, PostgREST-shaped errors and
 * logging. Nothing here does I/O except the logger (stderr, through a writer thread).
 */
#ifndef STRATA_CORE_H
#define STRATA_CORE_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CORE_WUR __attribute__((warn_unused_result))
#define CORE_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* Status codes: 0 success, negative failures; CORE_EAGAIN means "incomplete input". */
enum core_status {
    CORE_OK = 0,
    CORE_EAGAIN = -1,
    CORE_ENOMEM = -2,
    CORE_EINVAL = -3,
    CORE_ELIMIT = -4,
    CORE_EIO = -5,
    CORE_ENOTFOUND = -6,
};

/* Internal invariants: checked in debug builds only, never on a release request path. */
#ifdef STRATA_DEBUG
#include <stdio.h>
#include <stdlib.h>
#define DEBUG_CHECK(x)                                                                     \
    do {                                                                                   \
        if (!(x)) {                                                                        \
            fprintf(stderr, "DEBUG_CHECK failed: %s (%s:%d)\n", #x, __FILE__, __LINE__);  \
            abort();                                                                       \
        }                                                                                  \
    } while (0)
#else
#define DEBUG_CHECK(x) ((void)0)
#endif

/* ---- allocation hook ----------------------------------------------------------------
 * Every heap allocation in src/ goes through these so tests can inject failures. They
 * return NULL on failure (never abort). core_free(NULL) is a no-op. */
void *core_malloc(size_t n) CORE_WUR;
void *core_calloc(size_t n, size_t size) CORE_WUR;
void *core_realloc(void *p, size_t n) CORE_WUR;
void core_free(void *p);
char *core_strndup(const char *s, size_t n) CORE_WUR;
/* Test hook: the n-th allocation from now (1-based) and every one after it fails;
 * n <= 0 turns failure injection off. Counts are per process, not per thread. */
void core_alloc_fail_after(long n);

/* ---- strings --------------------------------------------------------------------------
 * A string is a slice: nothing assumes a NUL terminator. ptr may be NULL when len is 0. */
typedef struct {
    const char *ptr;
    size_t len;
} str_t;

#define STR_LIT(s) ((str_t){(s), sizeof(s) - 1})
#define STR_NULL ((str_t){NULL, 0})
#define STR_FMT(s) (int)(s).len, (s).ptr /* printf("%.*s", STR_FMT(s)) */

str_t str_from_cstr(const char *s);
bool str_eq(str_t a, str_t b);
bool str_eq_nocase(str_t a, str_t b);
bool str_starts_with(str_t s, str_t prefix);
/* Index of the first c in s, or -1. */
long str_find_char(str_t s, char c);
/* Parses a non-negative decimal integer with no sign, spaces or overflow; 0 or CORE_EINVAL. */
int str_to_u64(str_t s, uint64_t *out) CORE_WUR;
/* Parses a signed decimal integer that fits in a long; 0 or CORE_EINVAL. */
int str_to_long(str_t s, long *out) CORE_WUR;

/* ---- arena ----------------------------------------------------------------------------
 * A request-scoped pool: allocations live until core_arena_destroy, which also runs the
 * registered cleanups in reverse order. Not thread-safe; one owner at a time. */
typedef struct core_arena core_arena_t;

core_arena_t *core_arena_create(size_t first_block) CORE_WUR;
void core_arena_destroy(core_arena_t *a);
/* 16-byte aligned memory from the arena, or NULL when memory runs out. */
void *core_arena_alloc(core_arena_t *a, size_t n) CORE_WUR;
void *core_arena_zalloc(core_arena_t *a, size_t n) CORE_WUR;
/* A NUL-terminated copy of s (so it may be handed to C APIs), or NULL. */
char *core_arena_strdup(core_arena_t *a, str_t s) CORE_WUR;
/* Registers fn(arg) to run at destroy time. On failure fn is NOT called and the caller
 * still owns arg. */
int core_arena_defer(core_arena_t *a, void (*fn)(void *), void *arg) CORE_WUR;
/* Total bytes handed out (for tests and metrics). */
size_t core_arena_used(const core_arena_t *a);

/* ---- counters shared for metrics ---------------------------------------------------------
 * Written by one thread (a worker's loop), read by another (the admin server): relaxed
 * atomics, which compile to the plain loads and stores of an ordinary counter but keep the
 * cross-thread read well-defined. */
typedef _Atomic uint64_t core_counter_t;
static inline uint64_t core_counter_get(const core_counter_t *c) { return atomic_load_explicit(c, memory_order_relaxed); }
static inline void core_counter_set(core_counter_t *c, uint64_t v) { atomic_store_explicit(c, v, memory_order_relaxed); }
/* Single writer only: a load and a store, not a locked read-modify-write. */
static inline void core_counter_add(core_counter_t *c, uint64_t n) { core_counter_set(c, core_counter_get(c) + n); }

/* ---- bounded buffer -------------------------------------------------------------------
 * Growable byte buffer with a maximum size fixed at init. Appends past the maximum or
 * failing to allocate set a sticky status, so a chain of appends needs one check at the
 * end (core_buf_status). The contents are always NUL-terminated when status is OK. */
typedef struct {
    char *ptr;
    size_t len;
    size_t cap;
    size_t max;
    int status;
} core_buf_t;

void core_buf_init(core_buf_t *b, size_t max);
/* A buffer over caller memory of cap (>= 1) bytes that never grows: an append that would
 * not fit sets CORE_ELIMIT. Not for core_buf_free (the memory is the caller's). */
void core_buf_init_over(core_buf_t *b, char *mem, size_t cap);
void core_buf_free(core_buf_t *b);
void core_buf_reset(core_buf_t *b);
/* Cuts the contents back to len bytes (len <= b->len) and clears a sticky error. */
void core_buf_truncate(core_buf_t *b, size_t len);
void core_buf_append(core_buf_t *b, const void *data, size_t n);
void core_buf_append_str(core_buf_t *b, str_t s);
void core_buf_append_cstr(core_buf_t *b, const char *s);
void core_buf_append_char(core_buf_t *b, char c);
void core_buf_appendf(core_buf_t *b, const char *fmt, ...) CORE_PRINTF(2, 3);
/* Writes v in decimal and a NUL into out (at least 21 bytes); returns the digits' length. */
size_t core_u64_str(char *out, uint64_t v);
/* Appends v in decimal (what "%llu" would write, without printf's machinery). */
void core_buf_append_u64(core_buf_t *b, uint64_t v);
/* Appends s as a JSON string literal, quotes included; invalid UTF-8 becomes U+FFFD. */
void core_buf_append_json(core_buf_t *b, str_t s);
/* Appends s as a JSON string literal, or null when s.ptr is NULL. */
void core_buf_append_json_or_null(core_buf_t *b, str_t s);
static inline int core_buf_status(const core_buf_t *b) { return b->status; }
static inline str_t core_buf_str(const core_buf_t *b) { return (str_t){b->ptr, b->len}; }

/* ---- errors ---------------------------------------------------------------------------
 * PostgREST's error shape. Fields with ptr == NULL are written as null. `log` is detail
 * for the server log only, never sent to clients. */
typedef struct {
    int status; /* HTTP status */
    const char *code;
    str_t message;
    str_t details;
    str_t hint;
    str_t log;
} core_err_t;

/* Appends {"code":..,"message":..,"details":..,"hint":..}. */
void core_err_write_json(core_buf_t *b, const core_err_t *e);
/* Convenience for the common case of a static message and optional details. */
core_err_t core_err_make(int status, const char *code, const char *message, str_t details);

/* One line of error text into err (truncated to errlen, always NUL-terminated); for the
 * startup paths that report "setting: what is wrong". */
void core_errf(char *err, size_t errlen, const char *fmt, ...) CORE_PRINTF(3, 4);
/* A printable, bounded copy of a user value for error text (never the whole value): control
 * bytes, quotes, backslashes and non-ASCII become '?', long values end in "...". outlen >= 8. */
const char *core_sample(str_t v, char *out, size_t outlen);

/* ---- logging --------------------------------------------------------------------------
 * One JSON object per line on stderr. Thread-safe: lines from one call stay contiguous and
 * in call order. Between core_log_writer_start and core_log_writer_stop a caller only copies
 * its bytes into a bounded queue (never blocks on stderr); a writer thread does the write(2)s.
 * Outside that window each call is one blocking write(2). See docs/internals/logging.md. */
enum core_log_level { CORE_LOG_ERROR = 0, CORE_LOG_WARN, CORE_LOG_INFO, CORE_LOG_DEBUG };

void core_log_set_level(int level);
int core_log_level(void);
/* Parses "error"|"warn"|"info"|"debug" (PostgREST's "crit" maps to error). */
int core_log_level_parse(str_t s, int *out) CORE_WUR;
void core_log(int level, const char *fmt, ...) CORE_PRINTF(2, 3);
/* Writes an already-built JSON object (without newline) as one log line. */
void core_log_json_line(str_t json);
/* Writes complete lines (each ending in '\n'), all together (one write(2) when direct). */
void core_log_write_raw(const char *p, size_t n);
/* Starts the writer thread (main thread, once, before other threads log). Past `cap` queued
 * bytes (0: 4 MiB) new calls are dropped whole and counted; a warn line reports how many once
 * the writer catches up. Returns CORE_OK, or an error and logging stays direct. */
int core_log_writer_start(void) CORE_WUR;
int core_log_writer_start_cap(size_t cap) CORE_WUR;
/* Writes everything queued, joins the thread and returns to direct writes. Waits at most
 * 10 s for a stuck stderr, then returns leaving the thread behind (the process is exiting). */
void core_log_writer_stop(void);
/* Lines lost since the process started: dropped at the cap or failed to write. */
uint64_t core_log_dropped_total(void);

#define LOG_ERROR(...) core_log(CORE_LOG_ERROR, __VA_ARGS__)
#define LOG_WARN(...) core_log(CORE_LOG_WARN, __VA_ARGS__)
#define LOG_INFO(...) core_log(CORE_LOG_INFO, __VA_ARGS__)
#define LOG_DEBUG(...)                                                                     \
    do {                                                                                   \
        if (core_log_level() >= CORE_LOG_DEBUG) core_log(CORE_LOG_DEBUG, __VA_ARGS__);     \
    } while (0)

/* Monotonic clock in nanoseconds; wall clock as an RFC 3339 string into out (>= 32 bytes). */
uint64_t core_now_ns(void);
void core_wallclock_rfc3339(char *out, size_t outlen);

#endif
