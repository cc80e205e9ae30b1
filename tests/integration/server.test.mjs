// The server core against a real PostgreSQL: admin endpoints, malformed input, keep-alive,
// schema reloads, the database going away and coming back, configuration errors.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startPostgres, startStrata, rawRequest, root, strataBin, tmpDir, until } from './lib/harness.mjs';

let pg, strata;

before(async () => {
  pg = await startPostgres({ fixture: path.join(root, 'tests/integration/fixtures/schema.sql') });
  strata = await startStrata({
    env: {
      PGRST_DB_URI: pg.conninfo(), STRATA_DB_ADMIN_URI: pg.conninfo('postgres'),
      PGRST_DB_ANON_ROLE: 'anon', STRATA_MAX_BODY_BYTES: '1000000', STRATA_MAX_HEADER_BYTES: '8192',
    },
  });
});

after(async () => {
  const exit = strata ? await strata.stop('SIGINT') : null;
  if (pg) pg.cleanup();
  if (exit) assert.equal(exit.code, 0, `strata exit: ${JSON.stringify(exit)}\n${strata.log.slice(-4000)}`);
});

test('admin: /live, /ready, /metrics, /schema_cache', async () => {
  assert.equal((await fetch(`${strata.admin}/live`)).status, 200);
  assert.equal((await fetch(`${strata.admin}/ready`)).status, 200);
  await fetch(`${strata.url}/items?id=eq.1`);
  // Counters are bumped when the response write completes, which may be just after the
  // client has read it: wait for the scrape to show the request.
  let m = '';
  await until(async () => {
    m = await (await fetch(`${strata.admin}/metrics`)).text();
    return /strata_http_requests_total\{status="2xx"\} [1-9]/.test(m);
  }, 5000, 'the request in /metrics');
  assert.match(m, /strata_http_requests_total\{status="2xx"\} [1-9]/);
  assert.match(m, /strata_http_request_duration_seconds_bucket\{le="\+Inf"\} [1-9]/);
  assert.match(m, /strata_db_pool_size [1-9]/);
  assert.match(m, /strata_db_pool_in_use \d/);
  assert.match(m, /strata_db_pool_waiting \d/);
  assert.match(m, /strata_schema_cache_load_seconds [0-9.e-]+/);
  const sc = await (await fetch(`${strata.admin}/schema_cache`)).json();
  assert.ok(sc.relations.some((r) => r.name === 'items' && r.columns.some((c) => c.name === 'price')));
  assert.equal((await fetch(`${strata.admin}/nope`)).status, 404);
});

test('aggregates are refused unless db-aggregates-enabled (PGRST123)', async () => {
  const r = await fetch(`${strata.url}/chapters?select=words.sum()`);
  assert.equal(r.status, 400);
  const body = await r.json();
  assert.equal(body.code, 'PGRST123');
  const plain = await fetch(`${strata.url}/chapters?select=words&limit=1`);
  assert.equal(plain.status, 200);
});

test('access log: one JSON line per request, written promptly', async () => {
  const r = await fetch(`${strata.url}/items?select=id&limit=1`, { headers: { 'X-Request-Id': 'alog-check-1' } });
  assert.equal(r.status, 200);
  await until(() => strata.log.includes('alog-check-1'), 5000, 'the access-log line');
  const line = strata.log.split('\n').find((l) => l.includes('alog-check-1'));
  const j = JSON.parse(line);
  assert.equal(j.status, 200);
  assert.equal(j.method, 'GET');
  assert.equal(j.path, '/items');
  assert.equal(j.role, 'anon');
  assert.ok(j.duration_us >= 0 && typeof j.time === 'string');
});

