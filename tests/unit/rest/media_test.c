#include "rest/rest_int.h"
#include "test.h"

static core_arena_t *A;

static void test_negotiate(void)
{
    CHECK_INT(rest_negotiate(STR_NULL, false), ACCEPT_JSON);
    CHECK_INT(rest_negotiate(STR_LIT("application/vnd.pgrst.array+json;nulls=stripped"), false), ACCEPT_JSON_STRIP);
    CHECK_INT(rest_negotiate(STR_LIT("application/vnd.pgrst.array+json"), false), ACCEPT_JSON);
    CHECK_INT(rest_negotiate(STR_LIT("application/vnd.pgrst.object+json; nulls=stripped"), false), ACCEPT_OBJECT_STRIP);
    CHECK_INT(rest_negotiate(STR_LIT("image/png, text/csv;q=0.5"), false), ACCEPT_CSV);
    CHECK_INT(rest_negotiate(STR_LIT("application/geo+json"), false), ACCEPT_GEOJSON);
    CHECK_INT(rest_negotiate(STR_LIT("application/vnd.pgrst.plan+json; for=\"text/csv\""), false), ACCEPT_PLAN);
    CHECK_INT(rest_negotiate(STR_LIT("text/plain"), false), ACCEPT_TEXT);
    CHECK_INT(rest_negotiate(STR_LIT("image/png"), false), -1);
    CHECK_INT(rest_negotiate(STR_LIT("text/csv"), true), -1);

    rest_plan_t p;
    CHECK_INT(rest_plan_parse(STR_LIT("application/vnd.pgrst.plan"), &p), CORE_OK);
    CHECK(!p.json);
    CHECK_INT(p.for_accept, ACCEPT_JSON);
    CHECK_INT(rest_plan_parse(STR_LIT("text/html, application/vnd.pgrst.plan+json ; for=\"application/vnd.pgrst.object+json;nulls=stripped\" ; options=analyze|wal"), &p), CORE_OK);
    CHECK(p.json && p.analyze && p.wal && !p.verbose);
    CHECK_INT(p.for_accept, ACCEPT_OBJECT_STRIP);
    CHECK_STR(p.for_type, "application/vnd.pgrst.object+json");
    CHECK_INT(rest_plan_parse(STR_LIT("application/vnd.pgrst.plan; options=analyze|nope"), &p), CORE_EINVAL);
    /* what postgrest-js's explain() sends */
    CHECK_INT(rest_plan_parse(STR_LIT("application/vnd.pgrst.plan+text; for=\"text/csv\"; options=;"), &p), CORE_OK);
    CHECK(!p.json && !p.analyze);
    CHECK_INT(p.for_accept, ACCEPT_CSV);
    CHECK_INT(rest_plan_parse(STR_LIT("application/vnd.pgrst.plan; for=\"image/png\""), &p), CORE_EINVAL);
}

static void csv(const char *in, int rc, const char *out)
{
    str_t j = STR_NULL;
    core_err_t e = {0};
    CHECK_INT(rest_csv_to_json(A, str_from_cstr(in), &j, &e), rc);
    if (rc == CORE_OK) CHECK_STR(j, out);
    else CHECK_STR(str_from_cstr(e.code), "PGRST102");
}

static void test_csv(void)
{
    csv("a,b\n1,2\n", CORE_OK, "[{\"a\":\"1\",\"b\":\"2\"}]");
    csv("a,b\r\n1,\r\nNULL,\"NULL\"\r\n", CORE_OK, "[{\"a\":\"1\",\"b\":\"\"},{\"a\":null,\"b\":null}]");
    csv("a\n\"x\"\"y\nz\"\n\n", CORE_OK, "[{\"a\":\"x\\\"y\\nz\"}]");
    csv("a,b", CORE_OK, "[]");
    csv("a,b\n1,2", CORE_OK, "[{\"a\":\"1\",\"b\":\"2\"}]");
    csv("a,b\n1\n", CORE_EINVAL, NULL);
    csv("a,b\n1,2,3\n", CORE_EINVAL, NULL);
    csv("a\n\"open\n", CORE_EINVAL, NULL);
    csv("a\n\"x\"y\n", CORE_EINVAL, NULL);
    csv("a\nx\"y\n", CORE_EINVAL, NULL);
}

static void test_body_agg(void)
{
    rest_query_t q = {0};
    rest_query_set_media(&q, ACCEPT_JSON_STRIP);
    CHECK_STR(str_from_cstr(rest_sql_body_agg(&q)), "coalesce(json_strip_nulls(json_agg(_s)), '[]')::text");
    rest_query_set_media(&q, ACCEPT_JSON);
    CHECK_STR(str_from_cstr(rest_sql_body_agg(&q)), "coalesce(json_agg(_s), '[]')::text");
    CHECK(rest_accept_single(ACCEPT_OBJECT_STRIP) && !rest_accept_single(ACCEPT_JSON_STRIP));
}

int main(void)
{
    A = core_arena_create(4096);
    if (!A) return 1;
    test_negotiate();
    test_csv();
    test_body_agg();
    core_arena_destroy(A);
    TEST_MAIN_END();
}
