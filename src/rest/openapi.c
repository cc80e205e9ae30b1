/*
 * Swagger 2.0 document for one exposed schema, in the shape PostgREST serves at "/":
 * a path per relation (and per function under /rpc/), a definition per relation with its
 * columns, PostgreSQL types as formats, comments as descriptions.
 */
#include <string.h>

#include "rest/rest.h"

static bool type_is(str_t t, const char *name) { return str_eq(t, str_from_cstr(name)); }

static const char *json_type(str_t t)
{
    if (t.len > 2 && t.ptr[t.len - 2] == '[' && t.ptr[t.len - 1] == ']') return "array";
    if (type_is(t, "smallint") || type_is(t, "integer") || type_is(t, "bigint")) return "integer";
    if (type_is(t, "real") || type_is(t, "double precision") || str_starts_with(t, STR_LIT("numeric")))
        return "number";
    if (type_is(t, "boolean")) return "boolean";
    if (type_is(t, "json") || type_is(t, "jsonb")) return NULL; /* any JSON value */
    return "string";
}

static void write_column(core_buf_t *b, const db_table_t *t, const db_column_t *c)
{
    core_buf_append_json(b, c->name);
    core_buf_append_cstr(b, ":{");
    if (c->default_expr.ptr) {
        core_buf_append_cstr(b, "\"default\":");
        core_buf_append_json(b, c->default_expr);
        core_buf_append_char(b, ',');
    }
    if (c->description.ptr || c->is_pk) {
        core_buf_t d;
        core_buf_init(&d, 1u << 20);
        if (c->description.ptr) core_buf_append_str(&d, c->description);
        if (c->is_pk) core_buf_append_cstr(&d, c->description.ptr ? "\n\nNote:\nThis is a Primary Key.<pk/>"
                                                                    : "Note:\nThis is a Primary Key.<pk/>");
        core_buf_append_cstr(b, "\"description\":");
        core_buf_append_json(b, core_buf_str(&d));
        core_buf_append_char(b, ',');
        core_buf_free(&d);
    }
    (void)t;
    core_buf_append_cstr(b, "\"format\":");
    core_buf_append_json(b, c->type);
    const char *jt = json_type(c->type);
    if (jt) {
        core_buf_appendf(b, ",\"type\":\"%s\"", jt);
        if (!strcmp(jt, "array")) {
            str_t elem = {c->type.ptr, c->type.len - 2};
            const char *et = json_type(elem);
            core_buf_appendf(b, ",\"items\":{\"type\":\"%s\"}", et ? et : "string");
        }
    }
    core_buf_append_char(b, '}');
}

static void write_definition(core_buf_t *b, const db_table_t *t)
{
    core_buf_append_json(b, t->name);
    core_buf_append_cstr(b, ":{");
    if (t->description.ptr) {
        core_buf_append_cstr(b, "\"description\":");
        core_buf_append_json(b, t->description);
        core_buf_append_char(b, ',');
    }
    core_buf_append_cstr(b, "\"properties\":{");
    for (size_t i = 0; i < t->ncolumns; i++) {
        if (i) core_buf_append_char(b, ',');
        write_column(b, t, &t->columns[i]);
    }
    core_buf_append_cstr(b, "},\"type\":\"object\"");
    size_t nreq = 0;
    for (size_t i = 0; i < t->ncolumns; i++) {
        const db_column_t *c = &t->columns[i];
        if (c->nullable || c->default_expr.ptr) continue;
        core_buf_append_cstr(b, nreq++ ? "," : ",\"required\":[");
        core_buf_append_json(b, c->name);
    }
    if (nreq) core_buf_append_char(b, ']');
    core_buf_append_char(b, '}');
}

/* Every relation of `schema` as a JSON Schema object, comma-separated (2.0 definitions and
 * 3.1 components/schemas share them). */
static void write_definitions(core_buf_t *b, const db_schema_t *s, str_t schema)
{
    bool first = true;
    for (size_t i = 0; i < s->ntables; i++) {
        const db_table_t *t = &s->tables[i];
        if (!str_eq(t->schema, schema)) continue;
        if (!first) core_buf_append_char(b, ',');
        first = false;
        write_definition(b, t);
    }
}

static void write_ref(core_buf_t *b, const char *param)
{
    core_buf_appendf(b, "{\"$ref\":\"#/parameters/%s\"}", param);
}

