import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { EventBackbone } from '../gateway/events/backbone.ts';
import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { JetStreamEventLog, JetStreamLayoutError } from '../gateway/events/jetstream-log.ts';
import { configIssues, startGateway, waitFor, type TestGateway } from './helpers.ts';
import { newSecret, startReceiver } from './events-helpers.ts';

const KEYS = 50;
const PER_KEY = 10;
const TOTAL = KEYS * PER_KEY;
const NATS = 'nats://127.0.0.1:4222';

/** One gateway on `stream` with one webhook subscription to test.happened events `{key?, i?}`. */
const jetstreamConfig = (stream: string, partitions: number, id: string, url: string, secret: string, retry: string) => `
version: 1
routes: []
events:
  engine: { kind: jetstream, servers: ["${NATS}"], stream: ${stream}, partitions: ${partitions} }
  schemas: { test.happened: { "1": { type: object, properties: { key: { type: string }, i: { type: integer } } } } }
  subscriptions:
    - id: ${id}
      filter: { types: [test.happened] }
      delivery: { kind: webhook, url: "${url}", secret: "${secret}" }
      retry: ${retry}
      timeoutMs: 2000
`;

/** The test's streams were its own: removed from the shared nats-server afterwards. */
async function deleteStreams(stream: string): Promise<void> {
  const nc = await connect({ servers: [NATS] });
  const jsm = await jetstreamManager(nc);
  for (const s of [stream, `${stream}_CP`, `${stream}_DLQ`]) await jsm.streams.delete(s).catch(() => undefined);
  await nc.close();
}

/** Deliveries this instance made (its own metrics registry). */
async function deliveredBy(b: EventBackbone): Promise<number> {
  return (await b.metrics.delivered.get()).values.reduce((n, v) => n + v.value, 0);
}

test('two gateway instances on one JetStream share a subscription; one closes mid-way; every event delivered, per-key order held', { timeout: 240_000 }, async () => {
  const stream = `HCGW_SHARED_${randomUUID().slice(0, 8).toUpperCase()}`;
  const secret = newSecret();
  const r = await startReceiver(secret, { delayMs: 2 });
  const yaml = jetstreamConfig(stream, 8, 'shared.sink', r.url, secret, '{ maxAttempts: 5, baseMs: 10, maxMs: 200 }');
  const a: TestGateway = await startGateway(yaml);
  let b: TestGateway | undefined;
  let aClosed = false;
  try {
    b = await startGateway(yaml);
    const ids = new Map<string, { key: string; i: number }>();
    // Per key in order (each round waits for the last), keys in parallel, alternating instances.
    for (let i = 0; i < PER_KEY; i++) {
      await Promise.all(
        Array.from({ length: KEYS }, async (_, k) => {
          const id = randomUUID();
          const key = `key-${k}`;
          ids.set(id, { key, i });
          const via = (i + k) % 2 === 0 || aClosed ? b! : a;
          await via.gw.events!.publish({ specversion: '1.0', id, source: '/t', type: 'test.happened', time: new Date().toISOString(), partitionkey: key, data: { key, i } });
        }),
      );
    }
    await waitFor(() => r.received.length >= TOTAL / 3, 60_000, 'a third delivered');
    const [byA, byB] = [await deliveredBy(a.gw.events!), await deliveredBy(b.gw.events!)];
    await a.close();
    aClosed = true;
    const atClose = r.received.length;
    await waitFor(() => new Set(r.received.map((m) => m.id)).size === TOTAL, 120_000, 'every event delivered after one instance closed');

    assert.equal(r.rejected, 0, 'every delivery verified with standardwebhooks');
    for (const id of ids.keys()) assert.ok(r.received.some((m) => m.id === id), `event ${id} lost`);
    // Order per key: the first arrival of each event, per key, follows publish order.
    const seen = new Set<string>();
    const lastOf = new Map<string, number>();
    for (const m of r.received) {
      if (seen.has(m.id)) continue;
      seen.add(m.id);
      const { key, i } = m.data as { key: string; i: number };
      assert.ok(i > (lastOf.get(key) ?? -1), `key ${key}: event ${i} arrived after ${lastOf.get(key)}`);
      lastOf.set(key, i);
    }
    const duplicates = r.received.length - TOTAL;
    console.log(`# shared JetStream: ${TOTAL} events, ${KEYS} keys; before close instance A delivered ${byA}, B ${byB}; A closed at ${atClose} received; total deliveries ${r.received.length}, duplicates ${duplicates} (${r.duplicates().length} ids)`);
    // Resend of sequences 1..5 through a durable consumer of its own, which removes itself when done.
    const before = r.received.length;
    const firstFive = (await b.gw.events!.log.read(1, 5)).map((e) => e.event.id);
    assert.equal(await b.gw.events!.resend('shared.sink', 1, 5), 5);
    await waitFor(() => r.received.length >= before + 5, 30_000, 'resent events');
    assert.deepEqual(r.received.slice(before).map((m) => m.id), firstFive);
    const nc = await connect({ servers: [NATS] });
    const consumers: string[] = [];
    await waitFor(async () => {
      consumers.length = 0;
      for await (const ci of (await jetstreamManager(nc)).consumers.list(stream)) consumers.push(ci.name);
      return !consumers.some((c) => c.includes('_resend_'));
    }, 10_000, 'resend consumer removed');
    await nc.close();
    assert.equal(consumers.length, 8, consumers.join(' '));
    assert.ok(byA > 0 && byB > 0, `both instances delivered before the close (A ${byA}, B ${byB})`);
    // Only an event in flight on the closing instance can arrive twice: at most one per partition.
    assert.ok(duplicates <= 8, `duplicates bounded by the events in flight at the close (${duplicates})`);
  } finally {
    if (!aClosed) await a.close();
    await b?.close();
    await r.close();
    await deleteStreams(stream);
  }
});

