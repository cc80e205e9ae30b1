// Client suite: @supabase/postgrest-js (the version @supabase/supabase-js 2.100.0 depends on)
// used the way applications use it — `new PostgrestClient(url)` — against strata on a private
// PostgreSQL with the integration fixture plus fixtures/client.sql.
//
// Where strata differs from PostgREST, the test asserts PostgREST's documented behaviour and
// carries `{ todo: 'reason' }`, so it is reported without failing the suite.
//
// Run from this directory: node --test --test-concurrency=1 .   (STRATA_BIN selects the binary)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PostgrestClient, PostgrestError } from '@supabase/postgrest-js';
import { startPostgres, startStrata, root } from '../integration/lib/harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
let pg, strata, db, api;

before(async () => {
  pg = await startPostgres({ fixture: path.join(root, 'tests/integration/fixtures/schema.sql') });
  try {
    pg.psqlFile(path.join(here, 'fixtures/client.sql'));
  } catch (e) {
    pg.cleanup();
    pg = null;
    throw e;
  }
  strata = await startStrata({
    env: {
      PGRST_DB_URI: pg.conninfo(),
      STRATA_DB_ADMIN_URI: pg.conninfo('postgres'),
      PGRST_DB_ANON_ROLE: 'anon',
      PGRST_DB_SCHEMAS: 'public,api',
      PGRST_DB_AGGREGATES_ENABLED: 'true',
      PGRST_DB_PLAN_ENABLED: 'true',
    },
  });
  db = new PostgrestClient(strata.url);
  api = db.schema('api');
});

after(async () => {
  const exit = strata ? await strata.stop() : null;
  if (pg) pg.cleanup();
  if (exit) assert.equal(exit.code, 0, `strata exit: ${JSON.stringify(exit)}\n${strata.log.slice(-4000)}`);
});

// Asserts a successful response and returns its data.
function ok(res, status = 200) {
  assert.equal(res.error, null, `unexpected error: ${JSON.stringify(res.error)}`);
  assert.equal(res.status, status, `status (data: ${JSON.stringify(res.data)})`);
  return res.data;
}

// Asserts a failed response: data null, the PostgREST error code and HTTP status.
function failed(res, code, status) {
  assert.ok(res.error, `expected error ${code}, got data ${JSON.stringify(res.data)} (status ${res.status})`);
  assert.equal(res.error.code, code, `error: ${JSON.stringify(res.error)}`);
  assert.equal(res.status, status, `status for ${JSON.stringify(res.error)}`);
  assert.equal(res.data, null);
  for (const k of ['message', 'details', 'hint']) assert.ok(k in res.error, `error has ${k}`);
  assert.equal(typeof res.error.message, 'string');
  return res.error;
}

const ids = (rows) => rows.map((r) => r.id);
const byId = (a, b) => a.id - b.id;

// ---------------------------------------------------------------------------------------------
// select: columns, aliases, casts

test('select: explicit columns, ordered by id', async () => {
  const data = ok(await db.from('items').select('id, name').order('id'));
  assert.deepEqual(data, [
    { id: 1, name: 'apple' }, { id: 2, name: 'banana' }, { id: 3, name: 'carrot' },
    { id: 4, name: 'date' }, { id: 5, name: 'eggplant' }, { id: 6, name: 'Fig jam' },
  ]);
});

test('select: * returns every column with JSON types (numeric, array, jsonb, boolean, date)', async () => {
  const data = ok(await db.from('items').select('*').eq('id', 1));
  assert.deepEqual(data, [{
    id: 1, name: 'apple', price: 1.2, qty: 10, tags: ['fruit', 'red'], meta: { color: 'red' }, active: true, created: '2024-01-01',
  }]);
});

test('select: aliases rename columns', async () => {
  const data = ok(await db.from('items').select('key:id, label:name').in('id', [2, 3]).order('id'));
  assert.deepEqual(data, [{ key: 2, label: 'banana' }, { key: 3, label: 'carrot' }]);
});

test('select: casts, also combined with an alias', async () => {
  const data = ok(await db.from('items').select('id::text, price::text, cents:qty::float8').eq('id', 1));
  assert.deepEqual(data, [{ id: '1', price: '1.20', cents: 10 }]);
});

test('select: a quoted column name with a space', async () => {
  const data = ok(await db.from('people').select('id, "first name"').order('id'));
  assert.deepEqual(data, [{ id: 1, 'first name': 'Ann' }, { id: 2, 'first name': 'Bob' }]);
});

test('select: from a view', async () => {
  const data = ok(await db.from('cheap_items').select('name, price').order('price'));
  assert.deepEqual(data, [{ name: 'carrot', price: 0.3 }, { name: 'banana', price: 0.5 }]);
});

// ---------------------------------------------------------------------------------------------
// filters

test('filter: eq on text with a space, and on a number', async () => {
  assert.deepEqual(ok(await db.from('items').select('id, name').eq('name', 'Fig jam')), [{ id: 6, name: 'Fig jam' }]);
  assert.deepEqual(ok(await db.from('items').select('name').eq('qty', 25)), [{ name: 'banana' }]);
});

test('filter: neq', async () => {
  const data = ok(await db.from('items').select('id').neq('qty', 0).order('id'));
  assert.deepEqual(ids(data), [1, 2, 4, 5, 6]);
});

test('filter: gt and lt', async () => {
  const data = ok(await db.from('items').select('id').gt('price', 0.4).lt('price', 3.5).order('id'));
  assert.deepEqual(ids(data), [1, 2, 4]);
});

test('filter: gte and lte, also twice on one column', async () => {
  assert.deepEqual(ids(ok(await db.from('items').select('id').gte('qty', 2).lte('qty', 10).order('id'))), [1, 4, 5]);
  const dates = ok(await db.from('items').select('id, created').gte('created', '2024-01-02').lte('created', '2024-03-01').order('created'));
  assert.deepEqual(dates, [{ id: 2, created: '2024-01-02' }, { id: 3, created: '2024-02-01' }, { id: 5, created: '2024-03-01' }]);
});

