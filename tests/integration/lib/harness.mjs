// Test harness: real PostgreSQL clusters and strata processes on loopback, free ports only.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const root = path.resolve(here, '../../..');
export const strataBin = process.env.STRATA_BIN || path.join(root, 'build', 'strata');
const pgBin = '/usr/lib/postgresql/15/bin';
const isRoot = process.getuid && process.getuid() === 0;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls fn (errors count as "not yet") every 100 ms until it is truthy, or throws after ms.
export async function until(fn, ms = 15000, what = 'condition') {
  const t0 = Date.now();
  for (;;) {
    try { if (await fn()) return; } catch { /* keep trying */ }
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// Two distinct free ports (API and admin).
export async function freePorts() {
  const a = await freePort();
  let b = await freePort();
  while (b === a || b === a + 1) b = await freePort();
  return [a, b];
}

function asPostgres(cmd, args, opts = {}) {
  if (isRoot) return execFileSync('runuser', ['-u', 'postgres', '--', cmd, ...args], opts);
  return execFileSync(cmd, args, opts);
}

// A private PostgreSQL cluster in a temp dir the postgres user owns, on a Unix socket only;
// with tcp: true also on 127.0.0.1 at a free port (pg.port; the socket then carries that port
// number too, so conninfo() names it).
export async function startPostgres({ fixture, tcp = false } = {}) {
  const dir = asPostgres('mktemp', ['-d', '/tmp/strata-it-XXXXXX']).toString().trim();
  const data = path.join(dir, 'pg');
  asPostgres(`${pgBin}/initdb`, ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8'], { stdio: 'ignore' });
  const port = tcp ? await freePort() : null;
  const portArgs = port ? ['-p', String(port)] : [];
  const pg = {
    dir, data, socket: dir, port,
    conninfo: (user = 'authenticator', db = 'postgres') =>
      `host=${dir} dbname=${db} user=${user}${port ? ` port=${port}` : ''}`,
    start() {
      for (let i = 0; i < 50; i++) {
        try {
          asPostgres(`${pgBin}/pg_ctl`, ['-D', data, '-w', '-l', path.join(dir, 'log'), '-o',
            `-k ${dir} -c listen_addresses='${port ? '127.0.0.1' : ''}'${port ? ` -p ${port}` : ''} -c wal_level=logical -c fsync=off`, 'start'], { stdio: 'ignore' });
          return;
        } catch (e) {
          // right after a kill -9 the lock file may still be held; retry briefly
          execFileSync('sleep', ['0.2']);
        }
      }
      throw new Error('postgres did not start');
    },
    stop() {
      try { asPostgres(`${pgBin}/pg_ctl`, ['-D', data, '-m', 'fast', 'stop'], { stdio: 'ignore' }); } catch { /* already down */ }
    },
    pid() {
      return Number(fs.readFileSync(path.join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
    },
    kill9() { process.kill(pg.pid(), 'SIGKILL'); },
    psql(sql) {
      return execFileSync('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', dir, ...portArgs, '-U', 'postgres', '-d', 'postgres', '-tA', '-c', sql],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    },
    psqlFile(file) {
      return execFileSync('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', dir, ...portArgs, '-U', 'postgres', '-d', 'postgres', '-f', file],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    },
    cleanup() {
      pg.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  pg.start();
  pg.psql(`do $$ begin
    if not exists (select 1 from pg_roles where rolname='anon') then create role anon nologin; end if;
    if not exists (select 1 from pg_roles where rolname='authenticated') then create role authenticated nologin; end if;
    if not exists (select 1 from pg_roles where rolname='authenticator') then create role authenticator login noinherit; end if;
  end $$; grant anon, authenticated to authenticator;`);
  if (fixture) {
    try { pg.psqlFile(fixture); } catch (e) { pg.cleanup(); throw e; }
  }
  return pg;
}

// Starts strata; resolves once /ready answers 200 (or rejects with its log).
export async function startStrata({ env = {}, args = [], waitReady = true, timeoutMs = 30000 } = {}) {
  const [port, adminPort] = await freePorts();
  const fullEnv = {
    PATH: process.env.PATH,
    PGRST_SERVER_HOST: '127.0.0.1',
    PGRST_SERVER_PORT: String(port),
    PGRST_ADMIN_SERVER_PORT: String(adminPort),
    STRATA_WORKERS: '2',
    ASAN_OPTIONS: process.env.ASAN_OPTIONS || 'detect_leaks=1:abort_on_error=0',
    UBSAN_OPTIONS: process.env.UBSAN_OPTIONS || 'print_stacktrace=1',
    ...env,
  };
  const proc = spawn(strataBin, ['serve', ...args], { env: fullEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  const s = {
    proc, port, adminPort,
    url: `http://127.0.0.1:${port}`,
    admin: `http://127.0.0.1:${adminPort}`,
    log: '',
    exited: null,
    async stop(signal = 'SIGTERM') {
      if (s.exited) return s.exited;
      proc.kill(signal);
      return await s.exitPromise;
    },
  };
  s.exitPromise = new Promise((resolve) => proc.on('exit', (code, sig) => { s.exited = { code, signal: sig }; resolve(s.exited); }));
  proc.stdout.on('data', (d) => { s.log += d; });
  proc.stderr.on('data', (d) => { s.log += d; });
  if (waitReady) {
    const t0 = Date.now();
    for (;;) {
      if (s.exited) throw new Error(`strata exited early (${JSON.stringify(s.exited)}):\n${s.log}`);
      try {
        const r = await fetch(`${s.admin}/ready`);
        if (r.status === 200) break;
      } catch { /* not listening yet */ }
      if (Date.now() - t0 > timeoutMs) { proc.kill('SIGKILL'); throw new Error(`strata not ready in time:\n${s.log}`); }
      await sleep(50);
    }
  }
  return s;
}

// Sends raw bytes and collects what comes back until the server closes or `ms` passes.
export function rawRequest(port, data, ms = 3000) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    let out = '';
    const done = () => { sock.destroy(); resolve(out); };
    sock.setTimeout(ms, done);
    sock.on('data', (d) => { out += d.toString('latin1'); });
    sock.on('error', done);
    sock.on('close', done);
    sock.on('connect', () => sock.write(data));
  });
}

export function tmpDir(prefix = 'strata-test-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}
