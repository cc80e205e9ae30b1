/* JSON log lines on stderr; one write(2) per line so threads never interleave. */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core.h"

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

static void write_line(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w <= 0) return; /* nowhere to report a failing stderr */
        p += w;
        n -= (size_t)w;
    }
}

void core_log_write_raw(const char *p, size_t n) { write_line(p, n); }

void core_log_json_line(str_t json)
{
    char stackbuf[4096];
    if (json.len + 1 <= sizeof(stackbuf)) {
        memcpy(stackbuf, json.ptr, json.len);
        stackbuf[json.len] = '\n';
        write_line(stackbuf, json.len + 1);
    } else {
        core_buf_t b;
        core_buf_init(&b, json.len + 2);
        core_buf_append_str(&b, json);
        core_buf_append_char(&b, '\n');
        if (core_buf_status(&b) == CORE_OK) write_line(b.ptr, b.len);
        core_buf_free(&b);
    }
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
    core_buf_t b;
    core_buf_init(&b, 8192);
    core_buf_appendf(&b, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":", ts, level_names[level]);
    core_buf_append_json(&b, (str_t){msg, mlen});
    core_buf_append_char(&b, '}');
    if (core_buf_status(&b) == CORE_OK) core_log_json_line(core_buf_str(&b));
    core_buf_free(&b);
}