test('filter: like (case-sensitive, % wildcards)', async () => {
  assert.deepEqual(ok(await db.from('items').select('name').like('name', '%an%').order('id')), [{ name: 'banana' }, { name: 'eggplant' }]);
  assert.deepEqual(ok(await db.from('items').select('name').like('name', 'f%')), []);
});

test('filter: ilike (case-insensitive)', async () => {
  assert.deepEqual(ok(await db.from('items').select('name').ilike('name', 'f%')), [{ name: 'Fig jam' }]);
  assert.deepEqual(ok(await db.from('items').select('name').ilike('name', '%AR%').order('id')), [{ name: 'carrot' }]);
});

test('filter: likeAnyOf and ilikeAllOf', async () => {
  assert.deepEqual(ok(await db.from('items').select('name').likeAnyOf('name', ['a%', '%t']).order('id')),
    [{ name: 'apple' }, { name: 'carrot' }, { name: 'eggplant' }]);
  assert.deepEqual(ok(await db.from('items').select('name').ilikeAllOf('name', ['%A%', '%N%']).order('id')),
    [{ name: 'banana' }, { name: 'eggplant' }]);
});

test('filter: regexMatch and regexIMatch', async () => {
  assert.deepEqual(ok(await db.from('items').select('name').regexMatch('name', '^[a-c]').order('id')),
    [{ name: 'apple' }, { name: 'banana' }, { name: 'carrot' }]);
  assert.deepEqual(ok(await db.from('items').select('name').regexIMatch('name', '^F')), [{ name: 'Fig jam' }]);
});

test('filter: is null', async () => {
  assert.deepEqual(ok(await db.from('items').select('id, price').is('price', null)), [{ id: 5, price: null }]);
});

test('filter: is true / is false', async () => {
  assert.deepEqual(ids(ok(await db.from('items').select('id').is('active', true).order('id'))), [1, 2, 4, 6]);
  assert.deepEqual(ids(ok(await db.from('items').select('id').is('active', false))), [3]);
});

test('filter: isDistinct treats NULL as a value', async () => {
  assert.deepEqual(ids(ok(await db.from('items').select('id').isDistinct('active', true).order('id'))), [3, 5]);
});

test('filter: in with numbers', async () => {
  assert.deepEqual(ids(ok(await db.from('items').select('id').in('id', [5, 1, 3]).order('id'))), [1, 3, 5]);
});

test('filter: in with strings, reserved characters quoted by the client', async () => {
  const data = ok(await db.from('items').select('id').in('name', ['apple', 'Fig jam', 'x,y', 'a(b)']).order('id'));
  assert.deepEqual(ids(data), [1, 6]);
});

test('filter: notIn', async () => {
  assert.deepEqual(ids(ok(await db.from('items').select('id').notIn('id', [1, 2, 3]).order('id'))), [4, 5, 6]);
});

test('filter: contains on an array column', async () => {
  assert.deepEqual(ids(ok(await db.from('items').select('id').contains('tags', ['fruit', 'red']))), [1]);
  assert.deepEqual(ids(ok(await db.from('items').select('id').contains('tags', ['fruit']).order('id'))), [1, 2, 4]);
});

test('filter: contains on jsonb, nested object', async () => {
  assert.deepEqual(ids(ok(await db.from('items').select('id').contains('meta', { color: 'red' }))), [1]);
  assert.deepEqual(ids(ok(await db.from('client_slots').select('id').contains('attrs', { flags: { hot: true } }))), [1]);
});

test('filter: contains on a range (string literal)', async () => {
  assert.deepEqual(ids(ok(await db.from('client_slots').select('id').contains('during', '[2,3]'))), [1]);
});

test('filter: containedBy on an array column and on jsonb', async () => {
  assert.deepEqual(ids(ok(await db.from('items').select('id').containedBy('tags', ['fruit', 'yellow', 'red']).order('id'))), [1, 2, 4]);
  assert.deepEqual(ids(ok(await db.from('client_slots').select('id').containedBy('attrs', { size: 'm', x: 1 }))), [2]);
});

test('filter: overlaps on an array and on a range', async () => {
  assert.deepEqual(ids(ok(await db.from('items').select('id').overlaps('tags', ['red', 'vegetable']).order('id'))), [1, 3]);
  assert.deepEqual(ids(ok(await db.from('client_slots').select('id').overlaps('during', '[3,6)').order('id'))), [1, 2]);
});

test('filter: range operators rangeGt, rangeLt, rangeGte, rangeLte, rangeAdjacent', async () => {
  const q = () => db.from('client_slots').select('id').order('id');
  assert.deepEqual(ids(ok(await q().rangeGt('during', '[1,4]'))), [2, 3]);
  assert.deepEqual(ids(ok(await q().rangeLt('during', '[7,8]'))), [1]);
  assert.deepEqual(ids(ok(await q().rangeGte('during', '[5,6]'))), [2, 3]);
  assert.deepEqual(ids(ok(await q().rangeLte('during', '[1,9]'))), [1, 2]);
  assert.deepEqual(ids(ok(await q().rangeAdjacent('during', '[20,30)'))), [3]);
});

test('filter: textSearch on a tsvector column (to_tsquery)', async () => {
  assert.deepEqual(ok(await db.from('docs').select('id, body').textSearch('tsv', 'fox & quick')), [{ id: 1, body: 'The quick brown fox' }]);
});

test('filter: textSearch with a config on a text column', async () => {
  assert.deepEqual(ids(ok(await db.from('docs').select('id').textSearch('body', 'sleeping', { config: 'english' }))), [2]);
});

test('filter: textSearch type plain', async () => {
  assert.deepEqual(ids(ok(await db.from('docs').select('id').textSearch('tsv', 'lazy dogs', { type: 'plain', config: 'english' }))), [2]);
});

test('filter: textSearch type phrase', async () => {
  assert.deepEqual(ids(ok(await db.from('docs').select('id').textSearch('tsv', 'brown fox', { type: 'phrase', config: 'english' }))), [1]);
  assert.deepEqual(ok(await db.from('docs').select('id').textSearch('tsv', 'fox brown', { type: 'phrase', config: 'english' })), []);
});

