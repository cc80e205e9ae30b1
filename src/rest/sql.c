/*
 * SQL builder. One statement per request; the body is built by PostgreSQL (json_agg) and
 * returned as text, so C never re-serialises rows. Values are always $n parameters;
 * identifiers always pass through rest_sql_ident after the schema cache vouched for them.
 */
#include <string.h>

#include "rest/rest_int.h"

#define SQL_MAX (1u << 20)


void rest_sql_ident(core_buf_t *b, str_t name)
{
    core_buf_append_char(b, '"');
    size_t run = 0;
    for (size_t i = 0; i < name.len; i++) {
        if (name.ptr[i] == '"') {
            core_buf_append(b, name.ptr + i - run, run + 1);
            core_buf_append_char(b, '"');
            run = 0;
        } else {
            run++;
        }
    }
    core_buf_append(b, name.ptr + name.len - run, run);
    core_buf_append_char(b, '"');
}

int rest_build_add_param(rest_build_t *x, str_t value)
{
    if (x->nparams == x->cap) {
        int ncap = x->cap ? x->cap * 2 : 8;
        if (ncap > 65535) return CORE_ELIMIT;
        const char **np = core_arena_alloc(x->arena, (size_t)ncap * sizeof(char *));
        unsigned char *nk = core_arena_zalloc(x->arena, (size_t)ncap);
        if (!np || !nk) return CORE_ENOMEM;
        if (x->nparams) {
            memcpy(np, x->params, (size_t)x->nparams * sizeof(char *));
            if (x->pkind) memcpy(nk, x->pkind, (size_t)x->nparams);
        }
        x->params = np;
        x->pkind = nk;
        x->cap = ncap;
    }
    char *v = core_arena_strdup(x->arena, value);
    if (!v) return CORE_ENOMEM;
    x->params[x->nparams++] = v;
    return CORE_OK;
}

int rest_build_param(rest_build_t *x, str_t value)
{
    int rc = rest_build_add_param(x, value);
    if (rc == CORE_OK) {
        core_buf_append_char(x->b, '$');
        core_buf_append_u64(x->b, (uint64_t)x->nparams);
    }
    return rc;
}

int rest_build_column_error(rest_build_t *x, str_t column)
{
    core_buf_t m;
    core_buf_init(&m, 1024);
    core_buf_appendf(&m, "column %.*s.%.*s does not exist", STR_FMT(x->table->name),
                     (int)(column.len > 200 ? 200 : column.len), column.ptr);
    char *msg = core_buf_status(&m) == CORE_OK ? core_arena_strdup(x->arena, core_buf_str(&m)) : NULL;
    core_buf_free(&m);
    *x->err = (core_err_t){0};
    x->err->status = 400;
    x->err->code = "42703";
    x->err->message = msg ? str_from_cstr(msg) : STR_LIT("column does not exist");
    return CORE_EINVAL;
}

int rest_build_unsupported(rest_build_t *x, const char *what)
{
    *x->err = core_err_make(400, "PGRST100", what, STR_NULL);
    return CORE_EINVAL;
}

/* A JSON key as a parameter; equal keys share one, so that the same path written in the
 * select list, GROUP BY and ORDER BY is the same expression to PostgreSQL. */
static int build_key_param(rest_build_t *x, str_t key)
{
    for (int i = 0; i < x->nparams; i++)
        if (x->pkind && x->pkind[i] == 1 && strlen(x->params[i]) == key.len && memcmp(x->params[i], key.ptr, key.len) == 0) {
            core_buf_appendf(x->b, "$%d", i + 1);
            return CORE_OK;
        }
    int rc = rest_build_param(x, key);
    if (rc == CORE_OK) x->pkind[x->nparams - 1] = 1;
    return rc;
}

/* A column and its JSON path: "data"->$1::text->>$2::int. Keys are parameters; a column
 * that is not json/jsonb (arrays, composites) goes through to_jsonb first, as in PostgREST. */
/* A computed field of the current relation: a function in the relation's schema whose first
 * argument is the relation's row type, whose other arguments have defaults, and which
 * returns one value. NULL when there is none. */
static const db_func_t *computed_field(const rest_build_t *x, str_t name)
{
    if (!x->schema || !x->alias) return NULL;
    size_t n = 0;
    const db_func_t *f = db_schema_funcs(x->schema, x->table->schema, name, &n);
    for (size_t i = 0; f && i < n; i++, f++) {
        if (f->retset || !f->argrel_name.ptr || !str_eq(f->argrel_schema, x->table->schema) ||
            !str_eq(f->argrel_name, x->table->name))
            continue;
        size_t required = 0;
        for (size_t k = 0; k < f->nparams; k++)
            if ((f->params[k].mode == 'i' || f->params[k].mode == 'b') && !f->params[k].has_default) required++;
        if (required <= 1) return f;
    }
    return NULL;
}

static void append_computed(rest_build_t *x, const db_func_t *f)
{
    rest_sql_ident(x->b, f->schema);
    core_buf_append_char(x->b, '.');
    rest_sql_ident(x->b, f->name);
    core_buf_append_char(x->b, '(');
    core_buf_append_cstr(x->b, x->alias);
    core_buf_append_char(x->b, ')');
}

/* A column of x's relation, qualified when x->qualify asks. */
static void append_column(rest_build_t *x, const db_column_t *c)
{
    if (x->qualify && x->alias) {
        core_buf_append_cstr(x->b, x->alias);
        core_buf_append_char(x->b, '.');
    }
    rest_sql_ident(x->b, c->name);
}

int rest_build_field(rest_build_t *x, str_t name, const rest_json_op_t *ops, size_t nops)
{
    const db_column_t *c = db_table_column(x->table, name);
    const db_func_t *fn = c ? NULL : computed_field(x, name);
    if (!c && !fn) return rest_build_column_error(x, name);
    if (nops == 0) {
        if (c) append_column(x, c);
        else append_computed(x, fn);
        return CORE_OK;
    }
    str_t type = c ? c->type : fn->rettype;
    bool json = str_eq(type, STR_LIT("json")) || str_eq(type, STR_LIT("jsonb"));
    core_buf_append_cstr(x->b, json ? "(" : "(to_jsonb(");
    if (c) append_column(x, c);
    else append_computed(x, fn);
    if (!json) core_buf_append_char(x->b, ')');
    for (size_t i = 0; i < nops; i++) {
        core_buf_append_cstr(x->b, ops[i].text ? "->>" : "->");
        int rc = build_key_param(x, ops[i].key);
        if (rc != CORE_OK) return rc;
        core_buf_append_cstr(x->b, ops[i].index ? "::int" : "::text");
    }
    core_buf_append_char(x->b, ')');
    return CORE_OK;
}

/* The output name of a JSON path select item: its last key that is not an index, else the
 * column. */
str_t rest_json_name(str_t column, const rest_json_op_t *ops, size_t nops)
{
    for (size_t i = nops; i > 0; i--)
        if (!ops[i - 1].index) return ops[i - 1].key;
    return column;
}

/* '*' in like patterns stands for '%', as in PostgREST (URLs mangle '%'). */
str_t rest_like_pattern(core_arena_t *a, str_t v)
{
    char *d = core_arena_strdup(a, v);
    if (!d) return STR_NULL;
    for (size_t i = 0; i < v.len; i++)
        if (d[i] == '*') d[i] = '%';
    return (str_t){d, v.len};
}

