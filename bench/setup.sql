-- Schema and data for bench/run (run as the superuser on the private bench cluster).
\set ON_ERROR_STOP on

create role anon nologin;
create role authenticator login noinherit;
grant anon to authenticator;

create table bench_items (
    id       int primary key,
    name     text not null,
    category int not null,
    price    numeric(10,2),
    created  timestamptz default now()
);
insert into bench_items (id, name, category, price, created)
select i, 'item ' || i, i % 100, ((i * 7919) % 100000) / 100.0, timestamptz '2024-01-01' + i * interval '1 minute'
from generate_series(1, 100000) as i;
create index bench_items_category_id on bench_items (category, id);
grant select on bench_items to anon;

-- For the embed workload W3 (GET /bench_items?id=eq.N&select=*,bench_children(*)): 3 children
-- for each of the items 1..10000.
create table bench_children (
    id      int primary key,
    item_id int references bench_items (id),
    note    text
);
insert into bench_children (id, item_id, note)
select i, (i - 1) / 3 + 1, 'note ' || i
from generate_series(1, 30000) as i;
create index bench_children_item_id on bench_children (item_id);
grant select on bench_children to anon;

-- For the insert workload W4 (POST /bench_inserts, one row, return=minimal).
create table bench_inserts (
    id      bigint generated always as identity primary key,
    name    text not null,
    qty     int not null,
    created timestamptz default now()
);
grant insert on bench_inserts to anon;
grant usage on sequence bench_inserts_id_seq to anon;
-- No select: PostgREST does not need it for return=minimal. Strata, as of this writing, ends
-- every insert in "returning bench_inserts.*", so the insert fails with 42501 (401) without
-- it; bench/run tries the POST first and grants select only if needed, with a warning.

-- For the RPC workload W5 (POST /rpc/bench_price with {"item_id": N}): a stable SQL function
-- returning a scalar. (It is not inlined, having a FROM clause: its query runs, through the
-- primary key, once per call.)
create function bench_price(item_id int) returns numeric language sql stable as $$
    select price from bench_items where id = item_id
$$;
grant execute on function bench_price(int) to anon;

vacuum (analyze) bench_items;
vacuum (analyze) bench_children;