test('filter: textSearch type websearch (quotes, or, negation)', async () => {
  const q = (s) => db.from('docs').select('id').textSearch('body', s, { type: 'websearch', config: 'english' }).order('id');
  assert.deepEqual(ids(ok(await q('quick -lazy'))), [1]);
  assert.deepEqual(ids(ok(await q('fox or dogs'))), [1, 2]);
  assert.deepEqual(ids(ok(await q('"brown fox"'))), [1]);
});

test('filter: match with several columns', async () => {
  assert.deepEqual(ok(await db.from('items').select('id, name').match({ active: true, qty: 5 })), [{ id: 4, name: 'date' }]);
});

test('filter: not with is, in, eq and like', async () => {
  assert.deepEqual(ids(ok(await db.from('items').select('id').not('price', 'is', null).not('name', 'in', '(apple,banana)').order('id'))), [3, 4, 6]);
  assert.deepEqual(ids(ok(await db.from('items').select('id').not('qty', 'eq', 0).not('name', 'like', '%an%').order('id'))), [1, 4, 6]);
});

test('filter: or', async () => {
  assert.deepEqual(ids(ok(await db.from('items').select('id').or('qty.gt.20,price.gt.4').order('id'))), [2, 6]);
});

test('filter: or with nested and(...)', async () => {
  assert.deepEqual(ids(ok(await db.from('items').select('id').or('name.eq.apple,and(qty.gte.2,qty.lte.5)').order('id'))), [1, 4, 5]);
});

test('filter: or with and(...) nesting another or(...), combined with a top-level filter', async () => {
  const data = ok(await db.from('items').select('id')
    .or('name.eq.apple,and(qty.gte.2,or(price.is.null,price.gt.3))').neq('id', 1).order('id'));
  assert.deepEqual(ids(data), [5]);
});

test('filter: or with quoted values containing reserved characters', async () => {
  assert.deepEqual(ids(ok(await db.from('items').select('id').or('name.eq."Fig jam",name.in.("x,y",carrot)').order('id'))), [3, 6]);
});

test('filter: filter() with raw PostgREST operators', async () => {
  assert.deepEqual(ids(ok(await db.from('items').select('id').filter('tags', 'cs', '{fruit}').filter('qty', 'gte', 10).order('id'))), [1, 2]);
  assert.deepEqual(ids(ok(await db.from('items').select('id').filter('id', 'in', '(1,3)').order('id'))), [1, 3]);
  assert.deepEqual(ids(ok(await db.from('items').select('id').filter('name', 'not.ilike', '*A*').order('id'))), []);
});

// ---------------------------------------------------------------------------------------------
// order, limit, range

test('order: descending with nullsFirst, then a second key', async () => {
  const data = ok(await db.from('items').select('id, price').order('price', { ascending: false, nullsFirst: true }).order('id'));
  assert.deepEqual(data.map((r) => r.id), [5, 6, 4, 1, 2, 3]);
  assert.equal(data[0].price, null);
});

test('order: ascending with nullsFirst: false (nulls last)', async () => {
  const data = ok(await db.from('items').select('id').order('price', { ascending: true, nullsFirst: false }));
  assert.deepEqual(ids(data), [3, 2, 1, 4, 6, 5]);
});

test('order: ascending nullsFirst: true on a date column', async () => {
  const data = ok(await db.from('items').select('id, created').order('created', { nullsFirst: true }));
  assert.deepEqual(ids(data), [4, 1, 2, 3, 5, 6]);
});

test('order: multiple keys (boolean desc, int asc)', async () => {
  const data = ok(await db.from('items').select('id').not('active', 'is', null).order('active', { ascending: false }).order('qty'));
  assert.deepEqual(ids(data), [6, 4, 1, 2, 3]);
});

test('limit', async () => {
  assert.deepEqual(ids(ok(await db.from('items').select('id').order('id', { ascending: false }).limit(2))), [6, 5]);
});

test('range(from, to) is inclusive', async () => {
  assert.deepEqual(ids(ok(await db.from('items').select('id').order('id').range(2, 3))), [3, 4]);
});

test('range past the end without a count: empty array', async () => {
  assert.deepEqual(ok(await db.from('items').select('id').order('id').range(10, 12)), []);
});

test('range past the end with count: PGRST103, 416', async () => {
  const err = failed(await db.from('items').select('id', { count: 'exact' }).order('id').range(10, 12), 'PGRST103', 416);
  assert.match(err.details, /offset of 10/);
});

// ---------------------------------------------------------------------------------------------
// single, maybeSingle, csv

test('single(): one row as an object', async () => {
  assert.deepEqual(ok(await db.from('items').select('id, name, tags').eq('id', 3).single()), { id: 3, name: 'carrot', tags: ['vegetable'] });
});

test('single(): many rows → PGRST116, 406', async () => {
  const err = failed(await db.from('items').select('id').single(), 'PGRST116', 406);
  assert.match(err.message, /JSON object requested, multiple \(or no\) rows returned/);
  assert.match(err.details, /6 rows/);
});

test('single(): no rows → PGRST116, 406', async () => {
  const err = failed(await db.from('items').select('id').eq('id', 99).single(), 'PGRST116', 406);
  assert.match(err.details, /0 rows/);
});

test('maybeSingle(): no rows → data null, no error', async () => {
  const res = await db.from('items').select('id').eq('id', 99).maybeSingle();
  assert.equal(res.error, null);
  assert.equal(res.data, null);
  assert.equal(res.status, 200);
});

test('maybeSingle(): one row → object', async () => {
  assert.deepEqual(ok(await db.from('items').select('id, name').eq('id', 2).maybeSingle()), { id: 2, name: 'banana' });
});

test('maybeSingle(): two rows → PGRST116', async () => {
  failed(await db.from('items').select('id').lt('id', 3).maybeSingle(), 'PGRST116', 406);
});

test('csv(): text/csv body', async () => {
  const data = ok(await db.from('items').select('id, name').order('id').limit(3).csv());
  assert.equal(data, 'id,name\n1,apple\n2,banana\n3,carrot');
});

// ---------------------------------------------------------------------------------------------
// counts and head

test("count: 'exact' with a range → total and 206", async () => {
  const res = await db.from('items').select('id', { count: 'exact' }).order('id').range(0, 1);
  assert.deepEqual(ids(ok(res, 206)), [1, 2]);
  assert.equal(res.count, 6);
});

