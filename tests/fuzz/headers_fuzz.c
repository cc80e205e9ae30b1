/* libFuzzer target: the request-header parsers (Prefer, Range, Accept, Cookie). The input is
 * split at NUL bytes into the header values. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "rest/rest_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 16 * 1024) return 0;
    str_t parts[4] = {STR_NULL, STR_NULL, STR_NULL, STR_NULL};
    size_t start = 0, k = 0;
    for (size_t i = 0; i <= size && k < 4; i++) {
        if (i < size && data[i] != 0) continue;
        parts[k++] = (str_t){(const char *)data + start, i - start};
        start = i + 1;
    }
    http_header_t h[2] = {{STR_LIT("Prefer"), parts[0]}, {STR_LIT("prefer"), parts[1]}};
    http_req_t req;
    memset(&req, 0, sizeof(req));
    req.headers = h;
    req.nheaders = parts[1].ptr ? 2 : 1;
    rest_prefer_t p;
    rest_prefer_parse(&req, &p);
    long lo = 0, hi = 0;
    (void)rest_parse_range(parts[0], &lo, &hi);
    (void)rest_negotiate(parts[2], size % 2 == 0);
    (void)rest_negotiate(parts[0], false);
    /* Cookie → request.cookies: must always be valid JSON-ish output, never a crash. */
    core_arena_t *a = core_arena_create(4096);
    if (a) {
        http_header_t ck[1] = {{STR_LIT("Cookie"), parts[3].ptr ? parts[3] : parts[0]}};
        http_req_t creq;
        memset(&creq, 0, sizeof(creq));
        creq.arena = a;
        creq.headers = ck;
        creq.nheaders = 1;
        const char *j = rest_cookies_json(&creq);
        if (j && j[0] != '{') __builtin_trap();
        core_arena_destroy(a);
    }
    return 0;
}
