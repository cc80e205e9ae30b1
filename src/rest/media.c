/*
 * Media types: Accept negotiation, the body expression each representation is built with
 * (by PostgreSQL, over the selected rows `_s`), the EXPLAIN media type, and CSV request
 * bodies turned into the JSON array the write statements expand.
 */
#include <string.h>

#include "rest/rest_int.h"

#define CSV_JSON_MAX ((size_t)64 << 20)

static str_t trim(str_t s)
{
    if (!s.ptr) return STR_NULL;
    while (s.len && (s.ptr[0] == ' ' || s.ptr[0] == '\t')) {
        s.ptr++;
        s.len--;
    }
    while (s.len && (s.ptr[s.len - 1] == ' ' || s.ptr[s.len - 1] == '\t')) s.len--;
    return s;
}

/* Whether s[i] is a separator `sep` outside double quotes (*inq tracks the quoting). */
static bool separator(str_t s, size_t i, char sep, bool *inq)
{
    if (i == s.len) return true;
    if (s.ptr[i] == '"') *inq = !*inq;
    return !*inq && s.ptr[i] == sep;
}

/* The position of the first ';' outside quotes in a media range, or -1. */
static long params_start(str_t r)
{
    bool inq = false;
    for (size_t i = 0; i < r.len; i++)
        if (separator(r, i, ';', &inq)) return (long)i;
    return -1;
}

/* The value of parameter `name` in a media range's parameters ("; a=b; c=\"d\""). */
static str_t media_param(str_t params, const char *name)
{
    str_t want = str_from_cstr(name);
    size_t start = 0;
    bool inq = false;
    if (!params.ptr) return STR_NULL;
    for (size_t i = 0; i <= params.len; i++) {
        if (!separator(params, i, ';', &inq)) continue;
        str_t p = trim((str_t){params.ptr + start, i - start});
        start = i + 1;
        long eq = str_find_char(p, '=');
        if (eq < 0) continue;
        str_t k = trim((str_t){p.ptr, (size_t)eq}), v = trim((str_t){p.ptr + eq + 1, p.len - (size_t)eq - 1});
        if (!str_eq_nocase(k, want)) continue;
        if (v.len >= 2 && v.ptr[0] == '"' && v.ptr[v.len - 1] == '"') {
            v.ptr++;
            v.len -= 2;
        }
        return v;
    }
    return STR_NULL;
}

/* One media range (without its parameters) and its parameters → ACCEPT_*, or -1. */
static int media_kind(str_t m, str_t params, bool root)
{
    if (root) {
        if (str_eq_nocase(m, STR_LIT("application/openapi+json")) || str_eq_nocase(m, STR_LIT("application/json")) ||
            str_eq(m, STR_LIT("*/*")) || str_eq_nocase(m, STR_LIT("application/*")))
            return ACCEPT_OPENAPI;
        return -1;
    }
    bool strip = str_eq_nocase(media_param(params, "nulls"), STR_LIT("stripped"));
    if (str_eq_nocase(m, STR_LIT("application/json")) || str_eq(m, STR_LIT("*/*")) || str_eq_nocase(m, STR_LIT("application/*")))
        return ACCEPT_JSON;
    if (str_eq_nocase(m, STR_LIT("application/vnd.pgrst.array+json")) || str_eq_nocase(m, STR_LIT("application/vnd.pgrst.array")))
        return strip ? ACCEPT_JSON_STRIP : ACCEPT_JSON;
    if (str_eq_nocase(m, STR_LIT("text/csv"))) return ACCEPT_CSV;
    if (str_eq_nocase(m, STR_LIT("application/vnd.pgrst.object+json")) || str_eq_nocase(m, STR_LIT("application/vnd.pgrst.object")))
        return strip ? ACCEPT_OBJECT_STRIP : ACCEPT_OBJECT;
    if (str_eq_nocase(m, STR_LIT("application/geo+json"))) return ACCEPT_GEOJSON;
    if (str_eq_nocase(m, STR_LIT("application/vnd.pgrst.plan")) || str_eq_nocase(m, STR_LIT("application/vnd.pgrst.plan+json")) ||
        str_eq_nocase(m, STR_LIT("application/vnd.pgrst.plan+text")))
        return ACCEPT_PLAN;
    if (str_eq_nocase(m, STR_LIT("text/plain"))) return ACCEPT_TEXT;
    if (str_eq_nocase(m, STR_LIT("text/xml"))) return ACCEPT_XML;
    if (str_eq_nocase(m, STR_LIT("application/octet-stream"))) return ACCEPT_OCTET;
    return -1;
}