test('malformed requests get 4xx and never take the server down', async () => {
  const cases = [
    ['bad percent escape', 'GET /items?id=eq.%zz HTTP/1.1\r\nHost: x\r\n\r\n', /^HTTP\/1\.1 400/],
    ['encoded NUL', 'GET /items?name=eq.a%00b HTTP/1.1\r\nHost: x\r\n\r\n', /^HTTP\/1\.1 400/],
    ['invalid UTF-8 in a value', 'GET /items?name=eq.%ff%fe HTTP/1.1\r\nHost: x\r\n\r\n', /^HTTP\/1\.1 400/],
    ['invalid UTF-8 in the path', 'GET /it%ffems HTTP/1.1\r\nHost: x\r\n\r\n', /^HTTP\/1\.1 4\d\d/],
    ['raw high bytes in the path', 'GET /it\xff\xfeems HTTP/1.1\r\nHost: x\r\n\r\n', /^HTTP\/1\.1 4\d\d/],
    ['garbage request line', 'BLAH BLAH\r\n\r\n', /^HTTP\/1\.1 400/],
    ['huge header', `GET /items HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20000)}\r\n\r\n`, /^HTTP\/1\.1 431/],
    ['huge body declared', 'POST /items HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n', /^HTTP\/1\.1 413/],
    ['bad chunked body', 'POST /items HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', /^HTTP\/1\.1 400/],
    ['deeply nested logic', `GET /items?or=(${'and('.repeat(200)}id.eq.1${')'.repeat(201)} HTTP/1.1\r\nHost: x\r\n\r\n`, /^HTTP\/1\.1 4\d\d/],
    ['unknown operator', 'GET /items?id=xx.1 HTTP/1.1\r\nHost: x\r\n\r\n', /^HTTP\/1\.1 400/],
    ['truncated body', 'POST /items HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc', null],
  ];
  for (const [name, raw, expect] of cases) {
    const out = await rawRequest(strata.port, Buffer.from(raw, 'latin1'), expect ? 3000 : 300);
    if (expect) {
      assert.match(out, expect, `${name}: got ${out.slice(0, 200)}`);
      const body = out.split('\r\n\r\n')[1] ?? '';
      if (body.length) assert.doesNotThrow(() => JSON.parse(body), `${name}: JSON error body, got ${body.slice(0, 200)}`);
    }
  }
  const r = await fetch(`${strata.url}/items?id=eq.1&select=name`);
  assert.equal(r.status, 200);
  assert.deepEqual(await r.json(), [{ name: 'apple' }]);
});

test('keep-alive and pipelined requests are answered in order', async () => {
  const one = (id) => `GET /items?id=eq.${id}&select=id HTTP/1.1\r\nHost: x\r\n\r\n`;
  const out = await rawRequest(strata.port, one(1) + one(2) + one(3) + 'GET /items?id=eq.4&select=id HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  const bodies = out.split(/HTTP\/1\.1 200 OK/).slice(1).map((p) => p.split('\r\n\r\n')[1].slice(0, 10));
  assert.deepEqual(bodies.map((b) => b.match(/"id":(\d)/)[1]), ['1', '2', '3', '4']);
});

test('NOTIFY pgrst reloads the schema cache', async () => {
  pg.psql("create table public.late (id int primary key); insert into public.late values (7); grant select on public.late to anon; notify pgrst, 'reload schema';");
  await until(async () => (await fetch(`${strata.url}/late`)).status === 200, 10000, 'the new table');
  assert.deepEqual(await (await fetch(`${strata.url}/late`)).json(), [{ id: 7 }]);
});

test('SIGUSR1 reloads the schema cache', async () => {
  pg.psql('create table public.later (id int primary key); grant select on public.later to anon;');
  assert.equal((await fetch(`${strata.url}/later`)).status, 404);
  strata.proc.kill('SIGUSR1');
  await until(async () => (await fetch(`${strata.url}/later`)).status === 200, 10000, 'the new table after SIGUSR1');
});

test('many concurrent requests all succeed', async () => {
  const rs = await Promise.all(Array.from({ length: 200 }, (_, i) => fetch(`${strata.url}/big?id=eq.${i + 1}&select=id`)));
  for (const [i, r] of rs.entries()) {
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), [{ id: i + 1 }]);
  }
});

