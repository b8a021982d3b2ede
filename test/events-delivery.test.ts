import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startGateway, startUpstream, tempDir, waitFor, type TestGateway } from './helpers.ts';
import { newSecret, signedHeaders, startReceiver, type Receiver } from './events-helpers.ts';
import type { CloudEvent } from '../gateway/events/types.ts';

const encounterSchema = `{ type: object, required: [resourceType, id, subject, status], properties: { resourceType: { const: Encounter }, id: { type: string }, status: { type: string }, subject: { type: object } } }`;

function encounter(patient: string, id = randomUUID(), extra: Partial<CloudEvent> = {}): CloudEvent {
  return {
    specversion: '1.0',
    id,
    source: '/test',
    type: 'encounter.discharged',
    time: new Date().toISOString(),
    patient,
    partitionkey: patient,
    data: { resourceType: 'Encounter', id: `enc-${id.slice(0, 8)}`, status: 'finished', subject: { reference: `Patient/${patient}` }, serviceProvider: { display: 'North' } },
    ...extra,
  };
}

interface Setup {
  gw: TestGateway;
  upstream: Awaited<ReturnType<typeof startUpstream>>;
  dir: string;
  close(): Promise<void>;
}

async function setup(subscriptions: string, opts: { inboundSecret?: string; dir?: string } = {}): Promise<Setup> {
  const dir = opts.dir ?? tempDir('hcgw-events-');
  const upstream = await startUpstream((req, res, body) => {
    res.setHeader('content-type', 'application/json');
    res.end(body || '{}');
  });
  const inbound = opts.inboundSecret ?? newSecret();
  const gw = await startGateway(`
version: 1
upstreams: { ehr: { url: "${upstream.url}" } }
routes:
  - id: discharge
    layer: system
    match: { methods: [POST], path: /ehr/Encounter/:id/discharge }
    target: { upstream: ehr, path: /Encounter/:id/discharge }
    emit:
      type: encounter.discharged
      on: [200]
      data: { resourceType: Encounter, id: "{{ params.id }}", status: finished, subject: { reference: "Patient/{{ body.patient }}" } }
      patient: "{{ body.patient }}"
      partitionkey: "{{ body.patient }}"
  - id: crm-in
    layer: event
    match: { methods: [POST], path: /events/in/crm }
    target: { secret: "${inbound}", types: [encounter.discharged] }
events:
  engine: { kind: embedded, dir: "${dir}" }
  schemas:
    encounter.discharged: { "1": ${encounterSchema} }
  subscriptions:
${subscriptions}
`);
  return {
    gw,
    upstream,
    dir,
    close: async () => {
      await gw.close();
      await upstream.close();
    },
  };
}

const webhookSub = (id: string, r: Receiver, secret: string, extra = '') => `
    - id: ${id}
      filter: { types: [encounter.discharged] }
      delivery: { kind: webhook, url: "${r.url}", secret: "${secret}" }
      retry: { maxAttempts: 3, baseMs: 5, maxMs: 20 }
${extra}`;

test('a published event reaches the webhook subscriber, signed: the receiver verifies it with standardwebhooks', async () => {
  const secret = newSecret();
  const r = await startReceiver(secret);
  const s = await setup(webhookSub('crm', r, secret));
  try {
    const ev = encounter('p1');
    const receipt = await s.gw.gw.events!.publish(ev);
    assert.equal(receipt.stored, true);
    await waitFor(() => r.received.length === 1, 5000, 'delivery');
    assert.equal(r.received[0].id, ev.id);
    assert.equal(r.received[0].dataschema, 'urn:hcgw:schema:encounter.discharged:1');
    assert.equal(r.rejected, 0);
  } finally {
    await s.close();
    await r.close();
  }
});

test('a receiver with another secret refuses the delivery (the signature is real), so it retries and dead-letters', async () => {
  const r = await startReceiver(newSecret());
  const s = await setup(webhookSub('crm', r, newSecret()));
  try {
    const ev = encounter('p1');
    await s.gw.gw.events!.publish(ev);
    await waitFor(async () => (await s.gw.gw.events!.deadLetters('crm')).length === 1, 5000, 'dead letter');
    assert.equal(r.rejected, 3, 'three attempts, all refused by the receiver');
    const [dl] = await s.gw.gw.events!.deadLetters('crm');
    assert.equal(dl.lastError, 'http 400');
    assert.equal(dl.attempts, 3);
  } finally {
    await s.close();
    await r.close();
  }
});

