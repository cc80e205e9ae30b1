/* libFuzzer target: the query-string parser and the read-statement builder behind it. */
#include <stddef.h>
#include <stdint.h>

#include "rest/rest.h"

static db_column_t COLS[] = {
    {.name = {"id", 2}, .type = {"bigint", 6}, .is_pk = true},
    {.name = {"name", 4}, .type = {"text", 4}, .nullable = true},
    {.name = {"tags", 4}, .type = {"text[]", 6}, .nullable = true},
};
static db_table_t TABLE = {.schema = {"public", 6}, .name = {"items", 5}, .kind = 'r', .columns = COLS, .ncolumns = 3};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 64 * 1024) return 0;
    core_arena_t *a = core_arena_create(4096);
    if (!a) return 0;
    rest_query_t q;
    core_err_t err = {0};
    str_t qs = {(const char *)data, size};
    if (rest_parse_query(a, qs, &q, &err) == CORE_OK) {
        rest_stmt_t st;
        core_err_t e2 = {0};
        (void)rest_sql_read(a, NULL, &TABLE, &q, (int)(size % 3), (long)(size % 7) - 1, &st, &e2);
    }
    core_arena_destroy(a);
    return 0;
}
