import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { problem, startGateway, startUpstream, writeConfig, type TestGateway, type TestUpstream } from './helpers.ts';

const TOKEN = `admin-${randomBytes(24).toString('hex')}`;
process.env.HCGW_TEST_RELOAD_ADMIN_TOKEN = TOKEN;

const config = (upstream: string, routes: string) => `version: 1
server:
  admin: { port: 0, token: "\${env:HCGW_TEST_RELOAD_ADMIN_TOKEN}" }
upstreams:
  up: { url: ${upstream} }
routes:
${routes}`;
const route = (id: string, path: string) => `  - { id: ${id}, layer: system, match: { path: ${path} }, target: { upstream: up, path: /x } }\n`;

describe('admin API: POST /admin/reload', () => {
  let up: TestUpstream;
  let gw: TestGateway;
  let file: string;
  let admin: string;
  const reload = (token = TOKEN) => fetch(`${admin}/admin/reload`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });

  before(async () => {
    up = await startUpstream();
    file = writeConfig(config(up.url, route('a', '/a')));
    gw = await startGateway('', { file });
    admin = `http://127.0.0.1:${gw.gw.adminAddress!.port}`;
  });
  after(async () => {
    await gw.close();
    await up.close();
  });

  test('needs the admin token', async () => {
    const res = await reload('wrong-token');
    assert.equal(res.status, 401);
    await problem(res);
  });

  test('swaps in a changed file and reports the new version', async () => {
    const before = gw.gw.compiled.hash;
    writeFileSync(file, config(up.url, route('a', '/a') + route('b', '/b')));
    const res = await reload();
    assert.equal(res.status, 200);
    const body = (await res.json()) as { ok: boolean; version: string; previous: string; routes: number };
    assert.deepEqual({ ok: body.ok, previous: body.previous, routes: body.routes }, { ok: true, previous: before, routes: 2 });
    assert.notEqual(body.version, before);
    assert.equal((await fetch(`${gw.url}/b`)).status, 200);
    const ready = (await (await fetch(`${gw.url}/readyz`)).json()) as { config: { version: string } };
    assert.equal(ready.config.version, body.version);
  });

  test('a broken file is refused with its issues (422) and the running config keeps serving', async () => {
    const serving = gw.gw.compiled.hash;
    writeFileSync(file, config(up.url, route('a', '/a') + '  - { id: c, layer: system, matc: { path: /c } }\n'));
    const res = await reload();
    assert.equal(res.status, 422);
    const p = (await problem(res)) as { type: string; version: string; issues: Array<{ path: string; message: string }> };
    assert.equal(p.type, 'https://hcgw.dev/problems/unprocessable');
    assert.equal(p.version, serving);
    assert.ok(p.issues.some((i) => i.path === 'routes[1].matc' && i.message === 'unknown key'), JSON.stringify(p.issues));
    assert.equal(gw.gw.compiled.hash, serving);
    assert.equal((await fetch(`${gw.url}/b`)).status, 200, 'the old router still serves');
  });
});
