// SQL-injection corpus: hostile payloads in every position of the URL grammar, the headers
// and the body. None may change the statement's meaning: every answer is a normal result or
// a 4xx (never a 5xx), and afterwards every fixture table is intact with the same rows.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { startPostgres, startStrata, root } from './lib/harness.mjs';

let pg, strata;
const PAYLOADS = [
  "'; drop table public.items; --",
  '"; drop table public.items; --',
  "1; delete from public.kv",
  "1) or (1=1",
  "1' or '1'='1",
  "x\" or \"1\"=\"1",
  "$1",
  "$$; drop table public.items; $$",
  "*/ drop table public.items; /*",
  "'||(select pg_sleep(0))||'",
  "id); drop table public.items; --",
  "text); drop table public.items; --",
  "\\'; drop table public.items; --",
  "items\".\"id",
  "pg_catalog.pg_sleep(0)",
  "(select 1)",
  "id,(select secret from public.secrets)",
  "‘; drop table public.items; --",
  "%27%3B%20drop%20table%20public.items%3B%20--",
];
const enc = encodeURIComponent;

function requests(p) {
  const e = enc(p);
  return [
    ['GET', `/items?select=${e}`],
    ['GET', `/items?select=id,${e}`],
    ['GET', `/items?select=${e}:id`],
    ['GET', `/items?select=id::${e}`],
    ['GET', `/items?${e}=eq.1`],
    ['GET', `/items?id=eq.${e}`],
    ['GET', `/items?name=eq.${e}`],
    ['GET', `/items?name=like.${e}`],
    ['GET', `/items?name=in.(${e},x)`],
    ['GET', `/items?name=in.(%22${e}%22)`],
    ['GET', `/items?tags=cs.{${e}}`],
    ['GET', `/items?name=eq(any).{${e}}`],
    ['GET', `/docs?tsv=fts(${e}).fox`],
    ['GET', `/docs?tsv=fts.${e}`],
    ['GET', `/items?id=is.${e}`],
    ['GET', `/items?${e}=is.null`],
    ['GET', `/items?order=${e}`],
    ['GET', `/items?order=id.${e}`],
    ['GET', `/items?or=(name.eq.${e},id.eq.1)`],
    ['GET', `/items?or=(${e}.eq.1)`],
    ['GET', `/items?limit=${e}`],
    ['GET', `/items?offset=${e}`],
    ['GET', `/${e}`],
    ['GET', `/rpc/${e}`],
    ['GET', `/novels?select=title,${e}(name)`],
    ['GET', `/novels?select=title,publishers!${e}(name)`],
    ['GET', `/novels?select=title,publishers(${e})`],
    ['GET', `/novels?select=title,chapters(num)&chapters.num=eq.${e}`],
    ['GET', `/novels?select=title,chapters(num)&chapters.order=${e}`],
    ['GET', `/rpc/add?a=${e}`],
    ['GET', `/rpc/header?name=${e}`],
    ['POST', '/rpc/header', { name: p }],
    ['POST', '/rpc/add', { [p]: 1 }],
    ['POST', '/kv', { k: p, v: 1 }],
    ['POST', '/kv', { [p]: 1 }],
    ['POST', `/kv?columns=${e}`, { k: 'c', v: 1 }],
    ['POST', `/kv?on_conflict=${e}`, { k: 'a', v: 1 }, { Prefer: 'resolution=merge-duplicates' }],
    ['PATCH', `/kv?k=eq.${e}`, { v: 3 }],
    ['PATCH', '/kv?k=eq.nothing', { [p]: 3 }],
    ['DELETE', `/kv?k=eq.${e}`],
    ['DELETE', `/kv?${e}=eq.x`],
    ['GET', `/jdocs?select=data->${e}`],
    ['GET', `/jdocs?select=data->>${e}::int`],
    ['GET', `/jdocs?select=data->0->>${e}`],
    ['GET', `/jdocs?data->>${e}=eq.1`],
    ['GET', `/jdocs?data->${e}=eq.${e}`],
    ['GET', `/jdocs?order=data->>${e}.desc`],
    ['GET', `/jdocs?or=(data->>${e}.eq.1,id.eq.2)`],
    ['GET', `/chapters?select=${e}.sum()`],
    ['GET', `/chapters?select=${e}:words.sum()`],
    ['GET', `/chapters?select=words.sum()::${e}`],
    ['GET', `/chapters?select=novel_id,count()&order=${e}`],
    ['GET', `/novels?select=title,...${e}(name)`],
    ['GET', `/novels?select=title,...publishers(${e})`],
    ['GET', `/novels?select=title,publishers(name)&order=publishers(${e})`],
    ['GET', `/novels?select=title,publishers(name)&order=${e}(name)`],
    ['GET', `/novels?select=title,publishers(name)&publishers=is.${e}`],
    ['GET', `/novels?select=id,${e}&${e}=eq.1`],
    ['POST', '/orders', { customer: p, order_items: [{ sku: p, qty: 1 }] }],
    ['POST', '/orders', { customer: 'x', order_items: [{ [p]: 1 }] }],
    ['POST', '/orders', { customer: 'x', [p]: [{ sku: 'a', qty: 1 }] }],
    ['GET', '/items', undefined, { 'Accept-Profile': p }],
    ['GET', '/items', undefined, { Prefer: p }],
    ['GET', '/items', undefined, { Range: p }],
    ['GET', '/items', undefined, { Accept: p }],
    // count=planned: values reach EXPLAIN through quote_literal inside PostgreSQL
    ['GET', `/items?name=eq.${e}`, undefined, { Prefer: 'count=planned' }],
    ['GET', `/items?or=(name.eq.${e},id.eq.1)&name=in.(${e},x)`, undefined, { Prefer: 'count=planned' }],
    ['GET', `/big?val=eq.${e}`, undefined, { Prefer: 'count=estimated' }],
    ['GET', '/items', undefined, { Accept: `application/vnd.pgrst.plan; for="${p}"` }],
    ['GET', '/items', undefined, { Accept: `application/vnd.pgrst.plan; options=${p}` }],
    // CSV bodies: payloads as values and as column names
    ['POST', '/csv_in', `id,name\n1,"${p.replaceAll('"', '""')}"\n`, { 'Content-Type': 'text/csv', Prefer: 'tx=rollback' }],
    ['POST', '/csv_in', `id,${p}\n1,x\n`, { 'Content-Type': 'text/csv', Prefer: 'tx=rollback' }],
    ['POST', '/csv_in', `"${p.replaceAll('"', '""')}"\n1\n`, { 'Content-Type': 'text/csv', Prefer: 'tx=rollback' }],
    // raw RPC bodies
    ['POST', '/rpc/upper_text', p, { 'Content-Type': 'text/plain' }],
    ['POST', '/rpc/byte_len', p, { 'Content-Type': 'application/octet-stream' }],
    ['POST', '/rpc/xml_root', p, { 'Content-Type': 'text/xml' }],
  ];
}

