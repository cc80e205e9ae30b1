#!/usr/bin/env node
// Soak run: real PostgreSQL + strata (auth service on) under ~16 concurrent clients sending a
// weighted mix of reads, writes, JWTs, auth flows, bad input, raw malformed HTTP, aborted
// requests and connection churn for SOAK_SECONDS, with a schema reload, a config reload
// (SIGUSR2) and a kill of every authenticator backend along the way. Fails (exit 1, with the
// reasons) unless strata stays up, answers every request with the status class it expects (503
// only in the few seconds after the backend kill), keeps RSS flat after warm-up, gives back its
// fds, reconnects its pool, keeps the soak table consistent, and exits 0 on SIGTERM.
//   SOAK_SECONDS (default 600), SOAK_CLIENTS (16), STRATA_BIN (build/strata).
import http from 'node:http';
import net from 'node:net';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { startPostgres, startStrata, sleep, root, strataBin } from '../integration/lib/harness.mjs';

const SECONDS = Number(process.env.SOAK_SECONDS || 600);
const CLIENTS = Number(process.env.SOAK_CLIENTS || 16);
const POOL = 10;
const SECRET = 'strata-soak-secret-that-is-at-least-32-chars';
const MAX_USERS = SECONDS >= 300 ? 300 : 120;
const WINDOW_503_MS = 8000; // 503 allowed this long after a backend kill
const TIMEOUT_MS = 10000; // every request must be answered within this
const MAX_BODY = 64 * 1024;

// ASan builds: a small quarantine keeps RSS meaningful; the bound is looser (the sanitizer's
// allocator caches and shadow memory grow in steps), LeakSanitizer checks leaks at exit.
const asan = fs.readFileSync(strataBin).includes('AddressSanitizer');
if (asan && !process.env.ASAN_OPTIONS) {
  process.env.ASAN_OPTIONS = 'detect_leaks=1:abort_on_error=0:quarantine_size_mb=8:thread_local_quarantine_size_kb=64';
}

const failures = [];
const fail = (msg) => { if (failures.length < 1000) failures.push(msg); };
const stats = new Map(); // kind -> {class -> n}
const allowed503 = []; // [kind, second-of-run]
let t0 = 0;
const killTimes = [];
const events = [];

const b64url = (s) => Buffer.from(s).toString('base64url');
function sign(claims, { secret = SECRET, alg = 'HS256' } = {}) {
  const h = b64url(JSON.stringify({ alg, typ: 'JWT' }));
  const p = b64url(JSON.stringify(claims));
  if (alg === 'none') return `${h}.${p}.`;
  return `${h}.${p}.${crypto.createHmac('sha256', secret).update(`${h}.${p}`).digest('base64url')}`;
}
const now = () => Math.floor(Date.now() / 1000);
const rnd = (n) => Math.floor(Math.random() * n);
const pick = (a) => a[rnd(a.length)];

const SOAK_FIXTURE = `
create table public.soak (id bigint primary key, grp int not null, val text, n int not null default 0);
create table public.soak_up (k int primary key, v int not null);
grant select, insert, update, delete on public.soak, public.soak_up to anon, authenticated;
grant select on public.items, public.novels, public.publishers, public.chapters to authenticated;
grant usage on schema public to authenticated;
`;

let strata, pg;
const keepAgent = new http.Agent({ keepAlive: true, maxSockets: 64 });

