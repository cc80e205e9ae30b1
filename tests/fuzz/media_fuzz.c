/* libFuzzer target: Accept negotiation, the plan media type and CSV request bodies. The
 * first byte picks which; the rest is the header value or the body. */
#include <stddef.h>
#include <stdint.h>

#include "rest/rest_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 256 * 1024) return 0;
    core_arena_t *a = core_arena_create(4096);
    if (!a) return 0;
    str_t in = {(const char *)data + 1, size - 1};
    if (data[0] & 1) {
        str_t json;
        core_err_t err = {0};
        (void)rest_csv_to_json(a, in, &json, &err);
    } else {
        rest_plan_t p;
        int k = rest_negotiate(in, (data[0] & 2) != 0);
        if (k == ACCEPT_PLAN) (void)rest_plan_parse(in, &p);
    }
    core_arena_destroy(a);
    return 0;
}