static void write_path(core_buf_t *b, const db_table_t *t)
{
    core_buf_t p;
    core_buf_init(&p, 4096);
    core_buf_append_char(&p, '/');
    core_buf_append_str(&p, t->name);
    core_buf_append_json(b, core_buf_str(&p));
    core_buf_free(&p);
    core_buf_append_cstr(b, ":{\"get\":{\"parameters\":[");
    for (size_t i = 0; i < t->ncolumns; i++) {
        core_buf_append_cstr(b, "{\"$ref\":");
        core_buf_t r;
        core_buf_init(&r, 4096);
        core_buf_append_cstr(&r, "#/parameters/rowFilter.");
        core_buf_append_str(&r, t->name);
        core_buf_append_char(&r, '.');
        core_buf_append_str(&r, t->columns[i].name);
        core_buf_append_json(b, core_buf_str(&r));
        core_buf_free(&r);
        core_buf_append_cstr(b, "},");
    }
    static const char *const common[] = {"select", "order", "range", "rangeUnit", "offset", "limit", "preferCount"};
    for (size_t i = 0; i < sizeof(common) / sizeof(common[0]); i++) {
        if (i) core_buf_append_char(b, ',');
        write_ref(b, common[i]);
    }
    core_buf_append_cstr(b, "],\"responses\":{\"200\":{\"description\":\"OK\",\"schema\":{\"items\":{\"$ref\":");
    core_buf_t r;
    core_buf_init(&r, 4096);
    core_buf_append_cstr(&r, "#/definitions/");
    core_buf_append_str(&r, t->name);
    core_buf_append_json(b, core_buf_str(&r));
    core_buf_free(&r);
    core_buf_append_cstr(b, "},\"type\":\"array\"}},\"206\":{\"description\":\"Partial Content\"}},\"tags\":[");
    core_buf_append_json(b, t->name);
    core_buf_append_cstr(b, "]");
    if (t->description.ptr) {
        core_buf_append_cstr(b, ",\"summary\":");
        core_buf_append_json(b, t->description);
    }
    core_buf_append_cstr(b, "}}");
}

static void write_row_filters(core_buf_t *b, const db_table_t *t, bool *first)
{
    for (size_t i = 0; i < t->ncolumns; i++) {
        const db_column_t *c = &t->columns[i];
        if (!*first) core_buf_append_char(b, ',');
        *first = false;
        core_buf_t k;
        core_buf_init(&k, 4096);
        core_buf_append_cstr(&k, "rowFilter.");
        core_buf_append_str(&k, t->name);
        core_buf_append_char(&k, '.');
        core_buf_append_str(&k, c->name);
        core_buf_append_json(b, core_buf_str(&k));
        core_buf_free(&k);
        core_buf_append_cstr(b, ":{\"in\":\"query\",\"name\":");
        core_buf_append_json(b, c->name);
        core_buf_append_cstr(b, ",\"required\":false,\"type\":\"string\",\"format\":");
        core_buf_append_json(b, c->type);
        core_buf_append_char(b, '}');
    }
}

void rest_openapi_write(core_buf_t *b, const db_schema_t *s, str_t schema, const core_config_t *cfg,
                        str_t host)
{
    core_buf_append_cstr(b, "{\"swagger\":\"2.0\",\"info\":{\"title\":\"Strata API\","
                            "\"description\":\"PostgREST-compatible API served by Strata\","
                            "\"version\":\"0.1.0\"},");
    if (cfg->openapi_server_proxy_uri) {
        core_buf_append_cstr(b, "\"host\":");
        core_buf_append_json(b, str_from_cstr(cfg->openapi_server_proxy_uri));
        core_buf_append_char(b, ',');
    } else if (host.len) {
        core_buf_append_cstr(b, "\"host\":");
        core_buf_append_json(b, host);
        core_buf_append_char(b, ',');
    }
    core_buf_append_cstr(b, "\"basePath\":\"/\",\"schemes\":[\"http\"],"
                            "\"consumes\":[\"application/json\",\"application/vnd.pgrst.object+json\",\"text/csv\"],"
                            "\"produces\":[\"application/json\",\"application/vnd.pgrst.object+json\",\"text/csv\"],"
                            "\"paths\":{\"/\":{\"get\":{\"produces\":[\"application/openapi+json\",\"application/json\"],"
                            "\"responses\":{\"200\":{\"description\":\"OK\"}},\"summary\":\"OpenAPI description (this document)\","
                            "\"tags\":[\"Introspection\"]}}");
    for (size_t i = 0; i < s->ntables; i++) {
        const db_table_t *t = &s->tables[i];
        if (!str_eq(t->schema, schema)) continue;
        core_buf_append_char(b, ',');
        write_path(b, t);
    }
    core_buf_append_cstr(b, "},\"definitions\":{");
    write_definitions(b, s, schema);
    core_buf_append_cstr(b, "},\"parameters\":{"
        "\"preferCount\":{\"name\":\"Prefer\",\"description\":\"Preference\",\"required\":false,\"in\":\"header\",\"type\":\"string\",\"enum\":[\"count=none\",\"count=exact\"]},"
        "\"select\":{\"name\":\"select\",\"description\":\"Filtering Columns\",\"required\":false,\"in\":\"query\",\"type\":\"string\"},"
        "\"order\":{\"name\":\"order\",\"description\":\"Ordering\",\"required\":false,\"in\":\"query\",\"type\":\"string\"},"
        "\"range\":{\"name\":\"Range\",\"description\":\"Limiting and Pagination\",\"required\":false,\"in\":\"header\",\"type\":\"string\"},"
        "\"rangeUnit\":{\"name\":\"Range-Unit\",\"description\":\"Limiting and Pagination\",\"required\":false,\"default\":\"items\",\"in\":\"header\",\"type\":\"string\"},"
        "\"offset\":{\"name\":\"offset\",\"description\":\"Limiting and Pagination\",\"required\":false,\"in\":\"query\",\"type\":\"string\"},"
        "\"limit\":{\"name\":\"limit\",\"description\":\"Limiting and Pagination\",\"required\":false,\"in\":\"query\",\"type\":\"string\"}");
    bool first = false; /* the fixed parameters above come first */
    for (size_t i = 0; i < s->ntables; i++)
        if (str_eq(s->tables[i].schema, schema)) write_row_filters(b, &s->tables[i], &first);
    core_buf_append_cstr(b, "}}");
}

