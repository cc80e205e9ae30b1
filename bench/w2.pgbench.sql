-- W2 baseline for pgbench (-M prepared): the two statements Strata sends for
-- GET /bench_items?id=gte.N&order=id&limit=100, pipelined and committed by one Sync.
-- bench/run checks the statement line (the one before \endpipeline) against the SQL Strata
-- actually runs.
\set n random(1, 99000)
\set lim 100
\startpipeline
select set_config('search_path', '"public", "public"', true), case when null::text is null then null else set_config(null, null, true) end, case when null::text is null then null else set_config(null, null, true) end, set_config('role', 'anon', true), set_config('request.jwt.claims', '{"role":"anon"}', true), set_config('request.method', 'GET', true), set_config('request.path', '/bench_items', true), set_config('request.headers', '{"host":"127.0.0.1"}', true), set_config('request.cookies', '{}', true), case when 'anon'::text is null then null else set_config('request.jwt.claim.role', 'anon', true) end, case when null::text is null then null else set_config(null, null, true) end, case when null::text is null then null else set_config(null, null, true) end, set_config('transaction_read_only', 'on', true);
select coalesce(json_agg(_s), '[]')::text, count(*), null::bigint, nullif(current_setting('response.headers', true), '') as pgrst_hdrs, nullif(current_setting('response.status', true), '') as pgrst_status from (select pgrst_0.* from "public"."bench_items" as pgrst_0 where "id" >= :n order by pgrst_0."id" limit :lim::bigint) _s;
\endpipeline
