/*
 * Writes: POST (insert, bulk insert, upsert), PUT (single-row upsert), PATCH, DELETE.
 *
 * The body reaches PostgreSQL as one json parameter expanded by json_populate_recordset over
 * the table's row type, so C only checks its size and shape (an object or an array of
 * objects with the same keys) and which columns it names. Each write is one statement:
 *
 *   with pgrst_source as (insert/update/delete ... returning "t".*)
 *   select body, count, null, location-key, assertion from (select <select> from pgrst_source) _s
 *
 * Conditions that must abort the transaction (a singular response with other than one
 * row, max-affected exceeded) are checked inside the statement: a failing check casts a
 * marked string to int, PostgreSQL raises 22P02 and rolls everything back, and the handler
 * turns the marked message into PostgREST's error.
 */
#include <jansson.h>
#include <string.h>

#include "rest/rest_int.h"

#define SQL_MAX (1u << 20)
#define ASSERT_MARK "STRATA:"


typedef struct {
    http_req_t *req;
    rest_env_t *env;
    const db_table_t *table;
    rest_prefer_t pref;
    int accept;
    bool is_post, is_put, is_patch, is_delete;
    bool upsert;
} write_call_t;

/* ---- body shape ------------------------------------------------------------------------- */

static int body_error(core_err_t *err, const char *msg, str_t details)
{
    *err = core_err_make(400, "PGRST102", msg, details);
    return CORE_EINVAL;
}

static int column_missing(write_call_t *w, core_err_t *err, str_t name)
{
    *err = core_err_make(400, "PGRST204", NULL, STR_NULL);
    err->message = rest_arena_printf(w->req->arena, "Could not find the '%.*s' column of '%.*s' in the schema cache",
                                     (int)(name.len > 200 ? 200 : name.len), name.ptr, STR_FMT(w->table->name));
    return CORE_EINVAL;
}

/* Converts an application/x-www-form-urlencoded body into a JSON object (string values). */
static int form_to_json(core_arena_t *a, str_t body, str_t *out)
{
    core_buf_t b;
    core_buf_init(&b, (size_t)SQL_MAX * 16);
    core_buf_append_char(&b, '{');
    size_t start = 0, n = 0;
    int rc = CORE_OK;
    for (size_t i = 0; i <= body.len && rc == CORE_OK; i++) {
        if (i < body.len && body.ptr[i] != '&') continue;
        str_t part = {body.ptr + start, i - start};
        start = i + 1;
        if (part.len == 0) continue;
        long eq = str_find_char(part, '=');
        str_t k, v;
        rc = rest_url_decode(a, eq < 0 ? part : (str_t){part.ptr, (size_t)eq}, &k);
        if (rc == CORE_OK) rc = rest_url_decode(a, eq < 0 ? STR_LIT("") : (str_t){part.ptr + eq + 1, part.len - (size_t)eq - 1}, &v);
        if (rc != CORE_OK) break;
        if (n++) core_buf_append_char(&b, ',');
        core_buf_append_json(&b, k);
        core_buf_append_char(&b, ':');
        core_buf_append_json(&b, v);
    }
    core_buf_append_char(&b, '}');
    if (rc == CORE_OK && core_buf_status(&b) != CORE_OK) rc = core_buf_status(&b);
    if (rc == CORE_OK) {
        char *d = core_arena_strdup(a, core_buf_str(&b));
        if (!d) rc = CORE_ENOMEM;
        else *out = (str_t){d, b.len};
    }
    core_buf_free(&b);
    return rc;
}

/* Checks the body's shape and collects the column list (from ?columns= or the keys).
 * *json_array is the body as a JSON array (objects are wrapped) for json_populate_recordset. */
