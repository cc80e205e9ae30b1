#include "rest/rest.h"
#include "test.h"

static core_arena_t *A;

static rest_query_t parse_ok(const char *qs)
{
    rest_query_t q;
    core_err_t e = {0};
    int rc = rest_parse_query(A, str_from_cstr(qs), &q, &e);
    if (rc != CORE_OK) fprintf(stderr, "parse of %s failed: %.*s\n", qs, STR_FMT(e.message));
    CHECK_INT(rc, CORE_OK);
    return q;
}

static core_err_t parse_bad(const char *qs)
{
    rest_query_t q;
    core_err_t e = {0};
    int rc = rest_parse_query(A, str_from_cstr(qs), &q, &e);
    if (rc != CORE_EINVAL) fprintf(stderr, "expected %s to fail\n", qs);
    CHECK_INT(rc, CORE_EINVAL);
    CHECK_INT(e.status, 400);
    return e;
}

static void test_basic(void)
{
    rest_query_t q = parse_ok("select=id,title&id=eq.5&order=title.desc.nullslast,id&limit=10&offset=20");
    CHECK_INT(q.nselect, 2);
    CHECK_STR(q.select[0].name, "id");
    CHECK_STR(q.select[1].name, "title");
    CHECK_INT(q.nfilters, 1);
    CHECK_STR(q.filters[0].column, "id");
    CHECK_INT(q.filters[0].op, REST_OP_EQ);
    CHECK_STR(q.filters[0].value, "5");
    CHECK_INT(q.norder, 2);
    CHECK_STR(q.order[0].column, "title");
    CHECK(q.order[0].desc);
    CHECK_INT(q.order[0].nulls, 2);
    CHECK_STR(q.order[1].column, "id");
    CHECK(!q.order[1].desc);
    CHECK_INT(q.limit, 10);
    CHECK_INT(q.offset, 20);
}

static void test_select_forms(void)
{
    rest_query_t q = parse_ok("select=name:title,price::text,*,author(name,born),tags!book_tags(*)");
    CHECK_INT(q.nselect, 5);
    CHECK_STR(q.select[0].alias, "name");
    CHECK_STR(q.select[0].name, "title");
    CHECK_STR(q.select[1].name, "price");
    CHECK_STR(q.select[1].cast, "text");
    CHECK(q.select[2].star);
    CHECK(q.select[3].is_embed);
    CHECK_STR(q.select[3].name, "author");
    CHECK_INT(q.select[3].nchildren, 2);
    CHECK_STR(q.select[4].hint, "book_tags");
    q = parse_ok("select=");
    CHECK_INT(q.nselect, 0);
}

static void test_filters(void)
{
    rest_query_t q = parse_ok("a=not.eq.1&b=in.(1,%222,3%22,x)&c=is.null&d=like.*ab*&e=fts(english).cat&f=eq(any).{1,2}");
    CHECK_INT(q.nfilters, 6);
    CHECK(q.filters[0].negate);
    CHECK_INT(q.filters[1].op, REST_OP_IN);
    CHECK_INT(q.filters[1].nlist, 3);
    CHECK_STR(q.filters[1].list[1], "2,3");
    CHECK_INT(q.filters[2].op, REST_OP_IS);
    CHECK_STR(q.filters[3].value, "*ab*");
    CHECK_STR(q.filters[4].lang, "english");
    CHECK_INT(q.filters[5].quant, REST_QUANT_ANY);
    CHECK_INT(q.filters[5].nlist, 2);
    q = parse_ok("title=eq.hello+world&x=eq.a%20b");
    CHECK_STR(q.filters[0].value, "hello world");
    CHECK_STR(q.filters[1].value, "a b");
    q = parse_ok("name=eq.\"quoted,value\"");
    CHECK_STR(q.filters[0].value, "quoted,value");
}

static void test_logic(void)
{
    rest_query_t q = parse_ok("or=(a.eq.1,and(b.gt.2,c.is.null),not.or(d.eq.x,e.lt.3))");
    CHECK_INT(q.nlogic, 1);
    rest_logic_t *l = q.logic[0];
    CHECK(!l->is_and);
    CHECK_INT(l->nconds, 3);
    CHECK(!l->conds[0].is_logic);
    CHECK_STR(l->conds[0].filter.column, "a");
    CHECK(l->conds[1].is_logic);
    CHECK(l->conds[1].logic->is_and);
    CHECK_INT(l->conds[1].logic->nconds, 2);
    CHECK(l->conds[2].logic->negate);
    q = parse_ok("not.and=(a.eq.1,b.eq.2)");
    CHECK(q.logic[0]->negate);
    CHECK(q.logic[0]->is_and);
}

