/* A small schema cache for the fuzz targets: tables with JSON and array columns, foreign
 * keys (many-to-one, one-to-many, one-to-one by primary and by unique key, many-to-many), a computed field and computed
 * relationships — so embeds, spreads and computed fields are reached by fuzzed input. */
#ifndef STRATA_FUZZ_SCHEMA_H
#define STRATA_FUZZ_SCHEMA_H

#define FUZZ_COL(n, t) "{\"name\":\"" n "\",\"type\":\"" t "\",\"nullable\":true,\"default\":null,\"description\":null}"
#define FUZZ_TABLE(n, cols, pk) \
    "{\"schema\":\"public\",\"name\":\"" n "\",\"kind\":\"r\",\"description\":null,\"insertable\":true,\"columns\":[" cols "],\"pk\":[" pk "]}"
#define FUZZ_FK(n, t, c, ft, fc) \
    "{\"name\":\"" n "\",\"schema\":\"public\",\"table\":\"" t "\",\"columns\":[\"" c "\"],\"fschema\":\"public\",\"ftable\":\"" ft "\",\"fcolumns\":[\"" fc "\"]}"
#define FUZZ_FN(n, ret, kind, retset, rel, argrel) \
    "{\"schema\":\"public\",\"name\":\"" n "\",\"args\":\"x\",\"rettype\":\"" ret "\",\"retset\":" retset \
    ",\"volatility\":\"s\",\"description\":null,\"ndefaults\":0,\"variadic\":false,\"rettypkind\":\"" kind "\"," \
    "\"retrel\":" rel ",\"argrel\":" argrel ",\"params\":[{\"name\":\"\",\"type\":\"novels\",\"mode\":\"i\"}]}"

static const char FUZZ_SCHEMA_JSON[] =
    "{\"tables\":["
    FUZZ_TABLE("chapters", FUZZ_COL("id", "integer") "," FUZZ_COL("novel_id", "integer") "," FUZZ_COL("words", "integer"), "\"id\"") ","
    FUZZ_TABLE("genres", FUZZ_COL("id", "integer") "," FUZZ_COL("name", "text"), "\"id\"") ","
    FUZZ_TABLE("items", FUZZ_COL("id", "bigint") "," FUZZ_COL("name", "text") "," FUZZ_COL("tags", "text[]") "," FUZZ_COL("data", "jsonb"), "\"id\"") ","
    "{\"schema\":\"public\",\"name\":\"novel_covers\",\"kind\":\"r\",\"description\":null,\"insertable\":true,\"columns\":["
    FUZZ_COL("id", "integer") "," FUZZ_COL("novel_id", "integer") "," FUZZ_COL("color", "text") "],\"pk\":[\"id\"],\"uniques\":[[\"novel_id\"]]},"
    FUZZ_TABLE("novel_genres", FUZZ_COL("novel_id", "integer") "," FUZZ_COL("genre_id", "integer"), "\"novel_id\",\"genre_id\"") ","
    FUZZ_TABLE("novel_stats", FUZZ_COL("novel_id", "integer") "," FUZZ_COL("sales", "integer"), "\"novel_id\"") ","
    FUZZ_TABLE("novels", FUZZ_COL("id", "integer") "," FUZZ_COL("title", "text") "," FUZZ_COL("publisher_id", "integer") "," FUZZ_COL("meta", "json"), "\"id\"") ","
    FUZZ_TABLE("publishers", FUZZ_COL("id", "integer") "," FUZZ_COL("name", "text"), "\"id\"")
    "],\"fks\":["
    FUZZ_FK("chapters_novel_id_fkey", "chapters", "novel_id", "novels", "id") ","
    FUZZ_FK("novels_publisher_id_fkey", "novels", "publisher_id", "publishers", "id") ","
    FUZZ_FK("novel_stats_novel_id_fkey", "novel_stats", "novel_id", "novels", "id") ","
    FUZZ_FK("novel_covers_novel_id_fkey", "novel_covers", "novel_id", "novels", "id") ","
    FUZZ_FK("novel_genres_novel_id_fkey", "novel_genres", "novel_id", "novels", "id") ","
    FUZZ_FK("novel_genres_genre_id_fkey", "novel_genres", "genre_id", "genres", "id")
    "],\"view_fks\":[],\"functions\":["
    FUZZ_FN("title_upper", "text", "b", "false", "null", "{\"schema\":\"public\",\"name\":\"novels\"}") ","
    FUZZ_FN("long_chapters", "chapters", "c", "true", "{\"schema\":\"public\",\"name\":\"chapters\"}", "{\"schema\":\"public\",\"name\":\"novels\"}") ","
    FUZZ_FN("first_chapter", "chapters", "c", "false", "{\"schema\":\"public\",\"name\":\"chapters\"}", "{\"schema\":\"public\",\"name\":\"novels\"}")
    "]}";

#endif
