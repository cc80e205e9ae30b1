// Host names in db-uri are resolved off the worker loops (src/db/resolve.c): PostgreSQL reached
// over TCP by the name `localhost` (from /etc/hosts, no DNS server needed), host lists with a
// name that does not resolve, target_session_attrs, and a db-uri whose only name does not
// resolve: /ready 503, PostgREST's db-down error, the server stays up and stops cleanly; and a
// DNS that takes 1.5 s per lookup (an LD_PRELOAD shim) never stalls the loops.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startPostgres, startStrata, root, tmpDir, until } from './lib/harness.mjs';

const BAD = 'strata-no-such-host.invalid'; // .invalid never resolves (RFC 6761)
let pg;

before(async () => {
  pg = await startPostgres({ fixture: path.join(root, 'tests/integration/fixtures/schema.sql'), tcp: true });
});

after(() => { if (pg) pg.cleanup(); });

async function withStrata(dbUri, fn, { waitReady = true, env = {} } = {}) {
  const strata = await startStrata({
    waitReady,
    env: { PGRST_DB_URI: dbUri, STRATA_DB_ADMIN_URI: pg.conninfo('postgres'), PGRST_DB_ANON_ROLE: 'anon', ...env },
  });
  let exit;
  try {
    await fn(strata);
  } finally {
    exit = await strata.stop('SIGINT');
  }
  assert.equal(exit.code, 0, `strata exit: ${JSON.stringify(exit)}\n${strata.log.slice(-4000)}`);
  return strata;
}

async function getBanana(strata) {
  const r = await fetch(`${strata.url}/items?id=eq.2&select=name`);
  assert.equal(r.status, 200);
  assert.deepEqual(await r.json(), [{ name: 'banana' }]);
}

test('URI naming localhost over TCP: 200', async () => {
  const s = await withStrata(`postgres://authenticator@localhost:${pg.port}/postgres`, async (strata) => {
    await getBanana(strata);
    // every connection of both workers' pools is up (each resolved and connected)
    await until(async () => {
      const r = await fetch(`${strata.admin}/metrics`);
      return r.status === 200;
    }, 5000, '/metrics');
  });
  assert.doesNotMatch(s.log, /database connection failed/);
});

test('key=value host list: a name that does not resolve is skipped, localhost serves', async () => {
  await withStrata(`host=${BAD},localhost port=${pg.port},${pg.port} dbname=postgres user=authenticator`, getBanana);
});

test('URI host list with target_session_attrs=read-write', async () => {
  await withStrata(
    `postgresql://authenticator@${BAD}:${pg.port},localhost:${pg.port}/postgres?target_session_attrs=read-write&application_name=strata%20dns`,
    async (strata) => {
      await getBanana(strata);
      const n = pg.psql("select count(*) from pg_stat_activity where application_name = 'strata dns' and client_addr is not null");
      assert.ok(Number(n.trim()) >= 1, `pool connections over TCP: ${n}`);
    });
});

test('a name that does not resolve: /ready 503, db-down errors, /live 200, clean stop', async () => {
  const s = await withStrata(`host=${BAD} dbname=postgres user=authenticator`, async (strata) => {
    await until(async () => (await fetch(`${strata.admin}/live`)).status === 200, 15000, '/live 200');
    await until(() => /database connection failed: could not translate host name/.test(strata.log), 15000,
      'the pool to report the failed lookup');
    assert.equal((await fetch(`${strata.admin}/ready`)).status, 503);
    for (let i = 0; i < 5; i++) {
      const r = await fetch(`${strata.url}/items?id=eq.1`);
      assert.equal(r.status, 503);
      const body = await r.json();
      assert.match(body.code, /^PGRST00[0-2]$/);
      assert.ok('message' in body && 'details' in body && 'hint' in body);
    }
    assert.equal((await fetch(`${strata.admin}/live`)).status, 200);
    assert.equal(strata.exited, null);
  }, { waitReady: false });
  // one line per connection per failure streak, not one per retry
  const lines = s.log.split('\n').filter((l) => l.includes('database connection failed: could not translate host name') && l.includes(BAD));
  assert.ok(lines.length >= 1, s.log);
  assert.ok(lines.length <= 20, `${lines.length} failure lines`);
});