/* The first media range of Accept that Strata produces — or that is `custom`, a function's
 * media-type domain (ACCEPT_CUSTOM; ptr NULL: none): its ACCEPT_* (the range itself in
 * *range_out), or -1. Commas and semicolons inside double quotes do not split. */
static int each_range(str_t accept, bool root, str_t custom, str_t *range_out)
{
    if (!accept.ptr) return -1;
    size_t start = 0;
    bool inq = false;
    for (size_t i = 0; i <= accept.len; i++) {
        if (!separator(accept, i, ',', &inq)) continue;
        str_t r = {accept.ptr + start, i - start};
        start = i + 1;
        long semi = params_start(r);
        str_t m = trim(semi >= 0 ? (str_t){r.ptr, (size_t)semi} : r);
        str_t params = semi >= 0 ? (str_t){r.ptr + semi + 1, r.len - (size_t)semi - 1} : STR_NULL;
        int k = custom.ptr && str_eq_nocase(m, custom) ? ACCEPT_CUSTOM : media_kind(m, params, root);
        if (k >= 0) {
            if (range_out) *range_out = r;
            return k;
        }
    }
    return -1;
}

int rest_negotiate(str_t accept, bool root)
{
    if (!accept.ptr || accept.len == 0) return root ? ACCEPT_OPENAPI : ACCEPT_JSON;
    return each_range(accept, root, STR_NULL, NULL);
}

int rest_negotiate_custom(str_t accept, str_t custom)
{
    if (str_eq(custom, STR_LIT("*/*"))) return ACCEPT_CUSTOM;
    if (!accept.ptr || accept.len == 0) return ACCEPT_JSON;
    return each_range(accept, false, custom, NULL);
}

int rest_plan_parse(str_t accept, rest_plan_t *p)
{
    memset(p, 0, sizeof(*p));
    str_t r = STR_NULL;
    if (each_range(accept, false, STR_NULL, &r) != ACCEPT_PLAN) return CORE_EINVAL;
    long semi = params_start(r);
    str_t m = trim(semi >= 0 ? (str_t){r.ptr, (size_t)semi} : r);
    str_t params = semi >= 0 ? (str_t){r.ptr + semi + 1, r.len - (size_t)semi - 1} : STR_NULL;
    p->json = str_eq_nocase(m, STR_LIT("application/vnd.pgrst.plan+json"));
    str_t f = media_param(params, "for");
    p->for_accept = ACCEPT_JSON;
    p->for_type = STR_LIT("application/json");
    if (f.ptr) {
        long fs = str_find_char(f, ';');
        str_t fm = trim(fs >= 0 ? (str_t){f.ptr, (size_t)fs} : f);
        int k = media_kind(fm, fs >= 0 ? (str_t){f.ptr + fs + 1, f.len - (size_t)fs - 1} : STR_NULL, false);
        if (k < 0 || k == ACCEPT_PLAN) return CORE_EINVAL;
        p->for_accept = k;
        p->for_type = fm;
    }
    str_t o = media_param(params, "options");
    size_t start = 0;
    for (size_t i = 0; o.ptr && i <= o.len; i++) {
        if (i < o.len && o.ptr[i] != '|') continue;
        str_t opt = trim((str_t){o.ptr + start, i - start});
        start = i + 1;
        if (opt.len == 0) continue; /* postgrest-js sends "options=;" when there are none */
        if (str_eq_nocase(opt, STR_LIT("analyze"))) p->analyze = true;
        else if (str_eq_nocase(opt, STR_LIT("verbose"))) p->verbose = true;
        else if (str_eq_nocase(opt, STR_LIT("settings"))) p->settings = true;
        else if (str_eq_nocase(opt, STR_LIT("buffers"))) p->buffers = true;
        else if (str_eq_nocase(opt, STR_LIT("wal"))) p->wal = true;
        else return CORE_EINVAL;
    }
    return CORE_OK;
}

