/*
 * Nested inserts (beyond PostgREST): POST /parents with children in the body, e.g.
 *
 *   POST /novels?select=*,chapters(*)   {"id": 9, "title": "X", "chapters": [{"id": 90, "num": 1}]}
 *
 * A body key that is not a column of the table but names a one-to-many relationship (a table
 * whose foreign key references this one) holds that parent's children. Everything is one
 * statement, so one transaction:
 *
 *   with pgrst_in as (body elements with their ordinal),
 *        pgrst_source as (insert into parent ... select ... order by ordinal returning parent.*),
 *        pgrst_pmap as (the returned parents numbered in insertion order),
 *        pgrst_c1 as (insert into child (fk columns, keys) select parent keys, child values ...
 *                     returning child.*), ...
 *
 * Children take their foreign-key columns from the inserted parent (generated keys
 * included). The returned representation embeds the children from the pgrst_cN CTEs, since
 * a statement does not see its own CTEs' writes in the tables.
 */
#include <jansson.h>
#include <string.h>

#include "rest/rest_int.h"

#define NESTED_MAX 8

typedef struct {
    str_t key;                 /* the body key, = the child relation's name */
    const db_table_t *child;
    const db_fk_t *fk;         /* child → parent */
    str_t *cols;               /* the children's keys (without the foreign-key columns) */
    size_t ncols;
} nested_rel_t;

static int nested_error(core_err_t *err, const char *msg, str_t details)
{
    *err = core_err_make(400, "PGRST102", msg, details);
    return CORE_EINVAL;
}

/* The one-to-many relationship from t named `name`: exactly one foreign key of `name`
 * referencing t. */
static bool find_children(const db_schema_t *s, const db_table_t *t, str_t name, nested_rel_t *out)
{
    size_t n = 0;
    for (size_t i = 0; i < s->nfks; i++) {
        const db_fk_t *f = &s->fks[i];
        if (!str_eq(f->fschema, t->schema) || !str_eq(f->ftable, t->name) || !str_eq(f->table, name)) continue;
        const db_table_t *c = db_schema_table(s, f->schema, f->table);
        if (!c) continue;
        out->child = c;
        out->fk = f;
        n++;
    }
    return n == 1;
}

static bool is_fk_column(const db_fk_t *f, str_t col)
{
    for (size_t i = 0; i < f->ncolumns; i++)
        if (str_eq(f->columns[i], col)) return true;
    return false;
}

/* The children's columns: the keys of the first child object anywhere in the body; every
 * child object must have the same keys (as for a bulk insert). */
static int child_columns(rest_build_t *x, json_t *root, nested_rel_t *r, core_err_t *err)
{
    char key[256];
    if (r->key.len >= sizeof(key)) return nested_error(err, "Invalid nested insert", STR_LIT("relation name too long"));
    memcpy(key, r->key.ptr, r->key.len);
    key[r->key.len] = '\0';
    json_t *first = NULL;
    for (size_t i = 0; i < json_array_size(root); i++) {
        json_t *arr = json_object_get(json_array_get(root, i), key);
        if (!arr || json_is_null(arr)) continue;
        if (!json_is_array(arr))
            return nested_error(err, "Invalid nested insert", rest_arena_printf(x->arena, "'%s' must be an array of objects", key));
        for (size_t k = 0; k < json_array_size(arr); k++) {
            json_t *o = json_array_get(arr, k);
            if (!json_is_object(o))
                return nested_error(err, "Invalid nested insert", rest_arena_printf(x->arena, "'%s' must be an array of objects", key));
            if (!first) first = o;
            if (json_object_size(o) != json_object_size(first))
                return nested_error(err, "All object keys must match", STR_NULL);
            const char *k2;
            json_t *v;
            json_object_foreach(o, k2, v) {
                (void)v;
                if (!json_object_get(first, k2)) return nested_error(err, "All object keys must match", STR_NULL);
            }
        }
    }
    size_t n = first ? json_object_size(first) : 0;
    r->cols = core_arena_alloc(x->arena, (n ? n : 1) * sizeof(str_t));
    if (!r->cols) return CORE_ENOMEM;
    r->ncols = 0;
    const char *k2;
    json_t *v;
    json_object_foreach(first, k2, v) {
        (void)v;
        const db_column_t *c = db_table_column(r->child, str_from_cstr(k2));
        if (!c) {
            *err = core_err_make(400, "PGRST204", NULL, STR_NULL);
            err->message = rest_arena_printf(x->arena, "Could not find the '%s' column of '%.*s' in the schema cache", k2,
                                             STR_FMT(r->child->name));
            return CORE_EINVAL;
        }
        if (!is_fk_column(r->fk, c->name)) r->cols[r->ncols++] = c->name;
    }
    return CORE_OK;
}

static void append_table(core_buf_t *b, const db_table_t *t)
{
    rest_sql_ident(b, t->schema);
    core_buf_append_char(b, '.');
    rest_sql_ident(b, t->name);
}

static void append_cols(core_buf_t *b, const str_t *cols, size_t n, const char *prefix, bool lead_comma)
{
    for (size_t i = 0; i < n; i++) {
        if (i || lead_comma) core_buf_append_cstr(b, ", ");
        if (prefix) core_buf_append_cstr(b, prefix);
        rest_sql_ident(b, cols[i]);
    }
}

