// Logging never blocks an event loop: Strata's stderr is a pipe the test stops reading, so
// the pipe fills and the log writer thread blocks on it; requests must keep being answered
// all the same. Once the test reads again, every access-log line arrives (or a warn line
// says how many were dropped), and the shutdown lines are flushed before exit.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { startPostgres, startStrata, root, until } from './lib/harness.mjs';

let pg, strata;

before(async () => {
  pg = await startPostgres({ fixture: path.join(root, 'tests/integration/fixtures/schema.sql') });
  strata = await startStrata({
    env: { PGRST_DB_URI: pg.conninfo(), STRATA_DB_ADMIN_URI: pg.conninfo('postgres'), PGRST_DB_ANON_ROLE: 'anon' },
  });
});

after(async () => {
  if (strata) strata.proc.stderr.resume();
  const exit = strata ? await strata.stop('SIGINT') : null;
  if (pg) pg.cleanup();
  if (exit) assert.equal(exit.code, 0, `strata exit: ${JSON.stringify(exit)}\n${strata.log.slice(-4000)}`);
});

// Far more access log than a pipe (64 KiB) and Node's read buffer hold together.
const N = 3000;
const CONCURRENCY = 8;

test('a stderr nobody reads does not stall requests; the lines arrive later', async () => {
  const before = strata.log.length;
  strata.proc.stderr.pause();
  const statuses = new Map();
  let next = 0;
  const one = async () => {
    while (next < N) {
      const i = next++;
      // Generous per-request timeout: this checks "answered", not "fast".
      const r = await fetch(`${strata.url}/items?select=id&limit=1`, {
        headers: { 'X-Request-Id': `logpipe-${i}` }, signal: AbortSignal.timeout(60000),
      });
      await r.arrayBuffer();
      statuses.set(r.status, (statuses.get(r.status) || 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, one));
  assert.deepEqual([...statuses], [[200, N]]);
  // While paused nothing was delivered to the test; the server has answered everything.
  assert.equal(strata.log.length, before);

  strata.proc.stderr.resume();
  const seen = () => {
    const ids = new Set();
    let dropped = 0;
    for (const l of strata.log.slice(before).split('\n')) {
      const m = /"request_id":"logpipe-(\d+)"/.exec(l);
      if (m) ids.add(m[1]);
      const d = /"level":"warn","msg":"log: (\d+) lines dropped \(stderr too slow\)"/.exec(l);
      if (d) dropped += Number(d[1]);
    }
    return { ids: ids.size, dropped };
  };
  await until(() => { const s = seen(); return s.ids + s.dropped >= N; }, 30000, 'every access-log line or a dropped notice');
  // The volume proves the pipe was full while the requests ran.
  assert.ok(strata.log.length - before > 300000, `only ${strata.log.length - before} bytes of log`);
  const m = await (await fetch(`${strata.admin}/metrics`)).text();
  const dm = /strata_log_lines_dropped_total (\d+)/.exec(m);
  assert.ok(dm, 'strata_log_lines_dropped_total in /metrics');
  assert.equal(Number(dm[1]), seen().dropped);
});

test('stop flushes the queued lines before exit', async () => {
  const exit = await strata.stop('SIGINT');
  assert.equal(exit.code, 0);
  // Node may deliver the last chunk just after the exit event.
  await until(() => strata.log.includes('"msg":"stopped"'), 5000, 'the "stopped" line');
});