bool rest_accept_single(int accept) { return accept == ACCEPT_OBJECT || accept == ACCEPT_OBJECT_STRIP; }

str_t rest_accept_content_type(int accept)
{
    switch (accept) {
    case ACCEPT_OBJECT: return STR_LIT("application/vnd.pgrst.object+json; charset=utf-8");
    case ACCEPT_OBJECT_STRIP: return STR_LIT("application/vnd.pgrst.object+json;nulls=stripped; charset=utf-8");
    case ACCEPT_JSON_STRIP: return STR_LIT("application/vnd.pgrst.array+json;nulls=stripped; charset=utf-8");
    case ACCEPT_CSV: return STR_LIT("text/csv; charset=utf-8");
    case ACCEPT_GEOJSON: return STR_LIT("application/geo+json; charset=utf-8");
    case ACCEPT_TEXT: return STR_LIT("text/plain; charset=utf-8");
    case ACCEPT_XML: return STR_LIT("text/xml; charset=utf-8");
    case ACCEPT_OCTET: return STR_LIT("application/octet-stream");
    default: return STR_LIT("application/json; charset=utf-8");
    }
}

/* CSV: a header line from the first row's keys, then one line per row; RFC 4180 quoting. */
#define CSV_BODY                                                                                              \
    "coalesce((select string_agg(case when k ~ '[\",\r\n]' then '\"' || replace(k, '\"', '\"\"') || '\"' "   \
    "else k end, ',') from json_object_keys((array_agg(row_to_json(_s)))[1]) k) || E'\\n' || "               \
    "string_agg((select string_agg(case when v is null then '' when v ~ '[\",\r\n]' then '\"' || "           \
    "replace(v, '\"', '\"\"') || '\"' else v end, ',') from json_each_text(row_to_json(_s)) pgrst_j(k, v)), " \
    "E'\\n'), '')"

const char *rest_sql_body_agg(const rest_query_t *q)
{
    if (q->csv) return CSV_BODY;
    if (q->geojson)
        return "json_build_object('type', 'FeatureCollection', 'features', "
               "coalesce(json_agg(st_asgeojson(_s)::json), '[]'))::text";
    if (q->strip_nulls) return "coalesce(json_strip_nulls(json_agg(_s)), '[]')::text";
    return "coalesce(json_agg(_s), '[]')::text";
}

void rest_query_set_media(rest_query_t *q, int accept)
{
    q->csv = accept == ACCEPT_CSV;
    q->geojson = accept == ACCEPT_GEOJSON;
    q->strip_nulls = accept == ACCEPT_JSON_STRIP || accept == ACCEPT_OBJECT_STRIP;
}

/* ---- CSV request bodies ------------------------------------------------------------------ */

typedef struct {
    str_t in;
    size_t pos;
} csv_t;

/* A buffer's bytes; "" (not a NULL pointer) while nothing was appended. */
static str_t buf_view(const core_buf_t *b) { return b->ptr ? core_buf_str(b) : STR_LIT(""); }

/* Reads one field into b (unquoted, "" unescaped) and says how it ended: ',' or '\n', or 0
 * at the end of the body. */
