// Representations that need a server configured differently from rest_cases (plan media
// type left disabled), PostGIS (geo+json, when the extension is installed) and analyzed
// statistics (count=planned close to the truth).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { startPostgres, startStrata } from './lib/harness.mjs';

const hasPostgis = fs.existsSync('/usr/share/postgresql/15/extension/postgis.control');
let pg, strata;

before(async () => {
  pg = await startPostgres();
  pg.psql(`
    create table public.nums (n int primary key, half int);
    insert into public.nums select g, g % 2 from generate_series(1, 10000) g;
    analyze public.nums;
    grant select on public.nums to anon;
  `);
  if (hasPostgis) {
    pg.psql(`
      create extension postgis;
      create table public.places (id int primary key, name text, geom geometry(Point, 4326));
      insert into public.places values (1, 'a', 'SRID=4326;POINT(1 2)'), (2, 'b', 'SRID=4326;POINT(3 4)');
      grant select on public.places to anon;
      create function public.near(x float8) returns setof public.places language sql stable
        as $$ select * from public.places where st_x(geom) < x $$;
    `);
  }
  strata = await startStrata({
    env: { PGRST_DB_URI: pg.conninfo(), STRATA_DB_ADMIN_URI: pg.conninfo('postgres'), PGRST_DB_ANON_ROLE: 'anon' },
  });
});

after(async () => {
  const exit = strata ? await strata.stop() : null;
  if (pg) pg.cleanup();
  if (exit) assert.equal(exit.code, 0, `strata exit: ${JSON.stringify(exit)}\n${strata.log.slice(-4000)}`);
});

const get = (path, headers = {}) => fetch(strata.url + path, { headers });

test('vnd.pgrst.plan is not offered unless db-plan-enabled (PGRST107)', async () => {
  const r = await get('/nums?n=eq.1', { Accept: 'application/vnd.pgrst.plan+json' });
  assert.equal(r.status, 406);
  assert.equal((await r.json()).code, 'PGRST107');
  assert.equal(r.headers.get('proxy-status'), 'PostgREST; error=PGRST107');
});

test('count=planned is the planner estimate, close to the truth on analyzed tables', async () => {
  const r = await get('/nums?select=n&half=eq.0&n=lte.6000&limit=1', { Prefer: 'count=planned' });
  assert.equal(r.status, 206);
  const total = Number(r.headers.get('content-range').split('/')[1]);
  assert.ok(total > 2000 && total < 4500, `estimate ${total} for 3000 rows`);
  assert.equal(r.headers.get('preference-applied'), 'count=planned');
});

test('count=planned on a whole table follows its statistics', async () => {
  const r = await get('/nums?select=n&limit=1', { Prefer: 'count=planned' });
  assert.equal(r.headers.get('content-range'), '0-0/10000');
});

test('count=estimated without db-max-rows is exact', async () => {
  const r = await get('/nums?select=n&half=eq.0&n=lte.6000&limit=1', { Prefer: 'count=estimated' });
  assert.equal(r.headers.get('content-range'), '0-0/3000');
});

test('geo+json: a FeatureCollection of the rows (PostGIS)', { skip: !hasPostgis && 'PostGIS is not installed' }, async () => {
  const r = await get('/places?select=id,name,geom&order=id', { Accept: 'application/geo+json' });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('content-type'), 'application/geo+json; charset=utf-8');
  assert.deepEqual(await r.json(), {
    type: 'FeatureCollection',
    features: [
      { type: 'Feature', geometry: { type: 'Point', coordinates: [1, 2] }, properties: { id: 1, name: 'a' } },
      { type: 'Feature', geometry: { type: 'Point', coordinates: [3, 4] }, properties: { id: 2, name: 'b' } },
    ],
  });
});

test('geo+json: empty result and set-returning functions (PostGIS)', { skip: !hasPostgis && 'PostGIS is not installed' }, async () => {
  let r = await get('/places?id=eq.99', { Accept: 'application/geo+json' });
  assert.deepEqual(await r.json(), { type: 'FeatureCollection', features: [] });
  r = await get('/rpc/near?x=2&select=name,geom', { Accept: 'application/geo+json' });
  assert.equal(r.status, 200);
  assert.deepEqual(await r.json(), {
    type: 'FeatureCollection',
    features: [{ type: 'Feature', geometry: { type: 'Point', coordinates: [1, 2] }, properties: { name: 'a' } }],
  });
});

test('geo+json on rows without a geometry is PostgreSQL\'s error, not a crash', { skip: !hasPostgis && 'PostGIS is not installed' }, async () => {
  const r = await get('/nums?n=eq.1', { Accept: 'application/geo+json' });
  assert.ok(r.status >= 400 && r.status < 500, `status ${r.status}`);
  assert.ok((await r.json()).code);
});
