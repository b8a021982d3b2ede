import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startGateway, tempDir, waitFor } from './helpers.ts';
import { freePort, newSecret, startNats, startReceiver, stopNats } from './events-helpers.ts';

const TOTAL = 200;

test('JetStream engine: nats-server killed and restarted mid-delivery, every event is delivered at least once', { timeout: 180_000 }, async () => {
  const port = await freePort();
  const natsDir = tempDir('hcgw-js-restart-');
  let nats = await startNats(port, natsDir);
  const secret = newSecret();
  const r = await startReceiver(secret, { delayMs: 5 });
  const gw = await startGateway(`
version: 1
routes: []
events:
  engine: { kind: jetstream, servers: ["nats://127.0.0.1:${port}"], stream: HCGW_RESTART_${randomUUID().slice(0, 8).toUpperCase()} }
  schemas: { test.happened: { "1": { type: object } } }
  subscriptions:
    - id: sink
      filter: { types: [test.happened] }
      delivery: { kind: webhook, url: "${r.url}", secret: "${secret}" }
      concurrency: 2
`);
  try {
    const ids: string[] = [];
    for (let i = 0; i < TOTAL; i++) {
      const id = randomUUID();
      await gw.gw.events!.publish({ specversion: '1.0', id, source: '/t', type: 'test.happened', time: new Date().toISOString(), data: { i } });
      ids.push(id);
    }
    await waitFor(() => r.received.length >= 10, 30_000, 'first deliveries');
    const atKill = r.received.length;
    await stopNats(nats);
    await new Promise((d) => setTimeout(d, 1500));
    assert.equal((await fetch(`${gw.url}/readyz`)).status, 503, 'not ready while the engine is down');
    nats = await startNats(port, natsDir);
    await waitFor(() => new Set(r.received.map((m) => m.id)).size === TOTAL, 120_000, 'every event delivered after the nats-server restart');
    const got = new Set(r.received.map((m) => m.id));
    for (const id of ids) assert.ok(got.has(id), 'event lost');
    console.log(`# nats restart: delivered at kill ${atKill}, total deliveries ${r.received.length}, duplicates ${r.duplicates().length}`);
    await waitFor(async () => (await fetch(`${gw.url}/readyz`)).status === 200, 20_000, 'ready again');
  } finally {
    await gw.close();
    await r.close();
    await stopNats(nats);
  }
});
