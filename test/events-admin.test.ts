import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { randomBytes, randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { startGateway, tempDir, waitFor } from './helpers.ts';
import { newSecret, startReceiver } from './events-helpers.ts';

const run = promisify(execFile);
const HCGW = fileURLToPath(new URL('../bin/hcgw.js', import.meta.url));

test('hcgw events dlq list|retry|drop and resend work through the admin API; the admin token is required', { timeout: 240_000 }, async () => {
  const token = randomBytes(24).toString('hex');
  const secret = newSecret();
  const r = await startReceiver(secret);
  const dir = tempDir('hcgw-events-admin-');
  const gw = await startGateway(`
version: 1
server: { admin: { port: 0, token: "${token}" } }
routes: []
events:
  engine: { kind: embedded, dir: "${join(dir, 'log')}" }
  schemas: { note.added: { "1": { type: object } } }
  subscriptions:
    - id: crm
      filter: { types: [note.added] }
      delivery: { kind: webhook, url: "${r.url}", secret: "${secret}" }
      retry: { maxAttempts: 2, baseMs: 5, maxMs: 10 }
`);
  const admin = `http://127.0.0.1:${gw.gw.adminAddress!.port}`;
  const cli = async (...args: string[]) => {
    try {
      const { stdout } = await run(process.execPath, [HCGW, 'events', ...args, '--admin', admin, '--token', token], { timeout: 30_000 });
      return { code: 0, out: stdout };
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string };
      return { code: e.code, out: e.stdout + e.stderr };
    }
  };
  try {
    const events = gw.gw.events!;
    r.status = 503;
    const ids = [randomUUID(), randomUUID()];
    for (const id of ids) await events.publish({ specversion: '1.0', id, source: '/t', type: 'note.added', time: new Date().toISOString(), data: { secretNote: 'phi' } });
    await waitFor(async () => (await events.deadLetters()).length === 2, 5000, 'dead letters');

    assert.equal((await fetch(`${admin}/admin/events/dead-letters`)).status, 401, 'no token, no dead letters');
    const list = await cli('dlq', 'list', '--subscription', 'crm');
    assert.equal(list.code, 0);
    const dls = JSON.parse(list.out) as Array<Record<string, unknown>>;
    assert.equal(dls.length, 2);
    assert.equal(dls[0].lastError, 'http 503');
    assert.ok(!list.out.includes('phi'), 'the listing shows metadata, never event data');

    r.status = 0;
    assert.equal((await cli('dlq', 'retry', String(dls[0].id))).code, 0);
    await waitFor(() => r.received.length === 1, 5000, 'retried delivery');
    const drop = () => fetch(`${admin}/admin/events/dead-letters/${encodeURIComponent(String(dls[1].id))}`, { method: 'DELETE', headers: { authorization: `Bearer ${token}` } });
    assert.equal((await drop()).status, 200);
    assert.equal((await drop()).status, 404, 'dropping twice: not found');
    assert.equal((await events.deadLetters()).length, 0);

    const resend = await cli('resend', '--subscription', 'crm', '--from', '1');
    assert.equal(resend.code, 0, resend.out);
    assert.equal(JSON.parse(resend.out).queued, 2);
    await waitFor(() => r.received.length === 3, 5000, 'resent');
    const resendApi = (sub: string, from: string) => fetch(`${admin}/admin/events/subscriptions/${sub}/resend?from=${from}`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    assert.equal((await resendApi('crm', 'yesterday')).status, 400, 'a bad position is refused');
    assert.equal((await resendApi('nope', '1')).status, 400, 'an unknown subscription is refused');
  } finally {
    await gw.close();
    await r.close();
  }
});