before(async () => {
  pg = await startPostgres({ fixture: path.join(root, 'tests/integration/fixtures/schema.sql') });
  strata = await startStrata({
    env: { PGRST_DB_URI: pg.conninfo(), STRATA_DB_ADMIN_URI: pg.conninfo('postgres'), PGRST_DB_ANON_ROLE: 'anon', PGRST_DB_SCHEMAS: 'public,api', PGRST_DB_AGGREGATES_ENABLED: 'true' },
  });
});

after(async () => {
  const exit = strata ? await strata.stop() : null;
  if (pg) pg.cleanup();
  if (exit) assert.equal(exit.code, 0, strata.log.slice(-3000));
});

const TABLES = ['items', 'kv', 'people', 'secrets', 'todos', 'novels', 'chapters', 'jdocs'];
function snapshot() {
  return pg.psql(TABLES.map((t) => `select '${t}', count(*) from public.${t}`).join(' union all ') + ';').trim();
}

test('injection corpus: every position answers normally or 4xx, and nothing changes', async () => {
  const kvBefore = pg.psql("select count(*) from public.kv where k not like '%drop%' and k not like '%delete%'").trim();
  const before = snapshot().split('\n').filter((l) => !l.startsWith('kv|')).join('\n');
  let n = 0;
  for (const p of PAYLOADS) {
    for (const [method, url, body, headers = {}] of requests(p)) {
      if (Object.values(headers).some((v) => /[^\x00-\xff]/.test(v))) continue; // not sendable as a header
      const res = await fetch(strata.url + url, {
        method,
        headers: { ...(body ? { 'Content-Type': 'application/json' } : {}), ...headers },
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      });
      const text = await res.text();
      n++;
      assert.ok(res.status < 500, `${method} ${url} (${JSON.stringify(headers)}) → ${res.status} ${text.slice(0, 300)}`);
      if (res.status >= 400 && text.length) {
        const e = JSON.parse(text);
        assert.ok('code' in e && 'message' in e, `JSON error body for ${url}`);
      }
    }
  }
  // Tables, privileges and rows are as before (kv only gained rows whose key is the payload itself).
  assert.equal(snapshot().split('\n').filter((l) => !l.startsWith('kv|')).join('\n'), before);
  assert.equal(pg.psql("select count(*) from public.kv where k not like '%drop%' and k not like '%delete%'").trim(), kvBefore);
  assert.equal(pg.psql("select has_table_privilege('anon', 'public.secrets', 'select')").trim(), 'f');
  // Nested inserts only wrote the rows they were given (payload as the value, quantity 1).
  assert.equal(pg.psql("select count(*) from public.order_items where qty <> 1 or sku not in (select customer from public.orders)").trim(), '0');
  console.log(`# ${n} hostile requests, none changed the schema or data`);
});
