/* libFuzzer target: the request-header parsers (Prefer, Range, Accept). The input is split
 * at NUL bytes into the three header values. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "rest/rest_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 16 * 1024) return 0;
    str_t parts[3] = {STR_NULL, STR_NULL, STR_NULL};
    size_t start = 0, k = 0;
    for (size_t i = 0; i <= size && k < 3; i++) {
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
    return 0;
}