test('a stream in the previous subject layout, or made with other partitions, is refused at open; an empty one is taken over', async () => {
  const name = `HCGW_OLDLAYOUT_${randomUUID().slice(0, 8).toUpperCase()}`;
  const nc = await connect({ servers: [NATS] });
  const jsm = await jetstreamManager(nc);
  try {
    await jsm.streams.add({ name, subjects: [`${name}.>`], storage: 'memory' as never });
    const empty = await JetStreamEventLog.open({ servers: [NATS], stream: name, partitions: 4 });
    await empty.close();
    await assert.rejects(JetStreamEventLog.open({ servers: [NATS], stream: name, partitions: 8 }), (e: Error) => e instanceof JetStreamLayoutError && /other partitions/.test(e.message));
    // The previous layout: events straight under <stream>.<type>, no partition token, no description.
    await jsm.streams.update(name, { ...(await jsm.streams.info(name)).config, description: '' } as never);
    await jetstream(nc).publish(`${name}.test.happened`, '{}');
    await assert.rejects(JetStreamEventLog.open({ servers: [NATS], stream: name }), (e: Error) => e instanceof JetStreamLayoutError && /previous subject layout.*#migrating-a-jetstream-stream/.test(e.message));
  } finally {
    await nc.close();
    await deleteStreams(name);
  }
});

test('config: with the jetstream engine a subscription orders by partitionkey only', async () => {
  const issues = await configIssues(`
version: 1
routes: []
events:
  engine: { kind: jetstream, servers: ["${NATS}"], stream: HCGW_UNUSED }
  schemas: { test.happened: { "1": { type: object } } }
  subscriptions:
    - { id: s, filter: { types: [test.happened] }, orderBy: facility, delivery: { kind: webhook, url: "http://127.0.0.1:9/x", secret: "${newSecret()}" } }
`);
  assert.deepEqual(issues, ['events.subscriptions[0].orderBy: the jetstream engine orders by `partitionkey` (else `patient`) only']);
});

test('JetStream retries: a failed attempt is redelivered by the server after the backoff; the last one dead-letters, and the key moves on', { timeout: 60_000 }, async () => {
  const stream = `HCGW_RETRY_${randomUUID().slice(0, 8).toUpperCase()}`;
  const secret = newSecret();
  const r = await startReceiver(secret);
  const gw = await startGateway(jetstreamConfig(stream, 2, 'flaky', r.url, secret, '{ maxAttempts: 3, baseMs: 20, maxMs: 50 }\n      circuitBreaker: { failures: 100, openMs: 1000 }'));
  const publish = (id: string) => gw.gw.events!.publish({ specversion: '1.0', id, source: '/t', type: 'test.happened', time: new Date().toISOString(), partitionkey: 'one-key', data: {} });
  try {
    r.failNext(2);
    await publish('ok-on-third');
    await waitFor(() => r.received.some((m) => m.id === 'ok-on-third'), 15_000, 'delivered on the third attempt');
    const retried = (await gw.gw.events!.metrics.retried.get()).values.reduce((n, v) => n + v.value, 0);
    assert.equal(retried, 2);

    r.status = 503;
    await publish('never');
    await waitFor(async () => (await gw.gw.events!.deadLetters('flaky')).length === 1, 15_000, 'dead letter');
    const [dl] = await gw.gw.events!.deadLetters('flaky');
    assert.equal(dl.reason, 'retries-exhausted');
    assert.equal(dl.attempts, 3);
    assert.equal((dl.event as { id: string }).id, 'never');
    r.status = 0;
    await publish('after-never');
    await waitFor(() => r.received.some((m) => m.id === 'after-never'), 15_000, 'the key moves on after the dead letter');
    assert.deepEqual(r.received.map((m) => m.id), ['ok-on-third', 'after-never']);
  } finally {
    await gw.close();
    await r.close();
    await deleteStreams(stream);
  }
});
