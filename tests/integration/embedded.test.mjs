// The embedded default: `strata serve --demo` with no database settings creates, supervises
// and stops its own PostgreSQL. The data dir sits under a root-owned 0700 parent (as a CI
// clone may), so the cluster must move to /var/lib/strata/<hash>.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startStrata, tmpDir, until } from './lib/harness.mjs';

function alive(pid) {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

function postmasterOf(strataPid) {
  const out = execFileSync('ps', ['-o', 'pid=,comm=', '--ppid', String(strataPid)], { encoding: 'utf8' });
  const line = out.split('\n').map((l) => l.trim().split(/\s+/)).find((f) => f[1] === 'postgres');
  return line ? Number(line[0]) : 0;
}

test('embedded PostgreSQL with the demo schema: serve, survive kill -9, stop cleanly, restart fast', async () => {
  const parent = tmpDir('strata-emb-'); // root-owned, mode 0700: unreachable for postgres
  fs.chmodSync(parent, 0o700);
  const dataDir = path.join(parent, 'data');
  const env = { STRATA_DATA_DIR: dataDir, STRATA_WORKERS: '2' };
  let fallback = null;
  let s = await startStrata({ env, args: ['--demo'], timeoutMs: 90000 });
  try {
    await until(() => /kept in \/var\/lib\/strata\//.test(s.log), 5000, 'the cluster location in the log');
    const m = s.log.match(/kept in (\/var\/lib\/strata\/[0-9a-f]+)/);
    assert.ok(m, `expected the fallback cluster location in the log:\n${s.log}`);
    fallback = m[1];
    const secret = path.join(dataDir, 'jwt-secret');
    assert.equal(fs.statSync(secret).mode & 0o777, 0o600);

    let r = await fetch(`${s.url}/books?select=title,published&order=published.desc&limit=2`);
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), [
      { title: 'Parable of the Sower', published: 1993 },
      { title: 'Small Gods', published: 1992 },
    ]);
    r = await fetch(`${s.url}/rest/v1/authors?select=name&id=eq.2`);
    assert.deepEqual(await r.json(), [{ name: 'Terry Pratchett' }]);
    r = await fetch(`${s.url}/reviews?select=id&order=id`); // RLS: anon sees published reviews only
    assert.deepEqual(await r.json(), [{ id: 1 }, { id: 2 }]);
    r = await fetch(`${s.url}/book_list?select=title,author&id=eq.6`);
    assert.deepEqual(await r.json(), [{ title: 'Kindred', author: 'Octavia E. Butler' }]);
    const doc = await (await fetch(`${s.url}/`)).json();
    for (const t of ['/authors', '/books', '/tags', '/book_tags', '/reviews', '/book_list']) assert.ok(doc.paths[t], `OpenAPI lists ${t}`);
    assert.equal(doc.definitions.books.description, 'Books in the demo library');

    // kill -9 the postmaster: 503 meanwhile, then the supervisor brings it back.
    const pm = postmasterOf(s.proc.pid);
    assert.ok(pm > 0, 'postmaster is a child of strata');
    process.kill(pm, 'SIGKILL');
    await until(async () => (await fetch(`${s.url}/books?id=eq.1`)).status === 503, 15000, '503 while PostgreSQL is down');
    await until(async () => (await fetch(`${s.admin}/ready`)).status === 200, 60000, 'ready again');
    await until(async () => (await fetch(`${s.url}/books?id=eq.1&select=id`)).status === 200, 30000, 'service again');
    const pm2 = postmasterOf(s.proc.pid);
    assert.ok(pm2 > 0 && pm2 !== pm, 'a new postmaster runs');

    // Ctrl-C stops everything, PostgreSQL included.
    const exit = await s.stop('SIGINT');
    assert.equal(exit.code, 0, s.log.slice(-3000));
    assert.ok(!alive(pm2), 'PostgreSQL stopped with strata');

    // A second start reuses the cluster and is quick.
    const t0 = Date.now();
    s = await startStrata({ env, args: ['--demo'], timeoutMs: 30000 });
    const ms = Date.now() - t0;
    console.log(`# second start reached /ready in ${ms} ms`);
    assert.doesNotMatch(s.log, /first run/);
    r = await fetch(`${s.url}/books?select=id&order=id&limit=1`);
    assert.deepEqual(await r.json(), [{ id: 1 }]);
    const exit2 = await s.stop('SIGTERM');
    assert.equal(exit2.code, 0);
  } finally {
    if (!s.exited) await s.stop('SIGKILL');
    fs.rmSync(parent, { recursive: true, force: true });
    if (fallback) fs.rmSync(fallback, { recursive: true, force: true });
  }
});

test('embedded cluster inside a reachable data dir', async () => {
  const dataDir = tmpDir('strata-emb2-');
  fs.chmodSync(dataDir, 0o755);
  const s = await startStrata({ env: { STRATA_DATA_DIR: dataDir, STRATA_WORKERS: '1' }, timeoutMs: 90000 });
  try {
    assert.ok(fs.existsSync(path.join(dataDir, 'pg', 'PG_VERSION')), 'cluster under <data dir>/pg');
    const r = await fetch(`${s.url}/`);
    assert.equal(r.status, 200);
  } finally {
    const exit = await s.stop('SIGTERM');
    fs.rmSync(dataDir, { recursive: true, force: true });
    assert.equal(exit.code, 0, s.log.slice(-3000));
  }
});