test("count: 'exact' with a filter, all rows returned → 200", async () => {
  const res = await db.from('items').select('id', { count: 'exact' }).eq('active', true).order('id');
  assert.deepEqual(ids(ok(res)), [1, 2, 4, 6]);
  assert.equal(res.count, 4);
});

test("count: 'planned' gives the planner's estimate (analyzed table: 6)", async () => {
  const res = await db.from('items').select('id', { count: 'planned' }).order('id').limit(1);
  assert.deepEqual(ids(ok(res, 206)), [1]);
  assert.equal(res.count, 6);
});

test("count: 'estimated' without db-max-rows is the exact count", async () => {
  const res = await db.from('items').select('id', { count: 'estimated' }).eq('active', true).order('id');
  assert.deepEqual(ids(ok(res)), [1, 2, 4, 6]);
  assert.equal(res.count, 4);
});

test('head: true with count → no data, only the count', async () => {
  const res = await db.from('items').select('*', { count: 'exact', head: true }).eq('active', true);
  assert.equal(res.error, null);
  assert.equal(res.status, 200);
  assert.equal(res.data, null);
  assert.equal(res.count, 4);
});

test('head: true with count and no matching rows → count 0', async () => {
  const res = await db.from('items').select('id', { count: 'exact', head: true }).eq('name', 'nothing');
  assert.equal(res.error, null);
  assert.equal(res.count, 0);
});

// ---------------------------------------------------------------------------------------------
// embedded resources

test('embed: many-to-one as an object (null when no parent)', async () => {
  const data = ok(await db.from('novels').select('title, publishers(name)').order('id'));
  assert.deepEqual(data, [
    { title: 'Dune', publishers: { name: 'Ace' } },
    { title: 'Hyperion', publishers: { name: 'Gollancz' } },
    { title: 'Orphan', publishers: null },
  ]);
});

test('embed: one-to-many as an array, ordered with referencedTable', async () => {
  const data = ok(await db.from('novels').select('id, chapters(num, words)').in('id', [1, 3]).order('id')
    .order('num', { referencedTable: 'chapters', ascending: false }));
  assert.deepEqual(data, [
    { id: 1, chapters: [{ num: 3, words: 300 }, { num: 2, words: 200 }, { num: 1, words: 100 }] },
    { id: 3, chapters: [] },
  ]);
});

test('embed: many-to-many through a join table', async () => {
  const data = ok(await db.from('novels').select('title, genres(name)').order('id').order('name', { referencedTable: 'genres' }));
  assert.deepEqual(data, [
    { title: 'Dune', genres: [{ name: 'epic' }, { name: 'scifi' }] },
    { title: 'Hyperion', genres: [{ name: 'scifi' }] },
    { title: 'Orphan', genres: [] },
  ]);
});

test('embed: many-to-many in reverse', async () => {
  const data = ok(await db.from('genres').select('name, novels(title)').order('id').order('title', { referencedTable: 'novels' }));
  assert.deepEqual(data, [
    { name: 'scifi', novels: [{ title: 'Dune' }, { title: 'Hyperion' }] },
    { name: 'epic', novels: [{ title: 'Dune' }] },
    { name: 'horror', novels: [] },
  ]);
});

test('embed: nested two levels (publisher → novels → chapters)', async () => {
  const data = ok(await db.from('publishers').select('name, novels(title, chapters(num))').eq('id', 2)
    .order('num', { referencedTable: 'novels.chapters' }));
  assert.deepEqual(data, [{ name: 'Ace', novels: [{ title: 'Dune', chapters: [{ num: 1 }, { num: 2 }, { num: 3 }] }] }]);
});

test('embed: aliases with fk hints (people!novels_author_id_fkey)', async () => {
  const data = ok(await db.from('novels')
    .select('title, author:people!novels_author_id_fkey("first name"), editor:people!novels_editor_id_fkey("first name")')
    .order('id'));
  assert.deepEqual(data, [
    { title: 'Dune', author: { 'first name': 'Ann' }, editor: { 'first name': 'Bob' } },
    { title: 'Hyperion', author: { 'first name': 'Bob' }, editor: { 'first name': 'Ann' } },
    { title: 'Orphan', author: null, editor: null },
  ]);
});

test('embed: ambiguous relationship without a hint → PGRST201, 300', async () => {
  const err = failed(await db.from('novels').select('title, people(id)'), 'PGRST201', 300);
  assert.match(err.message, /more than one relationship/);
});

test('embed: self-reference — the column name gives the parent, the table name with a column hint the children', async () => {
  const data = ok(await db.from('employees').select('name, manager:manager_id(name), reports:employees!manager_id(name)').order('id'));
  assert.deepEqual(data, [
    { name: 'boss', manager: null, reports: [{ name: 'mid' }] },
    { name: 'mid', manager: { name: 'boss' }, reports: [{ name: 'junior' }] },
    { name: 'junior', manager: { name: 'mid' }, reports: [] },
  ]);
});

test('embed: star plus an embedded star', async () => {
  const data = ok(await db.from('novels').select('*, publishers(*)').eq('id', 2));
  assert.deepEqual(data, [{ id: 2, title: 'Hyperion', publisher_id: 1, author_id: 2, editor_id: 1, publishers: { id: 1, name: 'Gollancz' } }]);
});

test("embed: filter on the embedded resource (.eq('chapters.num', 2)) keeps all parents", async () => {
  const data = ok(await db.from('novels').select('title, chapters(num)').eq('chapters.num', 2).order('id'));
  assert.deepEqual(data, [
    { title: 'Dune', chapters: [{ num: 2 }] }, { title: 'Hyperion', chapters: [] }, { title: 'Orphan', chapters: [] },
  ]);
});

test('embed: !inner with an embedded filter drops parents without matches', async () => {
  const data = ok(await db.from('novels').select('title, chapters!inner(num)').gte('chapters.num', 2).order('id')
    .order('num', { referencedTable: 'chapters' }));
  assert.deepEqual(data, [{ title: 'Dune', chapters: [{ num: 2 }, { num: 3 }] }]);
});