/* Builds a PostgreSQL array literal {"a","b"} from list items. */
str_t rest_array_literal(core_arena_t *a, const str_t *items, size_t n, bool like)
{
    core_buf_t b;
    core_buf_init(&b, SQL_MAX);
    core_buf_append_char(&b, '{');
    for (size_t i = 0; i < n; i++) {
        if (i) core_buf_append_char(&b, ',');
        core_buf_append_char(&b, '"');
        for (size_t k = 0; k < items[i].len; k++) {
            char c = items[i].ptr[k];
            if (c == '"' || c == '\\') core_buf_append_char(&b, '\\');
            core_buf_append_char(&b, like && c == '*' ? '%' : c);
        }
        core_buf_append_char(&b, '"');
    }
    core_buf_append_char(&b, '}');
    str_t out = STR_NULL;
    if (core_buf_status(&b) == CORE_OK) {
        char *d = core_arena_strdup(a, core_buf_str(&b));
        if (d) out = (str_t){d, b.len};
    }
    core_buf_free(&b);
    return out;
}

static const char *op_sql(rest_op_t op)
{
    switch (op) {
    case REST_OP_EQ: return " = ";
    case REST_OP_NEQ: return " <> ";
    case REST_OP_GT: return " > ";
    case REST_OP_GTE: return " >= ";
    case REST_OP_LT: return " < ";
    case REST_OP_LTE: return " <= ";
    case REST_OP_LIKE: return " like ";
    case REST_OP_ILIKE: return " ilike ";
    case REST_OP_MATCH: return " ~ ";
    case REST_OP_IMATCH: return " ~* ";
    case REST_OP_ISDISTINCT: return " is distinct from ";
    case REST_OP_CS: return " @> ";
    case REST_OP_CD: return " <@ ";
    case REST_OP_OV: return " && ";
    case REST_OP_SL: return " << ";
    case REST_OP_SR: return " >> ";
    case REST_OP_NXR: return " &< ";
    case REST_OP_NXL: return " &> ";
    case REST_OP_ADJ: return " -|- ";
    case REST_OP_IN:
    case REST_OP_IS:
    case REST_OP_FTS:
    case REST_OP_PLFTS:
    case REST_OP_PHFTS:
    case REST_OP_WFTS: break;
    }
    return NULL;
}

int rest_build_filter(rest_build_t *x, const rest_filter_t *f)
{
    if (f->embed.ptr) return rest_build_unsupported(x, "Filters on embedded resources are not supported yet");
    int rc;
    if (f->negate) core_buf_append_cstr(x->b, "not (");
    if ((rc = rest_build_field(x, f->column, f->json, f->njson)) != CORE_OK) return rc;
    bool like = f->op == REST_OP_LIKE || f->op == REST_OP_ILIKE;
    switch (f->op) {
    case REST_OP_IS:
        if (str_eq_nocase(f->value, STR_LIT("null"))) core_buf_append_cstr(x->b, " is null");
        else if (str_eq_nocase(f->value, STR_LIT("not_null"))) core_buf_append_cstr(x->b, " is not null");
        else if (str_eq_nocase(f->value, STR_LIT("true"))) core_buf_append_cstr(x->b, " is true");
        else if (str_eq_nocase(f->value, STR_LIT("false"))) core_buf_append_cstr(x->b, " is false");
        else core_buf_append_cstr(x->b, " is unknown");
        break;
    case REST_OP_IN: {
        str_t lit = rest_array_literal(x->arena, f->list, f->nlist, false);
        if (!lit.ptr) return CORE_ENOMEM;
        core_buf_append_cstr(x->b, " = any(");
        if ((rc = rest_build_param(x, lit)) != CORE_OK) return rc;
        core_buf_append_char(x->b, ')');
        break;
    }
    case REST_OP_FTS:
    case REST_OP_PLFTS:
    case REST_OP_PHFTS:
    case REST_OP_WFTS: {
        const char *fn = f->op == REST_OP_FTS     ? "to_tsquery("
                         : f->op == REST_OP_PLFTS ? "plainto_tsquery("
                         : f->op == REST_OP_PHFTS ? "phraseto_tsquery("
                                                  : "websearch_to_tsquery(";
        core_buf_append_cstr(x->b, " @@ ");
        core_buf_append_cstr(x->b, fn);
        if (f->lang.ptr) {
            if ((rc = rest_build_param(x, f->lang)) != CORE_OK) return rc;
            core_buf_append_cstr(x->b, "::regconfig, ");
        }
        if ((rc = rest_build_param(x, f->value)) != CORE_OK) return rc;
        core_buf_append_char(x->b, ')');
        break;
    }
    default: {
        const char *op = op_sql(f->op);
        if (!op) return rest_build_unsupported(x, "rest_build_unsupported operator");
        core_buf_append_cstr(x->b, op);
        if (f->quant != REST_QUANT_NONE) {
            str_t lit = rest_array_literal(x->arena, f->list, f->nlist, like);
            if (!lit.ptr) return CORE_ENOMEM;
            core_buf_append_cstr(x->b, f->quant == REST_QUANT_ANY ? "any(" : "all(");
            if ((rc = rest_build_param(x, lit)) != CORE_OK) return rc;
            core_buf_append_char(x->b, ')');
        } else {
            str_t v = like ? rest_like_pattern(x->arena, f->value) : f->value;
            if (!v.ptr && f->value.len) return CORE_ENOMEM;
            if (!v.ptr) v = STR_LIT("");
            if ((rc = rest_build_param(x, v)) != CORE_OK) return rc;
        }
    }
    }
    if (f->negate) core_buf_append_char(x->b, ')');
    return CORE_OK;
}

int rest_build_logic(rest_build_t *x, const rest_logic_t *l)
{
    if (l->embed.ptr) return rest_build_unsupported(x, "Logic trees on embedded resources are not supported yet");
    if (l->negate) core_buf_append_cstr(x->b, "not ");
    core_buf_append_char(x->b, '(');
    if (l->nconds == 0) core_buf_append_cstr(x->b, l->is_and ? "true" : "false");
    for (size_t i = 0; i < l->nconds; i++) {
        if (i) core_buf_append_cstr(x->b, l->is_and ? " and " : " or ");
        int rc = l->conds[i].is_logic ? rest_build_logic(x, l->conds[i].logic)
                                      : rest_build_filter(x, &l->conds[i].filter);
        if (rc != CORE_OK) return rc;
    }
    core_buf_append_char(x->b, ')');
    return CORE_OK;
}

static const rest_select_t *embed_item(const rest_query_t *q, str_t name);

/* Does the select list at this level embed `path`'s first segment? */
static bool embeds(const rest_query_t *q, str_t path)
{
    long dot = str_find_char(path, '.');
    return embed_item(q, dot < 0 ? path : (str_t){path.ptr, (size_t)dot}) != NULL;
}

static int not_embedded(rest_build_t *x, str_t path)
{
    *x->err = core_err_make(400, "PGRST108", NULL, STR_NULL);
    core_buf_t m;
    core_buf_init(&m, 1024);
    core_buf_appendf(&m, "'%.*s' is not an embedded resource in this request", (int)(path.len > 200 ? 200 : path.len), path.ptr);
    char *msg = core_buf_status(&m) == CORE_OK ? core_arena_strdup(x->arena, core_buf_str(&m)) : NULL;
    core_buf_free(&m);
    x->err->message = msg ? str_from_cstr(msg) : STR_LIT("not an embedded resource in this request");
    return CORE_EINVAL;
}

/* How build_embed writes the embed: `<value> as name`, a test of whether it found rows
 * (rel!inner, rel=is.null), the value alone, or the value as jsonb (to group by). */
enum { EMBED_NAMED, EMBED_TEST, EMBED_VALUE, EMBED_JSONB };
static int build_embed(rest_build_t *x, const rest_query_t *q, const rest_select_t *it, int mode);

