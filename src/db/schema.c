/*
 * The schema cache: one catalog query returns the whole picture as JSON, which is parsed
 * with jansson into a snapshot whose strings all live in one arena. Blocking libpq is
 * allowed in this file (see scripts/blocking-allowlist): loads run before the loops start
 * or on the schema listener's own thread.
 */
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/schema.h"

#define SCHEMA_JSON_MAX ((size_t)512 * 1024 * 1024)

/* Foreign keys carried through views: a view that exposes, under the same names, every
 * column of a foreign key of its base table (or every referenced column) gets that
 * relationship too, so views embed like their tables. Columns a view uses are found through
 * its rewrite rule's dependencies (information_schema.view_column_usage only shows views the
 * current role owns). */
static const char VIEW_FKS_SQL[] =
    "with vcols as (select distinct r.ev_class as view_oid, d.refobjid as tbl_oid, a.attname"
    "  from pg_rewrite r join pg_depend d on d.objid = r.oid and d.classid = 'pg_rewrite'::regclass"
    "   and d.refclassid = 'pg_class'::regclass and d.refobjsubid > 0"
    "  join pg_attribute a on a.attrelid = d.refobjid and a.attnum = d.refobjsubid"
    "  join pg_attribute va on va.attrelid = r.ev_class and va.attname = a.attname and not va.attisdropped"
    "  join pg_class v on v.oid = r.ev_class and v.relkind in ('v', 'm') where r.ev_class <> d.refobjid),"
    " fk as (select con.conname, con.conrelid, con.confrelid,"
    "  array(select a.attname from unnest(con.conkey) with ordinality k(n, o) join pg_attribute a"
    "   on a.attrelid = con.conrelid and a.attnum = k.n order by k.o) as cols,"
    "  array(select a.attname from unnest(con.confkey) with ordinality k(n, o) join pg_attribute a"
    "   on a.attrelid = con.confrelid and a.attnum = k.n order by k.o) as fcols"
    "  from pg_constraint con where con.contype = 'f'),"
    " derived as ("
    "  select fk.conname, vv.view_oid as src, fk.confrelid as dst, fk.cols, fk.fcols from fk"
    "   join (select distinct view_oid, tbl_oid from vcols) vv on vv.tbl_oid = fk.conrelid"
    "   where not exists (select 1 from unnest(fk.cols) c where c not in"
    "    (select attname from vcols where view_oid = vv.view_oid and tbl_oid = fk.conrelid))"
    "  union all"
    "  select fk.conname, fk.conrelid, vv.view_oid, fk.cols, fk.fcols from fk"
    "   join (select distinct view_oid, tbl_oid from vcols) vv on vv.tbl_oid = fk.confrelid"
    "   where not exists (select 1 from unnest(fk.fcols) c where c not in"
    "    (select attname from vcols where view_oid = vv.view_oid and tbl_oid = fk.confrelid)))"
    " select coalesce(json_agg(json_build_object('name', x.conname, 'schema', sn.nspname,"
    "  'table', sc.relname, 'columns', to_json(x.cols), 'fschema', dn.nspname, 'ftable', dc.relname,"
    "  'fcolumns', to_json(x.fcols))), '[]') from derived x"
    "  join pg_class sc on sc.oid = x.src join pg_namespace sn on sn.oid = sc.relnamespace"
    "  join pg_class dc on dc.oid = x.dst join pg_namespace dn on dn.oid = dc.relnamespace"
    "  where sn.nspname in (select nspname from exposed) or dn.nspname in (select nspname from exposed)";