static int shape_body(write_call_t *w, const rest_query_t *q, str_t body, str_t columns_param, str_t **cols,
                      size_t *ncols, size_t *nrows, json_t **root_out, str_t *json_array, core_err_t *err)
{
    core_arena_t *a = w->req->arena;
    json_error_t jerr;
    (void)q;
    json_t *root = json_loadb(body.ptr, body.len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) return body_error(err, "Empty or invalid json", rest_arena_printf(a, "%s", jerr.text));
    *root_out = root;
    bool is_array = json_is_array(root);
    if (!is_array && !json_is_object(root))
        return body_error(err, "Empty or invalid json", STR_LIT("The body must be a JSON object or an array of objects"));
    if (is_array && (w->is_patch || w->is_put) && json_array_size(root) != 1)
        return body_error(err, "Empty or invalid json", STR_LIT("PATCH and PUT take a single object"));
    size_t rows = is_array ? json_array_size(root) : 1;
    json_t *first = is_array ? json_array_get(root, 0) : root;
    for (size_t i = 0; i < rows; i++) {
        json_t *o = is_array ? json_array_get(root, i) : root;
        if (!json_is_object(o)) return body_error(err, "Empty or invalid json", STR_LIT("Every array element must be an object"));
    }
    *nrows = rows;

    if (columns_param.ptr) {
        str_t *list;
        size_t n = 1;
        for (size_t i = 0; i < columns_param.len; i++)
            if (columns_param.ptr[i] == ',') n++;
        list = core_arena_alloc(a, n * sizeof(str_t));
        if (!list) return CORE_ENOMEM;
        size_t k = 0, start = 0;
        for (size_t i = 0; i <= columns_param.len; i++) {
            if (i < columns_param.len && columns_param.ptr[i] != ',') continue;
            str_t c = {columns_param.ptr + start, i - start};
            start = i + 1;
            while (c.len && c.ptr[0] == ' ') {
                c.ptr++;
                c.len--;
            }
            while (c.len && c.ptr[c.len - 1] == ' ') c.len--;
            if (c.len >= 2 && c.ptr[0] == '"' && c.ptr[c.len - 1] == '"') { /* postgrest-js quotes them */
                c.ptr++;
                c.len -= 2;
            }
            if (c.len == 0) continue;
            if (!db_table_column(w->table, c)) return column_missing(w, err, c);
            list[k++] = c;
        }
        *cols = list;
        *ncols = k;
    } else {
        size_t n = first ? json_object_size(first) : 0;
        str_t *list = core_arena_alloc(a, (n ? n : 1) * sizeof(str_t));
        if (!list) return CORE_ENOMEM;
        size_t k = 0;
        const char *key;
        json_t *val;
        json_object_foreach(first, key, val) {
            (void)val;
            str_t c = str_from_cstr(key);
            const db_column_t *col = db_table_column(w->table, c);
            if (!col) return column_missing(w, err, c);
            list[k++] = col->name;
        }
        /* PostgREST requires every object of a bulk insert to have the same keys. */
        for (size_t i = 1; i < rows; i++) {
            json_t *o = json_array_get(root, i);
            bool same = json_object_size(o) == k;
            for (size_t j = 0; same && j < k; j++) {
                char tmp[256];
                if (list[j].len >= sizeof(tmp)) {
                    same = false;
                    break;
                }
                memcpy(tmp, list[j].ptr, list[j].len);
                tmp[list[j].len] = '\0';
                if (!json_object_get(o, tmp)) same = false;
            }
            if (!same) return body_error(err, "All object keys must match", STR_NULL);
        }
        *cols = list;
        *ncols = k;
    }
    if (is_array) {
        *json_array = body;
    } else {
        char *d = core_arena_alloc(a, body.len + 3);
        if (!d) return CORE_ENOMEM;
        d[0] = '[';
        memcpy(d + 1, body.ptr, body.len);
        d[body.len + 1] = ']';
        d[body.len + 2] = '\0';
        *json_array = (str_t){d, body.len + 2};
    }
    return CORE_OK;
}

/* ---- SQL ------------------------------------------------------------------------------- */

static void build_table(rest_build_t *x)
{
    rest_sql_ident(x->b, x->table->schema);
    core_buf_append_char(x->b, '.');
    rest_sql_ident(x->b, x->table->name);
}