int rest_build_conds(rest_build_t *x, const rest_query_t *q, const char *prefix)
{
    size_t n = 0;
    /* rel!inner: only rows with a matching (filtered) child */
    for (size_t i = 0; i < q->nselect; i++) {
        if (!q->select[i].is_embed || !q->select[i].inner) continue;
        core_buf_append_cstr(x->b, n++ ? " and " : prefix);
        int rc = build_embed(x, q, &q->select[i], EMBED_TEST);
        if (rc != CORE_OK) return rc;
    }
    for (size_t i = 0; i < q->nfilters; i++) {
        if (q->filters[i].embed.ptr) {
            if (!embeds(q, q->filters[i].embed)) return not_embedded(x, q->filters[i].embed);
            continue; /* applied inside the embed */
        }
        core_buf_append_cstr(x->b, n++ ? " and " : prefix);
        const rest_filter_t *f = &q->filters[i];
        const rest_select_t *e = f->op == REST_OP_IS && !f->njson ? embed_item(q, f->column) : NULL;
        if (e && (str_eq_nocase(f->value, STR_LIT("null")) || str_eq_nocase(f->value, STR_LIT("not_null")))) {
            /* rel=is.null / rel=not.is.null: filter the parents by whether the (filtered)
             * embed found anything */
            bool want_null = str_eq_nocase(f->value, STR_LIT("null")) != f->negate;
            if (want_null) core_buf_append_cstr(x->b, "not ");
            int rc = build_embed(x, q, e, EMBED_TEST);
            if (rc != CORE_OK) return rc;
            continue;
        }
        int rc = rest_build_filter(x, f);
        if (rc != CORE_OK) return rc;
    }
    for (size_t i = 0; i < q->nlogic; i++) {
        if (q->logic[i]->embed.ptr) {
            if (!embeds(q, q->logic[i]->embed)) return not_embedded(x, q->logic[i]->embed);
            continue;
        }
        core_buf_append_cstr(x->b, n++ ? " and " : prefix);
        int rc = rest_build_logic(x, q->logic[i]);
        if (rc != CORE_OK) return rc;
    }
    for (size_t i = 0; i < q->npages; i++)
        if (!embeds(q, q->pages[i].embed)) return not_embedded(x, q->pages[i].embed);
    return CORE_OK;
}

int rest_build_where(rest_build_t *x, const rest_query_t *q) { return rest_build_conds(x, q, " where "); }

/* " cross join lateral (select <expr> as pgrst_d1, ...) as <alias>_d": the derived values
 * of a grouping level, computed per row beside it (derived starts with ", "). */
static void append_derived(core_buf_t *b, const char *alias, const char *derived)
{
    if (!derived) return;
    core_buf_append_cstr(b, " cross join lateral (select ");
    core_buf_append_cstr(b, derived + 2);
    core_buf_appendf(b, ") as %s_d", alias);
}

void rest_build_from_item(rest_build_t *x, str_t source)
{
    core_buf_append_cstr(x->b, " from ");
    core_buf_append_str(x->b, source);
    append_derived(x->b, x->alias, x->derived);
}

void rest_build_from(rest_build_t *x)
{
    core_buf_append_cstr(x->b, " from ");
    rest_sql_ident(x->b, x->table->schema);
    core_buf_append_char(x->b, '.');
    rest_sql_ident(x->b, x->table->name);
    if (x->alias) {
        core_buf_append_cstr(x->b, " as ");
        core_buf_append_cstr(x->b, x->alias);
        append_derived(x->b, x->alias, x->derived);
    }
}

/* ---- embedding ------------------------------------------------------------------------------ */

enum { REL_M2O, REL_O2M, REL_M2M, REL_FUNC };

typedef struct {
    int kind;
    const db_fk_t *fk;       /* m2o: fk on the parent; o2m: fk on the child; m2m: junction → parent */
    const db_fk_t *fk2;      /* m2m: junction → child */
    const db_table_t *target;
    const db_func_t *func;   /* REL_FUNC: a computed relationship fn(parent row) returning target rows */
} rel_t;

/* Are the columns exactly the set `key` (in any order)? */
static bool same_columns(const str_t *cols, size_t n, const str_t *key, size_t nkey)
{
    if (n != nkey || n == 0) return false;
    for (size_t i = 0; i < n; i++) {
        bool found = false;
        for (size_t k = 0; k < nkey && !found; k++) found = str_eq(cols[i], key[k]);
        if (!found) return false;
    }
    return true;
}

/* Does the relationship give at most one row (an object rather than an array)? Many-to-one,
 * one-to-one (the child's foreign key is its primary key or a unique key), and computed
 * relationships that do not return a set. */
static bool rel_one(const rel_t *r)
{
    if (r->kind == REL_M2O) return true;
    if (r->kind == REL_FUNC) return !r->func->retset;
    if (r->kind != REL_O2M) return false;
    /* one-to-one: the child's foreign key is its primary key or one of its unique keys */
    const db_table_t *t = r->target;
    if (same_columns(r->fk->columns, r->fk->ncolumns, t->pk, t->npk)) return true;
    for (size_t u = 0; u < t->nuniques; u++)
        if (same_columns(r->fk->columns, r->fk->ncolumns, t->uniques[u].columns, t->uniques[u].ncolumns)) return true;
    return false;
}

static bool fk_from(const db_fk_t *f, const db_table_t *t) { return str_eq(f->schema, t->schema) && str_eq(f->table, t->name); }
static bool fk_to(const db_fk_t *f, const db_table_t *t) { return str_eq(f->fschema, t->schema) && str_eq(f->ftable, t->name); }

static bool hint_matches(const rel_t *r, str_t hint)
{
    if (!hint.ptr) return true;
    if (r->kind == REL_FUNC) return str_eq(hint, STR_LIT("inner")) || str_eq(hint, STR_LIT("left"));
    if (str_eq(r->fk->name, hint) || (r->fk2 && str_eq(r->fk2->name, hint))) return true;
    if (r->kind == REL_M2M && str_eq(r->fk->table, hint)) return true; /* the junction table */
    if (str_eq(hint, STR_LIT("inner")) || str_eq(hint, STR_LIT("left"))) return true;
    /* A column hint names the parent's foreign-key column, so it selects many-to-one. */
    if (r->kind == REL_M2O)
        for (size_t i = 0; i < r->fk->ncolumns; i++)
            if (str_eq(r->fk->columns[i], hint)) return true;
    return false;
}

