/* libFuzzer target: the schema-cache JSON parser (what the catalog query returns). */
#include <stddef.h>
#include <stdint.h>

#include "db/schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 256 * 1024) return 0;
    db_schema_t *s = NULL;
    char err[256];
    if (db_schema_from_json((const char *)data, size, "public,api", &s, err, sizeof(err)) == 0) {
        str_t name = {"novels", 6};
        (void)db_schema_table(s, (str_t){"public", 6}, name);
        size_t n = 0;
        (void)db_schema_funcs(s, (str_t){"public", 6}, name, &n);
        db_schema_unref(s);
    }
    return 0;
}