test('embed: order and limit(1) on the referenced table', async () => {
  const data = ok(await db.from('novels').select('title, chapters(num)').order('id')
    .order('num', { referencedTable: 'chapters', ascending: false }).limit(1, { referencedTable: 'chapters' }));
  assert.deepEqual(data, [
    { title: 'Dune', chapters: [{ num: 3 }] }, { title: 'Hyperion', chapters: [{ num: 1 }] }, { title: 'Orphan', chapters: [] },
  ]);
});

test('embed: range on the referenced table', async () => {
  const data = ok(await db.from('novels').select('title, chapters(num)').eq('id', 1)
    .order('num', { referencedTable: 'chapters' }).range(1, 2, { referencedTable: 'chapters' }));
  assert.deepEqual(data, [{ title: 'Dune', chapters: [{ num: 2 }, { num: 3 }] }]);
});

test('embed: legacy foreignTable option for order', async () => {
  const data = ok(await db.from('publishers').select('name, novels(title)').order('name').order('title', { foreignTable: 'novels', ascending: false }));
  assert.deepEqual(data, [{ name: 'Ace', novels: [{ title: 'Dune' }] }, { name: 'Gollancz', novels: [{ title: 'Hyperion' }] }]);
});

test('embed: or() on the referenced table', async () => {
  const data = ok(await db.from('publishers').select('name, novels(title)').or('title.eq.Dune,title.eq.Nothing', { referencedTable: 'novels' }).order('id'));
  assert.deepEqual(data, [{ name: 'Gollancz', novels: [] }, { name: 'Ace', novels: [{ title: 'Dune' }] }]);
});

// ---------------------------------------------------------------------------------------------
// insert, upsert, update, delete

test('insert: one row without select → 201, no data; the row is there', async () => {
  const res = await db.from('client_notes').insert({ title: 'ins plain', stars: 2 });
  assert.equal(ok(res, 201), null);
  assert.deepEqual(ok(await db.from('client_notes').select('title, body, stars, tags').eq('title', 'ins plain')),
    [{ title: 'ins plain', body: null, stars: 2, tags: [] }]);
});

test('insert: one row with .select().single() returns the stored row with defaults', async () => {
  const row = ok(await db.from('client_notes').insert({ title: 'ins single', body: 'b', stars: 3 }).select().single(), 201);
  assert.equal(typeof row.id, 'number');
  assert.deepEqual({ ...row, id: 0 }, { id: 0, title: 'ins single', body: 'b', stars: 3, tags: [] });
});

test('insert: bulk with .select(columns); keys missing from a row become NULL', async () => {
  const data = ok(await db.from('client_notes')
    .insert([{ title: 'bulk 1', stars: 1, tags: ['x', 'y'] }, { title: 'bulk 2', body: 'two' }])
    .select('title, body, stars, tags'), 201);
  assert.deepEqual(data.sort((a, b) => a.title.localeCompare(b.title)), [
    { title: 'bulk 1', body: null, stars: 1, tags: ['x', 'y'] },
    { title: 'bulk 2', body: 'two', stars: null, tags: null },
  ]);
});

test('insert: bulk with defaultToNull: false → missing keys take column defaults', async () => {
  const data = ok(await db.from('client_notes')
    .insert([{ title: 'dflt 1', tags: ['t'] }, { title: 'dflt 2' }], { defaultToNull: false })
    .select('title, tags'), 201);
  assert.deepEqual(data.sort((a, b) => a.title.localeCompare(b.title)), [{ title: 'dflt 1', tags: ['t'] }, { title: 'dflt 2', tags: [] }]);
});

test("insert: count: 'exact' → count of inserted rows", async () => {
  const res = await db.from('client_notes').insert([{ title: 'cnt 1' }, { title: 'cnt 2' }], { count: 'exact' });
  assert.equal(ok(res, 201), null);
  assert.equal(res.count, 2);
});

test('insert: select with an embed on the inserted row (api schema)', async () => {
  const row = ok(await api.from('gadget_log').insert({ gadget_id: 3, note: 'inspected' }).select('gadget_id, note, gadgets(name)').single(), 201);
  assert.deepEqual(row, { gadget_id: 3, note: 'inspected', gadgets: { name: 'gizmo' } });
});

test('insert: unique violation → 23505, 409', async () => {
  const err = failed(await db.from('client_notes').insert({ title: 'seed two' }).select(), '23505', 409);
  assert.match(err.message, /duplicate key value violates unique constraint "client_notes_title_key"/);
  assert.equal(err.details, 'Key (title)=(seed two) already exists.');
});

test('insert: check violation → 23514, 400', async () => {
  const err = failed(await db.from('client_notes').insert({ title: 'bad stars', stars: 9 }), '23514', 400);
  assert.match(err.message, /client_notes_stars_check/);
});

test('insert: not-null violation → 23502, 400', async () => {
  const err = failed(await db.from('client_notes').insert({ body: 'no title' }), '23502', 400);
  assert.match(err.message, /null value in column "title"/);
});

test('upsert: merge on the primary key (composite) updates and inserts', async () => {
  const data = ok(await db.from('client_settings')
    .upsert([{ owner: 'ann', key: 'theme', value: 'blue' }, { owner: 'ann', key: 'font', value: 'mono' }])
    .select('owner, key, value, version'), 201);
  assert.deepEqual(data.sort((a, b) => a.key.localeCompare(b.key)), [
    { owner: 'ann', key: 'font', value: 'mono', version: 1 },
    { owner: 'ann', key: 'theme', value: 'blue', version: 1 },
  ]);
  assert.deepEqual(ok(await db.from('client_settings').select('key, value').eq('owner', 'ann').order('key')),
    [{ key: 'font', value: 'mono' }, { key: 'lang', value: 'en' }, { key: 'theme', value: 'blue' }]);
});

test('upsert: merge that only updates answers 200 (PostgREST ≥ 12)', async () => {
  const res = await db.from('client_settings').upsert({ owner: 'bob', key: 'theme', value: 'sepia' }).select('value');
  assert.deepEqual(ok(res, 200), [{ value: 'sepia' }]);
});