/* ---- OpenAPI 3.1 --------------------------------------------------------------------------- */

static void write_json_path(core_buf_t *b, const char *prefix, str_t name)
{
    core_buf_t p;
    core_buf_init(&p, 4096);
    core_buf_append_cstr(&p, prefix);
    core_buf_append_str(&p, name);
    core_buf_append_json(b, core_buf_str(&p));
    core_buf_free(&p);
}

static void write_ref31(core_buf_t *b, const char *kind, str_t name)
{
    core_buf_append_cstr(b, "{\"$ref\":");
    core_buf_t p;
    core_buf_init(&p, 4096);
    core_buf_appendf(&p, "#/components/%s/", kind);
    core_buf_append_str(&p, name);
    core_buf_append_json(b, core_buf_str(&p));
    core_buf_free(&p);
    core_buf_append_char(b, '}');
}

static void write_op31(core_buf_t *b, const db_table_t *t, const char *verb, bool body, const char *ok)
{
    core_buf_appendf(b, "\"%s\":{\"tags\":[", verb);
    core_buf_append_json(b, t->name);
    core_buf_append_cstr(b, "],\"parameters\":[{\"$ref\":\"#/components/parameters/select\"}");
    if (strcmp(verb, "post") != 0)
        core_buf_append_cstr(b, ",{\"$ref\":\"#/components/parameters/order\"},{\"$ref\":\"#/components/parameters/limit\"},"
                                "{\"$ref\":\"#/components/parameters/offset\"}");
    core_buf_append_cstr(b, ",{\"$ref\":\"#/components/parameters/prefer\"}]");
    if (body) {
        core_buf_append_cstr(b, ",\"requestBody\":{\"content\":{\"application/json\":{\"schema\":{\"oneOf\":[");
        write_ref31(b, "schemas", t->name);
        core_buf_append_cstr(b, ",{\"type\":\"array\",\"items\":");
        write_ref31(b, "schemas", t->name);
        core_buf_append_cstr(b, "}]}}}}");
    }
    core_buf_appendf(b, ",\"responses\":{\"%s\":{\"description\":\"OK\",\"content\":{\"application/json\":{\"schema\":"
                        "{\"type\":\"array\",\"items\":", ok);
    write_ref31(b, "schemas", t->name);
    core_buf_append_cstr(b, "}}}},\"default\":{\"$ref\":\"#/components/responses/error\"}}}");
}