int rest_nested_insert(rest_build_t *x, str_t body, bool *used, core_err_t *err)
{
    *used = false;
    if (!x->schema) return CORE_OK;
    /* Only a table that some foreign key references can have children: for the others the
     * body is not parsed here (the insert path parses it anyway). */
    bool referenced = false;
    for (size_t i = 0; i < x->schema->nfks && !referenced; i++)
        referenced = str_eq(x->schema->fks[i].fschema, x->table->schema) && str_eq(x->schema->fks[i].ftable, x->table->name);
    if (!referenced) return CORE_OK;
    json_error_t jerr;
    json_t *root = json_loadb(body.ptr, body.len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) return CORE_OK; /* the plain insert path reports it */
    if (json_is_object(root)) {
        json_t *arr = json_array();
        if (!arr || json_array_append_new(arr, root) != 0) {
            json_decref(arr);
            json_decref(root);
            return CORE_ENOMEM;
        }
        root = arr;
    }
    json_t *first = json_array_get(root, 0);
    if (!json_is_array(root) || !json_is_object(first)) {
        json_decref(root);
        return CORE_OK;
    }

    nested_rel_t rels[NESTED_MAX];
    size_t nrels = 0;
    str_t *cols = core_arena_alloc(x->arena, (json_object_size(first) + 1) * sizeof(str_t));
    size_t ncols = 0;
    int rc = cols ? CORE_OK : CORE_ENOMEM;
    const char *key;
    json_t *val;
    json_object_foreach(first, key, val) {
        (void)val;
        if (rc != CORE_OK) break;
        str_t k = str_from_cstr(key);
        const db_column_t *c = db_table_column(x->table, k);
        if (c) {
            cols[ncols++] = c->name;
            continue;
        }
        nested_rel_t r = {0};
        if (!find_children(x->schema, x->table, k, &r)) continue; /* the plain path reports PGRST204 */
        if (nrels == NESTED_MAX) {
            rc = nested_error(err, "Invalid nested insert", STR_LIT("too many nested relations"));
            break;
        }
        r.key = r.child->name;
        rels[nrels++] = r;
    }
    if (rc != CORE_OK || nrels == 0) {
        json_decref(root);
        return rc;
    }
    /* every parent has the same keys */
    for (size_t i = 1; i < json_array_size(root) && rc == CORE_OK; i++) {
        json_t *o = json_array_get(root, i);
        if (!json_is_object(o) || json_object_size(o) != json_object_size(first)) {
            rc = nested_error(err, "All object keys must match", STR_NULL);
            break;
        }
        json_object_foreach(first, key, val) {
            (void)val;
            if (!json_object_get(o, key)) rc = nested_error(err, "All object keys must match", STR_NULL);
        }
    }
    for (size_t i = 0; i < nrels && rc == CORE_OK; i++) rc = child_columns(x, root, &rels[i], err);
    char *arr = rc == CORE_OK ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    if (rc != CORE_OK) return rc;
    if (!arr) return CORE_ENOMEM;
    rc = rest_build_add_param(x, str_from_cstr(arr)); /* $1: the parents */
    free(arr);
    if (rc != CORE_OK) return rc;

    core_buf_t *b = x->b;
    const db_table_t *t = x->table;
    core_buf_append_cstr(b, "with pgrst_in as (select pgrst_r.j, pgrst_r.n from json_array_elements($");
    core_buf_appendf(b, "%d::json) with ordinality pgrst_r(j, n)), pgrst_source as (insert into ", x->nparams);
    append_table(b, t);
    core_buf_append_cstr(b, " (");
    append_cols(b, cols, ncols, NULL, false);
    core_buf_append_cstr(b, ") select ");
    append_cols(b, cols, ncols, "pgrst_x.", false);
    core_buf_append_cstr(b, " from pgrst_in, lateral json_populate_record(null::");
    append_table(b, t);
    core_buf_append_cstr(b, ", pgrst_in.j) pgrst_x order by pgrst_in.n returning ");
    append_table(b, t);
    core_buf_append_cstr(b, ".*), pgrst_pmap as (select row_number() over () as pgrst_n, pgrst_source.* from pgrst_source)");

    const char **names = core_arena_alloc(x->arena, nrels * sizeof(char *));
    const db_table_t **tables = core_arena_alloc(x->arena, nrels * sizeof(db_table_t *));
    if (!names || !tables) return CORE_ENOMEM;
    for (size_t i = 0; i < nrels; i++) {
        const nested_rel_t *r = &rels[i];
        str_t cte = rest_arena_printf(x->arena, "pgrst_c%zu", i + 1);
        if (!cte.ptr) return CORE_ENOMEM;
        names[i] = cte.ptr;
        tables[i] = r->child;
        core_buf_appendf(b, ", %s as (insert into ", cte.ptr);
        append_table(b, r->child);
        core_buf_append_cstr(b, " (");
        append_cols(b, r->fk->columns, r->fk->ncolumns, NULL, false);
        append_cols(b, r->cols, r->ncols, NULL, true);
        core_buf_append_cstr(b, ") select ");
        append_cols(b, r->fk->fcolumns, r->fk->ncolumns, "pgrst_p.", false);
        append_cols(b, r->cols, r->ncols, "pgrst_y.", true);
        core_buf_append_cstr(b, " from pgrst_pmap pgrst_p join pgrst_in on pgrst_in.n = pgrst_p.pgrst_n,"
                                " lateral json_populate_recordset(null::");
        append_table(b, r->child);
        /* a parent without this key (or with null) has no children: a NULL argument gives
         * an empty set */
        core_buf_append_cstr(b, ", case when json_typeof(pgrst_in.j -> ");
        if ((rc = rest_build_param(x, r->key)) != CORE_OK) return rc;
        core_buf_appendf(b, "::text) = 'array' then pgrst_in.j -> $%d::text end) pgrst_y returning ", x->nparams);
        append_table(b, r->child);
        core_buf_append_cstr(b, ".*)");
    }
    x->cte_tables = tables;
    x->cte_names = names;
    x->ncte = nrels;
    *used = true;
    return core_buf_status(b);
}
