-- W5 baseline for pgbench (-M prepared): the two statements Strata sends for
-- POST /rpc/bench_price with the body {"item_id":N} (Strata passes the body as its one
-- parameter), pipelined and committed by one Sync.
-- bench/run checks the statement line (the one before \endpipeline) against the SQL Strata
-- actually runs, and the body this script builds (the \gset line, with n=1) against
-- the parameter Strata sent for the same body.
--
-- pgbench cannot build a string per transaction without an extra round trip, so each client
-- makes a random body with a separate query (outside the pipeline and its transaction) in its
-- first transaction (bench/run passes -D started=0) and then about every 1000th: 0.1% of the
-- transactions, not in p99.
\set n random(1, 100000)
\set refresh random(1, 1000)
\if :refresh = 1 or :started = 0
select '{"item_id":' || :n::int || '}' as body, 1 as started \gset
\endif
\startpipeline
select set_config('search_path', '"public", "public"', true), case when null::text is null then null else set_config(null, null, true) end, case when null::text is null then null else set_config(null, null, true) end, set_config('role', 'anon', true), set_config('request.jwt.claims', '{"role":"anon"}', true), set_config('request.method', 'POST', true), set_config('request.path', '/rpc/bench_price', true), set_config('request.headers', '{"host":"127.0.0.1","content-type":"application/json","content-length":"17"}', true), set_config('request.cookies', '{}', true), case when 'anon'::text is null then null else set_config('request.jwt.claim.role', 'anon', true) end, case when null::text is null then null else set_config(null, null, true) end, case when null::text is null then null else set_config(null, null, true) end, set_config('transaction_read_only', 'on', true);
with pgrst_args as (select * from json_to_record(:body::json) as _a("item_id" integer)) select to_json("public"."bench_price"("item_id" := pgrst_args."item_id"))::text, 1::bigint, null::bigint, nullif(current_setting('response.headers', true), '') as pgrst_hdrs, nullif(current_setting('response.status', true), '') as pgrst_status from pgrst_args;
\endpipeline
