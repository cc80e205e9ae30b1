/* PostgREST's error body {code, message, details, hint} (STYLE rule 8). */
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