test('PostgreSQL killed with -9: 503 JSON and /ready 503, then full recovery', async () => {
  pg.kill9();
  await until(async () => {
    const r = await fetch(`${strata.url}/items?id=eq.1`);
    if (r.status !== 503) return false;
    const body = await r.json();
    assert.match(body.code, /^PGRST00/);
    return true;
  }, 15000, '503 while the database is down');
  await until(async () => (await fetch(`${strata.admin}/ready`)).status === 503, 15000, '/ready 503');
  pg.start();
  await until(async () => (await fetch(`${strata.admin}/ready`)).status === 200, 20000, '/ready 200 again');
  await until(async () => (await fetch(`${strata.url}/items?id=eq.1&select=name`)).status === 200, 20000, 'service again');
  const r = await fetch(`${strata.url}/items?id=eq.2&select=name`);
  assert.deepEqual(await r.json(), [{ name: 'banana' }]);
});

test('bad configuration: one line naming the setting, exit status 2', async () => {
  const run = (env, args = []) => spawnSync(strataBin, ['serve', ...args], { env: { PATH: process.env.PATH, ...env }, encoding: 'utf8', timeout: 10000 });
  let r = run({ PGRST_SERVER_PORT: 'abc' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /server-port|PGRST_SERVER_PORT/);
  assert.equal(r.stderr.trim().split('\n').length, 1);
  r = run({ PGRST_DB_POOL: '0' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /db-pool|PGRST_DB_POOL/);
  const dir = tmpDir();
  const conf = path.join(dir, 'strata.conf');
  fs.writeFileSync(conf, 'db-uri = "postgres://x"\nno-such-setting = 1\n');
  r = run({}, [conf]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /no-such-setting/);
  r = run({}, [path.join(dir, 'missing.conf')]);
  assert.equal(r.status, 2);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a config file in PostgREST format works', async () => {
  const dir = tmpDir();
  const conf = path.join(dir, 'strata.conf');
  fs.writeFileSync(conf, `# PostgREST-style\ndb-uri = "${pg.conninfo()}"\ndb-anon-role = "anon"\ndb-schemas = "public, api"\n`);
  const s = await startStrata({ args: [conf], env: { STRATA_DB_ADMIN_URI: pg.conninfo('postgres'), STRATA_WORKERS: '1' } });
  try {
    const r = await fetch(`${s.url}/things`, { headers: { 'Accept-Profile': 'api' } });
    assert.equal(r.status, 200);
  } finally {
    const exit = await s.stop();
    fs.rmSync(dir, { recursive: true, force: true });
    assert.equal(exit.code, 0);
  }
});

test('a second signal while shutting down is noted, not fatal: in-flight requests finish, exit 0', async () => {
  pg.psql(`create or replace function public.nap(s float8) returns int language sql as $$ select 1 from pg_sleep(s) $$;
           grant execute on function public.nap(float8) to anon;`);
  const s = await startStrata({
    env: { PGRST_DB_URI: pg.conninfo(), STRATA_DB_ADMIN_URI: pg.conninfo('postgres'), PGRST_DB_ANON_ROLE: 'anon' },
  });
  try {
    const slow = fetch(`${s.url}/rpc/nap`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"s":1.5}' });
    await until(async () => /"path":"\/rpc\/nap"/.test(s.log) || (await fetch(`${s.admin}/metrics`).then((r) => r.text())).includes('strata_db_pool_in_use 1'),
      5000, 'the slow request to be in flight');
    s.proc.kill('SIGTERM');
    await until(() => /shutting down/.test(s.log), 5000, 'the shutdown to begin');
    s.proc.kill('SIGINT'); // Ctrl-C again: with the handlers gone this used to kill the process
    const r = await slow;
    assert.equal(r.status, 200);
    assert.equal(await r.text(), '1');
    const exit = await s.exitPromise;
    assert.equal(exit.code, 0, s.log.slice(-3000));
    assert.match(s.log, /already shutting down/);
    assert.match(s.log, /"msg":"stopped"/);
  } finally {
    if (!s.exited) await s.stop('SIGKILL');
  }
});