static const char CATALOG_SQL_HEAD[] =
    "with exposed as (select trim(s) as nspname from unnest(string_to_array($1, ',')) s), "
    "rels as ("
    " select c.oid, n.nspname as schema, c.relname as name, c.relkind as kind,"
    "  obj_description(c.oid, 'pg_class') as description,"
    "  (c.relkind in ('r','p') or (c.relkind in ('v','f') and"
    "   (pg_relation_is_updatable(c.oid::regclass, true) & 8) = 8)) as insertable"
    " from pg_class c join pg_namespace n on n.oid = c.relnamespace"
    " where n.nspname in (select nspname from exposed) and c.relkind in ('r','v','m','f','p')) "
    "select json_build_object("
    " 'tables', (select coalesce(json_agg(json_build_object("
    "   'schema', r.schema, 'name', r.name, 'kind', r.kind, 'description', r.description,"
    "   'insertable', r.insertable,"
    "   'columns', (select coalesce(json_agg(json_build_object("
    "      'name', a.attname, 'type', format_type(a.atttypid, a.atttypmod),"
    "      'nullable', not a.attnotnull, 'default', pg_get_expr(d.adbin, d.adrelid),"
    "      'description', col_description(r.oid, a.attnum)) order by a.attnum), '[]')"
    "     from pg_attribute a left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum"
    "     where a.attrelid = r.oid and a.attnum > 0 and not a.attisdropped),"
    "   'pk', (select coalesce(json_agg(a.attname order by k.ord), '[]')"
    "     from pg_constraint con cross join lateral unnest(con.conkey) with ordinality k(attnum, ord)"
    "     join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.attnum"
    "     where con.conrelid = r.oid and con.contype = 'p'),"
    "   'uniques', (select coalesce(json_agg((select json_agg(a.attname order by k.ord)"
    "      from unnest(con.conkey) with ordinality k(attnum, ord)"
    "      join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.attnum)), '[]')"
    "     from pg_constraint con where con.conrelid = r.oid and con.contype = 'u')"
    "  ) order by r.schema, r.name), '[]') from rels r),"
    " 'fks', (select coalesce(json_agg(json_build_object("
    "   'name', con.conname, 'schema', n1.nspname, 'table', c1.relname,"
    "   'columns', (select json_agg(a.attname order by k.ord) from unnest(con.conkey) with ordinality k(attnum, ord)"
    "      join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.attnum),"
    "   'fschema', n2.nspname, 'ftable', c2.relname,"
    "   'fcolumns', (select json_agg(a.attname order by k.ord) from unnest(con.confkey) with ordinality k(attnum, ord)"
    "      join pg_attribute a on a.attrelid = con.confrelid and a.attnum = k.attnum))), '[]')"
    "  from pg_constraint con"
    "  join pg_class c1 on c1.oid = con.conrelid join pg_namespace n1 on n1.oid = c1.relnamespace"
    "  join pg_class c2 on c2.oid = con.confrelid join pg_namespace n2 on n2.oid = c2.relnamespace"
    "  where con.contype = 'f' and (n1.nspname in (select nspname from exposed)"
    "   or n2.nspname in (select nspname from exposed))),"
    " 'view_fks', (";