/* Finds the one relationship from t to `name` (a relation in t's schema or exposed). */
static int find_rel(rest_build_t *x, const rest_select_t *it, str_t hint, rel_t *out)
{
    const db_schema_t *s = x->schema;
    const db_table_t *t = x->table;
    rel_t found[16];
    size_t n = 0;
    for (size_t i = 0; i < s->nfks && n < 16; i++) {
        const db_fk_t *f = &s->fks[i];
        /* As PostgREST names relationships: by the target's name; without a hint also by the
         * foreign key's name or (many-to-one) its single column. A self-reference (one key,
         * two directions) is one-to-many by the table's name — with a hint, the hint names
         * the key's column — and many-to-one by the column's name. */
        bool named = hint.ptr && !str_eq(hint, STR_LIT("inner")) && !str_eq(hint, STR_LIT("left"));
        bool self = str_eq(f->schema, f->fschema) && str_eq(f->table, f->ftable);
        bool by_col = !named && f->ncolumns == 1 && str_eq(f->columns[0], it->name);
        bool by_name = !named && !self && str_eq(f->name, it->name);
        /* many-to-one: t references name (key and column names only toward tables, as the
         * keys of views are derived ones, PostgREST's rule) */
        if (fk_from(f, t) && ((str_eq(f->ftable, it->name) && !self) || by_col || by_name)) {
            const db_table_t *tg = db_schema_table(s, f->fschema, f->ftable);
            bool by_key = (by_col || by_name) && !str_eq(f->ftable, it->name);
            rel_t r = {REL_M2O, f, NULL, tg, NULL};
            if (tg && (by_key ? tg->kind != 'v' : hint_matches(&r, hint))) found[n++] = r;
        }
        /* one-to-many: name references t */
        if (fk_to(f, t) && (str_eq(f->table, it->name) || by_name) && n < 16) {
            const db_table_t *tg = db_schema_table(s, f->schema, f->table);
            bool by_key = by_name && !str_eq(f->table, it->name);
            rel_t r = {REL_O2M, f, NULL, tg, NULL};
            bool ok = by_key ? tg && tg->kind != 'v' : hint_matches(&r, hint);
            if (self && named) ok = f->ncolumns == 1 && str_eq(f->columns[0], hint); /* !manager_id: its rows */
            if (tg && ok) found[n++] = r;
        }
    }
    /* many-to-many through a junction table that references both */
    for (size_t i = 0; i < s->nfks && n < 16; i++) {
        const db_fk_t *f1 = &s->fks[i];
        if (!fk_to(f1, t)) continue;
        for (size_t k = 0; k < s->nfks && n < 16; k++) {
            const db_fk_t *f2 = &s->fks[k];
            if (k == i || !str_eq(f2->schema, f1->schema) || !str_eq(f2->table, f1->table)) continue;
            if (!str_eq(f2->ftable, it->name)) continue;
            const db_table_t *tg = db_schema_table(s, f2->fschema, f2->ftable);
            rel_t r = {REL_M2M, f1, f2, tg, NULL};
            if (tg && hint_matches(&r, hint)) found[n++] = r;
        }
    }
    /* computed relationships: functions of t's row type returning rows of an exposed relation */
    size_t nf = 0;
    const db_func_t *fn = db_schema_funcs(s, t->schema, it->name, &nf);
    for (size_t i = 0; fn && i < nf && n < 16; i++, fn++) {
        if (!fn->argrel_name.ptr || !fn->retrel_name.ptr || !str_eq(fn->argrel_schema, t->schema) ||
            !str_eq(fn->argrel_name, t->name))
            continue;
        const db_table_t *tg = db_schema_table(s, fn->retrel_schema, fn->retrel_name);
        rel_t r = {REL_FUNC, NULL, NULL, tg, fn};
        if (tg && hint_matches(&r, hint)) found[n++] = r;
    }
    if (n == 1) {
        *out = found[0];
        return CORE_OK;
    }
    core_buf_t m;
    core_buf_init(&m, 8192);
    if (n == 0) {
        *x->err = core_err_make(400, "PGRST200", NULL, STR_NULL);
        core_buf_appendf(&m, "Could not find a relationship between '%.*s' and '%.*s' in the schema cache",
                         STR_FMT(t->name), (int)(it->name.len > 200 ? 200 : it->name.len), it->name.ptr);
    } else {
        *x->err = core_err_make(300, "PGRST201", NULL, STR_NULL);
        core_buf_appendf(&m, "Could not embed because more than one relationship was found for '%.*s' and '%.*s'",
                         STR_FMT(t->name), (int)(it->name.len > 200 ? 200 : it->name.len), it->name.ptr);
        core_buf_t d;
        core_buf_init(&d, 8192);
        for (size_t i = 0; i < n; i++)
            core_buf_appendf(&d, "%s%.*s (%s)", i ? ", " : "",
                             STR_FMT(found[i].func ? found[i].func->name : found[i].fk2 ? found[i].fk2->name : found[i].fk->name),
                             found[i].kind == REL_M2O ? "many-to-one" : found[i].kind == REL_O2M ? "one-to-many"
                             : found[i].kind == REL_M2M ? "many-to-many" : "computed");
        char *dd = core_buf_status(&d) == CORE_OK ? core_arena_strdup(x->arena, core_buf_str(&d)) : NULL;
        core_buf_free(&d);
        x->err->details = str_from_cstr(dd);
        x->err->hint = STR_LIT("Try changing the embed to one of the relationships above with '!<name>'");
    }
    char *msg = core_buf_status(&m) == CORE_OK ? core_arena_strdup(x->arena, core_buf_str(&m)) : NULL;
    core_buf_free(&m);
    x->err->message = msg ? str_from_cstr(msg) : STR_LIT("relationship error");
    return CORE_EINVAL;
}

/* Re-roots embedded parameters: "key.rest" becomes "rest", "key" becomes the top level. */
static bool reroot(str_t embed, str_t key, str_t *out)
{
    if (!embed.ptr) return false;
    if (str_eq(embed, key)) {
        *out = STR_NULL;
        return true;
    }
    if (embed.len > key.len && str_starts_with(embed, key) && embed.ptr[key.len] == '.') {
        *out = (str_t){embed.ptr + key.len + 1, embed.len - key.len - 1};
        return true;
    }
    return false;
}

static int child_query(core_arena_t *a, const rest_query_t *q, const rest_select_t *it, rest_query_t *cq)
{
    str_t key = it->alias.ptr ? it->alias : it->name;
    memset(cq, 0, sizeof(*cq));
    cq->select = it->children;
    cq->nselect = it->nchildren;
    cq->limit = -1;
    cq->filters = core_arena_alloc(a, (q->nfilters + 1) * sizeof(rest_filter_t));
    cq->logic = core_arena_alloc(a, (q->nlogic + 1) * sizeof(rest_logic_t *));
    cq->order = core_arena_alloc(a, (q->norder + 1) * sizeof(rest_order_t));
    cq->pages = core_arena_alloc(a, (q->npages + 1) * sizeof(rest_embed_page_t));
    if (!cq->filters || !cq->logic || !cq->order || !cq->pages) return CORE_ENOMEM;
    str_t rest;
    for (size_t i = 0; i < q->nfilters; i++) {
        if (!reroot(q->filters[i].embed, key, &rest) && !(it->alias.ptr && reroot(q->filters[i].embed, it->name, &rest))) continue;
        cq->filters[cq->nfilters] = q->filters[i];
        cq->filters[cq->nfilters++].embed = rest;
    }
    for (size_t i = 0; i < q->nlogic; i++) {
        if (!reroot(q->logic[i]->embed, key, &rest)) continue;
        rest_logic_t *l = core_arena_alloc(a, sizeof(*l));
        if (!l) return CORE_ENOMEM;
        *l = *q->logic[i];
        l->embed = rest;
        cq->logic[cq->nlogic++] = l;
    }
    for (size_t i = 0; i < q->norder; i++) {
        if (!reroot(q->order[i].embed, key, &rest)) continue;
        cq->order[cq->norder] = q->order[i];
        cq->order[cq->norder++].embed = rest;
    }
    for (size_t i = 0; i < q->npages; i++) {
        if (!reroot(q->pages[i].embed, key, &rest)) continue;
        if (!rest.ptr) {
            cq->limit = q->pages[i].limit;
            cq->offset = q->pages[i].offset;
        } else {
            cq->pages[cq->npages] = q->pages[i];
            cq->pages[cq->npages++].embed = rest;
        }
    }
    return CORE_OK;
}

static void append_join(core_buf_t *b, const char *left, const str_t *lcols, const char *right, const str_t *rcols, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (i) core_buf_append_cstr(b, " and ");
        core_buf_append_cstr(b, left);
        core_buf_append_char(b, '.');
        rest_sql_ident(b, lcols[i]);
        core_buf_append_cstr(b, " = ");
        core_buf_append_cstr(b, right);
        core_buf_append_char(b, '.');
        rest_sql_ident(b, rcols[i]);
    }
}

