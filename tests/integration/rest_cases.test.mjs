// Declarative end-to-end cases: one JSON file per case in cases/ (request → expected
// status, headers, body), run against a real PostgreSQL with the fixture schema.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startPostgres, startStrata, root } from './lib/harness.mjs';

const casesDir = path.join(root, 'tests/integration/cases');
let pg, strata;

before(async () => {
  pg = await startPostgres({ fixture: path.join(root, 'tests/integration/fixtures/schema.sql') });
  strata = await startStrata({
    env: { PGRST_DB_URI: pg.conninfo(), STRATA_DB_ADMIN_URI: pg.conninfo('postgres'), PGRST_DB_ANON_ROLE: 'anon', PGRST_DB_SCHEMAS: 'public,api', PGRST_DB_MAX_ROWS: '1000',
      PGRST_JWT_SECRET: 'strata-test-secret-that-is-at-least-32-chars', PGRST_DB_PRE_REQUEST: 'public.check_request', PGRST_DB_AGGREGATES_ENABLED: 'true', PGRST_DB_PLAN_ENABLED: 'true' },
  });
});

after(async () => {
  const exit = strata ? await strata.stop() : null;
  if (pg) pg.cleanup();
  if (exit) assert.equal(exit.code, 0, `strata exit: ${JSON.stringify(exit)}\n${strata.log.slice(-4000)}`);
});

function matchHeader(actual, expected, name) {
  if (expected === null) return assert.equal(actual, null, `header ${name} should be absent`);
  if (typeof expected === 'string' && expected.startsWith('~')) {
    return assert.match(actual ?? '', new RegExp(expected.slice(1)), `header ${name}`);
  }
  assert.equal(actual, expected, `header ${name}`);
}

for (const file of fs.readdirSync(casesDir).filter((f) => f.endsWith('.json')).sort()) {
  const c = JSON.parse(fs.readFileSync(path.join(casesDir, file), 'utf8'));
  test(`${file}: ${c.description ?? ''}`, async () => {
    const req = c.request;
    for (const prefix of c.prefixes ?? ['']) {
      const res = await fetch(strata.url + prefix + req.path, {
        method: req.method ?? 'GET',
        headers: req.headers ?? {},
        body: req.body === undefined ? undefined : (typeof req.body === 'string' ? req.body : JSON.stringify(req.body)),
      });
      const text = await res.text();
      const exp = c.expect;
      assert.equal(res.status, exp.status, `status for ${prefix}${req.path}: body ${text}`);
      for (const [name, v] of Object.entries(exp.headers ?? {})) matchHeader(res.headers.get(name), v, name);
      if ('body' in exp) {
        assert.deepEqual(JSON.parse(text), exp.body, `body for ${prefix}${req.path}`);
      }
      if ('body_subset' in exp) {
        const got = JSON.parse(text);
        for (const [k, v] of Object.entries(exp.body_subset)) assert.deepEqual(got[k], v, `body.${k}`);
      }
      if ('text' in exp) assert.equal(text, exp.text);
      if ('length' in exp) assert.equal(JSON.parse(text).length, exp.length);
    }
  });
}
