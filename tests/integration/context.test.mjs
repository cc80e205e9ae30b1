// The transaction context and operations: request.cookies, legacy request.jwt.claim.*,
// search_path with db-extra-search-path, Prefer: timezone, per-role and per-function settings
// (statement_timeout, isolation level), Server-Timing, configurable CORS origins, Unix-socket
// listening, and NOTIFY pgrst 'reload config' / SIGUSR2.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { startPostgres, startStrata, root, tmpDir, until } from './lib/harness.mjs';

const SECRET = 'strata-context-secret-that-is-at-least-32-chars';
let pg, a, b, dir, sock, cfgFile;

function b64url(x) { return Buffer.from(x).toString('base64url'); }
function jwt(claims) {
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify({ exp: Math.floor(Date.now() / 1000) + 3600, ...claims }));
  const sig = crypto.createHmac('sha256', SECRET).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

// A request over the Unix socket (instance b listens only there).
function unixFetch(p, { method = 'GET', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: sock, path: p, method, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text }));
    });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

// current_setting(name) as the request's transaction sees it, via GET /rpc/ctx_get.
async function setting(name, headers = {}) {
  const r = await fetch(`${a.url}/rpc/ctx_get?name=${encodeURIComponent(name)}`, { headers });
  const text = await r.text();
  assert.equal(r.status, 200, text);
  return JSON.parse(text);
}

before(async () => {
  pg = await startPostgres({ fixture: path.join(root, 'tests/integration/fixtures/context.sql') });
  const base = {
    PGRST_DB_URI: pg.conninfo(), STRATA_DB_ADMIN_URI: pg.conninfo('postgres'), PGRST_DB_ANON_ROLE: 'anon',
    PGRST_JWT_SECRET: SECRET,
  };
  a = await startStrata({ env: { ...base, PGRST_DB_EXTRA_SEARCH_PATH: 'public, ctx_ext', PGRST_DB_USE_LEGACY_GUCS: 'true' } });

  // b: a config file (reloaded below), a Unix socket with a stale socket file left in its
  // place, Server-Timing, restricted CORS, no legacy claim settings, only the isolation
  // level hoisted from function settings.
  dir = tmpDir('strata-ctx-');
  sock = path.join(dir, 'api.sock');
  execFileSync('python3', ['-c', `import socket; s = socket.socket(socket.AF_UNIX); s.bind(${JSON.stringify(sock)})`]);
  assert.ok(fs.statSync(sock).isSocket(), 'a stale socket file is in place');
  cfgFile = path.join(dir, 'strata.conf');
  fs.writeFileSync(cfgFile, 'db-max-rows = 1\nserver-cors-allowed-origins = "http://good.example, http://also.example"\n');
  b = await startStrata({
    args: [cfgFile],
    env: {
      ...base, PGRST_SERVER_UNIX_SOCKET: sock, PGRST_SERVER_TIMING_ENABLED: 'true',
      PGRST_DB_HOISTED_TX_SETTINGS: 'default_transaction_isolation', /* db-use-legacy-gucs: default false */
    },
  });
});