/* " from target as alias where <join to the parent>" for a resolved relationship, with
 * the target level's derived values (see rest_build_t) joined beside it. */
static void append_rel_from(rest_build_t *x, const rel_t *r, const char *alias, const char *derived)
{
    core_buf_t *b = x->b;
    if (r->kind == REL_FUNC) {
        core_buf_append_cstr(b, " from ");
        rest_sql_ident(b, r->func->schema);
        core_buf_append_char(b, '.');
        rest_sql_ident(b, r->func->name);
        core_buf_appendf(b, "(%s) as %s", x->alias, alias);
        append_derived(b, alias, derived);
        core_buf_append_cstr(b, " where true");
        return;
    }
    core_buf_append_cstr(b, " from ");
    const char *cte = NULL;
    for (size_t i = 0; i < x->ncte; i++)
        if (x->cte_tables[i] == r->target) cte = x->cte_names[i];
    if (cte) {
        core_buf_append_cstr(b, cte);
    } else {
        rest_sql_ident(b, r->target->schema);
        core_buf_append_char(b, '.');
        rest_sql_ident(b, r->target->name);
    }
    core_buf_append_cstr(b, " as ");
    core_buf_append_cstr(b, alias);
    append_derived(b, alias, derived);
    core_buf_append_cstr(b, " where ");
    if (r->kind == REL_M2O) {
        append_join(b, alias, r->fk->fcolumns, x->alias, r->fk->columns, r->fk->ncolumns);
    } else if (r->kind == REL_O2M) {
        append_join(b, alias, r->fk->columns, x->alias, r->fk->fcolumns, r->fk->ncolumns);
    } else {
        core_buf_append_cstr(b, "exists (select 1 from ");
        rest_sql_ident(b, r->fk->schema);
        core_buf_append_char(b, '.');
        rest_sql_ident(b, r->fk->table);
        core_buf_append_cstr(b, " as pgrst_j where ");
        append_join(b, "pgrst_j", r->fk->columns, x->alias, r->fk->fcolumns, r->fk->ncolumns);
        core_buf_append_cstr(b, " and ");
        append_join(b, "pgrst_j", r->fk2->columns, alias, r->fk2->fcolumns, r->fk2->ncolumns);
        core_buf_append_char(b, ')');
    }
}

/* A fresh "pgrst_N" alias and a build context for the relation's target. */
static int enter_rel(rest_build_t *x, const rel_t *r, rest_build_t *cx)
{
    int id = ++*x->next_alias;
    char *alias = core_arena_alloc(x->arena, 32);
    if (!alias) return CORE_ENOMEM;
    snprintf(alias, 32, "pgrst_%d", id);
    *cx = *x;
    cx->table = r->target;
    cx->alias = alias;
    cx->group_by = NULL;
    cx->derived = NULL;
    cx->dcols = NULL;
    cx->ndcols = 0;
    return CORE_OK;
}

/* Parameters were added through cx; carry its counters back. */
static void leave_rel(rest_build_t *x, const rest_build_t *cx)
{
    x->params = cx->params;
    x->pkind = cx->pkind;
    x->nparams = cx->nparams;
    x->cap = cx->cap;
}

static int not_to_one(rest_build_t *x, const char *code, const char *what, str_t name)
{
    *x->err = core_err_make(400, code, NULL, STR_NULL);
    x->err->message = rest_arena_printf(x->arena, "A %s operation on '%.*s' is not possible", what,
                                        (int)(name.len > 200 ? 200 : name.len), name.ptr);
    x->err->details = rest_arena_printf(x->arena, "'%.*s' and '%.*s' do not form a many-to-one or one-to-one relationship",
                                        STR_FMT(x->table->name), (int)(name.len > 200 ? 200 : name.len), name.ptr);
    if (!x->err->message.ptr) x->err->message = STR_LIT("operation not possible");
    return CORE_EINVAL;
}

static int build_embed(rest_build_t *x, const rest_query_t *q, const rest_select_t *it, int mode)
{
    if (!x->schema || !x->alias || !x->next_alias) return rest_build_unsupported(x, "Embedding is not available here");
    rel_t r;
    int rc = find_rel(x, it, it->hint, &r);
    if (rc != CORE_OK) return rc;
    rest_query_t cq;
    if ((rc = child_query(x->arena, q, it, &cq)) != CORE_OK) return rc;
    rest_build_t cx;
    if ((rc = enter_rel(x, &r, &cx)) != CORE_OK) return rc;
    core_buf_t *b = x->b;

    bool one = rel_one(&r);
    if (mode == EMBED_TEST) core_buf_append_cstr(b, one ? "(" : "json_array_length(");
    core_buf_append_cstr(b, one ? "(select row_to_json(pgrst_e) from (select "
                                : "(select coalesce(json_agg(pgrst_e), '[]') from (select ");
    rc = rest_build_select(&cx, &cq);
    if (rc != CORE_OK) return rc;
    append_rel_from(x, &r, cx.alias, cx.derived);
    /* the child's own conditions, with its parameters numbered after the parent's so far */
    if ((rc = rest_build_conds(&cx, &cq, " and ")) != CORE_OK) return rc;
    if ((rc = rest_build_order(&cx, &cq)) != CORE_OK) return rc;
    if (cq.limit >= 0) core_buf_appendf(b, " limit %ld", cq.limit);
    if (cq.offset > 0) core_buf_appendf(b, " offset %ld", cq.offset);
    core_buf_append_cstr(b, ") pgrst_e)");
    if (mode == EMBED_TEST) core_buf_append_cstr(b, one ? ") is not null" : ") > 0");
    if (mode == EMBED_JSONB) core_buf_append_cstr(b, "::jsonb"); /* json has no equality to group by */
    if (mode == EMBED_NAMED) {
        core_buf_append_cstr(b, " as ");
        rest_sql_ident(b, it->alias.ptr ? it->alias : it->name);
    }
    leave_rel(x, &cx);
    return CORE_OK;
}

/* ---- spreads -------------------------------------------------------------------------------- */

#define SPREAD_DEPTH_MAX 8

/* Does the spread (or one inside it) aggregate? */
static bool spread_aggregates(const rest_select_t *it)
{
    for (size_t i = 0; i < it->nchildren; i++)
        if (it->children[i].agg || (it->children[i].spread && spread_aggregates(&it->children[i]))) return true;
    return false;
}


/* The relationship of the spread `it` at x's level, its child query, and (unless items is
 * NULL) its items with each '*' expanded to the target's columns. */
static int spread_target(rest_build_t *x, const rest_query_t *q, const rest_select_t *it, rel_t *r, rest_query_t *cq,
                         const rest_select_t **items, size_t *nitems)
{
    if (!x->schema || !x->alias || !x->next_alias) return rest_build_unsupported(x, "Embedding is not available here");
    int rc = find_rel(x, it, it->hint, r);
    if (rc != CORE_OK) return rc;
    if (!rel_one(r) && spread_aggregates(it)) { /* as PostgREST 13 answers it */
        *x->err = core_err_make(400, "PGRST127", "Feature not implemented",
                                STR_LIT("Aggregates are not implemented for one-to-many or many-to-many spreads."));
        return CORE_EINVAL;
    }
    if ((rc = child_query(x->arena, q, it, cq)) != CORE_OK) return rc;
    if (!items) return CORE_OK; /* the relationship and child query only */
    /* rel(*) or rel(): every column of the target, once per '*' */
    static const rest_select_t STAR = {.star = true};
    const rest_select_t *in = it->nchildren ? it->children : &STAR;
    size_t n = it->nchildren ? it->nchildren : 1, nstars = 0;
    for (size_t i = 0; i < n; i++)
        if (in[i].star) nstars++;
    if (!nstars) {
        *items = in;
        *nitems = n;
        return CORE_OK;
    }
    rest_select_t *v = core_arena_zalloc(x->arena, (n + nstars * r->target->ncolumns) * sizeof(*v));
    if (!v) return CORE_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!in[i].star) v[k++] = in[i];
        else
            for (size_t c = 0; c < r->target->ncolumns; c++) v[k++].name = r->target->columns[c].name;
    }
    *items = v;
    *nitems = k;
    return CORE_OK;
}