test('upsert: ignoreDuplicates returns only the inserted rows and keeps existing ones', async () => {
  const data = ok(await db.from('client_settings')
    .upsert([{ owner: 'cy', key: 'theme', value: 'x' }, { owner: 'ann', key: 'lang', value: 'fr' }], { ignoreDuplicates: true })
    .select('owner, key, value'), 201);
  assert.deepEqual(data, [{ owner: 'cy', key: 'theme', value: 'x' }]);
  assert.deepEqual(ok(await db.from('client_settings').select('value').match({ owner: 'ann', key: 'lang' })), [{ value: 'en' }]);
});

test('upsert: onConflict on a unique column merges only the given columns', async () => {
  const data = ok(await db.from('client_notes')
    .upsert([{ title: 'seed one', body: 'upserted' }, { title: 'ups merged', body: 'inserted' }], { onConflict: 'title' })
    .select('title, body, stars, tags'), 201);
  assert.deepEqual(data.sort((a, b) => a.title.localeCompare(b.title)), [
    { title: 'seed one', body: 'upserted', stars: 1, tags: ['seed'] },
    { title: 'ups merged', body: 'inserted', stars: null, tags: [] }, // tags is not in columns=: its default
  ]);
});

test('upsert: onConflict with ignoreDuplicates inserts only the new row', async () => {
  const data = ok(await db.from('client_notes')
    .upsert([{ title: 'seed two', body: 'ignored' }, { title: 'ups new', body: 'new' }], { onConflict: 'title', ignoreDuplicates: true })
    .select('title, body'), 201);
  assert.deepEqual(data, [{ title: 'ups new', body: 'new' }]);
  assert.deepEqual(ok(await db.from('client_notes').select('body').eq('title', 'seed two')), [{ body: 'second seed' }]);
});

test('update: with .select() returns every changed row', async () => {
  const data = ok(await db.from('client_notes').update({ stars: 5, body: 'updated' }).in('title', ['upd a', 'upd b']).select('title, body, stars'));
  assert.deepEqual(data.sort((a, b) => a.title.localeCompare(b.title)), [
    { title: 'upd a', body: 'updated', stars: 5 }, { title: 'upd b', body: 'updated', stars: 5 },
  ]);
});

test('update: .select().single() returns the row as an object', async () => {
  const row = ok(await db.from('client_notes').update({ tags: ['changed'] }).eq('title', 'upd c').select('title, stars, tags').single());
  assert.deepEqual(row, { title: 'upd c', stars: 2, tags: ['changed'] });
});

test('update: without select → 204, no data; no matching rows with select → []', async () => {
  const res = await db.from('client_notes').update({ body: 'none' }).eq('title', 'no such note');
  assert.equal(ok(res, 204), null);
  assert.deepEqual(ok(await db.from('client_notes').update({ body: 'none' }).eq('title', 'no such note').select()), []);
});

test("update: count: 'exact' → count of updated rows", async () => {
  const res = await db.from('client_notes').update({ stars: 4 }, { count: 'exact' }).in('title', ['upd d', 'upd e']);
  assert.equal(ok(res, 204), null);
  assert.equal(res.count, 2);
});

test('delete: with .select() returns the deleted rows', async () => {
  const data = ok(await db.from('client_trash').delete().eq('kind', 'glass').select());
  assert.deepEqual(data.sort(byId), [{ id: 6, kind: 'glass' }, { id: 7, kind: 'glass' }, { id: 8, kind: 'glass' }]);
  assert.deepEqual(ok(await db.from('client_trash').select('id').eq('kind', 'glass')), []);
});

test('delete: .select().single() returns the row as an object', async () => {
  assert.deepEqual(ok(await db.from('client_trash').delete().eq('id', 1).select('id, kind').single()), { id: 1, kind: 'paper' });
});

test("delete: count: 'exact' → count of deleted rows", async () => {
  const res = await db.from('client_trash').delete({ count: 'exact' }).eq('kind', 'metal');
  assert.equal(ok(res, 204), null);
  assert.equal(res.count, 2);
});

test('delete: maxAffected exceeded → PGRST124, nothing deleted', async () => {
  const err = failed(await db.from('client_trash').delete().gte('id', 2).lte('id', 5).maxAffected(1), 'PGRST124', 400);
  assert.match(err.details, /4 rows/);
  assert.deepEqual(ids(ok(await db.from('client_trash').select('id').gte('id', 2).lte('id', 5).order('id'))), [2, 3, 4, 5]);
});

// ---------------------------------------------------------------------------------------------
// rpc

test('rpc: POST with named arguments → scalar', async () => {
  assert.equal(ok(await db.rpc('add', { a: 2, b: 3 })), 5);
});

test('rpc: GET ({ get: true }) with a default argument omitted', async () => {
  assert.equal(ok(await db.rpc('add', { a: 2 }, { get: true })), 12);
});

test('rpc: array argument by POST and by GET', async () => {
  assert.equal(ok(await db.rpc('arr_sum', { vals: [4, 5] })), 9);
  assert.equal(ok(await db.rpc('arr_sum', { vals: [1, 2, 3] }, { get: true })), 6);
});

test('rpc: set-returning function with select, filter and order', async () => {
  const data = ok(await db.rpc('items_cheaper_than', { max_price: 2 }).select('id, name').gt('qty', 5).order('price', { ascending: false }));
  assert.deepEqual(data, [{ id: 1, name: 'apple' }, { id: 2, name: 'banana' }]);
});

test('rpc: set-returning function by GET with filters, order and limit', async () => {
  const data = ok(await db.rpc('items_cheaper_than', { max_price: 5 }, { get: true }).select('name').not('tags', 'is', null).order('id').limit(3));
  assert.deepEqual(data, [{ name: 'apple' }, { name: 'banana' }, { name: 'carrot' }]);
});

test('rpc: set-returning function without select returns just the rows\' columns', async () => {
  const data = ok(await db.rpc('items_cheaper_than', { max_price: 1 }).eq('id', 3));
  assert.deepEqual(data, [{ id: 3, name: 'carrot', price: 0.3, qty: 0, tags: ['vegetable'], meta: null, active: false, created: '2024-02-01' }]);
});