after(async () => {
  const ea = a ? await a.stop() : null;
  const eb = b ? await b.stop() : null;
  if (pg) pg.cleanup();
  if (ea) assert.equal(ea.code, 0, `strata a exit: ${JSON.stringify(ea)}\n${a.log.slice(-4000)}`);
  if (eb) assert.equal(eb.code, 0, `strata b exit: ${JSON.stringify(eb)}\n${b.log.slice(-4000)}`);
  if (eb) assert.equal(fs.existsSync(sock), false, 'the socket file is removed at stop');
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test('request.cookies: the Cookie header as a JSON object, last value wins; not in request.headers', async () => {
  const cookies = JSON.parse(await setting('request.cookies', { Cookie: 'sid=abc; theme=dark;a=1; a=2' }));
  assert.deepEqual(cookies, { sid: 'abc', theme: 'dark', a: '2' });
  assert.deepEqual(JSON.parse(await setting('request.cookies')), {});
  const headers = JSON.parse(await setting('request.headers', { Cookie: 'sid=abc', 'X-Thing': 'y' }));
  assert.equal(headers['x-thing'], 'y');
  assert.equal(headers.cookie, undefined);
});

test('legacy request.jwt.claim.<name>: strings as text, other values as JSON', async () => {
  const auth = { Authorization: `Bearer ${jwt({ role: 'authenticated', sub: 'user-1', n: 5, obj: { a: [1, 2] }, 'odd-name': 1 })}` };
  assert.equal(await setting('request.jwt.claim.sub', auth), 'user-1');
  assert.equal(await setting('request.jwt.claim.role', auth), 'authenticated');
  assert.equal(await setting('request.jwt.claim.n', auth), '5');
  assert.deepEqual(JSON.parse(await setting('request.jwt.claim.obj', auth)), { a: [1, 2] });
  assert.equal(JSON.parse(await setting('request.jwt.claims', auth)).sub, 'user-1');
  assert.equal(await setting('request.jwt.claim.role'), 'anon', 'anonymous requests get the role claim');
  // db-use-legacy-gucs = false
  const r = await unixFetch('/rpc/ctx_get?name=request.jwt.claim.role');
  assert.equal(r.status, 200, r.text);
  assert.equal(JSON.parse(r.text), null);
});

test('search_path: the request schema, then db-extra-search-path', async () => {
  assert.equal(await setting('search_path'), '"public", "public", "ctx_ext"');
  const r = await fetch(`${a.url}/rpc/ctx_uses_path`);
  assert.equal(r.status, 200);
  assert.equal(await r.json(), 'from ctx_ext');
  // b keeps the default extra path, "public" only: ctx_helper() is not found.
  const rb = await unixFetch('/rpc/ctx_get?name=search_path');
  assert.equal(JSON.parse(rb.text), '"public", "public"');
  assert.equal((await unixFetch('/rpc/ctx_uses_path')).status, 404);
});

test('Prefer: timezone= applies a known zone and says so; unknown zones are ignored, or PGRST122 when strict', async () => {
  let r = await fetch(`${a.url}/ctx_events?id=eq.1`, { headers: { Prefer: 'timezone=America/Los_Angeles' } });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('preference-applied'), 'timezone=America/Los_Angeles');
  assert.deepEqual(await r.json(), [{ id: 1, at: '2019-12-31T16:00:00-08:00' }]);

  r = await fetch(`${a.url}/ctx_events?id=eq.1`, { headers: { Prefer: 'timezone=Asia/Tokyo, count=exact' } });
  assert.equal(r.headers.get('preference-applied'), 'count=exact, timezone=Asia/Tokyo');
  assert.deepEqual(await r.json(), [{ id: 1, at: '2020-01-01T09:00:00+09:00' }]);

  const plain = await (await fetch(`${a.url}/ctx_events?id=eq.1`)).json();
  r = await fetch(`${a.url}/ctx_events?id=eq.1`, { headers: { Prefer: 'timezone=Mars/Olympus_Mons' } });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('preference-applied'), null);
  assert.deepEqual(await r.json(), plain);

  r = await fetch(`${a.url}/ctx_events?id=eq.1`, { headers: { Prefer: 'handling=strict, timezone=Mars/Olympus_Mons' } });
  assert.equal(r.status, 400);
  const e = await r.json();
  assert.equal(e.code, 'PGRST122');
  assert.match(e.details, /timezone=Mars\/Olympus_Mons/);

  // RPC and writes too; the write's own Preference-Applied items come first.
  r = await fetch(`${a.url}/rpc/ctx_tz_fn`, { headers: { Prefer: 'timezone=Europe/Berlin' } });
  assert.equal(await r.json(), '2020-01-01 01:00 CET');
  r = await fetch(`${a.url}/ctx_notes`, {
    method: 'POST', headers: { 'Content-Type': 'application/json', Prefer: 'return=representation, timezone=Asia/Kolkata' },
    body: JSON.stringify({ id: 1, at: '2020-01-01T00:00:00Z' }),
  });
  assert.equal(r.status, 201);
  assert.equal(r.headers.get('preference-applied'), 'return=representation, timezone=Asia/Kolkata');
  assert.deepEqual(await r.json(), [{ id: 1, at: '2020-01-01T05:30:00+05:30' }]);
});