test('retries with backoff: two failures then success delivers once; DLQ retry and resend deliver again', async () => {
  const secret = newSecret();
  const r = await startReceiver(secret);
  const s = await setup(webhookSub('crm', r, secret));
  try {
    r.failNext(2);
    const ev = encounter('p1');
    await s.gw.gw.events!.publish(ev);
    await waitFor(() => r.received.length === 1, 5000, 'delivery after retries');
    const metrics = await s.gw.gw.metrics.registry.metrics();
    assert.match(metrics, /hcgw_events_retries_total\{subscription="crm"\} 2/);
    assert.match(metrics, /hcgw_events_delivered_total\{subscription="crm",type="encounter.discharged"\} 1/);

    r.status = 500;
    const ev2 = encounter('p2');
    await s.gw.gw.events!.publish(ev2);
    await waitFor(async () => (await s.gw.gw.events!.deadLetters('crm')).length === 1, 5000, 'dead letter');
    r.status = 0;
    const [dl] = await s.gw.gw.events!.deadLetters('crm');
    assert.equal(dl.lastError, 'http 500');
    assert.equal(await s.gw.gw.events!.retryDeadLetter(dl.id), true);
    await waitFor(() => r.received.some((m) => m.id === ev2.id), 5000, 'dead letter retried');
    assert.equal((await s.gw.gw.events!.deadLetters('crm')).length, 0);

    const before = r.received.length;
    assert.equal(await s.gw.gw.events!.resend('crm', 1), 2);
    await waitFor(() => r.received.length === before + 2, 5000, 'resend');
    assert.deepEqual(r.received.slice(before).map((m) => m.id), [ev.id, ev2.id]);
    assert.deepEqual(r.duplicates().sort(), [ev.id, ev2.id].sort(), 'resent events are flagged by id as duplicates');
  } finally {
    await s.close();
    await r.close();
  }
});

test('ordering per key: a failing event holds back the later events of its key only', async () => {
  const secret = newSecret();
  const r = await startReceiver(secret, { delayMs: 2 });
  const s = await setup(webhookSub('crm', r, secret, '      concurrency: 4'));
  try {
    r.failNext(1);
    const keys = ['a', 'b', 'c'];
    const sent: Record<string, string[]> = { a: [], b: [], c: [] };
    for (let i = 0; i < 30; i++) {
      const k = keys[i % 3];
      const ev = encounter(k);
      sent[k].push(ev.id);
      await s.gw.gw.events!.publish(ev);
    }
    await waitFor(() => r.received.length === 30, 10000, 'all delivered');
    for (const k of keys) {
      assert.deepEqual(r.received.filter((m) => m.patient === k).map((m) => m.id), sent[k], `key ${k} in publish order`);
    }
  } finally {
    await s.close();
    await r.close();
  }
});

test('schema-invalid events are dead-lettered with the reason and never delivered', async () => {
  const secret = newSecret();
  const r = await startReceiver(secret);
  const s = await setup(webhookSub('crm', r, secret));
  try {
    const events = s.gw.gw.events!;
    const bad = [
      encounter('p1', randomUUID(), { data: { resourceType: 'Encounter', id: 'x' } }),
      encounter('p1', randomUUID(), { type: 'unknown.type' }),
      encounter('p1', randomUUID(), { dataschema: 'urn:hcgw:schema:encounter.discharged:9' }),
      { ...encounter('p1'), specversion: '0.3' } as unknown as CloudEvent,
      { ...encounter('p1'), 'Bad-Ext': 'x' } as unknown as CloudEvent,
    ];
    for (const ev of bad) await assert.rejects(events.publish(ev), /schema-invalid|unknown-type|unknown-schema-version|invalid-envelope/);
    const dls = await events.deadLetters();
    assert.deepEqual(dls.map((d) => d.reason), ['schema-invalid', 'unknown-type', 'unknown-schema-version', 'invalid-envelope', 'invalid-envelope']);
    assert.match(dls[0].lastError!, /required property 'subject'|required property 'status'/);
    const good = encounter('p1');
    await events.publish(good);
    await waitFor(() => r.received.length === 1, 5000, 'good one delivered');
    await new Promise((d) => setTimeout(d, 100));
    assert.deepEqual(r.received.map((m) => m.id), [good.id]);
    assert.equal(await events.log.lastSequence(), 1, 'only the valid event was stored');
  } finally {
    await s.close();
    await r.close();
  }
});