static int csv_field(csv_t *c, core_buf_t *b, int *end)
{
    str_t in = c->in;
    size_t i = c->pos;
    if (i < in.len && in.ptr[i] == '"') {
        i++;
        for (;;) {
            if (i >= in.len) return CORE_EINVAL; /* unterminated quote */
            if (in.ptr[i] == '"') {
                if (i + 1 < in.len && in.ptr[i + 1] == '"') {
                    core_buf_append_char(b, '"');
                    i += 2;
                    continue;
                }
                i++;
                break;
            }
            core_buf_append_char(b, in.ptr[i++]);
        }
    } else {
        size_t s = i;
        while (i < in.len && in.ptr[i] != ',' && in.ptr[i] != '\n' && in.ptr[i] != '\r') {
            if (in.ptr[i] == '"') return CORE_EINVAL; /* a quote inside an unquoted field */
            i++;
        }
        core_buf_append(b, in.ptr + s, i - s);
    }
    if (i >= in.len) *end = 0;
    else if (in.ptr[i] == ',') {
        *end = ',';
        i++;
    } else if (in.ptr[i] == '\r' && i + 1 < in.len && in.ptr[i + 1] == '\n') {
        *end = '\n';
        i += 2;
    } else if (in.ptr[i] == '\n' || in.ptr[i] == '\r') {
        *end = '\n';
        i++;
    } else {
        return CORE_EINVAL; /* text after a closing quote */
    }
    c->pos = i;
    return CORE_OK;
}

int rest_csv_to_json(core_arena_t *a, str_t body, str_t *out, core_err_t *err)
{
    csv_t c = {body, 0};
    core_buf_t field, json;
    core_buf_init(&field, body.len + 1);
    core_buf_init(&json, CSV_JSON_MAX);
    str_t *names = NULL;
    size_t nnames = 0, cap = 0;
    int rc = CORE_OK, end = 0;
    const char *bad = NULL;

    /* Header line: the column names. */
    do {
        field.len = 0;
        if (csv_field(&c, &field, &end) != CORE_OK || core_buf_status(&field) != CORE_OK) {
            bad = "Invalid CSV header";
            goto out;
        }
        if (nnames == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            if (ncap > 4096) {
                bad = "Too many CSV columns";
                goto out;
            }
            str_t *nn = core_arena_alloc(a, ncap * sizeof(*nn));
            if (!nn) {
                rc = CORE_ENOMEM;
                goto out;
            }
            if (nnames) memcpy(nn, names, nnames * sizeof(*nn));
            names = nn;
            cap = ncap;
        }
        char *d = core_arena_strdup(a, buf_view(&field));
        if (!d) {
            rc = CORE_ENOMEM;
            goto out;
        }
        names[nnames++] = (str_t){d, field.len};
    } while (end == ',');

    core_buf_append_char(&json, '[');
    size_t rows = 0;
    while (c.pos < body.len) {
        if (body.ptr[c.pos] == '\n' || body.ptr[c.pos] == '\r') { /* blank lines are skipped */
            c.pos++;
            continue;
        }
        if (rows++) core_buf_append_char(&json, ',');
        core_buf_append_char(&json, '{');
        size_t k = 0;
        do {
            field.len = 0;
            if (csv_field(&c, &field, &end) != CORE_OK || core_buf_status(&field) != CORE_OK) {
                bad = "Invalid CSV body";
                goto out;
            }
            if (k >= nnames) {
                bad = "All lines must have same number of fields";
                goto out;
            }
            if (k) core_buf_append_char(&json, ',');
            core_buf_append_json(&json, names[k]);
            core_buf_append_char(&json, ':');
            str_t v = buf_view(&field);
            if (str_eq(v, STR_LIT("NULL"))) core_buf_append_cstr(&json, "null");
            else core_buf_append_json(&json, v);
            k++;
        } while (end == ',');
        if (k != nnames) {
            bad = "All lines must have same number of fields";
            goto out;
        }
        core_buf_append_char(&json, '}');
    }
    core_buf_append_char(&json, ']');
    if (core_buf_status(&json) != CORE_OK) {
        bad = "CSV body too large";
        goto out;
    }
    char *d = core_arena_strdup(a, buf_view(&json));
    if (!d) {
        rc = CORE_ENOMEM;
        goto out;
    }
    *out = (str_t){d, json.len};
out:
    if (bad) {
        *err = core_err_make(400, "PGRST102", bad, STR_NULL);
        rc = CORE_EINVAL;
    }
    core_buf_free(&field);
    core_buf_free(&json);
    return rc;
}