static const char CATALOG_SQL_TAIL[] =
    "),"
    " 'functions', (select coalesce(json_agg(json_build_object("
    "   'schema', n.nspname, 'name', p.proname, 'args', pg_get_function_arguments(p.oid),"
    "   'rettype', format_type(p.prorettype, null), 'retset', p.proretset,"
    "   'volatility', p.provolatile, 'description', obj_description(p.oid, 'pg_proc'),"
    "   'ndefaults', p.pronargdefaults, 'variadic', p.provariadic <> 0,"
    "   'rettypkind', (select t.typtype from pg_type t where t.oid = p.prorettype),"
    "   'retmedia', (select json_build_object('name', t.typname, 'bytea', t.typbasetype = 'bytea'::regtype)"
    "      from pg_type t where t.oid = p.prorettype and t.typtype = 'd'"
    "      and (t.typname ~* '^[A-Za-z0-9.-]+/[A-Za-z0-9.+-]+$' or t.typname = '*/*')),"
    "   'retrel', (select json_build_object('schema', rn.nspname, 'name', rc.relname) from pg_type t"
    "      join pg_class rc on rc.oid = t.typrelid join pg_namespace rn on rn.oid = rc.relnamespace"
    "      where t.oid = p.prorettype),"
    "   'argrel', (select json_build_object('schema', rn.nspname, 'name', rc.relname) from pg_type t"
    "      join pg_class rc on rc.oid = t.typrelid join pg_namespace rn on rn.oid = rc.relnamespace"
    "      where p.pronargs > 0 and t.oid = p.proargtypes[0]),"
    "   'params', (select coalesce(json_agg(json_build_object('name', coalesce(p.proargnames[k.i], ''),"
    "      'type', format_type(k.t, null), 'mode', coalesce(p.proargmodes[k.i], 'i')) order by k.i), '[]')"
    "      from unnest(coalesce(p.proallargtypes, p.proargtypes::oid[])) with ordinality k(t, i)),"
    "   'settings', (select json_agg(c order by o) from unnest(p.proconfig) with ordinality x(c, o)))"
    "   order by n.nspname, p.proname), '[]')"
    "  from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
    "  where n.nspname in (select nspname from exposed) and p.prokind = 'f'),"
    /* Settings of the roles the authenticator can switch to (ALTER ROLE ... SET), as
     * PostgREST reads them: user-settable ones only; a per-database value wins over the
     * role's global one. */
    " 'role_settings', (select coalesce(json_agg(json_build_object('role', rolname,"
    "   'settings', kvs)), '[]') from (select rolname, json_object_agg(k, v order by k) as kvs"
    "   from (select distinct on (r.rolname, kv.k) r.rolname, kv.k, kv.v"
    "    from pg_auth_members m join pg_roles r on r.oid = m.roleid"
    "    join pg_db_role_setting s on s.setrole = r.oid and s.setdatabase in"
    "     (0, (select oid from pg_database where datname = current_database()))"
    "    cross join lateral unnest(s.setconfig) cfg(c)"
    "    cross join lateral (select split_part(cfg.c, '=', 1) as k,"
    "     substr(cfg.c, strpos(cfg.c, '=') + 1) as v) kv"
    "    join pg_settings ps on ps.name = kv.k and ps.context = 'user'"
    "    where m.member = (select oid from pg_roles where rolname = current_user)"
    "    order by r.rolname, kv.k, s.setdatabase desc) d group by rolname) g),"
    /* Prefer: timezone= is honoured for these names only. */
    " 'timezones', (select coalesce(json_agg(name), '[]') from pg_timezone_names)"
    ")::text";

typedef struct {
    core_arena_t *arena;
    atomic_int refs;
} schema_internal_t;

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (errlen) snprintf(err, errlen, "%s", msg);
}

/* Copies a JSON string (or null) into the arena; false on OOM or a wrong type. */
static bool get_str(core_arena_t *a, json_t *obj, const char *key, str_t *out, bool nullable)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = STR_NULL;
        return nullable;
    }
    if (!json_is_string(v)) return false;
    char *d = core_arena_strdup(a, (str_t){json_string_value(v), json_string_length(v)});
    if (!d) return false;
    *out = (str_t){d, json_string_length(v)};
    return true;
}

static bool get_str_array(core_arena_t *a, json_t *arr, str_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!arr || json_is_null(arr)) return true;
    if (!json_is_array(arr)) return false;
    size_t cnt = json_array_size(arr);
    if (cnt == 0) return true;
    str_t *v = core_arena_alloc(a, cnt * sizeof(str_t));
    if (!v) return false;
    for (size_t i = 0; i < cnt; i++) {
        json_t *e = json_array_get(arr, i);
        if (!json_is_string(e)) return false;
        char *d = core_arena_strdup(a, (str_t){json_string_value(e), json_string_length(e)});
        if (!d) return false;
        v[i] = (str_t){d, json_string_length(e)};
    }
    *out = v;
    *n = cnt;
    return true;
}

