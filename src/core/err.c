/* PostgREST's error body {code, message, details, hint} (STYLE rule 8). */
#include <stdio.h>
#include <string.h>

#include "core.h"

void core_err_write_json(core_buf_t *b, const core_err_t *e)
{
    core_buf_append_cstr(b, "{\"code\":");
    core_buf_append_json_or_null(b, str_from_cstr(e->code));
    core_buf_append_cstr(b, ",\"details\":");
    core_buf_append_json_or_null(b, e->details);
    core_buf_append_cstr(b, ",\"hint\":");
    core_buf_append_json_or_null(b, e->hint);
    core_buf_append_cstr(b, ",\"message\":");
    core_buf_append_json_or_null(b, e->message);
    core_buf_append_char(b, '}');
}

core_err_t core_err_make(int status, const char *code, const char *message, str_t details)
{
    core_err_t e = {0};
    e.status = status;
    e.code = code;
    e.message = str_from_cstr(message);
    e.details = details;
    return e;
}

void core_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    if (n < 0) err[0] = '\0';
}

const char *core_sample(str_t v, char *out, size_t outlen)
{
    size_t max = outlen - 4, j = 0; /* room for "..." and the NUL */
    for (size_t i = 0; i < v.len && j < max; i++) {
        unsigned char c = (unsigned char)v.ptr[i];
        out[j++] = (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') ? '?' : (char)c;
    }
    if (v.len > max) {
        memcpy(out + j, "...", 3);
        j += 3;
    }
    out[j] = '\0';
    return out;
}