/* The value of `leaf`, an item of the innermost spread of chain[0..depth), for one row of
 * x's level: "(select <leaf> from target where <join and the spread's conditions>)", nested
 * once per spread of the chain. An aggregate's argument is its column (with the cast before
 * the aggregate); the caller applies the aggregate. */
static int spread_value(rest_build_t *x, const rest_query_t *q, const rest_select_t *const *chain, size_t depth,
                        const rest_select_t *leaf)
{
    rel_t r;
    rest_query_t cq = {0};
    int rc = spread_target(x, q, chain[0], &r, &cq, NULL, NULL);
    if (rc != CORE_OK) return rc;
    rest_build_t cx;
    if ((rc = enter_rel(x, &r, &cx)) != CORE_OK) return rc;
    /* A to-many spread (PostgREST 13): the value over its rows as a JSON array, in the
     * spread's order (or the target's primary key, so that the arrays of its columns line
     * up), with its limit and offset; nested to-many spreads give arrays of arrays. */
    bool many = !rel_one(&r);
    core_buf_append_cstr(x->b, many ? "(select coalesce(json_agg(pgrst_a.v), '[]') from (select " : "(select ");
    if (depth > 1) {
        rc = spread_value(&cx, &cq, chain + 1, depth - 1, leaf);
    } else if (leaf->is_embed) {
        rest_select_t one = *leaf;
        rest_query_t oq = cq;
        oq.select = &one;
        oq.nselect = 1;
        rc = build_embed(&cx, &oq, &one, EMBED_VALUE);
    } else {
        rc = rest_build_field(&cx, leaf->name, leaf->json, leaf->njson);
        if (rc == CORE_OK && leaf->cast.ptr) {
            core_buf_append_cstr(x->b, "::");
            core_buf_append_str(x->b, leaf->cast);
        }
    }
    if (rc != CORE_OK) return rc;
    if (many) core_buf_append_cstr(x->b, " as v");
    append_rel_from(x, &r, cx.alias, NULL);
    if ((rc = rest_build_conds(&cx, &cq, " and ")) != CORE_OK) return rc;
    if (many) {
        if (cq.norder) {
            if ((rc = rest_build_order(&cx, &cq)) != CORE_OK) return rc;
        } else {
            for (size_t k = 0; k < r.target->npk; k++) {
                core_buf_append_cstr(x->b, k ? ", " : " order by ");
                core_buf_append_cstr(x->b, cx.alias);
                core_buf_append_char(x->b, '.');
                rest_sql_ident(x->b, r.target->pk[k]);
            }
        }
        if (cq.limit >= 0) core_buf_appendf(x->b, " limit %ld", cq.limit);
        if (cq.offset > 0) core_buf_appendf(x->b, " offset %ld", cq.offset);
        core_buf_append_cstr(x->b, ") pgrst_a");
    }
    core_buf_append_char(x->b, ')');
    leave_rel(x, &cx);
    return CORE_OK;
}

static const char *const AGG_SQL[] = {NULL, "count(", "sum(", "avg(", "min(", "max("};
static const char *const AGG_NAME[] = {NULL, "count", "sum", "avg", "min", "max"};

/* The name a select item answers under. */
static str_t item_name(const rest_select_t *s)
{
    if (s->alias.ptr) return s->alias;
    if (s->agg) return str_from_cstr(AGG_NAME[s->agg]);
    return s->njson ? rest_json_name(s->name, s->json, s->njson) : s->name;
}

/* State of one select list while it is written (rest_build_select). */
typedef struct {
    bool agg;       /* the list aggregates: plain items are grouped */
    bool derive;    /* ... beside embeds or spreads: their values go to a derived table */
    size_t n;       /* items written */
    core_buf_t *group;   /* " group by 1, 3" */
    size_t ngroup;
    core_buf_t *derived; /* ", <expr> as pgrst_d1, ..." */
    int nderived;
} sel_t;

static void group_item(sel_t *st)
{
    core_buf_appendf(st->group, "%s%zu", st->ngroup++ ? ", " : " group by ", st->n);
}

/* Points x->b at the derived values (after a ", ") and returns the next index k; the caller
 * writes one value and derive_end names it pgrst_d<k> and points x->b back. */
static int derive_begin(rest_build_t *x, sel_t *st, core_buf_t **saved)
{
    *saved = x->b;
    x->b = st->derived;
    core_buf_append_cstr(x->b, ", ");
    return ++st->nderived;
}

static void derive_end(rest_build_t *x, sel_t *st, core_buf_t *saved, int k)
{
    core_buf_appendf(st->derived, " as pgrst_d%d", k);
    x->b = saved;
}

/* One leaf of a spread as an item of x's select list. */
static int spread_leaf(rest_build_t *x, const rest_query_t *q, const rest_select_t *const *chain, size_t depth,
                       const rest_select_t *leaf, bool many, sel_t *st)
{
    if (st->n++) core_buf_append_cstr(x->b, ", ");
    str_t name = item_name(leaf);
    if (leaf->agg && leaf->name.len == 0) { /* count() of the spread: the rows of this level */
        core_buf_append_cstr(x->b, "count(*)");
        if (leaf->agg_cast.ptr) {
            core_buf_append_cstr(x->b, "::");
            core_buf_append_str(x->b, leaf->agg_cast);
        }
        core_buf_append_cstr(x->b, " as ");
        rest_sql_ident(x->b, name);
        return CORE_OK;
    }
    if (!st->derive) { /* no grouping: the value in place */
        int rc = spread_value(x, q, chain, depth, leaf);
        if (rc != CORE_OK) return rc;
        core_buf_append_cstr(x->b, " as ");
        rest_sql_ident(x->b, name);
        return CORE_OK;
    }
    core_buf_t *saved;
    int k = derive_begin(x, st, &saved);
    int rc = spread_value(x, q, chain, depth, leaf);
    if ((leaf->is_embed || many) && rc == CORE_OK) core_buf_append_cstr(x->b, "::jsonb"); /* json: no equality */
    derive_end(x, st, saved, k);
    if (rc != CORE_OK) return rc;
    if (leaf->agg) {
        core_buf_append_cstr(x->b, AGG_SQL[leaf->agg]);
        core_buf_appendf(x->b, "%s_d.pgrst_d%d)", x->alias, k);
        if (leaf->agg_cast.ptr) {
            core_buf_append_cstr(x->b, "::");
            core_buf_append_str(x->b, leaf->agg_cast);
        }
    } else {
        core_buf_appendf(x->b, "%s_d.pgrst_d%d", x->alias, k);
        group_item(st);
        if (depth == 1) { /* order=rel(col) under the grouping reads this column */
            rest_derived_col_t *d = core_arena_alloc(x->arena, (x->ndcols + 1) * sizeof(*d));
            if (!d) return CORE_ENOMEM;
            if (x->ndcols) memcpy(d, x->dcols, x->ndcols * sizeof(*d));
            d[x->ndcols++] = (rest_derived_col_t){chain[0]->alias.ptr ? chain[0]->alias : chain[0]->name, name, k};
            x->dcols = d;
        }
    }
    core_buf_append_cstr(x->b, " as ");
    rest_sql_ident(x->b, name);
    return CORE_OK;
}

