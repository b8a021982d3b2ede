import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { spawnGateway, tempDir, waitFor, writeConfig } from './helpers.ts';
import { newSecret, signedHeaders, startReceiver } from './events-helpers.ts';

const TOTAL = 1000;

test('embedded engine: gateway SIGKILLed with 1,000 events in flight, after restart every event is delivered (duplicates flagged by id)', { timeout: 300_000 }, async () => {
  const dir = tempDir('hcgw-events-crash-');
  const inbound = newSecret();
  const outbound = newSecret();
  // A slow receiver keeps most of the 1,000 events in flight when the process dies.
  const r = await startReceiver(outbound, { delayMs: 3 });
  const file = writeConfig(`
version: 1
routes:
  - id: in
    layer: event
    match: { methods: [POST], path: /events/in }
    target: { secret: "${inbound}" }
events:
  engine: { kind: embedded, dir: "${join(dir, 'log')}" }
  schemas:
    test.happened: { "1": { type: object, required: [n], properties: { n: { type: integer } } } }
  subscriptions:
    - id: sink
      filter: { types: [test.happened] }
      delivery: { kind: webhook, url: "${r.url}", secret: "${outbound}" }
      concurrency: 2
      retry: { maxAttempts: 20, baseMs: 10, maxMs: 200 }
`);
  let gw = await spawnGateway(file, 90_000);
  try {
    const ids: string[] = [];
    let acked = 0;
    const send = async (n: number) => {
      const id = `msg_${n}_${Date.now()}`;
      const body = JSON.stringify({ type: 'test.happened', timestamp: new Date().toISOString(), data: { n } });
      const res = await fetch(`${gw.url}/events/in`, { method: 'POST', body, headers: signedHeaders(inbound, id, body) });
      assert.equal(res.status, 202);
      await res.arrayBuffer();
      ids.push(id);
      acked++;
    };
    for (let i = 0; i < TOTAL; i += 25) await Promise.all(Array.from({ length: 25 }, (_, j) => send(i + j)));
    assert.equal(acked, TOTAL);
    const beforeKill = r.received.length;
    assert.ok(beforeKill < TOTAL, `events must still be in flight at the kill (delivered so far: ${beforeKill})`);
    process.kill(gw.pid, 'SIGKILL');
    await gw.close();

    gw = await spawnGateway(file, 90_000);
    await waitFor(() => new Set(r.received.map((m) => m.id)).size === TOTAL, 90_000, 'every event delivered after restart');
    const got = new Set(r.received.map((m) => m.id));
    for (const id of ids) assert.ok(got.has(id), `event ${id} lost`);
    const dups = r.duplicates();
    // Measured, not asserted to be zero: at-least-once allows redelivery of what was in flight at the kill.
    console.log(`# sigkill: delivered before kill ${beforeKill}, total deliveries ${r.received.length}, duplicates ${dups.length}`);
    assert.equal(r.rejected, 0);
  } finally {
    await gw.close();
    await r.close();
  }
});
