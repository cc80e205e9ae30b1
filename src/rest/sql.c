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
        if (!np) return CORE_ENOMEM;
        if (x->nparams) memcpy(np, x->params, (size_t)x->nparams * sizeof(char *));
        x->params = np;
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
    if (rc == CORE_OK) core_buf_appendf(x->b, "$%d", x->nparams);
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

int rest_build_column(rest_build_t *x, str_t name)
{
    const db_column_t *c = db_table_column(x->table, name);
    if (!c) return rest_build_column_error(x, name);
    rest_sql_ident(x->b, c->name);
    return CORE_OK;
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
    if ((rc = rest_build_column(x, f->column)) != CORE_OK) return rc;
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

int rest_build_where(rest_build_t *x, const rest_query_t *q)
{
    if (q->nfilters == 0 && q->nlogic == 0) return CORE_OK;
    core_buf_append_cstr(x->b, " where ");
    size_t n = 0;
    for (size_t i = 0; i < q->nfilters; i++, n++) {
        if (n) core_buf_append_cstr(x->b, " and ");
        int rc = rest_build_filter(x, &q->filters[i]);
        if (rc != CORE_OK) return rc;
    }
    for (size_t i = 0; i < q->nlogic; i++, n++) {
        if (n) core_buf_append_cstr(x->b, " and ");
        int rc = rest_build_logic(x, q->logic[i]);
        if (rc != CORE_OK) return rc;
    }
    return CORE_OK;
}

void rest_build_from(rest_build_t *x)
{
    core_buf_append_cstr(x->b, " from ");
    rest_sql_ident(x->b, x->table->schema);
    core_buf_append_char(x->b, '.');
    rest_sql_ident(x->b, x->table->name);
}

int rest_build_select(rest_build_t *x, const rest_query_t *q)
{
    if (q->nselect == 0) {
        core_buf_append_char(x->b, '*');
        return CORE_OK;
    }
    for (size_t i = 0; i < q->nselect; i++) {
        const rest_select_t *s = &q->select[i];
        if (i) core_buf_append_cstr(x->b, ", ");
        if (s->is_embed)
            return rest_build_unsupported(x, "Embedding related resources is not supported yet");
        if (s->star) {
            core_buf_append_char(x->b, '*');
            continue;
        }
        int rc = rest_build_column(x, s->name);
        if (rc != CORE_OK) return rc;
        if (s->cast.ptr) {
            core_buf_append_cstr(x->b, "::");
            core_buf_append_str(x->b, s->cast); /* validated to [A-Za-z0-9_ \[\]] by the parser */
        }
        if (s->alias.ptr || s->cast.ptr) {
            core_buf_append_cstr(x->b, " as ");
            rest_sql_ident(x->b, s->alias.ptr ? s->alias : s->name);
        }
    }
    return CORE_OK;
}

int rest_build_order(rest_build_t *x, const rest_query_t *q)
{
    size_t n = 0;
    for (size_t i = 0; i < q->norder; i++) {
        const rest_order_t *o = &q->order[i];
        if (o->embed.ptr) return rest_build_unsupported(x, "Ordering embedded resources is not supported yet");
        core_buf_append_cstr(x->b, n++ ? ", " : " order by ");
        int rc = rest_build_column(x, o->column);
        if (rc != CORE_OK) return rc;
        if (o->desc) core_buf_append_cstr(x->b, " desc");
        if (o->nulls == 1) core_buf_append_cstr(x->b, " nulls first");
        if (o->nulls == 2) core_buf_append_cstr(x->b, " nulls last");
    }
    return CORE_OK;
}

int rest_sql_read(core_arena_t *a, const db_table_t *t, const rest_query_t *q, int count, long max_rows,
                  rest_stmt_t *out, core_err_t *err)
{
    core_buf_t b, where;
    core_buf_init(&b, SQL_MAX);
    core_buf_init(&where, SQL_MAX);
    rest_build_t x = {.arena = a, .table = t, .b = &b, .err = err};
    int rc;

    /* The conditions are built once and used twice when an exact count is wanted. */
    x.b = &where;
    if ((rc = rest_build_where(&x, q)) != CORE_OK) goto out;
    x.b = &b;

    core_buf_append_cstr(&b, "select coalesce(json_agg(_s), '[]')::text, count(*)");
    if (count == REST_COUNT_EXACT) {
        core_buf_append_cstr(&b, ", (select count(*)");
        rest_build_from(&x);
        core_buf_append_str(&b, core_buf_str(&where));
        core_buf_append_cstr(&b, ")");
    } else {
        core_buf_append_cstr(&b, ", null::bigint");
    }
    core_buf_append_cstr(&b, " from (select ");
    if ((rc = rest_build_select(&x, q)) != CORE_OK) goto out;
    rest_build_from(&x);
    core_buf_append_str(&b, core_buf_str(&where));
    if ((rc = rest_build_order(&x, q)) != CORE_OK) goto out;
    long limit = q->limit;
    if (max_rows >= 0 && (limit < 0 || limit > max_rows)) limit = max_rows;
    char num[24];
    if (limit >= 0) {
        core_buf_append_cstr(&b, " limit ");
        int n = snprintf(num, sizeof(num), "%ld", limit);
        if ((rc = rest_build_param(&x, (str_t){num, (size_t)n})) != CORE_OK) goto out;
        core_buf_append_cstr(&b, "::bigint");
    }
    if (q->offset > 0) {
        core_buf_append_cstr(&b, " offset ");
        int n = snprintf(num, sizeof(num), "%ld", q->offset);
        if ((rc = rest_build_param(&x, (str_t){num, (size_t)n})) != CORE_OK) goto out;
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