test('rpc: count exact with a range → count and 206', async () => {
  const res = await db.rpc('items_cheaper_than', { max_price: 5 }, { count: 'exact' }).select('id').order('id').range(0, 1);
  assert.deepEqual(ids(ok(res, 206)), [1, 2]);
  assert.equal(res.count, 5);
});

test('rpc: head with count', async () => {
  const res = await db.rpc('items_cheaper_than', { max_price: 1 }, { head: true, count: 'exact' });
  assert.equal(res.error, null);
  assert.equal(res.data, null);
  assert.equal(res.count, 2);
});

test('rpc: single() on a set-returning function', async () => {
  assert.deepEqual(ok(await db.rpc('items_cheaper_than', { max_price: 1 }).select('name').eq('id', 2).single()), { name: 'banana' });
});

test('rpc: RETURNS TABLE function with filters and order', async () => {
  const data = ok(await db.rpc('client_series', { n: 5 }, { get: true }).gte('sq', 4).order('i', { ascending: false }));
  assert.deepEqual(data, [{ i: 5, sq: 25 }, { i: 4, sq: 16 }, { i: 3, sq: 9 }, { i: 2, sq: 4 }]);
});

test('rpc: set of scalars → array of values', async () => {
  assert.deepEqual(ok(await db.rpc('names')), ['apple', 'banana', 'carrot', 'date', 'eggplant', 'Fig jam']);
});

test('rpc: composite result → object', async () => {
  assert.deepEqual(ok(await db.rpc('item_row', { iid: 4 })), {
    id: 4, name: 'date', price: 3, qty: 5, tags: ['fruit'], meta: { color: 'brown' }, active: true, created: null,
  });
});

test('rpc: select on a composite result', async () => {
  assert.deepEqual(ok(await db.rpc('item_row', { iid: 2 }).select('id, name')), { id: 2, name: 'banana' });
});

test('rpc: void function → 204, data null', async () => {
  assert.equal(ok(await db.rpc('nothing'), 204), null);
});

test('rpc: volatile function by POST changes data; by GET → 25006, 405', async () => {
  assert.equal(ok(await db.rpc('client_bump', { counter: 'hits', by: 2 })), 2);
  assert.equal(ok(await db.rpc('client_bump', { counter: 'hits' })), 3);
  failed(await db.rpc('client_bump', { counter: 'hits' }, { get: true }), '25006', 405);
  assert.deepEqual(ok(await db.from('client_counters').select('n').eq('name', 'hits')), [{ n: 3 }]);
});

test('rpc: RAISE in the function → P0001, 400 with its message', async () => {
  const err = failed(await db.rpc('fail', { msg: 'client boom' }), 'P0001', 400);
  assert.equal(err.message, 'client boom');
});

test('rpc: unknown function → PGRST202, 404', async () => {
  const err = failed(await db.rpc('no_such_fn', { x: 1 }), 'PGRST202', 404);
  assert.match(err.message, /no_such_fn/);
});

// ---------------------------------------------------------------------------------------------
// errors

test('error: unknown table → PGRST205, 404', async () => {
  const err = failed(await db.from('no_such_table').select(), 'PGRST205', 404);
  assert.match(err.message, /Could not find the table 'public\.no_such_table' in the schema cache/);
});

test('error: unknown column in select → 42703, 400', async () => {
  const err = failed(await db.from('items').select('id, nope'), '42703', 400);
  assert.match(err.message, /nope/);
});

test('error: unknown column in a filter → 42703, 400', async () => {
  failed(await db.from('items').select('id').eq('nope', 1), '42703', 400);
});

test('error: value of the wrong type → 22P02, 400', async () => {
  const err = failed(await db.from('items').select('id').eq('id', 'abc'), '22P02', 400);
  assert.match(err.message, /invalid input syntax for type bigint/);
});

test('error: unknown operator in filter() → PGRST100, 400', async () => {
  failed(await db.from('items').select('id').filter('id', 'nope', 1), 'PGRST100', 400);
});

test('error: no privilege as anon → 42501, 401', async () => {
  const err = failed(await db.from('secrets').select(), '42501', 401);
  assert.match(err.message, /permission denied for table secrets/);
});

test('error: throwOnError() rejects with a PostgrestError', async () => {
  await assert.rejects(async () => db.from('items').select('id').eq('id', 'abc').throwOnError(), (e) => {
    assert.ok(e instanceof PostgrestError);
    assert.equal(e.code, '22P02');
    assert.match(e.message, /invalid input syntax/);
    return true;
  });
});

// ---------------------------------------------------------------------------------------------
// schema switching

test("schema('api'): select from a table of the second schema", async () => {
  assert.deepEqual(ok(await api.from('gadgets').select('name, price').gt('price', 5).order('price')),
    [{ name: 'widget', price: 9.99 }, { name: 'gizmo', price: 19 }]);
});

test("schema('api'): embedding inside that schema", async () => {
  const row = ok(await api.from('gadgets').select('name, gadget_log(note)').eq('id', 1).order('id', { referencedTable: 'gadget_log' }).single());
  assert.deepEqual(row, { name: 'sprocket', gadget_log: [{ note: 'made' }, { note: 'shipped' }] });
});

test("schema('api'): rpc by POST and by GET", async () => {
  assert.equal(ok(await api.rpc('gadget_total')), 31.49);
  assert.equal(ok(await api.rpc('hello', {}, { get: true })), 'hello from api');
});

test("schema('api'): the default schema doesn't see api tables; an unknown schema → PGRST106", async () => {
  failed(await db.from('gadgets').select(), 'PGRST205', 404);
  assert.deepEqual(ok(await api.from('things').select('label')), [{ label: 'from api schema' }]);
  const err = failed(await db.schema('nope').from('gadgets').select(), 'PGRST106', 406);
  assert.match(`${err.message} ${err.hint}`, /public, api/); // v12 says it in the message, v13 in the hint
});

// ---- JSON paths, spreads, aggregates, computed fields, nested inserts (session 2) ----