test('role settings (ALTER ROLE ... SET) apply to requests as that role', async () => {
  const limited = { Authorization: `Bearer ${jwt({ role: 'ctx_limited' })}` };
  assert.equal(await setting('statement_timeout', limited), '250ms');
  assert.equal(await setting('work_mem', limited), '3MB');
  assert.equal(await setting('lock_timeout', limited), '1500ms');
  assert.equal(await setting('statement_timeout'), '0', 'other roles keep the default');
  const serial = { Authorization: `Bearer ${jwt({ role: 'ctx_serial' })}` };
  assert.equal(await setting('transaction_isolation', serial), 'serializable');
  assert.equal(await setting('transaction_isolation'), 'read committed');
  // The role's timeout cancels a slow statement.
  const post = (h) => fetch(`${a.url}/rpc/ctx_sleep`, {
    method: 'POST', headers: { ...h, 'Content-Type': 'application/json' }, body: JSON.stringify({ s: 0.6 }),
  });
  let r = await post(limited);
  assert.equal(r.status, 500);
  assert.equal((await r.json()).code, '57014');
  r = await post({});
  assert.equal(r.status, 200);
  // A changed role setting is picked up on the schema reload.
  pg.psql("alter role ctx_limited set statement_timeout = '300ms'; notify pgrst, 'reload schema'");
  await until(async () => (await setting('statement_timeout', limited)) === '300ms', 10000, 'the new role setting');
});

test('function settings (CREATE FUNCTION ... SET) are hoisted to the transaction', async () => {
  let r = await fetch(`${a.url}/rpc/ctx_iso`);
  assert.equal(await r.json(), 'repeatable read');
  // statement_timeout on the function holds for the whole statement: the call is cancelled.
  const t0 = Date.now();
  r = await fetch(`${a.url}/rpc/ctx_slow`, { method: 'POST' });
  const e = await r.json();
  assert.equal(r.status, 500, JSON.stringify(e));
  assert.equal(e.code, '57014');
  assert.ok(Date.now() - t0 < 900, 'cancelled before the function finished');
  // b hoists only default_transaction_isolation: the same call runs to the end there.
  r = await unixFetch('/rpc/ctx_slow', { method: 'POST' });
  assert.equal(r.status, 200, r.text);
  assert.equal(JSON.parse((await unixFetch('/rpc/ctx_iso')).text), 'repeatable read');
});

test('Server-Timing when server-timing-enabled (successful responses), absent otherwise', async () => {
  const r = await unixFetch('/ctx_events?id=eq.1');
  assert.equal(r.status, 200);
  assert.match(r.headers['server-timing'],
    /^jwt;dur=\d+\.\d, parse;dur=\d+\.\d, plan;dur=\d+\.\d, transaction;dur=\d+\.\d, response;dur=\d+\.\d$/);
  const w = await unixFetch('/rpc/ctx_get?name=x', { headers: { Authorization: `Bearer ${jwt({ role: 'authenticated' })}` } });
  assert.match(w.headers['server-timing'] ?? '', /^jwt;dur=/);
  assert.equal((await unixFetch('/nope')).headers['server-timing'], undefined);
  assert.equal((await fetch(`${a.url}/ctx_events`)).headers.get('server-timing'), null);
});