static int cmp_str(str_t a, str_t b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    int c = n ? memcmp(a.ptr, b.ptr, n) : 0;
    if (c) return c;
    return a.len < b.len ? -1 : a.len > b.len ? 1 : 0;
}

static int cmp_table(const void *x, const void *y)
{
    const db_table_t *a = x, *b = y;
    int c = cmp_str(a->schema, b->schema);
    return c ? c : cmp_str(a->name, b->name);
}

static bool parse_tables(core_arena_t *a, json_t *arr, db_schema_t *s)
{
    if (!json_is_array(arr)) return false;
    s->ntables = json_array_size(arr);
    s->tables = core_arena_zalloc(a, (s->ntables ? s->ntables : 1) * sizeof(db_table_t));
    if (!s->tables) return false;
    for (size_t i = 0; i < s->ntables; i++) {
        json_t *o = json_array_get(arr, i);
        db_table_t *t = &s->tables[i];
        str_t kind;
        if (!json_is_object(o) || !get_str(a, o, "schema", &t->schema, false) ||
            !get_str(a, o, "name", &t->name, false) || !get_str(a, o, "kind", &kind, false) ||
            !get_str(a, o, "description", &t->description, true) || kind.len != 1)
            return false;
        t->kind = kind.ptr[0];
        t->insertable = json_is_true(json_object_get(o, "insertable"));
        if (!get_str_array(a, json_object_get(o, "pk"), &t->pk, &t->npk)) return false;
        /* unique constraints (optional): column lists that make a foreign key one-to-one */
        json_t *uq = json_object_get(o, "uniques");
        if (json_is_array(uq) && json_array_size(uq) > 0) {
            t->nuniques = json_array_size(uq);
            t->uniques = core_arena_zalloc(a, t->nuniques * sizeof(*t->uniques));
            if (!t->uniques) return false;
            for (size_t k = 0; k < t->nuniques; k++)
                if (!get_str_array(a, json_array_get(uq, k), &t->uniques[k].columns, &t->uniques[k].ncolumns)) return false;
        }
        json_t *cols = json_object_get(o, "columns");
        if (!json_is_array(cols)) return false;
        t->ncolumns = json_array_size(cols);
        t->columns = core_arena_zalloc(a, (t->ncolumns ? t->ncolumns : 1) * sizeof(db_column_t));
        if (!t->columns) return false;
        for (size_t j = 0; j < t->ncolumns; j++) {
            json_t *co = json_array_get(cols, j);
            db_column_t *c = &t->columns[j];
            if (!json_is_object(co) || !get_str(a, co, "name", &c->name, false) ||
                !get_str(a, co, "type", &c->type, false) ||
                !get_str(a, co, "default", &c->default_expr, true) ||
                !get_str(a, co, "description", &c->description, true))
                return false;
            c->nullable = json_is_true(json_object_get(co, "nullable"));
            c->position = (int)j + 1;
            for (size_t k = 0; k < t->npk; k++)
                if (str_eq(t->pk[k], c->name)) c->is_pk = true;
        }
    }
    qsort(s->tables, s->ntables, sizeof(db_table_t), cmp_table);
    return true;
}

static bool parse_fks(core_arena_t *a, json_t *arr, json_t *varr, db_schema_t *s)
{
    if (!json_is_array(arr)) return false;
    size_t nreal = json_array_size(arr), nview = json_is_array(varr) ? json_array_size(varr) : 0;
    s->nfks = nreal + nview;
    s->fks = core_arena_zalloc(a, (s->nfks ? s->nfks : 1) * sizeof(db_fk_t));
    if (!s->fks) return false;
    for (size_t i = 0; i < s->nfks; i++) {
        json_t *o = i < nreal ? json_array_get(arr, i) : json_array_get(varr, i - nreal);
        db_fk_t *f = &s->fks[i];
        size_t n1, n2;
        if (!json_is_object(o) || !get_str(a, o, "name", &f->name, false) ||
            !get_str(a, o, "schema", &f->schema, false) || !get_str(a, o, "table", &f->table, false) ||
            !get_str(a, o, "fschema", &f->fschema, false) ||
            !get_str(a, o, "ftable", &f->ftable, false) ||
            !get_str_array(a, json_object_get(o, "columns"), &f->columns, &n1) ||
            !get_str_array(a, json_object_get(o, "fcolumns"), &f->fcolumns, &n2) || n1 != n2)
            return false;
        f->ncolumns = n1;
    }
    return true;
}

