/* libFuzzer target: the query-string parser and the read-statement builder behind it, over
 * a small schema cache (embeds, spreads, computed fields, JSON paths, aggregates). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "db/schema.h"
#include "fuzz_schema.h"
#include "rest/rest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static db_schema_t *schema(void)
{
    static db_schema_t *s;
    if (!s) {
        char err[256];
        if (db_schema_from_json(FUZZ_SCHEMA_JSON, sizeof(FUZZ_SCHEMA_JSON) - 1, "public", &s, err, sizeof(err)) != 0)
            abort(); /* the fixture itself is broken: not a finding */
    }
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 64 * 1024) return 0;
    db_schema_t *s = schema();
    core_arena_t *a = core_arena_create(4096);
    if (!a) return 0;
    rest_query_t q;
    core_err_t err = {0};
    str_t qs = {(const char *)data, size};
    if (rest_parse_query(a, qs, &q, &err) == CORE_OK) {
        rest_stmt_t st;
        core_err_t e2 = {0};
        const db_table_t *t = &s->tables[size % s->ntables];
        q.csv = (size & 8) != 0;
        (void)rest_sql_read(a, s, t, &q, (int)(size % 3), (long)(size % 7) - 1, &st, &e2);
    }
    core_arena_destroy(a);
    return 0;
}