static void build_col_list(rest_build_t *x, const str_t *cols, size_t n, const char *prefix)
{
    for (size_t i = 0; i < n; i++) {
        if (i) core_buf_append_cstr(x->b, ", ");
        if (prefix) core_buf_append_cstr(x->b, prefix);
        rest_sql_ident(x->b, cols[i]);
    }
}

/* The outer select: body, page count, null total, the first row's key (for Location), and
 * the assertion column. */
static int build_outer(write_call_t *w, rest_build_t *x, const rest_query_t *q)
{
    core_buf_t *b = x->b;
    core_buf_append_cstr(b, " select ");
    core_buf_append_cstr(b, rest_sql_body_agg(q)); /* json, csv, geojson, nulls stripped */
    core_buf_append_cstr(b, ", count(*), null::bigint, ");
    const db_table_t *t = w->table;
    if (t->npk) {
        core_buf_append_cstr(b, "(select json_build_array(");
        build_col_list(x, t->pk, t->npk, NULL);
        core_buf_append_cstr(b, ")::text from pgrst_source limit 1)");
    } else {
        core_buf_append_cstr(b, "null::text");
    }
    core_buf_append_cstr(b, ", ");
    /* Assertions: they must run even when the body is not returned, so they look at
     * pgrst_source directly. */
    bool any = false;
    if (rest_accept_single(w->accept)) {
        core_buf_append_cstr(b, "(select case when count(*) <> 1 then ('" ASSERT_MARK "PGRST116:' || count(*))::int end from pgrst_source)");
        any = true;
    }
    if (w->pref.max_affected >= 0 && w->pref.strict && (w->is_patch || w->is_delete)) {
        if (any) core_buf_append_cstr(b, " + ");
        core_buf_appendf(b, "(select case when count(*) > %ld then ('" ASSERT_MARK "PGRST124:' || count(*))::int end from pgrst_source)",
                         w->pref.max_affected);
        any = true;
    }
    if (!any) core_buf_append_cstr(b, "null::int");
    if (w->upsert && w->is_post) core_buf_append_cstr(b, ", (select coalesce(bool_or(pgrst_inserted), true) from pgrst_upsert)");
    else core_buf_append_cstr(b, ", true");
    core_buf_append_cstr(b, REST_SQL_GUC_COLS " from (select ");
    x->alias = "pgrst_source";
    int rc = rest_build_select(x, q);
    if (rc != CORE_OK) return rc;
    rest_build_from_item(x, STR_LIT("pgrst_source"));
    rc = rest_build_order(x, q);
    if (rc != CORE_OK) return rc;
    core_buf_append_cstr(b, ") _s");
    return CORE_OK;
}

static bool filters_only_pk_eq(const db_table_t *t, const rest_query_t *q)
{
    if (q->nlogic || q->nfilters != t->npk || t->npk == 0) return false;
    for (size_t i = 0; i < t->npk; i++) {
        bool found = false;
        for (size_t k = 0; k < q->nfilters; k++) {
            const rest_filter_t *f = &q->filters[k];
            if (str_eq(f->column, t->pk[i]) && f->op == REST_OP_EQ && !f->negate && f->quant == REST_QUANT_NONE && !f->embed.ptr && !f->njson)
                found = true;
        }
        if (!found) return false;
    }
    return true;
}

/* PUT: the body's primary-key values must be the ones in the URL. */
static bool pk_matches(const db_table_t *t, const rest_query_t *q, json_t *obj)
{
    for (size_t i = 0; i < t->npk; i++) {
        char key[256];
        if (t->pk[i].len >= sizeof(key)) return false;
        memcpy(key, t->pk[i].ptr, t->pk[i].len);
        key[t->pk[i].len] = '\0';
        json_t *v = json_object_get(obj, key);
        if (!v) return false;
        str_t want = STR_NULL;
        for (size_t k = 0; k < q->nfilters; k++)
            if (str_eq(q->filters[k].column, t->pk[i])) want = q->filters[k].value;
        char num[64];
        str_t got;
        if (json_is_string(v)) got = (str_t){json_string_value(v), json_string_length(v)};
        else if (json_is_integer(v)) {
            int n = snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
            got = (str_t){num, (size_t)n};
        } else return false;
        if (!str_eq(got, want)) return false;
    }
    return true;
}

