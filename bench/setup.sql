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

-- For the embed workload W3 (GET /bench_items?select=*,bench_children(*)), not run yet.
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

vacuum (analyze) bench_items;
vacuum (analyze) bench_children;
