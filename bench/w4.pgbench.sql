-- W4 baseline for pgbench (-M prepared): the two statements Strata sends for
-- POST /bench_inserts with the body {"name":"item N","qty":M} (Strata passes the body as
-- its one parameter, wrapped in [ ]), pipelined and committed by one Sync.
-- bench/run checks the statement line (the one before \endpipeline) against the SQL Strata
-- actually runs, and the body this script builds (the \gset line, with n=1 and q=1) against
-- the parameter Strata sent for the same body.
--
-- pgbench cannot build a string per transaction without an extra round trip, so each client
-- makes a random body with a separate query (outside the pipeline and its transaction) in its
-- first transaction (bench/run passes -D started=0) and then about every 1000th: 0.1% of the
-- transactions, not in p99.
\set n random(1, 100000)
\set q random(1, 1000)
\set refresh random(1, 1000)
\if :refresh = 1 or :started = 0
select '[{"name":"item ' || :n::int || '","qty":' || :q::int || '}]' as body, 1 as started \gset
\endif
\startpipeline
select set_config('search_path', '"public", "public"', true), case when null::text is null then null else set_config(null, null, true) end, case when null::text is null then null else set_config(null, null, true) end, set_config('role', 'anon', true), set_config('request.jwt.claims', '{"role":"anon"}', true), set_config('request.method', 'POST', true), set_config('request.path', '/bench_inserts', true), set_config('request.headers', '{"host":"127.0.0.1","content-type":"application/json","content-length":"31"}', true), set_config('request.cookies', '{}', true), case when 'anon'::text is null then null else set_config('request.jwt.claim.role', 'anon', true) end, case when null::text is null then null else set_config(null, null, true) end, case when null::text is null then null else set_config(null, null, true) end, set_config('transaction_read_only', 'off', true);
with pgrst_source as (insert into "public"."bench_inserts" ("name", "qty") select "name", "qty" from json_populate_recordset(null::"public"."bench_inserts", :body::json) returning 1) select null::text, count(*), null::bigint, null::text, null::int, true, nullif(current_setting('response.headers', true), '') as pgrst_hdrs, nullif(current_setting('response.status', true), '') as pgrst_status from pgrst_source;
\endpipeline