static int build_write(write_call_t *w, const rest_query_t *q, str_t body, str_t columns_param, rest_stmt_t *st,
                       core_err_t *err)
{
    core_arena_t *a = w->req->arena;
    core_buf_t b;
    core_buf_init(&b, SQL_MAX);
    int next_alias = 0;
    rest_build_t x = {.arena = a, .table = w->table, .b = &b, .err = err, .schema = w->env->schema, .next_alias = &next_alias};
    json_t *root = NULL;
    int rc = CORE_OK;
    const db_table_t *t = w->table;

    if (w->is_post && !w->upsert && !columns_param.ptr && body.len) {
        bool nested = false; /* children in the body: see nested.c */
        if ((rc = rest_nested_insert(&x, body, &nested, err)) != CORE_OK) goto out;
        if (nested) {
            if ((rc = build_outer(w, &x, q)) != CORE_OK) goto out;
            goto done;
        }
    }
    core_buf_append_cstr(&b, w->upsert && w->is_post ? "with pgrst_upsert as (" : "with pgrst_source as (");
    if (w->is_delete) {
        core_buf_append_cstr(&b, "delete from ");
        build_table(&x);
        if ((rc = rest_build_where(&x, q)) != CORE_OK) goto out;
    } else {
        str_t *cols = NULL, arr = STR_NULL;
        size_t ncols = 0, nrows = 0;
        if (body.len == 0) {
            rc = body_error(err, "Empty or invalid json", STR_LIT("The request body is empty"));
            goto out;
        }
        if ((rc = shape_body(w, q, body, columns_param, &cols, &ncols, &nrows, &root, &arr, err)) != CORE_OK) goto out;
        if ((rc = rest_build_add_param(&x, arr)) != CORE_OK) goto out; /* $1: the rows as a JSON array */
        if (w->is_patch) {
            if (ncols == 0) { /* nothing to set: PostgREST answers without touching a row */
                core_buf_append_cstr(&b, "select * from ");
                build_table(&x);
                core_buf_append_cstr(&b, " where false");
            } else {
                core_buf_append_cstr(&b, "update ");
                build_table(&x);
                core_buf_append_cstr(&b, " set (");
                build_col_list(&x, cols, ncols, NULL);
                core_buf_append_cstr(&b, ") = (select ");
                build_col_list(&x, cols, ncols, NULL);
                core_buf_append_cstr(&b, " from json_populate_recordset(null::");
                build_table(&x);
                core_buf_append_cstr(&b, ", $1::json))");
                if ((rc = rest_build_where(&x, q)) != CORE_OK) goto out;
            }
        } else {
            if (w->is_put) {
                if (!filters_only_pk_eq(t, q)) {
                    *err = core_err_make(405, "PGRST105", "Filters must include all and only primary key columns with 'eq' operators", STR_NULL);
                    rc = CORE_EINVAL;
                    goto out;
                }
                json_t *obj = json_is_array(root) ? json_array_get(root, 0) : root;
                if (!pk_matches(t, q, obj)) {
                    *err = core_err_make(400, "PGRST115", "Payload values do not match URL in primary key column(s)", STR_NULL);
                    rc = CORE_EINVAL;
                    goto out;
                }
            }
            core_buf_append_cstr(&b, "insert into ");
            build_table(&x);
            core_buf_append_cstr(&b, " (");
            build_col_list(&x, cols, ncols, NULL);
            core_buf_append_cstr(&b, ") select ");
            if (w->pref.missing_default && columns_param.ptr) {
                /* Prefer: missing=default: a key absent from an object takes the column's
                 * default (its expression from the catalog), not NULL. */
                for (size_t i = 0; i < ncols; i++) {
                    const db_column_t *col = db_table_column(t, cols[i]);
                    if (i) core_buf_append_cstr(&b, ", ");
                    if (col && col->default_expr.ptr) {
                        core_buf_append_cstr(&b, "case when pgrst_r.j::jsonb ? ");
                        if ((rc = rest_build_param(&x, cols[i])) != CORE_OK) goto out;
                        core_buf_append_cstr(&b, " then pgrst_x.");
                        rest_sql_ident(&b, cols[i]);
                        core_buf_append_cstr(&b, " else ");
                        core_buf_append_str(&b, col->default_expr); /* the catalog's own SQL */
                        core_buf_append_cstr(&b, " end");
                    } else {
                        core_buf_append_cstr(&b, "pgrst_x.");
                        rest_sql_ident(&b, cols[i]);
                    }
                }
                core_buf_append_cstr(&b, " from json_array_elements($1::json) pgrst_r(j), lateral json_populate_record(null::");
                build_table(&x);
                core_buf_append_cstr(&b, ", pgrst_r.j) pgrst_x");
            } else {
                build_col_list(&x, cols, ncols, NULL);
                core_buf_append_cstr(&b, " from json_populate_recordset(null::");
                build_table(&x);
                core_buf_append_cstr(&b, ", $1::json)");
            }
            if (w->upsert) {
                /* on_conflict= names the conflict target; the primary key otherwise. */
                str_t oc = q->on_conflict;
                str_t target[64];
                size_t ntarget = 0;
                if (oc.ptr) {
                    size_t start = 0;
                    for (size_t i = 0; i <= oc.len && ntarget < 64; i++) {
                        if (i < oc.len && oc.ptr[i] != ',') continue;
                        str_t c = {oc.ptr + start, i - start};
                        start = i + 1;
                        while (c.len && c.ptr[0] == ' ') {
                            c.ptr++;
                            c.len--;
                        }
                        while (c.len && c.ptr[c.len - 1] == ' ') c.len--;
                        const db_column_t *col = db_table_column(t, c);
                        if (!col) {
                            rc = rest_build_column_error(&x, c);
                            goto out;
                        }
                        target[ntarget++] = col->name;
                    }
                } else {
                    for (size_t i = 0; i < t->npk && i < 64; i++) target[ntarget++] = t->pk[i];
                }
                if (ntarget == 0) {
                    *err = core_err_make(400, "PGRST100", "Upsert needs a primary key or on_conflict", STR_NULL);
                    rc = CORE_EINVAL;
                    goto out;
                }
                core_buf_append_cstr(&b, " on conflict (");
                build_col_list(&x, target, ntarget, NULL);
                core_buf_append_cstr(&b, ")");
                size_t nset = 0;
                if (w->pref.resolution != REST_RESOLUTION_IGNORE) {
                    for (size_t i = 0; i < ncols; i++) {
                        bool is_target = false;
                        for (size_t k = 0; k < ntarget; k++)
                            if (str_eq(cols[i], target[k])) is_target = true;
                        if (is_target) continue;
                        core_buf_append_cstr(&b, nset++ ? ", " : " do update set ");
                        rest_sql_ident(&b, cols[i]);
                        core_buf_append_cstr(&b, " = excluded.");
                        rest_sql_ident(&b, cols[i]);
                    }
                }
                if (nset == 0) core_buf_append_cstr(&b, " do nothing");
            }
        }
    }
    /* return=minimal with nothing to check: RETURNING 1, so that a role with only INSERT
     * (or UPDATE/DELETE) privilege can write, as with PostgREST. */
    bool bare = !(w->upsert && w->is_post) && w->pref.ret != REST_RETURN_REPRESENTATION &&
                w->pref.ret != REST_RETURN_HEADERS_ONLY && !rest_accept_single(w->accept) &&
                !(w->pref.max_affected >= 0 && w->pref.strict);
    if (bare) {
        core_buf_append_cstr(&b, " returning 1) select null::text, count(*), null::bigint, null::text, null::int, true"
                                  REST_SQL_GUC_COLS " from pgrst_source");
        if ((rc = core_buf_status(&b)) != CORE_OK) goto out;
        st->sql = core_arena_strdup(a, core_buf_str(&b));
        st->params = x.params;
        st->nparams = x.nparams;
        rc = st->sql ? CORE_OK : CORE_ENOMEM;
        goto out;
    }
    core_buf_append_cstr(&b, " returning ");
    build_table(&x);
    if (w->upsert && w->is_post) {
        /* An upsert answers 201 when it inserted a row and 200 when it only updated: xmax is
         * 0 for a row this statement inserted. The flag stays out of the rows themselves. */
        core_buf_append_cstr(&b, ".*, (xmax = 0) as pgrst_inserted), pgrst_source as (select ");
        for (size_t i = 0; i < t->ncolumns; i++) {
            if (i) core_buf_append_cstr(&b, ", ");
            rest_sql_ident(&b, t->columns[i].name);
        }
        core_buf_append_cstr(&b, " from pgrst_upsert)");
    } else {
        core_buf_append_cstr(&b, ".*)");
    }
    if ((rc = build_outer(w, &x, q)) != CORE_OK) goto out;
done:
    if ((rc = core_buf_status(&b)) != CORE_OK) goto out;
    st->sql = core_arena_strdup(a, core_buf_str(&b));
    st->params = x.params;
    st->nparams = x.nparams;
    rc = st->sql ? CORE_OK : CORE_ENOMEM;
out:
    if (root) json_decref(root);
    core_buf_free(&b);
    return rc;
}