// One HTTP request; resolves {status, headers, text} or {err}.
function request({ method = 'GET', path: p, headers = {}, body, churn = false }) {
  return new Promise((resolve) => {
    const h = { ...headers };
    let data;
    if (body !== undefined) {
      data = Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
      h['Content-Length'] = String(data.length);
      if (!h['Content-Type']) h['Content-Type'] = 'application/json';
    }
    if (churn) h.Connection = 'close';
    let done = false;
    const finish = (r) => { if (!done) { done = true; clearTimeout(timer); resolve(r); } };
    const req = http.request({ host: '127.0.0.1', port: strata.port, method, path: p, headers: h, agent: churn ? false : keepAgent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => finish({ status: res.statusCode, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', (e) => finish({ err: e.message }));
    });
    const timer = setTimeout(() => { req.destroy(); finish({ err: `no answer within ${TIMEOUT_MS} ms` }); }, TIMEOUT_MS);
    req.on('error', (e) => finish({ err: e.message }));
    if (data) req.write(data);
    req.end();
  });
}

const classOf = (s) => `${Math.floor(s / 100)}xx`;
function count(kind, cls) {
  let m = stats.get(kind);
  if (!m) stats.set(kind, (m = {}));
  m[cls] = (m[cls] ?? 0) + 1;
}
function in503Window(t) { return killTimes.some((k) => t >= k && t <= k + WINDOW_503_MS); }

// Records res under kind and checks it against expect (a status, a list of them, or '2xx'/'4xx').
// Returns 'ok', 'allowed503' (outcome unknown), or 'bad'.
function check(kind, res, expect, what) {
  const t = Date.now();
  if (res.err) {
    count(kind, 'error');
    if (in503Window(t)) { allowed503.push([kind, ((t - t0) / 1000).toFixed(1) + ' (conn error)']); return 'allowed503'; }
    fail(`${kind}: ${what}: ${res.err}`);
    return 'bad';
  }
  count(kind, classOf(res.status));
  if (res.status === 503 && in503Window(t)) { allowed503.push([kind, ((t - t0) / 1000).toFixed(1)]); return 'allowed503'; }
  const ok = typeof expect === 'number' ? res.status === expect
    : Array.isArray(expect) ? expect.includes(res.status)
    : classOf(res.status) === expect;
  if (!ok || res.status >= 500) {
    fail(`${kind}: ${what}: got ${res.status} (want ${expect}): ${String(res.text).slice(0, 300)}`);
    return 'bad';
  }
  const ct = String(res.headers['content-type'] ?? '');
  if (res.status >= 400 && !ct.includes('json')) {
    fail(`${kind}: ${what}: ${res.status} answered as '${ct}', not JSON: ${String(res.text).slice(0, 200)}`);
    return 'bad';
  }
  if (ct.includes('json') && res.text.length) {
    try { res.json = JSON.parse(res.text); } catch { fail(`${kind}: ${what}: body is not JSON: ${res.text.slice(0, 200)}`); return 'bad'; }
    // errors are PostgREST-shaped {code,message,details,hint} (GoTrue's {code,error_code,msg} under /auth)
    const j = res.json;
    if (res.status >= 400 && (typeof j !== 'object' || j === null || !('code' in j) || !('message' in j || 'msg' in j))) {
      fail(`${kind}: ${what}: ${res.status} without an error object: ${res.text.slice(0, 200)}`);
      return 'bad';
    }
  }
  return 'ok';
}

async function call(kind, opts, expect, churn) {
  const res = await request({ ...opts, churn });
  return [check(kind, res, expect, `${opts.method ?? 'GET'} ${opts.path}`), res];
}

// ---------- reads ----------
const READS = [
  ['/items?select=id,name&price=gt.1&order=price.desc', 200],
  ['/items?select=*&active=is.true&limit=2&offset=1', 200],
  ['/items?name=like.*an*&order=id', 200],
  ['/items?or=(qty.eq.0,price.is.null)&select=id', 200],
  ['/items?tags=cs.{fruit}&select=name,meta->>color', 200],
  ['/big?select=id,val&val=lt.10&order=id.desc&limit=50', 200],
  ['/big?select=val,id.count()&val=lt.5', 200],
  ['/chapters?select=novel_id,words.sum(),words.avg()', 200],
  ['/novels?select=title,publishers(name),chapters(num,words)&order=id', 200],
  ['/novels?select=title,...publishers(publisher:name)', 200],
  ['/novels?select=title,genres(name)&genres.name=eq.scifi', 200],
  ['/employees?select=name,manager:manager_id(name),reports:employees!manager_id(name)', 200],
  ['/chapters?select=num,novels(title)&order=id', 200],
  ['/big?select=id&limit=10', 206, { Prefer: 'count=exact' }],
  ['/big?select=id&val=eq.7', 200, { Prefer: 'count=exact' }],
  ['/big?select=id&limit=10&offset=100', 206, { Prefer: 'count=exact', Range: '100-109' }],
  ['/items?select=id,name,price', 200, { Accept: 'text/csv' }],
  ['/items?id=eq.1', 200, { Accept: 'application/vnd.pgrst.object+json' }],
  ['/items?id=gt.1', 406, { Accept: 'application/vnd.pgrst.object+json' }],
  ['/rpc/add?a=1&b=2', 200],
  ['/rpc/items_cheaper_than?max_price=1&select=id,name', 200],
  ['/rpc/names', 200],
  ['/docs?tsv=fts.fox', 200],
  ['/rest/v1/items?select=id&limit=1', 200],
  ['/novel_list?order=title', 200],
];
async function readOp(churn) {
  const r = Math.random();
  if (r < 0.15) {
    const [s] = await call('rpc-post', { method: 'POST', path: '/rpc/echo_body', body: { a: rnd(1000), b: 'x' } }, 200, churn);
    return s;
  }
  if (r < 0.2) return (await call('rpc-post', { method: 'POST', path: '/rpc/add', body: { a: rnd(9), b: 1 } }, 200, churn))[0];
  const [p, st, headers] = pick(READS);
  const [s, res] = await call('read', { path: p, headers }, st, churn);
  if (s === 'ok' && p.includes('text/csv') && res.text.startsWith('[')) fail(`read: CSV answer looks like JSON`);
  return s;
}

// ---------- writes on public.soak (each client its own id range) ----------
const writerState = new Map();
async function writeOp(cid, churn) {
  let st = writerState.get(cid);
  if (!st) writerState.set(cid, (st = { next: 1, live: new Set(), uncertain: new Set() }));
  const newId = () => cid * 10000000 + st.next++;
  const liveArr = () => [...st.live];
  const r = Math.random();
  const tooMany = st.live.size > 150;
  if (!tooMany && r < 0.3) {
    const id = newId();
    const [s] = await call('write-insert', { method: 'POST', path: '/soak', body: { id, grp: id % 7, val: `v${id}` }, headers: { Prefer: 'return=minimal' } }, 201, churn);
    if (s === 'ok') st.live.add(id); else st.uncertain.add(id);
    return s;
  }
  if (!tooMany && r < 0.45) {
    const rows = Array.from({ length: 2 + rnd(6) }, () => { const id = newId(); return { id, grp: id % 7, val: `b${id}` }; });
    const [s, res] = await call('write-bulk', { method: 'POST', path: '/soak', body: rows, headers: { Prefer: 'return=representation' } }, 201, churn);
    if (s === 'ok') {
      if (!Array.isArray(res.json) || res.json.length !== rows.length) fail(`write-bulk: representation has ${res.json?.length} rows, sent ${rows.length}`);
      for (const x of rows) st.live.add(x.id);
    } else for (const x of rows) st.uncertain.add(x.id);
    return s;
  }
  if (r < 0.6 && st.live.size) {
    const id = pick(liveArr());
    const rep = Math.random() < 0.5;
    const [s, res] = await call('write-patch', { method: 'PATCH', path: `/soak?id=eq.${id}`, body: { n: rnd(100), val: 'p' }, headers: { Prefer: rep ? 'return=representation' : 'return=minimal' } }, rep ? 200 : 204, churn);
    if (s === 'ok' && rep && (!Array.isArray(res.json) || res.json.length !== 1)) fail(`write-patch: expected 1 row back for id ${id}: ${res.text}`);
    return s;
  }
  if (r < 0.85 && st.live.size) {
    const ids = liveArr().slice(0, 1 + rnd(4));
    const [s, res] = await call('write-delete', { method: 'DELETE', path: `/soak?id=in.(${ids.join(',')})`, headers: { Prefer: 'return=representation' } }, 200, churn);
    if (s === 'ok') {
      const got = new Set((res.json ?? []).map((x) => Number(x.id)));
      for (const id of ids) {
        if (!got.has(id)) fail(`write-delete: id ${id} was live but not deleted`);
        st.live.delete(id);
      }
    } else for (const id of ids) { st.live.delete(id); st.uncertain.add(id); }
    return s;
  }
  // upsert on a separate table (keys 0..49 shared by all clients, no effect on soak's count)
  const rows = Array.from({ length: 1 + rnd(3) }, (_, i) => ({ k: (rnd(50) + i * 50) % 150, v: rnd(1000) }));
  const uniq = [...new Map(rows.map((x) => [x.k, x])).values()];
  const merge = Math.random() < 0.7;
  return (await call('write-upsert', { method: 'POST', path: '/soak_up', body: uniq, headers: { Prefer: `resolution=${merge ? 'merge' : 'ignore'}-duplicates,return=representation` } }, [200, 201], churn))[0];
}

// ---------- JWTs ----------
async function jwtOp(churn) {
  const r = rnd(7);
  const p = '/items?select=id,name&limit=3';
  if (r === 0) return (await call('jwt-valid', { path: p, headers: { Authorization: `Bearer ${sign({ role: 'anon', exp: now() + 600 })}` } }, 200, churn))[0];
  if (r === 1) {
    const tok = sign({ role: 'authenticated', sub: crypto.randomUUID(), email: `u${rnd(50)}@soak.test`, exp: now() + 600, aud: 'authenticated', app_metadata: { tier: rnd(3) } });
    return (await call('jwt-valid', { path: p, headers: { Authorization: `Bearer ${tok}` } }, 200, churn))[0];
  }
  if (r === 2) return (await call('jwt-valid', { path: '/rpc/add?a=2', headers: { Authorization: `Bearer ${sign({ role: 'anon', iat: now() })}` } }, 200, churn))[0];
  if (r === 3) return (await call('jwt-expired', { path: p, headers: { Authorization: `Bearer ${sign({ role: 'anon', exp: now() - 120 })}` } }, 401, churn))[0];
  if (r === 4) return (await call('jwt-badsig', { path: p, headers: { Authorization: `Bearer ${sign({ role: 'anon', exp: now() + 600 }, { secret: 'wrong-secret-wrong-secret-wrong-secret!!' })}` } }, 401, churn))[0];
  if (r === 5) return (await call('jwt-alg-none', { path: p, headers: { Authorization: `Bearer ${sign({ role: 'anon' }, { alg: 'none' })}` } }, 401, churn))[0];
  return (await call('jwt-garbage', { path: p, headers: { Authorization: 'Bearer not.a.jwt' } }, 401, churn))[0];
}

// ---------- auth service ----------
const users = [];
let signups = 0;
async function authOp(churn) {
  if (signups < MAX_USERS && (users.length < 4 || Math.random() < 0.3)) {
    const email = `soak-${process.pid}-${++signups}@example.com`;
    const [s] = await call('auth-signup', { method: 'POST', path: '/auth/v1/signup', body: { email, password: 'soak-password' } }, 200, churn);
    if (s === 'ok') users.push(email);
    return s;
  }
  if (!users.length) return 'ok';
  const email = pick(users);
  if (Math.random() < 0.1) {
    return (await call('auth-badpw', { method: 'POST', path: '/auth/v1/token?grant_type=password', body: { email, password: 'wrong-password' } }, 400, churn))[0];
  }
  const [s1, r1] = await call('auth-token', { method: 'POST', path: '/auth/v1/token?grant_type=password', body: { email, password: 'soak-password' } }, 200, churn);
  if (s1 !== 'ok') return s1;
  const [s2] = await call('auth-user', { path: '/auth/v1/user', headers: { Authorization: `Bearer ${r1.json.access_token}` } }, 200, churn);
  if (s2 !== 'ok') return s2;
  const [s3, r3] = await call('auth-refresh', { method: 'POST', path: '/auth/v1/token?grant_type=refresh_token', body: { refresh_token: r1.json.refresh_token } }, 200, churn);
  if (s3 !== 'ok') return s3;
  const tok = Math.random() < 0.5 ? r3.json.access_token : r1.json.access_token;
  return (await call('auth-logout', { method: 'POST', path: '/auth/v1/logout?scope=local', headers: { Authorization: `Bearer ${tok}` } }, 204, churn))[0];
}

// ---------- bad input ----------
const BAD = [
  { path: '/items?id=zz.1' },
  { path: '/items?select=(' },
  { path: '/items?order=name.sideways' },
  { path: '/items?limit=abc' },
  { path: '/items?id=in.(1,2' },
  { path: '/items?select=nope' },
  { path: '/items?nope=eq.1' },
  { path: '/no_such_table', expect: 404 },
  { path: '/rpc/no_such_fn', expect: 404 },
  { path: '/items?and=(id.eq.1' },
  { path: '/%ZZ?x=%' },
  { path: '/secrets' },
  { path: '/items?select=id,price.sum()&price=gt.' },
  { method: 'POST', path: '/soak', body: '{"id": 1, "grp":', expect: 400 },
  { method: 'POST', path: '/soak', body: '[{"id": "x", ', expect: 400 },
  { method: 'POST', path: '/soak', body: { nope: 1 }, expect: 400 },
  { method: 'PATCH', path: '/soak?id=eq.1', body: 'not json', expect: 400 },
  { method: 'POST', path: '/rpc/add', body: '{"a":', expect: 400 },
  { method: 'POST', path: '/auth/v1/signup', body: '{"email":', expect: 400 },
  { method: 'POST', path: '/auth/v1/token?grant_type=nope', body: {} },
  { path: '/auth/v1/user', headers: { Authorization: 'Bearer x.y.z' } },
  { path: '/items', headers: { 'X-Big': 'x'.repeat(20 * 1024) }, expect: 431 },
  { method: 'POST', path: '/soak', body: Buffer.alloc(MAX_BODY + 1000, 0x20), expect: 413 },
  { path: '/items', headers: { Accept: 'application/x-nope' }, expect: 406 },
  { path: '/items', headers: { Range: 'items=abc' }, expect: '2xx' },
];

// Raw bytes on a fresh socket; resolves the response text (maybe '') once the server closes,
// or after `ms` (then with timedOut).
function raw(data, { ms = TIMEOUT_MS, abortAfterWrite = false, closeAfter = 0 } = {}) {
  return new Promise((resolve) => {
    const sock = net.connect(strata.port, '127.0.0.1');
    let out = '';
    let done = false;
    const finish = (extra = {}) => { if (!done) { done = true; clearTimeout(timer); sock.destroy(); resolve({ out, ...extra }); } };
    const timer = setTimeout(() => finish({ timedOut: true }), ms);
    sock.on('data', (d) => { out += d.toString('latin1'); });
    sock.on('error', (e) => finish({ err: e.message }));
    sock.on('close', () => finish());
    sock.on('connect', () => {
      sock.write(data);
      if (abortAfterWrite) finish();
      else if (closeAfter) setTimeout(() => finish(), closeAfter);
    });
  });
}

const RAW_BAD = [
  'GARBAGE\r\n\r\n',
  'GET /items HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n',
  'POST /soak HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\nZZZ\r\n\r\n',
  'GET /items HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n',
  'GET /items HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab',
  '\x00\x01\x02\xff\xfe\r\n\r\n',
];

async function badOp(churn) {
  const r = Math.random();
  if (r < 0.25) {
    const data = pick(RAW_BAD);
    const res = await raw(data);
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(res.out);
    const status = m ? Number(m[1]) : 0;
    const kind = 'bad-raw-http';
    if (res.timedOut || !m) { count(kind, 'error'); fail(`${kind}: ${JSON.stringify(data.slice(0, 40))}: no HTTP answer (${res.timedOut ? 'timeout' : res.err ?? 'closed'}): ${JSON.stringify(res.out.slice(0, 100))}`); return 'bad'; }
    count(kind, classOf(status));
    if (status < 400 || status >= 500) { fail(`${kind}: ${JSON.stringify(data.slice(0, 40))}: got ${status}`); return 'bad'; }
    return 'ok';
  }
  if (r < 0.4) {
    // clients that go away: half a request, a whole one unread, half a body
    const k = rnd(3);
    if (k === 0) await raw('GET /items?select=id HTTP/1.1\r\nHost: x\r\nAcc', { closeAfter: 20 });
    else if (k === 1) await raw('GET /big?select=* HTTP/1.1\r\nHost: x\r\n\r\n', { abortAfterWrite: true });
    else await raw('POST /rpc/echo_body HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"a":', { closeAfter: 20 });
    count('bad-disconnect', 'aborted');
    return 'ok';
  }
  const b = pick(BAD);
  return (await call('bad-input', { method: b.method, path: b.path, headers: b.headers, body: b.body }, b.expect ?? '4xx', churn))[0];
}

// ---------- driver ----------
const MIX = [[readOp, 40], [writeOp, 22], [jwtOp, 12], [authOp, 8], [badOp, 18]];
const MIX_TOTAL = MIX.reduce((a, [, w]) => a + w, 0);
function pickOp() {
  let x = Math.random() * MIX_TOTAL;
  for (const [f, w] of MIX) { if ((x -= w) < 0) return f; }
  return MIX[0][0];
}

async function client(cid, deadline) {
  const churn = cid % 4 === 3; // a quarter of the clients open a new connection per request
  while (Date.now() < deadline && !strata.exited) {
    const op = pickOp();
    if (op === writeOp) await writeOp(cid, churn);
    else await op(churn);
  }
}

function rssKb(pid) {
  const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}
async function poolConnected() {
  const metrics = await fetch(`${strata.admin}/metrics`).then((r) => r.text()).catch(() => '');
  return Number(/^strata_db_pool_connected (\d+)/m.exec(metrics)?.[1] ?? -1);
}
const fdCount = (pid) => fs.readdirSync(`/proc/${pid}/fd`).length;
const mb = (kb) => (kb / 1024).toFixed(1);

async function main() {
  pg = await startPostgres({ fixture: path.join(root, 'tests/integration/fixtures/schema.sql') });
  pg.psql(SOAK_FIXTURE);
  const dataDir = fs.mkdtempSync('/tmp/strata-soak-data-');
  strata = await startStrata({
    env: {
      PGRST_DB_URI: pg.conninfo(), STRATA_DB_ADMIN_URI: pg.conninfo('postgres'), PGRST_DB_ANON_ROLE: 'anon',
      PGRST_DB_SCHEMAS: 'public,api', PGRST_DB_MAX_ROWS: '1000', PGRST_DB_POOL: String(POOL),
      PGRST_DB_AGGREGATES_ENABLED: 'true', PGRST_JWT_SECRET: SECRET,
      STRATA_AUTH_PASSWORD_HASH: 'min', STRATA_AUTH_RATE_LIMIT_PER_MIN: '1000000',
      STRATA_MAX_BODY_BYTES: String(MAX_BODY), STRATA_MAX_HEADER_BYTES: String(16 * 1024),
      STRATA_KEEPALIVE_TIMEOUT: '5', STRATA_REQUEST_TIMEOUT: '5', STRATA_DATA_DIR: dataDir,
      PGRST_LOG_LEVEL: 'warn',
    },
  });
  const pid = strata.proc.pid;
  let code = 1;
  try {
    code = await run(pid);
  } finally {
    if (!strata.exited) strata.proc.kill('SIGKILL');
    pg.cleanup();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
  return code;
}

async function run(pid) {
  // Warm the pool and the caches with a short burst, let idle connections close, then take the
  // "before" fd count.
  const warm = Date.now() + 2000;
  t0 = Date.now();
  await Promise.all(Array.from({ length: CLIENTS }, (_, i) => (async () => { while (Date.now() < warm) await readOp(false); })(i)));
  keepAgent.destroy();
  // the pool grows on demand: wait (a while) for it to be full, so fds before and after compare
  let poolBefore = -1;
  for (let i = 0; i < 50 && poolBefore < POOL; i++) { poolBefore = await poolConnected(); if (poolBefore < POOL) await sleep(200); }
  await sleep(1500);
  const fdBefore = fdCount(pid);
  failures.length = 0;
  stats.clear();

  const durMs = SECONDS * 1000;
  t0 = Date.now();
  const deadline = t0 + durMs;
  const samples = []; // [ms since t0, rss kB]
  const sampler = setInterval(() => { try { samples.push([Date.now() - t0, rssKb(pid)]); } catch { /* gone */ } }, 1000);
  samples.push([0, rssKb(pid)]);

  const schedule = [[0.3, 'notify'], [0.45, 'usr2'], [0.6, 'kill']];
  if (SECONDS >= 120) schedule.push([0.75, 'notify'], [0.85, 'kill']);
  const timers = schedule.map(([f, what]) => setTimeout(() => {
    events.push(`${what} at ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    try {
      if (what === 'notify') pg.psql(`notify pgrst, 'reload schema'`);
      else if (what === 'usr2') strata.proc.kill('SIGUSR2');
      else {
        killTimes.push(Date.now());
        const n = pg.psql(`select count(pg_terminate_backend(pid)) from pg_stat_activity where usename = 'authenticator'`).trim();
        events[events.length - 1] += ` (${n} backends)`;
      }
    } catch (e) { fail(`disruption ${what}: ${e.message}`); }
  }, f * durMs));

  let lastBeat = 0;
  const watch = setInterval(() => {
    if (strata.exited) fail(`strata died during the run: ${JSON.stringify(strata.exited)}`);
    const s = Math.floor((Date.now() - t0) / 1000);
    if (s - lastBeat >= 60) { lastBeat = s; console.log(`soak: ${s} s, ${[...stats.values()].reduce((a, m) => a + Object.values(m).reduce((x, y) => x + y, 0), 0)} requests, RSS ${mb(samples.at(-1)[1])} MB`); }
  }, 1000);

  await Promise.all(Array.from({ length: CLIENTS }, (_, i) => client(i + 1, deadline)));
  const elapsed = (Date.now() - t0) / 1000;
  clearInterval(sampler);
  clearInterval(watch);
  timers.forEach(clearTimeout);
  samples.push([Date.now() - t0, rssKb(pid)]);
  if (strata.exited) fail(`strata died during the run: ${JSON.stringify(strata.exited)}`);

  // ---- checks ----
  // fds: our keep-alive sockets go away, idle connections close; wait for the count to settle.
  keepAgent.destroy();
  let fdAfter = fdCount(pid);
  const FD_MARGIN = 4 + Math.max(0, POOL - poolBefore);
  for (let i = 0; i < 100 && fdAfter > fdBefore + FD_MARGIN; i++) { await sleep(200); fdAfter = fdCount(pid); }
  if (fdAfter > fdBefore + FD_MARGIN) {
    fail(`fds: ${fdAfter} after the load vs ${fdBefore} before (margin ${FD_MARGIN}): ${fs.readdirSync(`/proc/${pid}/fd`).map((f) => { try { return fs.readlinkSync(`/proc/${pid}/fd/${f}`); } catch { return '?'; } }).join(' ')}`);
  }

  // RSS: growth from the 25 % mark to the end.
  const at = (frac) => { const t = frac * durMs; return samples.reduce((best, s) => (Math.abs(s[0] - t) < Math.abs(best[0] - t) ? s : best))[1]; };
  const rssStart = samples[0][1];
  const rss25 = at(0.25);
  const rssEnd = samples.at(-1)[1];
  const post = samples.filter((s) => s[0] >= 0.25 * durMs).map((s) => s[1]);
  const rssMax = Math.max(...post);
  const boundKb = asan ? 24 * 1024 + 0.10 * rss25 : 8 * 1024 + 0.05 * rss25;
  if (rssEnd - rss25 > boundKb) fail(`RSS grew ${mb(rssEnd - rss25)} MB from the 25 % mark (${mb(rss25)} MB) to the end (${mb(rssEnd)} MB); bound ${mb(boundKb)} MB`);

  // the pool reconnected and stays within its size
  const ready = await request({ path: '/' }).then(() => fetch(`${strata.admin}/ready`)).then((r) => r.status).catch((e) => e.message);
  if (ready !== 200) fail(`/ready answers ${ready} at the end`);
  const conns = Number(pg.psql(`select count(*) from pg_stat_activity where usename = 'authenticator'`).trim());
  // the schema listener holds one more authenticator connection besides the pool (as PostgREST's does)
  const poolAfter = await poolConnected();
  if (poolAfter < 0 || poolAfter > POOL) fail(`/metrics strata_db_pool_connected is ${poolAfter}, pool is ${POOL}`);
  if (conns > POOL + 1) fail(`${conns} authenticator connections, pool is ${POOL}: ${pg.psql(`select application_name, state, backend_start, left(query, 60) from pg_stat_activity where usename = 'authenticator'`)}`);

  // write consistency
  const expected = new Set();
  const uncertain = new Set();
  let inserted = 0;
  for (const st of writerState.values()) { st.live.forEach((id) => expected.add(id)); st.uncertain.forEach((id) => uncertain.add(id)); inserted += st.next - 1; }
  const inDb = pg.psql('select id from public.soak').split('\n').filter(Boolean).map(Number);
  const dbSet = new Set(inDb);
  const missing = [...expected].filter((id) => !dbSet.has(id));
  const extra = inDb.filter((id) => !expected.has(id) && !uncertain.has(id));
  if (missing.length) fail(`soak table: ${missing.length} rows acknowledged as inserted are missing (e.g. ${missing.slice(0, 5)})`);
  if (extra.length) fail(`soak table: ${extra.length} rows present that were never acknowledged or were deleted (e.g. ${extra.slice(0, 5)})`);
  if (!uncertain.size && inDb.length !== expected.size) fail(`soak table has ${inDb.length} rows, expected ${expected.size}`);

  // clean exit
  const exit = await strata.stop('SIGTERM');
  if (exit.code !== 0) fail(`strata exit on SIGTERM: ${JSON.stringify(exit)}`);
  if (/ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:/.test(strata.log)) fail(`sanitizer report in strata's log`);

  // ---- summary ----
  let total = 0;
  console.log(`\nsoak summary (${SECONDS} s, ${CLIENTS} clients${asan ? ', ASan+UBSan' : ''}, binary ${strataBin})`);
  for (const [kind, m] of [...stats.entries()].sort()) {
    const n = Object.values(m).reduce((a, b) => a + b, 0);
    total += n;
    console.log(`  ${kind.padEnd(14)} ${String(n).padStart(8)}  ${Object.entries(m).sort().map(([c, v]) => `${c}=${v}`).join(' ')}`);
  }
  console.log(`  requests: ${total} in ${elapsed.toFixed(1)} s = ${(total / elapsed).toFixed(0)} req/s`);
  console.log(`  disruptions: ${events.join('; ')}`);
  const where = {};
  for (const [k, s] of allowed503) { const w = (where[k] ??= { n: 0, at: [] }); w.n++; if (!w.at.includes(s)) w.at.push(s); }
  console.log(`  503s/conn errors after backend kills (allowed): ${allowed503.length}${allowed503.length ? ' ' + JSON.stringify(where) : ''}`);
  console.log(`  RSS MB: start ${mb(rssStart)}, 25 % ${mb(rss25)}, max after 25 % ${mb(rssMax)}, end ${mb(rssEnd)}; growth 25 %→end ${mb(rssEnd - rss25)} (bound ${mb(boundKb)}); ${samples.length} samples`);
  console.log(`  fds: before ${fdBefore}, after ${fdAfter}; authenticator connections at end ${conns} (pool ${POOL} + 1 listener; pool connected per /metrics: ${poolBefore} before, ${poolAfter} after); /ready ${ready}`);
  console.log(`  soak table: ${inserted} inserted, ${inDb.length} rows at end (expected ${expected.size}, ${uncertain.size} with unknown outcome)`);
  console.log(`  strata exit: ${JSON.stringify(exit)}`);
  if (failures.length) {
    console.log(`\nsoak: FAILED (${failures.length} problems)`);
    const seen = new Map();
    for (const f of failures) seen.set(f.slice(0, 120), (seen.get(f.slice(0, 120)) ?? 0) + 1);
    let shown = 0;
    for (const f of failures) {
      const key = f.slice(0, 120);
      if (!seen.has(key)) continue;
      console.log(`  - ${f}${seen.get(key) > 1 ? ` (×${seen.get(key)})` : ''}`);
      seen.delete(key);
      if (++shown >= 40) break;
    }
    console.log(`--- strata log (tail) ---\n${strata.log.slice(-3000)}`);
    return 1;
  }
  console.log('soak: passed');
  return 0;
}

main().then((code) => process.exit(code), (e) => {
  console.error('soak: error:', e);
  if (strata && !strata.exited) strata.proc.kill('SIGKILL');
  if (pg) pg.cleanup();
  process.exit(1);
});