/* ...rel(cols): each of the child's items becomes an item of the parent (a spread inside it
 * too, recursively); through a to-many relationship, as an array of its rows' values. */
static int build_spread(rest_build_t *x, const rest_query_t *q, const rest_select_t **chain, size_t depth, sel_t *st)
{
    /* the items of the innermost spread, resolved level by level */
    rest_build_t cur = *x;
    rest_query_t curq = *q;
    const rest_select_t *items = NULL;
    size_t nitems = 0;
    bool many = false; /* a to-many spread on the way: the leaves are JSON arrays */
    for (size_t k = 0; k < depth; k++) {
        rel_t r;
        rest_query_t cq = {0};
        int rc = spread_target(&cur, &curq, chain[k], &r, &cq, &items, &nitems);
        if (rc != CORE_OK) return rc;
        if (!rel_one(&r)) many = true;
        rest_build_t next;
        if ((rc = enter_rel(&cur, &r, &next)) != CORE_OK) return rc;
        cur = next;
        curq = cq;
    }
    for (size_t i = 0; i < nitems; i++) {
        const rest_select_t *c = &items[i];
        int rc = CORE_OK;
        if (c->spread) {
            if (depth >= SPREAD_DEPTH_MAX) return rest_build_unsupported(x, "Spreads are nested too deeply");
            chain[depth] = c;
            rc = build_spread(x, q, chain, depth + 1, st);
        } else if (c->is_embed && c->nchildren == 0) {
            continue; /* rel(): used for filtering only */
        } else {
            rc = spread_leaf(x, q, chain, depth, c, many, st);
        }
        if (rc != CORE_OK) return rc;
    }
    return CORE_OK;
}

/* The select item of this level that embeds `name` (by alias or relation name). */
static const rest_select_t *embed_item(const rest_query_t *q, str_t name)
{
    for (size_t i = 0; i < q->nselect; i++) {
        const rest_select_t *s = &q->select[i];
        if (s->is_embed && ((s->alias.ptr && str_eq(s->alias, name)) || (!s->alias.ptr && str_eq(s->name, name))))
            return s;
    }
    for (size_t i = 0; i < q->nselect; i++)
        if (q->select[i].is_embed && str_eq(q->select[i].name, name)) return &q->select[i];
    return NULL;
}

/* order=rel(col): "(select col from target where join)" for a to-one embed. */
static int build_related_order(rest_build_t *x, const rest_query_t *q, const rest_order_t *o)
{
    const rest_select_t *it = embed_item(q, o->rel);
    if (!it) return not_embedded(x, o->rel);
    for (size_t i = 0; i < x->ndcols && !o->njson; i++) /* a spread column under the grouping */
        if (str_eq(x->dcols[i].rel, o->rel) && str_eq(x->dcols[i].name, o->column)) {
            core_buf_appendf(x->b, "%s_d.pgrst_d%d", x->alias, x->dcols[i].index);
            return CORE_OK;
        }
    rel_t r;
    int rc = find_rel(x, it, it->hint, &r);
    if (rc != CORE_OK) return rc;
    if (!rel_one(&r)) return not_to_one(x, "PGRST118", "related order", o->rel);
    rest_build_t cx;
    if ((rc = enter_rel(x, &r, &cx)) != CORE_OK) return rc;
    core_buf_append_cstr(x->b, "(select ");
    if ((rc = rest_build_field(&cx, o->column, o->json, o->njson)) != CORE_OK) return rc;
    append_rel_from(x, &r, cx.alias, NULL);
    core_buf_append_char(x->b, ')');
    leave_rel(x, &cx);
    return CORE_OK;
}

/* "alias.*" so that only the relation's columns come out (an RPC's FROM also holds its
 * arguments). */
static void append_star(rest_build_t *x)
{
    if (x->alias) {
        core_buf_append_cstr(x->b, x->alias);
        core_buf_append_char(x->b, '.');
    }
    core_buf_append_char(x->b, '*');
}

/* col.sum()::cast → sum("col")::cast as "sum"; count() → count(*) as "count". */
static int build_aggregate(rest_build_t *x, const rest_select_t *s)
{
    core_buf_append_cstr(x->b, AGG_SQL[s->agg]);
    if (s->name.len == 0) {
        core_buf_append_char(x->b, '*');
    } else {
        int rc = rest_build_field(x, s->name, s->json, s->njson);
        if (rc != CORE_OK) return rc;
        if (s->cast.ptr) {
            core_buf_append_cstr(x->b, "::");
            core_buf_append_str(x->b, s->cast);
        }
    }
    core_buf_append_char(x->b, ')');
    if (s->agg_cast.ptr) {
        core_buf_append_cstr(x->b, "::");
        core_buf_append_str(x->b, s->agg_cast); /* validated like any cast */
    }
    core_buf_append_cstr(x->b, " as ");
    rest_sql_ident(x->b, s->alias.ptr ? s->alias : str_from_cstr(AGG_NAME[s->agg]));
    return CORE_OK;
}

int rest_build_select(rest_build_t *x, const rest_query_t *q)
{
    bool any = false;
    sel_t st = {0};
    bool nested = false; /* embeds or spreads beside the items */
    for (size_t i = 0; i < q->nselect; i++) {
        const rest_select_t *s = &q->select[i];
        if (!s->is_embed || s->nchildren || s->spread) any = true;
        if (s->agg || (s->spread && spread_aggregates(s))) st.agg = true;
        if (s->spread || (s->is_embed && s->nchildren)) nested = true;
    }
    x->group_by = NULL;
    x->derived = NULL;
    x->dcols = NULL;
    x->ndcols = 0;
    if (!any) {
        append_star(x);
        return CORE_OK;
    }
    st.derive = st.agg && nested;
    core_buf_t g, d;
    core_buf_init(&g, 16384);
    core_buf_init(&d, SQL_MAX);
    st.group = &g;
    st.derived = &d;
    int rc = CORE_OK;
    for (size_t i = 0; i < q->nselect && rc == CORE_OK; i++) {
        const rest_select_t *s = &q->select[i];
        if (s->spread) {
            const rest_select_t *chain[SPREAD_DEPTH_MAX] = {s};
            rc = build_spread(x, q, chain, 1, &st);
            continue;
        }
        if (s->is_embed && s->nchildren == 0) continue; /* rel(): used for filtering only */
        if (st.n++) core_buf_append_cstr(x->b, ", ");
        if (st.agg && !s->agg) {
            if (s->star) {
                rc = rest_build_unsupported(x, "'*' cannot be combined with aggregate functions; name the columns to group by");
                break;
            }
            group_item(&st);
        }
        if (s->agg) {
            rc = build_aggregate(x, s);
        } else if (s->is_embed && st.derive) {
            core_buf_t *saved;
            int k = derive_begin(x, &st, &saved);
            rc = build_embed(x, q, s, EMBED_JSONB);
            derive_end(x, &st, saved, k);
            core_buf_appendf(x->b, "%s_d.pgrst_d%d as ", x->alias, k);
            rest_sql_ident(x->b, item_name(s));
        } else if (s->is_embed) {
            rc = build_embed(x, q, s, EMBED_NAMED);
        } else if (s->star) {
            append_star(x);
        } else {
            rc = rest_build_field(x, s->name, s->json, s->njson);
            if (rc != CORE_OK) break;
            if (s->cast.ptr) {
                core_buf_append_cstr(x->b, "::");
                core_buf_append_str(x->b, s->cast); /* validated to [A-Za-z0-9_ \[\]] by the parser */
            }
            if (s->alias.ptr || s->cast.ptr || s->njson || !db_table_column(x->table, s->name)) {
                core_buf_append_cstr(x->b, " as ");
                rest_sql_ident(x->b, s->alias.ptr ? s->alias : rest_json_name(s->name, s->json, s->njson));
            }
        }
    }
    if (rc == CORE_OK && (core_buf_status(&g) != CORE_OK || core_buf_status(&d) != CORE_OK))
        rc = core_buf_status(&g) != CORE_OK ? core_buf_status(&g) : core_buf_status(&d);
    if (rc == CORE_OK && st.ngroup && !(x->group_by = core_arena_strdup(x->arena, core_buf_str(&g)))) rc = CORE_ENOMEM;
    if (rc == CORE_OK && st.nderived && !(x->derived = core_arena_strdup(x->arena, core_buf_str(&d)))) rc = CORE_ENOMEM;
    core_buf_free(&g);
    core_buf_free(&d);
    return rc;
}