/* "name=value" strings (pg_proc.proconfig) or an object {name: value} (role settings):
 * default_transaction_isolation goes to *isolation, the rest to *out. Absent is fine. */
static bool parse_settings(core_arena_t *a, json_t *v, db_setting_t **out, size_t *n, str_t *isolation)
{
    *out = NULL;
    *n = 0;
    *isolation = STR_NULL;
    if (!v || json_is_null(v)) return true;
    size_t cap = json_is_array(v) ? json_array_size(v) : json_is_object(v) ? json_object_size(v) : 0;
    if (!json_is_array(v) && !json_is_object(v)) return false;
    *out = core_arena_zalloc(a, (cap ? cap : 1) * sizeof(db_setting_t));
    if (!*out) return false;
    const char *key;
    json_t *val;
    size_t idx;
    str_t k, x;
    if (json_is_array(v)) {
        json_array_foreach(v, idx, val) {
            if (!json_is_string(val)) return false;
            str_t c = {json_string_value(val), json_string_length(val)};
            long eq = str_find_char(c, '=');
            if (eq <= 0) continue;
            k = (str_t){c.ptr, (size_t)eq};
            x = (str_t){c.ptr + eq + 1, c.len - (size_t)eq - 1};
            char *kd = core_arena_strdup(a, k), *xd = core_arena_strdup(a, x);
            if (!kd || !xd) return false;
            if (str_eq(k, STR_LIT("default_transaction_isolation"))) *isolation = (str_t){xd, x.len};
            else (*out)[(*n)++] = (db_setting_t){{kd, k.len}, {xd, x.len}};
        }
        return true;
    }
    json_object_foreach(v, key, val) {
        if (!json_is_string(val)) return false;
        k = str_from_cstr(key);
        x = (str_t){json_string_value(val), json_string_length(val)};
        char *kd = core_arena_strdup(a, k), *xd = core_arena_strdup(a, x);
        if (!kd || !xd) return false;
        if (str_eq(k, STR_LIT("default_transaction_isolation"))) *isolation = (str_t){xd, x.len};
        else (*out)[(*n)++] = (db_setting_t){{kd, k.len}, {xd, x.len}};
    }
    return true;
}

static int cmp_str_p(const void *x, const void *y) { return cmp_str(*(const str_t *)x, *(const str_t *)y); }

static int cmp_role(const void *x, const void *y)
{
    return cmp_str(((const db_role_settings_t *)x)->role, ((const db_role_settings_t *)y)->role);
}

/* Role settings and time zone names; both optional (older documents have neither). */
static bool parse_roles_and_zones(core_arena_t *a, json_t *roles, json_t *zones, db_schema_t *s)
{
    if (json_is_array(roles)) {
        s->nroles = json_array_size(roles);
        s->roles = core_arena_zalloc(a, (s->nroles ? s->nroles : 1) * sizeof(db_role_settings_t));
        if (!s->roles) return false;
        for (size_t i = 0; i < s->nroles; i++) {
            json_t *o = json_array_get(roles, i);
            db_role_settings_t *r = &s->roles[i];
            if (!json_is_object(o) || !get_str(a, o, "role", &r->role, false) ||
                !parse_settings(a, json_object_get(o, "settings"), &r->settings, &r->nsettings, &r->isolation))
                return false;
        }
        qsort(s->roles, s->nroles, sizeof(*s->roles), cmp_role);
    }
    if (json_is_array(zones)) {
        if (!get_str_array(a, zones, &s->timezones, &s->ntimezones)) return false;
        if (s->ntimezones) qsort(s->timezones, s->ntimezones, sizeof(str_t), cmp_str_p);
    }
    return true;
}