static void test_errors(void)
{
    core_err_t e = parse_bad("id=xx.1");
    CHECK_STR(str_from_cstr(e.code), "PGRST100");
    parse_bad("id=eq");
    parse_bad("limit=-1");
    parse_bad("limit=abc");
    parse_bad("offset=1x");
    parse_bad("id=is.maybe");
    parse_bad("id=in.1,2");
    parse_bad("or=a.eq.1");
    parse_bad("or=(a)");
    parse_bad("x=eq.%zz");
    parse_bad("x=eq.%00");
    parse_bad("x=eq.%4");
    parse_bad("select=a::text;drop");
    parse_bad("select=a(b");
    parse_bad("order=a.sideways.up");
    parse_bad("select=a&select=b");
    parse_bad("id=eq(maybe).1");
    /* deep nesting is refused, not recursed without bound */
    char deep[4096] = "or=(";
    size_t n = 4;
    for (int i = 0; i < 100; i++) {
        memcpy(deep + n, "and(", 4);
        n += 4;
    }
    memcpy(deep + n, "a.eq.1", 6);
    n += 6;
    for (int i = 0; i < 101; i++) deep[n++] = ')';
    deep[n] = '\0';
    parse_bad(deep);
}

static void test_json_paths(void)
{
    rest_query_t q = parse_ok("select=x:data->a->>b::int,data->0,data->>-1&data->c->>d=eq.1&order=data->>e.desc");
    CHECK_INT(q.nselect, 3);
    CHECK_STR(q.select[0].alias, "x");
    CHECK_STR(q.select[0].name, "data");
    CHECK_INT(q.select[0].njson, 2);
    CHECK_STR(q.select[0].json[0].key, "a");
    CHECK(!q.select[0].json[0].text);
    CHECK_STR(q.select[0].json[1].key, "b");
    CHECK(q.select[0].json[1].text);
    CHECK_STR(q.select[0].cast, "int");
    CHECK(q.select[1].json[0].index);
    CHECK(q.select[2].json[0].index);
    CHECK_STR(q.select[2].json[0].key, "-1");
    CHECK_STR(q.filters[0].column, "data");
    CHECK_INT(q.filters[0].njson, 2);
    CHECK_STR(q.order[0].column, "data");
    CHECK_STR(q.order[0].json[0].key, "e");
    CHECK(q.order[0].desc);
    /* "23-xy" is a key, not an index; "--3" is an error */
    q = parse_ok("select=data->23-xy");
    CHECK(!q.select[0].json[0].index);
    parse_bad("select=data->>--34");
    parse_bad("select=data->");
    parse_bad("select=->a");
}

static void test_spreads_aggregates(void)
{
    rest_query_t q = parse_ok("select=title,...publishers(name),chapters(words.sum()),count(),total:words::bigint.sum()::text");
    CHECK_INT(q.nselect, 5);
    CHECK(q.select[1].spread);
    CHECK(q.select[1].is_embed);
    CHECK_STR(q.select[1].name, "publishers");
    CHECK_INT(q.select[2].children[0].agg, REST_AGG_SUM);
    CHECK_INT(q.select[3].agg, REST_AGG_COUNT);
    CHECK_INT(q.select[3].name.len, 0);
    CHECK_INT(q.select[4].agg, REST_AGG_SUM);
    CHECK_STR(q.select[4].alias, "total");
    CHECK_STR(q.select[4].name, "words");
    CHECK_STR(q.select[4].cast, "bigint");
    CHECK_STR(q.select[4].agg_cast, "text");
    CHECK(q.aggregates);
    q = parse_ok("select=discount(*)"); /* an embed whose name ends in "count" */
    CHECK(q.select[0].is_embed);
    CHECK(!q.aggregates);
    q = parse_ok("order=publishers(name).desc,id");
    CHECK_STR(q.order[0].rel, "publishers");
    CHECK_STR(q.order[0].column, "name");
    CHECK(q.order[0].desc);
    parse_bad("select=...name");
    parse_bad("select=words.sum()x");
}

int main(void)
{
    A = core_arena_create(4096);
    if (!A) return 1;
    test_basic();
    test_select_forms();
    test_filters();
    test_logic();
    test_errors();
    test_json_paths();
    test_spreads_aggregates();
    core_arena_destroy(A);
    TEST_MAIN_END();
}