test('server-cors-allowed-origins: listed origins get CORS headers with credentials, others none', async () => {
  let r = await unixFetch('/ctx_events', { headers: { Origin: 'http://good.example' } });
  assert.equal(r.headers['access-control-allow-origin'], 'http://good.example');
  assert.equal(r.headers['access-control-allow-credentials'], 'true');
  assert.match(r.headers.vary, /Origin/);
  r = await unixFetch('/ctx_events', { headers: { Origin: 'http://evil.example' } });
  assert.equal(r.status, 200);
  assert.equal(r.headers['access-control-allow-origin'], undefined);
  assert.match(r.headers.vary, /Origin/);
  assert.equal((await unixFetch('/ctx_events')).headers['access-control-allow-origin'], undefined);
  const pre = { 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type' };
  r = await unixFetch('/ctx_events', { method: 'OPTIONS', headers: { Origin: 'http://also.example', ...pre } });
  assert.equal(r.status, 200);
  assert.equal(r.headers['access-control-allow-origin'], 'http://also.example');
  assert.match(r.headers['access-control-allow-methods'], /POST/);
  r = await unixFetch('/ctx_events', { method: 'OPTIONS', headers: { Origin: 'http://evil.example', ...pre } });
  assert.equal(r.headers['access-control-allow-origin'], undefined);
  assert.equal(r.headers['access-control-allow-methods'], undefined);
  // Unset (instance a): permissive, as before.
  const ra = await fetch(`${a.url}/ctx_events`, { headers: { Origin: 'http://evil.example' } });
  assert.equal(ra.headers.get('access-control-allow-origin'), 'http://evil.example');
  assert.equal(ra.headers.get('access-control-allow-credentials'), null);
});

test('server-unix-socket: serves there with mode 660 instead of TCP', async () => {
  assert.equal(fs.statSync(sock).mode & 0o777, 0o660);
  const r = await unixFetch('/ctx_events?id=eq.1');
  assert.equal(r.status, 200);
  assert.equal(JSON.parse(r.text)[0].id, 1);
  await assert.rejects(fetch(`${b.url}/ctx_events`), 'nothing on the TCP port');
  await until(() => /listening on unix:/.test(b.log) && /removed the stale socket/.test(b.log), 5000, 'the socket lines in the log');
});

test('NOTIFY pgrst, \'reload config\' and SIGUSR2 re-read the file and environment', async () => {
  const rows = async () => JSON.parse((await unixFetch('/ctx_events?order=id')).text).length;
  assert.equal(await rows(), 1);
  fs.writeFileSync(cfgFile, 'db-max-rows = 2\nserver-cors-allowed-origins = "http://new.example"\n');
  pg.psql("notify pgrst, 'reload config'");
  await until(async () => (await rows()) === 2, 10000, 'db-max-rows = 2 after NOTIFY');
  let r = await unixFetch('/ctx_events', { headers: { Origin: 'http://new.example' } });
  assert.equal(r.headers['access-control-allow-origin'], 'http://new.example');
  r = await unixFetch('/ctx_events', { headers: { Origin: 'http://good.example' } });
  assert.equal(r.headers['access-control-allow-origin'], undefined);
  // Env settings still apply on top of the file.
  assert.match(r.headers['server-timing'], /jwt;dur=/);

  fs.writeFileSync(cfgFile, 'db-max-rows = 3\n');
  b.proc.kill('SIGUSR2');
  await until(async () => (await rows()) === 3, 10000, 'db-max-rows = 3 after SIGUSR2');

  // A broken file is refused and the running configuration kept.
  fs.writeFileSync(cfgFile, 'db-max-rows = "many"\n');
  pg.psql("notify pgrst, 'reload config'");
  await until(async () => /config reload failed/.test(b.log), 10000, 'the reload error in the log');
  assert.equal(await rows(), 3);
  assert.equal((await fetch(`${b.admin}/ready`)).status, 200);
});