static bool parse_funcs(core_arena_t *a, json_t *arr, db_schema_t *s)
{
    if (!json_is_array(arr)) return false;
    s->nfuncs = json_array_size(arr);
    s->funcs = core_arena_zalloc(a, (s->nfuncs ? s->nfuncs : 1) * sizeof(db_func_t));
    if (!s->funcs) return false;
    for (size_t i = 0; i < s->nfuncs; i++) {
        json_t *o = json_array_get(arr, i);
        db_func_t *f = &s->funcs[i];
        str_t vol;
        if (!json_is_object(o) || !get_str(a, o, "schema", &f->schema, false) ||
            !get_str(a, o, "name", &f->name, false) || !get_str(a, o, "args", &f->args, false) ||
            !get_str(a, o, "rettype", &f->rettype, false) ||
            !get_str(a, o, "description", &f->description, true) ||
            !get_str(a, o, "volatility", &vol, false) || vol.len != 1)
            return false;
        f->retset = json_is_true(json_object_get(o, "retset"));
        f->volatility = vol.ptr[0];
        f->variadic = json_is_true(json_object_get(o, "variadic"));
        json_t *nd = json_object_get(o, "ndefaults");
        f->ndefaults = json_is_integer(nd) ? (size_t)json_integer_value(nd) : 0;
        str_t kind;
        if (!get_str(a, o, "rettypkind", &kind, true)) return false;
        f->rettype_kind = kind.len == 1 ? kind.ptr[0] : 'b';
        json_t *media = json_object_get(o, "retmedia");
        if (json_is_object(media)) {
            if (!get_str(a, media, "name", &f->retmedia, false)) return false;
            f->retmedia_bytea = json_is_true(json_object_get(media, "bytea"));
        }
        json_t *rel = json_object_get(o, "retrel");
        if (json_is_object(rel) && (!get_str(a, rel, "schema", &f->retrel_schema, false) ||
                                    !get_str(a, rel, "name", &f->retrel_name, false)))
            return false;
        json_t *arel = json_object_get(o, "argrel");
        if (json_is_object(arel) && (!get_str(a, arel, "schema", &f->argrel_schema, false) ||
                                     !get_str(a, arel, "name", &f->argrel_name, false)))
            return false;
        json_t *ps = json_object_get(o, "params");
        if (!json_is_array(ps)) return false;
        f->nparams = json_array_size(ps);
        f->params = core_arena_zalloc(a, (f->nparams ? f->nparams : 1) * sizeof(db_func_param_t));
        if (!f->params) return false;
        for (size_t k = 0; k < f->nparams; k++) {
            json_t *po = json_array_get(ps, k);
            db_func_param_t *pp = &f->params[k];
            str_t mode;
            if (!json_is_object(po) || !get_str(a, po, "name", &pp->name, false) ||
                !get_str(a, po, "type", &pp->type, false) || !get_str(a, po, "mode", &mode, false) ||
                mode.len != 1)
                return false;
            pp->mode = mode.ptr[0];
        }
        if (!parse_settings(a, json_object_get(o, "settings"), &f->settings, &f->nsettings, &f->isolation))
            return false;
        /* The last ndefaults input parameters have defaults. */
        size_t nin = 0;
        for (size_t k = 0; k < f->nparams; k++)
            if (f->params[k].mode == 'i' || f->params[k].mode == 'b' || f->params[k].mode == 'v') nin++;
        size_t seen = 0;
        for (size_t k = 0; k < f->nparams; k++) {
            db_func_param_t *pp = &f->params[k];
            if (pp->mode != 'i' && pp->mode != 'b' && pp->mode != 'v') continue;
            pp->has_default = seen >= nin - (f->ndefaults < nin ? f->ndefaults : nin);
            seen++;
        }
    }
    return true;
}