test('JSON paths: select data->>name, filter .eq on a path, order by a path', async () => {
  const data = ok(await db.from('jdocs').select('id, name:data->>name, city:data->addr->>city')
    .eq('data->>name', 'ann'));
  assert.deepEqual(data, [{ id: 1, name: 'ann', city: 'Oslo' }]);
  const ordered = ok(await db.from('jdocs').select('id').order('data->age', { ascending: false }));
  assert.deepEqual(ordered.map((r) => r.id), [3, 1, 2]);
  const arr = ok(await db.from('jdocs').select('first:nums->0').eq('id', 2));
  assert.deepEqual(arr, [{ first: 4 }]);
});

test('JSON paths: .gt on a -> path compares JSON values; .in on ->>', async () => {
  const older = ok(await db.from('jdocs').select('id').gt('data->age', 28).order('id'));
  assert.deepEqual(older, [{ id: 1 }, { id: 3 }]);
  const some = ok(await db.from('jdocs').select('id').in('data->>name', ['bob', 'cy']).order('id'));
  assert.deepEqual(some, [{ id: 2 }, { id: 3 }]);
});

test('spread: ...publishers(name) flattens a many-to-one embed', async () => {
  const data = ok(await db.from('novels').select('title, ...publishers(publisher:name)').lt('id', 4).order('id'));
  assert.deepEqual(data, [
    { title: 'Dune', publisher: 'Ace' },
    { title: 'Hyperion', publisher: 'Gollancz' },
    { title: 'Orphan', publisher: null },
  ]);
});

test('embedded resource filters: .not(rel, is, null) keeps parents with a related row', async () => {
  const data = ok(await db.from('novels').select('title, publishers!inner(name)').lt('id', 4).order('id'));
  const viaNull = ok(await db.from('novels').select('title, publishers(name)').not('publishers', 'is', null).lt('id', 4).order('id'));
  assert.deepEqual(viaNull, data);
  const orphans = ok(await db.from('novels').select('title, publishers(name)').is('publishers', null).lt('id', 4));
  assert.deepEqual(orphans, [{ title: 'Orphan', publishers: null }]);
});

test('aggregates: sum/avg/count with grouping, and inside an embed', async () => {
  const totals = ok(await db.from('chapters').select('novel_id, words.sum(), count()').order('novel_id'));
  assert.deepEqual(totals, [{ novel_id: 1, sum: 600, count: 3 }, { novel_id: 2, sum: 150, count: 1 }]);
  const nested = ok(await db.from('novels').select('title, chapters(words.max())').eq('id', 1));
  assert.deepEqual(nested, [{ title: 'Dune', chapters: [{ max: 300 }] }]);
});

test('computed fields and relationships: select, filter and order by them', async () => {
  const data = ok(await db.from('novels').select('id, title_upper, chapter_count').lt('id', 4).order('chapter_count', { ascending: false }));
  assert.deepEqual(data.map((r) => [r.id, r.title_upper, r.chapter_count]), [[1, 'DUNE', 3], [2, 'HYPERION', 1], [3, 'ORPHAN', 0]]);
  const rel = ok(await db.from('novels').select('title, long_chapters(num)').eq('id', 1).order('num', { referencedTable: 'long_chapters' }));
  assert.deepEqual(rel, [{ title: 'Dune', long_chapters: [{ num: 2 }, { num: 3 }] }]);
});

test('nested insert: insert(parent with children).select(embed) in one request', async () => {
  const data = ok(await db.from('orders')
    .insert({ customer: 'client-nested', order_items: [{ sku: 'n1', qty: 1 }, { sku: 'n2', qty: 4 }] })
    .select('customer, order_items(sku, qty)'), 201);
  assert.deepEqual(data, [{ customer: 'client-nested', order_items: [{ sku: 'n1', qty: 1 }, { sku: 'n2', qty: 4 }] }]);
  const bad = await db.from('orders').insert({ customer: 'client-bad', order_items: [{ sku: 'x', qty: 0 }] });
  failed(bad, '23514', 400);
  const none = ok(await db.from('orders').select('id').eq('customer', 'client-bad'));
  assert.deepEqual(none, []);
});

// Representations and function-driven responses (rest-body).
test('explain(): the text plan of a select (db-plan-enabled)', async () => {
  const res = await db.from('items').select('id').eq('id', 1).explain();
  assert.equal(res.error, null);
  assert.equal(res.status, 200);
  assert.match(res.data, /Scan/);
});

test("explain({ format: 'json', analyze: true }): the JSON plan with timings", async () => {
  const res = await db.from('items').select('id').eq('id', 1).explain({ format: 'json', analyze: true });
  assert.equal(res.error, null);
  assert.ok(Array.isArray(res.data) && res.data[0].Plan);
  assert.ok('Actual Rows' in res.data[0].Plan);
});

test('rpc().csv(): a set-returning function as text/csv', async () => {
  const res = await db.rpc('items_cheaper_than', { max_price: 1 }).select('id,name').order('id').csv();
  assert.equal(res.error, null);
  assert.equal(res.data, 'id,name\n2,banana\n3,carrot');
});

test('insert().select().csv(): a write answered as CSV', async () => {
  const res = await db.from('csv_in').insert({ id: 90, name: 'x' }).select('id,name').csv();
  assert.equal(res.error, null);
  assert.equal(res.status, 201);
  assert.equal(res.data, 'id,name\n90,x');
  ok(await db.from('csv_in').delete().eq('id', 90), 204);
});

test('rpc(): response.status and response.headers set by the function', async () => {
  const res = await db.rpc('set_status');
  assert.equal(res.error, null);
  assert.equal(res.status, 202);
  assert.deepEqual(res.data, { queued: true });
});

test("rpc(): RAISE SQLSTATE 'PGRST' becomes the error", async () => {
  const res = await db.rpc('raise_pgrst');
  assert.equal(res.status, 402);
  assert.deepEqual(res.error, { code: '123', message: 'Payment Required', details: 'Quota exceeded', hint: 'Upgrade your plan' });
});

test('rpc(): a variadic argument as an array (POST); GET takes one element per value, as PostgREST', async () => {
  assert.equal(ok(await db.rpc('var_sum', { vals: [1, 2, 3] })), 6);
  assert.equal(ok(await db.rpc('var_sum', { vals: 4 }, { get: true })), 4);
});