void rest_openapi31_write(core_buf_t *b, const db_schema_t *s, str_t schema, const core_config_t *cfg, str_t host)
{
    core_buf_append_cstr(b, "{\"openapi\":\"3.1.0\",\"info\":{\"title\":\"Strata API\","
                            "\"description\":\"PostgREST-compatible API served by Strata\",\"version\":\"0.1.0\"},"
                            "\"servers\":[{\"url\":");
    if (cfg->openapi_server_proxy_uri) core_buf_append_json(b, str_from_cstr(cfg->openapi_server_proxy_uri));
    else if (host.len) {
        core_buf_t u;
        core_buf_init(&u, 4096);
        core_buf_append_cstr(&u, "http://");
        core_buf_append_str(&u, host);
        core_buf_append_json(b, core_buf_str(&u));
        core_buf_free(&u);
    } else core_buf_append_cstr(b, "\"/\"");
    core_buf_append_cstr(b, "}],\"paths\":{");
    bool first = true;
    for (size_t i = 0; i < s->ntables; i++) {
        const db_table_t *t = &s->tables[i];
        if (!str_eq(t->schema, schema)) continue;
        if (!first) core_buf_append_char(b, ',');
        first = false;
        write_json_path(b, "/", t->name);
        core_buf_append_cstr(b, ":{");
        if (t->description.ptr) {
            core_buf_append_cstr(b, "\"description\":");
            core_buf_append_json(b, t->description);
            core_buf_append_char(b, ',');
        }
        write_op31(b, t, "get", false, "200");
        if (t->insertable) {
            core_buf_append_char(b, ',');
            write_op31(b, t, "post", true, "201");
            core_buf_append_char(b, ',');
            write_op31(b, t, "patch", true, "200");
            core_buf_append_char(b, ',');
            write_op31(b, t, "delete", false, "200");
        }
        core_buf_append_char(b, '}');
    }
    for (size_t i = 0; i < s->nfuncs; i++) {
        const db_func_t *f = &s->funcs[i];
        if (!str_eq(f->schema, schema)) continue;
        if (i > 0 && str_eq(s->funcs[i - 1].name, f->name) && str_eq(s->funcs[i - 1].schema, f->schema)) continue;
        if (!first) core_buf_append_char(b, ',');
        first = false;
        write_json_path(b, "/rpc/", f->name);
        core_buf_append_cstr(b, ":{\"post\":{\"tags\":[\"(rpc)\"],\"summary\":");
        core_buf_append_json(b, f->name);
        if (f->description.ptr) {
            core_buf_append_cstr(b, ",\"description\":");
            core_buf_append_json(b, f->description);
        }
        core_buf_append_cstr(b, ",\"requestBody\":{\"content\":{\"application/json\":{\"schema\":{\"type\":\"object\",\"properties\":{");
        size_t k = 0;
        for (size_t p = 0; p < f->nparams; p++) {
            const db_func_param_t *pp = &f->params[p];
            if ((pp->mode != 'i' && pp->mode != 'b' && pp->mode != 'v') || !pp->name.len) continue;
            if (k++) core_buf_append_char(b, ',');
            core_buf_append_json(b, pp->name);
            core_buf_append_cstr(b, ":{\"format\":");
            core_buf_append_json(b, pp->type);
            const char *jt = json_type(pp->type);
            if (jt) core_buf_appendf(b, ",\"type\":\"%s\"", jt);
            core_buf_append_char(b, '}');
        }
        core_buf_append_cstr(b, "}");
        size_t r = 0;
        for (size_t p = 0; p < f->nparams; p++) {
            const db_func_param_t *pp = &f->params[p];
            if ((pp->mode != 'i' && pp->mode != 'b' && pp->mode != 'v') || !pp->name.len || pp->has_default) continue;
            core_buf_append_cstr(b, r++ ? "," : ",\"required\":[");
            core_buf_append_json(b, pp->name);
        }
        if (r) core_buf_append_char(b, ']');
        core_buf_append_cstr(b, "}}}},\"responses\":{\"200\":{\"description\":\"OK\"},\"default\":{\"$ref\":\"#/components/responses/error\"}}}}");
    }
    core_buf_append_cstr(b, "},\"components\":{\"schemas\":{");
    write_definitions(b, s, schema);
    core_buf_append_cstr(b, "},\"parameters\":{"
        "\"select\":{\"name\":\"select\",\"in\":\"query\",\"description\":\"Columns and embedded resources\",\"schema\":{\"type\":\"string\"}},"
        "\"order\":{\"name\":\"order\",\"in\":\"query\",\"description\":\"Ordering\",\"schema\":{\"type\":\"string\"}},"
        "\"limit\":{\"name\":\"limit\",\"in\":\"query\",\"schema\":{\"type\":\"integer\",\"minimum\":0}},"
        "\"offset\":{\"name\":\"offset\",\"in\":\"query\",\"schema\":{\"type\":\"integer\",\"minimum\":0}},"
        "\"prefer\":{\"name\":\"Prefer\",\"in\":\"header\",\"schema\":{\"type\":\"string\"}}},"
        "\"responses\":{\"error\":{\"description\":\"Error\",\"content\":{\"application/json\":{\"schema\":{\"type\":\"object\","
        "\"properties\":{\"code\":{\"type\":\"string\"},\"message\":{\"type\":\"string\"},\"details\":{\"type\":[\"string\",\"null\"]},"
        "\"hint\":{\"type\":[\"string\",\"null\"]}}}}}}}}}");
}