/* ---- the answer ------------------------------------------------------------------------ */

/* "STRATA:PGRST116:3" inside a 22P02 message → PostgREST's error. */
static bool assertion_error(write_call_t *w, const db_error_t *e, core_err_t *out)
{
    if (e->kind != DB_ERR_QUERY || !e->sqlstate || strcmp(e->sqlstate, "22P02") != 0 || !e->message) return false;
    const char *m = strstr(e->message, ASSERT_MARK);
    if (!m) return false;
    m += strlen(ASSERT_MARK);
    long n = 0;
    const char *colon = strchr(m, ':');
    if (!colon) return false;
    const char *end = strchr(colon + 1, '"');
    str_t num = {colon + 1, end ? (size_t)(end - colon - 1) : strlen(colon + 1)};
    if (str_to_long(num, &n) != CORE_OK) n = -1;
    if (!strncmp(m, "PGRST116", 8)) {
        *out = rest_err_not_single(w->req->arena, n);
        return true;
    }
    if (!strncmp(m, "PGRST124", 8)) {
        *out = core_err_make(400, "PGRST124", "Query result exceeds max-affected preference constraint",
                             rest_arena_printf(w->req->arena, "The query affects %ld rows", n));
        return true;
    }
    return false;
}

static str_t location_header(write_call_t *w, const char *keys_json, size_t len)
{
    const db_table_t *t = w->table;
    json_error_t jerr;
    json_t *arr = json_loadb(keys_json, len, 0, &jerr);
    if (!arr || !json_is_array(arr) || json_array_size(arr) != t->npk) {
        if (arr) json_decref(arr);
        return STR_NULL;
    }
    core_buf_t b;
    core_buf_init(&b, (size_t)64 * 1024);
    core_buf_append_char(&b, '/');
    core_buf_append_str(&b, t->name);
    for (size_t i = 0; i < t->npk; i++) {
        core_buf_append_char(&b, i ? '&' : '?');
        core_buf_append_str(&b, t->pk[i]);
        core_buf_append_cstr(&b, "=eq.");
        json_t *v = json_array_get(arr, i);
        char *txt = json_is_string(v) ? NULL : json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        const char *s = json_is_string(v) ? json_string_value(v) : txt;
        for (const char *p = s; p && *p; p++) {
            unsigned char c = (unsigned char)*p;
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.')
                core_buf_append_char(&b, (char)c);
            else
                core_buf_appendf(&b, "%%%02X", c);
        }
        free(txt);
    }
    json_decref(arr);
    str_t out = STR_NULL;
    if (core_buf_status(&b) == CORE_OK) {
        char *d = core_arena_strdup(w->req->arena, core_buf_str(&b));
        if (d) out = (str_t){d, b.len};
    }
    core_buf_free(&b);
    return out;
}