test('inbound webhook: valid signature stored once (202, then 200 duplicate); bad or stale signatures refused and not stored', async () => {
  const secret = newSecret();
  const inboundSecret = newSecret();
  const r = await startReceiver(secret);
  const s = await setup(webhookSub('crm', r, secret), { inboundSecret });
  try {
    const url = `${s.gw.url}/events/in/crm`;
    const post = (body: string, headers: Record<string, string>) => fetch(url, { method: 'POST', body, headers });
    const id = `msg_${randomUUID()}`;
    const body = JSON.stringify({ type: 'encounter.discharged', timestamp: new Date().toISOString(), data: encounter('p7').data });
    const first = await post(body, signedHeaders(inboundSecret, id, body));
    assert.equal(first.status, 202);
    const again = await post(body, signedHeaders(inboundSecret, id, body));
    assert.equal(again.status, 200);
    assert.equal((await again.json()).duplicate, true);

    const refused = [
      ['wrong secret', signedHeaders(newSecret(), `msg_${randomUUID()}`, body)],
      ['stale (6 min)', signedHeaders(inboundSecret, `msg_${randomUUID()}`, body, new Date(Date.now() - 6 * 60_000))],
      ['future (6 min)', signedHeaders(inboundSecret, `msg_${randomUUID()}`, body, new Date(Date.now() + 6 * 60_000))],
      ['no signature', { 'content-type': 'application/json', 'webhook-id': `msg_${randomUUID()}`, 'webhook-timestamp': String(Math.floor(Date.now() / 1000)) }],
      ['body changed', { ...signedHeaders(inboundSecret, `msg_${randomUUID()}`, body) }],
    ] as const;
    for (const [what, headers] of refused) {
      const b = what === 'body changed' ? body.replace('p7', 'p8') : body;
      const res = await post(b, headers as Record<string, string>);
      assert.equal(res.status, 401, what);
      const problem = await res.json();
      assert.equal(problem.type, 'https://hcgw.dev/problems/invalid-webhook-signature', what);
    }
    const invalidBody = JSON.stringify({ type: 'encounter.discharged', timestamp: new Date().toISOString(), data: { resourceType: 'Encounter' } });
    const invalid = await post(invalidBody, signedHeaders(inboundSecret, `msg_${randomUUID()}`, invalidBody));
    assert.equal(invalid.status, 422);
    assert.equal(await s.gw.gw.events!.log.lastSequence(), 1, 'one event stored');
    await waitFor(() => r.received.length === 1, 5000, 'delivery');
    assert.equal(r.received[0].id, id);
  } finally {
    await s.close();
    await r.close();
  }
});

test('route emit: a successful discharge publishes encounter.discharged built from the request', async () => {
  const secret = newSecret();
  const r = await startReceiver(secret);
  const s = await setup(webhookSub('crm', r, secret));
  try {
    const res = await fetch(`${s.gw.url}/ehr/Encounter/e42/discharge`, { method: 'POST', body: JSON.stringify({ patient: 'p9' }), headers: { 'content-type': 'application/json' } });
    assert.equal(res.status, 200);
    await waitFor(() => r.received.length === 1, 5000, 'emitted event delivered');
    const m = r.received[0];
    assert.equal(m.type, 'encounter.discharged');
    assert.equal(m.source, '/routes/discharge');
    assert.equal(m.patient, 'p9');
    assert.deepEqual(m.data.subject, { reference: 'Patient/p9' });
    assert.equal(m.data.id, 'e42');
  } finally {
    await s.close();
    await r.close();
  }
});