int rest_build_order(rest_build_t *x, const rest_query_t *q)
{
    if (x->group_by) core_buf_append_cstr(x->b, x->group_by);
    size_t n = 0;
    for (size_t i = 0; i < q->norder; i++) {
        const rest_order_t *o = &q->order[i];
        if (o->embed.ptr) {
            if (!embeds(q, o->embed)) return not_embedded(x, o->embed);
            continue; /* applied inside the embed */
        }
        core_buf_append_cstr(x->b, n++ ? ", " : " order by ");
        /* qualified: order=id must order by the column even when an item is named "id" */
        int rc;
        if (o->rel.ptr) {
            rc = build_related_order(x, q, o);
        } else {
            x->qualify = true;
            rc = rest_build_field(x, o->column, o->json, o->njson);
            x->qualify = false;
        }
        if (rc != CORE_OK) return rc;
        if (o->desc) core_buf_append_cstr(x->b, " desc");
        if (o->nulls == 1) core_buf_append_cstr(x->b, " nulls first");
        if (o->nulls == 2) core_buf_append_cstr(x->b, " nulls last");
    }
    return CORE_OK;
}

/* Prefer: count=planned: the planner's estimate for "select 1 from t where ...", taken by
 * strata_meta.plan_rows (migration 2) inside this statement; the count query's text and the
 * where clause's parameters (all of x's so far: the where is built first) are bound.
 * count=estimated (with db-max-rows): the exact count while it stays within db-max-rows,
 * beyond it the larger of the estimate and db-max-rows + 1 (PostgREST's rule). */
static int planned_count(rest_build_t *x, int count, long max_rows, const core_buf_t *where)
{
    core_buf_t *b = x->b, q;
    core_buf_init(&q, SQL_MAX);
    int nwhere = x->nparams, rc;
    x->b = &q;
    core_buf_append_cstr(&q, "select 1");
    rest_build_from(x);
    core_buf_append_str(&q, core_buf_str(where));
    x->b = b;
    rc = core_buf_status(&q);
    if (rc != CORE_OK) goto out;
    if (count == REST_COUNT_ESTIMATED)
        core_buf_appendf(b, ", (select case when pgrst_c.n <= %ld then pgrst_c.n else greatest(pgrst_c.n, ", max_rows);
    else
        core_buf_append_cstr(b, ", (select ");
    core_buf_append_cstr(b, "strata_meta.plan_rows(");
    if ((rc = rest_build_param(x, core_buf_str(&q))) != CORE_OK) goto out;
    core_buf_append_cstr(b, "::text, ");
    if (nwhere == 0) core_buf_append_cstr(b, "'{}'");
    for (int i = 1; i <= nwhere; i++) core_buf_appendf(b, "%s$%d::text", i == 1 ? "array[" : ", ", i);
    core_buf_append_cstr(b, nwhere ? "]::text[])" : "::text[])");
    if (count == REST_COUNT_ESTIMATED) {
        core_buf_append_cstr(b, ") end from (select count(*) as n from (select 1");
        rest_build_from(x);
        core_buf_append_str(b, core_buf_str(where));
        core_buf_appendf(b, " limit %ld) pgrst_l) pgrst_c", max_rows + 1);
    }
    core_buf_append_char(b, ')');
out:
    core_buf_free(&q);
    return rc;
}

int rest_sql_read(core_arena_t *a, const db_schema_t *schema, const db_table_t *t, const rest_query_t *q, int count,
                  long max_rows, rest_stmt_t *out, core_err_t *err)
{
    core_buf_t b, where;
    core_buf_init(&b, SQL_MAX);
    core_buf_init(&where, SQL_MAX);
    int next_alias = 0;
    rest_build_t x = {.arena = a, .table = t, .b = &b, .err = err, .schema = schema, .next_alias = &next_alias};
    int rc;

    /* The conditions are built once and used twice when an exact count is wanted. */
    x.alias = "pgrst_0";
    x.b = &where;
    if ((rc = rest_build_where(&x, q)) != CORE_OK) goto out;
    x.b = &b;

    core_buf_append_cstr(&b, "select ");
    core_buf_append_cstr(&b, rest_sql_body_agg(q)); /* json, csv, geojson, nulls stripped */
    core_buf_append_cstr(&b, ", count(*)");
    if (count == REST_COUNT_EXACT || (count == REST_COUNT_ESTIMATED && max_rows < 0)) {
        core_buf_append_cstr(&b, ", (select count(*)");
        rest_build_from(&x);
        core_buf_append_str(&b, core_buf_str(&where));
        core_buf_append_cstr(&b, ")");
    } else if (count != REST_COUNT_NONE) {
        if ((rc = planned_count(&x, count, max_rows, &where)) != CORE_OK) goto out;
    } else {
        core_buf_append_cstr(&b, ", null::bigint");
    }
    core_buf_append_cstr(&b, REST_SQL_GUC_COLS);
    core_buf_append_cstr(&b, " from (select ");
    x.alias = "pgrst_0";
    if ((rc = rest_build_select(&x, q)) != CORE_OK) goto out;
    rest_build_from(&x);
    core_buf_append_str(&b, core_buf_str(&where));
    if ((rc = rest_build_order(&x, q)) != CORE_OK) goto out;
    long limit = q->limit;
    if (max_rows >= 0 && (limit < 0 || limit > max_rows)) limit = max_rows;
    char num[24];
    if (limit >= 0) {
        core_buf_append_cstr(&b, " limit ");
        size_t n = core_u64_str(num, (uint64_t)limit);
        if ((rc = rest_build_param(&x, (str_t){num, n})) != CORE_OK) goto out;
        core_buf_append_cstr(&b, "::bigint");
    }
    if (q->offset > 0) {
        core_buf_append_cstr(&b, " offset ");
        size_t n = core_u64_str(num, (uint64_t)q->offset);
        if ((rc = rest_build_param(&x, (str_t){num, n})) != CORE_OK) goto out;
        core_buf_append_cstr(&b, "::bigint");
    }
    core_buf_append_cstr(&b, ") _s");

    rc = core_buf_status(&b) != CORE_OK ? core_buf_status(&b) : core_buf_status(&where);
    if (rc != CORE_OK) goto out;
    out->sql = core_arena_strdup(a, core_buf_str(&b));
    out->params = x.params;
    out->nparams = x.nparams;
    rc = out->sql ? CORE_OK : CORE_ENOMEM;
out:
    if (rc == CORE_ELIMIT && err->code == NULL) *err = core_err_make(400, "PGRST100", "request too complex", STR_NULL);
    core_buf_free(&b);
    core_buf_free(&where);
    return rc;
}