static bool parse_schemas(core_arena_t *a, const char *csv, db_schema_t *s)
{
    str_t all = str_from_cstr(csv);
    size_t cnt = 1;
    for (size_t i = 0; i < all.len; i++)
        if (all.ptr[i] == ',') cnt++;
    s->schemas = core_arena_zalloc(a, cnt * sizeof(str_t));
    if (!s->schemas) return false;
    size_t start = 0;
    for (size_t i = 0; i <= all.len; i++) {
        if (i < all.len && all.ptr[i] != ',') continue;
        size_t b = start, e = i;
        while (b < e && all.ptr[b] == ' ') b++;
        while (e > b && all.ptr[e - 1] == ' ') e--;
        if (e > b) {
            char *d = core_arena_strdup(a, (str_t){all.ptr + b, e - b});
            if (!d) return false;
            s->schemas[s->nschemas++] = (str_t){d, e - b};
        }
        start = i + 1;
    }
    return s->nschemas > 0;
}

int db_schema_from_json(const char *json, size_t len, const char *schemas_csv, db_schema_t **out,
                        char *err, size_t errlen)
{
    int rc = CORE_EINVAL;
    json_t *root = NULL;
    core_arena_t *a = NULL;
    db_schema_t *s = NULL;
    schema_internal_t *in = NULL;
    json_error_t jerr;

    if (len > SCHEMA_JSON_MAX) {
        set_err(err, errlen, "schema cache document too large");
        goto out;
    }
    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root || !json_is_object(root)) {
        set_err(err, errlen, "schema cache document is not a JSON object");
        goto out;
    }
    a = core_arena_create((size_t)64 * 1024);
    if (!a) {
        rc = CORE_ENOMEM;
        set_err(err, errlen, "out of memory");
        goto out;
    }
    s = core_arena_zalloc(a, sizeof(*s));
    in = core_arena_zalloc(a, sizeof(*in));
    if (!s || !in) {
        rc = CORE_ENOMEM;
        set_err(err, errlen, "out of memory");
        goto out;
    }
    if (!parse_schemas(a, schemas_csv, s) || !parse_tables(a, json_object_get(root, "tables"), s) ||
        !parse_fks(a, json_object_get(root, "fks"), json_object_get(root, "view_fks"), s) ||
        !parse_funcs(a, json_object_get(root, "functions"), s) ||
        !parse_roles_and_zones(a, json_object_get(root, "role_settings"), json_object_get(root, "timezones"), s)) {
        set_err(err, errlen, "schema cache document has an unexpected shape");
        goto out;
    }
    in->arena = a;
    atomic_init(&in->refs, 1);
    s->internal = in;
    *out = s;
    a = NULL;
    rc = CORE_OK;
out:
    core_arena_destroy(a);
    if (root) json_decref(root);
    return rc;
}

int db_schema_load(PGconn *conn, const char *schemas_csv, db_schema_t **out, char *err, size_t errlen)
{
    uint64_t t0 = core_now_ns();
    const char *params[1] = {schemas_csv};
    /* The query is kept in pieces (C limits string literals); glue them once here. */
    core_buf_t sql;
    core_buf_init(&sql, (size_t)64 * 1024);
    core_buf_append_cstr(&sql, CATALOG_SQL_HEAD);
    core_buf_append_cstr(&sql, VIEW_FKS_SQL);
    core_buf_append_cstr(&sql, CATALOG_SQL_TAIL);
    if (core_buf_status(&sql) != CORE_OK) {
        core_buf_free(&sql);
        if (errlen) snprintf(err, errlen, "out of memory");
        return CORE_ENOMEM;
    }
    PGresult *res = PQexecParams(conn, sql.ptr, 1, NULL, params, NULL, NULL, 0);
    core_buf_free(&sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        if (errlen) snprintf(err, errlen, "schema cache query failed: %s", PQerrorMessage(conn));
        PQclear(res);
        return CORE_EIO;
    }
    int rc = db_schema_from_json(PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0), schemas_csv,
                                 out, err, errlen);
    PQclear(res);
    if (rc == CORE_OK) (*out)->load_us = (core_now_ns() - t0) / 1000u;
    return rc;
}