static void on_write_done(void *arg, PGresult *res, const db_error_t *err)
{
    write_call_t *w = arg;
    http_req_t *req = w->req;
    if (err) {
        core_err_t e;
        if (!assertion_error(w, err, &e)) e = rest_db_error(req, err);
        rest_respond_error(req, &e);
        return;
    }
    if (!rest_take_result(req, res, NULL, 4)) return;
    str_t body = {PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0)};
    long page = 0;
    if (str_to_long((str_t){PQgetvalue(res, 0, 1), (size_t)PQgetlength(res, 0, 1)}, &page) != CORE_OK) page = 0;

    http_header_t h[12];
    size_t n = rest_cors_headers(req, h);
    int ret = w->pref.ret;
    if (ret == REST_RETURN_UNSET) ret = REST_RETURN_MINIMAL;
    int status = w->is_post ? 201 : (ret == REST_RETURN_REPRESENTATION ? 200 : 204);
    if (w->is_post && w->upsert && PQnfields(res) >= 6 && !PQgetisnull(res, 0, 5) && PQgetvalue(res, 0, 5)[0] == 'f')
        status = 200; /* nothing was inserted, only updated */
    if (w->is_put) status = ret == REST_RETURN_REPRESENTATION ? 200 : 204;

    /* Preference-Applied lists what was honoured. */
    core_buf_t pa;
    core_buf_init(&pa, 1024);
    if (w->pref.ret) core_buf_append_cstr(&pa, ret == REST_RETURN_REPRESENTATION ? "return=representation"
                                               : ret == REST_RETURN_HEADERS_ONLY   ? "return=headers-only"
                                                                                   : "return=minimal");
    if (w->upsert && w->is_post && w->pref.resolution)
        core_buf_appendf(&pa, "%sresolution=%s", pa.len ? ", " : "",
                         w->pref.resolution == REST_RESOLUTION_MERGE ? "merge-duplicates" : "ignore-duplicates");
    if (w->pref.missing_default && (w->is_post || w->is_put))
        core_buf_appendf(&pa, "%smissing=default", pa.len ? ", " : "");
    if (w->pref.tx) core_buf_appendf(&pa, "%stx=%s", pa.len ? ", " : "", w->pref.tx == REST_TX_ROLLBACK ? "rollback" : "commit");
    if (w->pref.max_affected >= 0 && w->pref.strict && (w->is_patch || w->is_delete))
        core_buf_appendf(&pa, "%smax-affected=%ld", pa.len ? ", " : "", w->pref.max_affected);
    if (pa.len && core_buf_status(&pa) == CORE_OK) {
        char *d = core_arena_strdup(req->arena, core_buf_str(&pa));
        if (d) h[n++] = (http_header_t){STR_LIT("Preference-Applied"), str_from_cstr(d)};
    }
    core_buf_free(&pa);

    /* With Prefer: count=..., the total is the number of affected rows (PostgREST's form). */
    bool counted = w->pref.count != REST_COUNT_NONE;
    str_t range;
    if (page > 0 && (w->is_patch || (w->is_delete && !counted)))
        range = counted ? rest_arena_printf(req->arena, "0-%ld/%ld", page - 1, page)
                        : rest_arena_printf(req->arena, "0-%ld/*", page - 1);
    else
        range = counted ? rest_arena_printf(req->arena, "*/%ld", page) : STR_LIT("*/*");
    if (range.ptr) h[n++] = (http_header_t){STR_LIT("Content-Range"), range};
    if (ret == REST_RETURN_HEADERS_ONLY && w->is_post && !PQgetisnull(res, 0, 3)) {
        str_t loc = location_header(w, PQgetvalue(res, 0, 3), (size_t)PQgetlength(res, 0, 3));
        if (loc.ptr) h[n++] = (http_header_t){STR_LIT("Location"), loc};
    }
    if (ret != REST_RETURN_REPRESENTATION) {
        rest_send(req, res, status, h, n, STR_NULL);
        return;
    }
    if (rest_accept_single(w->accept)) body = rest_unwrap_array(body);
    h[n++] = (http_header_t){STR_LIT("Content-Type"), rest_accept_content_type(w->accept)};
    rest_send(req, res, status, h, n, body);
}

