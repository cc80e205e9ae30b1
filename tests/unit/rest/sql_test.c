#include "rest/rest_int.h"
#include "test.h"

static core_arena_t *A;
static db_column_t COLS[] = {
    {.name = {"id", 2}, .type = {"bigint", 6}, .is_pk = true},
    {.name = {"title", 5}, .type = {"text", 4}, .nullable = true},
    {.name = {"we\"ird", 6}, .type = {"text", 4}, .nullable = true},
};
static db_table_t T = {.schema = {"public", 6}, .name = {"books", 5}, .kind = 'r', .columns = COLS, .ncolumns = 3};

static rest_stmt_t build(const char *qs, int count, long max_rows, int expect_rc, core_err_t *e)
{
    rest_query_t q;
    rest_stmt_t st = {0};
    *e = (core_err_t){0};
    CHECK_INT(rest_parse_query(A, str_from_cstr(qs), &q, e), CORE_OK);
    CHECK_INT(rest_sql_read(A, NULL, &T, &q, count, max_rows, &st, e), expect_rc);
    return st;
}

static void test_read(void)
{
    core_err_t e;
    rest_stmt_t st = build("select=id,t:title&id=gt.3&title=like.*x*&order=id.desc&limit=5&offset=10", 0, -1, CORE_OK, &e);
    CHECK_STR(str_from_cstr(st.sql),
              "select coalesce(json_agg(_s), '[]')::text, count(*), null::bigint" REST_SQL_GUC_COLS " from (select \"id\", "
              "\"title\" as \"t\" from \"public\".\"books\" as pgrst_0 where \"id\" > $1 and \"title\" like $2 order by "
              "pgrst_0.\"id\" desc limit $3::bigint offset $4::bigint) _s");
    CHECK_INT(st.nparams, 4);
    CHECK_STR(str_from_cstr(st.params[1]), "%x%");
    CHECK_STR(str_from_cstr(st.params[2]), "5");

    st = build("id=in.(1,2,\"a\\\"b\")&or=(id.eq.1,title.is.null)", REST_COUNT_EXACT, 100, CORE_OK, &e);
    CHECK_STR(str_from_cstr(st.sql),
              "select coalesce(json_agg(_s), '[]')::text, count(*), (select count(*) from \"public\".\"books\" "
              "as pgrst_0 where \"id\" = any($1) and (\"id\" = $2 or \"title\" is null))" REST_SQL_GUC_COLS " from (select pgrst_0.* from "
              "\"public\".\"books\" as pgrst_0 where \"id\" = any($1) and (\"id\" = $2 or \"title\" is null) limit "
              "$3::bigint) _s");
    CHECK_STR(str_from_cstr(st.params[0]), "{\"1\",\"2\",\"a\\\"b\"}");

    /* identifiers are quoted with embedded quotes doubled */
    {
        rest_query_t q; /* a bare quote is not a valid name */
        CHECK_INT(rest_parse_query(A, STR_LIT("select=we%22ird"), &q, &e), CORE_EINVAL);
    }
    st = build("select=%22we%5C%22ird%22", 0, -1, CORE_OK, &e);
    CHECK(st.sql && strstr(st.sql, "\"we\"\"ird\"") != NULL);
}

static void test_planned_count(void)
{
    core_err_t e;
    rest_stmt_t st = build("id=gt.3&limit=2", REST_COUNT_PLANNED, -1, CORE_OK, &e);
    CHECK(st.sql && strstr(st.sql, ", (select strata_meta.plan_rows($2::text, array[$1::text]::text[]))") != NULL);
    CHECK_INT(st.nparams, 3);
    CHECK_STR(str_from_cstr(st.params[1]), "select 1 from \"public\".\"books\" as pgrst_0 where \"id\" > $1");
    st = build("", REST_COUNT_PLANNED, -1, CORE_OK, &e);
    CHECK(st.sql && strstr(st.sql, "strata_meta.plan_rows($1::text, '{}'::text[])") != NULL);
    st = build("id=gt.3", REST_COUNT_ESTIMATED, 100, CORE_OK, &e);
    CHECK(st.sql && strstr(st.sql, "case when pgrst_c.n <= 100 then pgrst_c.n else greatest(pgrst_c.n, strata_meta.plan_rows(") != NULL);
    CHECK(st.sql && strstr(st.sql, "where \"id\" > $1 limit 101) pgrst_l) pgrst_c)") != NULL);
    st = build("id=gt.3", REST_COUNT_ESTIMATED, -1, CORE_OK, &e); /* no db-max-rows: exact */
    CHECK(st.sql && strstr(st.sql, "plan_rows") == NULL && strstr(st.sql, "(select count(*) from") != NULL);
}

static void test_errors(void)
{
    core_err_t e;
    build("select=nope", 0, -1, CORE_EINVAL, &e);
    CHECK_STR(str_from_cstr(e.code), "42703");
    CHECK_STR(e.message, "column books.nope does not exist");
    build("nope=eq.1", 0, -1, CORE_EINVAL, &e);
    build("order=nope", 0, -1, CORE_EINVAL, &e);
    build("select=author(*)", 0, -1, CORE_EINVAL, &e);
    CHECK_INT(e.status, 400);
}

static void test_status_table(void)
{
    CHECK_INT(rest_status_for_sqlstate("23505", "dup", false), 409);
    CHECK_INT(rest_status_for_sqlstate("42501", "denied", false), 401);
    CHECK_INT(rest_status_for_sqlstate("42501", "denied", true), 403);
    CHECK_INT(rest_status_for_sqlstate("42P01", "x", false), 404);
    CHECK_INT(rest_status_for_sqlstate("22023", "role \"x\" does not exist", false), 401);
    CHECK_INT(rest_status_for_sqlstate("22023", "other", false), 400);
    CHECK_INT(rest_status_for_sqlstate("21000", "UPDATE requires a WHERE clause", false), 400);
    CHECK_INT(rest_status_for_sqlstate("21000", "more than one row", false), 500);
    CHECK_INT(rest_status_for_sqlstate("57P01", "", false), 503);
    CHECK_INT(rest_status_for_sqlstate("PT418", "", false), 418);
    CHECK_INT(rest_status_for_sqlstate("P0001", "", false), 400);
    CHECK_INT(rest_status_for_sqlstate("08006", "", false), 503);
    CHECK_INT(rest_status_for_sqlstate("22P02", "", false), 400);
}

int main(void)
{
    A = core_arena_create(4096);
    if (!A) return 1;
    test_read();
    test_errors();
    test_planned_count();
    test_status_table();
    core_arena_destroy(A);
    TEST_MAIN_END();
}