void db_schema_ref(db_schema_t *s)
{
    schema_internal_t *in = s->internal;
    atomic_fetch_add(&in->refs, 1);
}

void db_schema_unref(db_schema_t *s)
{
    if (!s) return;
    schema_internal_t *in = s->internal;
    if (atomic_fetch_sub(&in->refs, 1) == 1) core_arena_destroy(in->arena);
}

const db_table_t *db_schema_table(const db_schema_t *s, str_t schema, str_t name)
{
    size_t lo = 0, hi = s->ntables;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const db_table_t *t = &s->tables[mid];
        int c = cmp_str(t->schema, schema);
        if (!c) c = cmp_str(t->name, name);
        if (c == 0) return t;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

const db_column_t *db_table_column(const db_table_t *t, str_t name)
{
    for (size_t i = 0; i < t->ncolumns; i++)
        if (str_eq(t->columns[i].name, name)) return &t->columns[i];
    return NULL;
}

const db_func_t *db_schema_funcs(const db_schema_t *s, str_t schema, str_t name, size_t *n)
{
    /* The catalog query orders functions by (schema, name), so overloads are adjacent. */
    const db_func_t *first = NULL;
    *n = 0;
    for (size_t i = 0; i < s->nfuncs; i++) {
        const db_func_t *f = &s->funcs[i];
        if (str_eq(f->schema, schema) && str_eq(f->name, name)) {
            if (!first) first = f;
            (*n)++;
        } else if (first) {
            break;
        }
    }
    return first;
}

const db_role_settings_t *db_schema_role_settings(const db_schema_t *s, str_t role)
{
    size_t lo = 0, hi = s->nroles;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_str(s->roles[mid].role, role);
        if (c == 0) return &s->roles[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

bool db_schema_timezone_known(const db_schema_t *s, str_t name)
{
    size_t lo = 0, hi = s->ntimezones;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_str(s->timezones[mid], name);
        if (c == 0) return true;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return false;
}

bool db_schema_exposed(const db_schema_t *s, str_t schema)
{
    for (size_t i = 0; i < s->nschemas; i++)
        if (str_eq(s->schemas[i], schema)) return true;
    return false;
}

/* ---- the published snapshot ----------------------------------------------------------- */

static pthread_mutex_t current_mu = PTHREAD_MUTEX_INITIALIZER;
static db_schema_t *current;
static atomic_uint_fast64_t generation;

void db_schema_publish(db_schema_t *s)
{
    pthread_mutex_lock(&current_mu);
    db_schema_t *old = current;
    s->version = atomic_load(&generation) + 1;
    current = s;
    atomic_fetch_add(&generation, 1);
    pthread_mutex_unlock(&current_mu);
    db_schema_unref(old);
}

db_schema_t *db_schema_current(void)
{
    pthread_mutex_lock(&current_mu);
    db_schema_t *s = current;
    if (s) db_schema_ref(s);
    pthread_mutex_unlock(&current_mu);
    return s;
}

uint64_t db_schema_generation(void) { return atomic_load(&generation); }

void db_schema_publish_clear(void)
{
    pthread_mutex_lock(&current_mu);
    db_schema_t *old = current;
    current = NULL;
    pthread_mutex_unlock(&current_mu);
    db_schema_unref(old);
}