void rest_handle_write(rest_env_t *env, http_req_t *req, const db_table_t *t, int accept)
{
    write_call_t *w = core_arena_zalloc(req->arena, sizeof(*w));
    if (!w) {
        rest_respond_simple(req, 503, "PGRST000", "Out of memory", STR_NULL);
        return;
    }
    w->req = req;
    w->env = env;
    w->table = t;
    w->accept = accept;
    w->is_post = str_eq(req->method, STR_LIT("POST"));
    w->is_put = str_eq(req->method, STR_LIT("PUT"));
    w->is_patch = str_eq(req->method, STR_LIT("PATCH"));
    w->is_delete = str_eq(req->method, STR_LIT("DELETE"));
    rest_prefer_parse(req, &w->pref);
    if (w->pref.invalid && w->pref.strict) {
        rest_respond_simple(req, 400, "PGRST122", "Invalid preferences given with handling=strict",
                            http_req_header(req, STR_LIT("Prefer")));
        return;
    }
    w->upsert = w->is_put || (w->is_post && w->pref.resolution != REST_RESOLUTION_NONE);

    str_t body = req->body;
    if (!w->is_delete) {
        str_t ct = http_req_header(req, STR_LIT("Content-Type"));
        if (ct.ptr) {
            long semi = str_find_char(ct, ';');
            if (semi >= 0) ct.len = (size_t)semi;
            while (ct.len && ct.ptr[ct.len - 1] == ' ') ct.len--;
        }
        if (ct.ptr && str_eq_nocase(ct, STR_LIT("application/x-www-form-urlencoded"))) {
            if (form_to_json(req->arena, req->body, &body) != CORE_OK) {
                rest_respond_simple(req, 400, "PGRST102", "Invalid form body", STR_NULL);
                return;
            }
        } else if (ct.ptr && str_eq_nocase(ct, STR_LIT("text/csv"))) {
            core_err_t e = {0};
            int rc = rest_csv_to_json(req->arena, req->body, &body, &e);
            if (rc != CORE_OK) {
                if (rc == CORE_ENOMEM || !e.code) rest_respond_simple(req, 503, "PGRST000", "Out of memory", STR_NULL);
                else rest_respond_error(req, &e);
                return;
            }
        } else if (ct.ptr && ct.len && !str_eq_nocase(ct, STR_LIT("application/json")) &&
                   !str_eq_nocase(ct, STR_LIT("application/vnd.pgrst.object+json")) &&
                   !str_eq_nocase(ct, STR_LIT("application/vnd.pgrst.object"))) {
            core_err_t e = core_err_make(415, "PGRST102", NULL, STR_NULL);
            e.message = rest_arena_printf(req->arena, "Content-Type not acceptable: %.*s",
                                          (int)(ct.len > 100 ? 100 : ct.len), ct.ptr);
            rest_respond_error(req, &e);
            return;
        }
    }

    rest_query_t q;
    core_err_t err = {0};
    int rc = rest_parse_query(req->arena, req->query, &q, &err);
    if (rc == CORE_OK) rc = rest_query_allowed(env, &q, &err);
    rest_mark_parsed(req);
    rest_stmt_t st;
    rest_query_set_media(&q, accept);
    if (rc == CORE_OK) rc = build_write(w, &q, body, q.columns, &st, &err);
    if (rc == CORE_OK) {
        (void)rest_submit(env, req, &st, false, w->pref.tx == REST_TX_ROLLBACK, on_write_done, w);
        return;
    }
    if (rc == CORE_ENOMEM || !err.code) {
        rest_respond_simple(req, 503, "PGRST000", "Out of memory", STR_NULL);
        return;
    }
    rest_respond_error(req, &err);
}