// The shim, built once; null when there is no C compiler.
let shim;
function buildShim() {
  if (shim !== undefined) return shim;
  const dir = tmpDir();
  shim = { dir, so: path.join(dir, 'slow_getaddrinfo.so'), delay: path.join(dir, 'delay') };
  try {
    execFileSync('cc', ['-shared', '-fPIC', '-O1', '-o', shim.so, path.join(root, 'tests/integration/fixtures/slow_getaddrinfo.c'), '-ldl'],
      { stdio: 'pipe' });
  } catch {
    shim = null;
  }
  return shim;
}
after(() => { if (shim) fs.rmSync(shim.dir, { recursive: true, force: true }); });

function shimEnv(s) {
  return {
    LD_PRELOAD: s.so, STRATA_TEST_DNS_DELAY_FILE: s.delay,
    ASAN_OPTIONS: `${process.env.ASAN_OPTIONS || 'detect_leaks=1:abort_on_error=0'}:verify_asan_link_order=0`,
  };
}

test('a slow DNS never stalls the loops: reconnects resolve on the thread pool', async (t) => {
  const s = buildShim();
  if (!s) { t.skip('no C compiler for the shim'); return; }
  fs.writeFileSync(s.delay, '0');
  await withStrata(`host=strata-slow.test port=${pg.port} dbname=postgres user=authenticator application_name=strata-slow`,
    async (strata) => {
      await getBanana(strata);
      // From now on every lookup takes 1.5 s; drop the pools' connections so they reconnect.
      fs.writeFileSync(s.delay, '1500');
      pg.psql("select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'strata-slow'");
      // While the lookups sleep on the thread pool, worker 0's loop (admin) and the API loops
      // answer at once (an unknown table is answered from the schema cache, without the
      // database). libpq's own lookup on the loop (PQconnectStart with a host name) would
      // block each loop 1.5 s per connection.
      const t0 = Date.now();
      let slowest = 0;
      let probes = 0;
      while (Date.now() - t0 < 1500) {
        const a = Date.now();
        const [live, api, api2] = await Promise.all([fetch(`${strata.admin}/live`),
          fetch(`${strata.url}/no_such_table`), fetch(`${strata.url}/no_such_table`)]);
        assert.equal(live.status, 200);
        assert.equal(api.status, 404);
        assert.equal(api2.status, 404);
        await api.arrayBuffer();
        await api2.arrayBuffer();
        slowest = Math.max(slowest, Date.now() - a);
        probes++;
      }
      assert.ok(probes >= 3, `only ${probes} probes, slowest ${slowest} ms\n${strata.log.slice(-3000)}`);
      assert.ok(slowest < 700, `a loop stalled: slowest answer ${slowest} ms`);
      // ...and once the names resolve, the pools connect again and serve.
      fs.writeFileSync(s.delay, '0');
      await until(async () => (await fetch(`${strata.url}/items?id=eq.2&select=name`)).status === 200, 20000, 'service again');
      await getBanana(strata);
    }, { env: shimEnv(s) });
});

test('shutdown while a slow lookup is in flight waits for it and exits cleanly', async (t) => {
  const s = buildShim();
  if (!s) { t.skip('no C compiler for the shim'); return; }
  fs.writeFileSync(s.delay, '0');
  await withStrata(`host=strata-slow.test port=${pg.port} dbname=postgres user=authenticator application_name=strata-slow`,
    async (strata) => {
      await getBanana(strata);
      fs.writeFileSync(s.delay, '800');
      pg.psql("select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'strata-slow'");
      await until(async () => (await fetch(`${strata.admin}/ready`)).status === 503, 5000, '/ready 503');
    }, { env: shimEnv(s) });
});
