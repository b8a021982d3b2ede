import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { tempDir } from './helpers.ts';
import { freePort, startNats, stopNats } from './events-helpers.ts';
import { FileEventLog } from '../gateway/events/file-log.ts';
import { JetStreamEventLog } from '../gateway/events/jetstream-log.ts';
import type { CloudEvent, EventLog } from '../gateway/events/types.ts';

const ev = (n: number, id: string = randomUUID()): CloudEvent => ({ specversion: '1.0', id, source: '/contract', type: 'contract.tested', time: new Date().toISOString(), data: { n } });

interface Engine {
  name: string;
  open(): Promise<EventLog>;
  /** Simulates a crash of whatever holds the log (process or server) and reopens. */
  restart(log: EventLog): Promise<EventLog>;
  cleanup(): Promise<void>;
}

function fileEngine(): Engine {
  const dir = tempDir('hcgw-contract-file-');
  return { name: 'embedded', open: () => FileEventLog.open(dir), restart: async (log) => (await log.close(), FileEventLog.open(dir)), cleanup: async () => undefined };
}

function jetstreamEngine(): Engine {
  const dir = tempDir('hcgw-contract-js-');
  const stream = `HCGW_CONTRACT_${randomUUID().slice(0, 8).toUpperCase()}`;
  let port = 0;
  let server: ChildProcess | undefined;
  const open = async () => {
    if (!server) {
      port ||= await freePort();
      server = await startNats(port, dir);
    }
    return JetStreamEventLog.open({ servers: [`nats://127.0.0.1:${port}`], stream });
  };
  return {
    name: 'jetstream',
    open,
    restart: async (log) => {
      await stopNats(server!);
      server = undefined;
      await log.close();
      return open();
    },
    cleanup: async () => {
      if (server) await stopNats(server);
    },
  };
}

for (const make of [fileEngine, jetstreamEngine]) {
  const engine = make();
  describe(`EventLog contract: ${engine.name}`, () => {
    let log: EventLog;
    before(async () => {
      log = await engine.open();
    });
    after(async () => {
      await log.close();
      await engine.cleanup();
    });

    test('publish resolves with increasing sequences; a repeated id is stored once', async () => {
      const a = await log.publish(ev(1));
      const id = randomUUID();
      const b = await log.publish(ev(2, id));
      const again = await log.publish(ev(2, id));
      assert.equal(a.stored, true);
      assert.equal(b.sequence, a.sequence + 1);
      assert.deepEqual(again, { sequence: b.sequence, stored: false });
      const concurrent = await Promise.all(Array.from({ length: 50 }, (_, i) => log.publish(ev(100 + i))));
      const seqs = concurrent.map((r) => r.sequence);
      assert.equal(new Set(seqs).size, 50);
      assert.equal(await log.lastSequence(), b.sequence + 50);
    });

    test('read returns events in order from a sequence; sequenceAt finds the first at or after a time', async () => {
      const head = await log.lastSequence();
      const t = new Date();
      await new Promise((r) => setTimeout(r, 20));
      await log.publish(ev(500));
      await log.publish(ev(501));
      const got = await log.read(head + 1, 10);
      assert.deepEqual(got.map((g) => (g.event.data as { n: number }).n), [500, 501]);
      assert.deepEqual(got.map((g) => g.sequence), [head + 1, head + 2]);
      assert.equal(await log.sequenceAt(t), head + 1);
      assert.equal((await log.read(head + 3, 10)).length, 0);
    });

    test('checkpoints and dead letters round-trip; removal reports whether there was one', async () => {
      await log.saveCheckpoint('sub-a', { next: 5, doneAbove: [7], redo: [2] });
      await log.saveCheckpoint('sub-a', { next: 6, doneAbove: [7] });
      assert.deepEqual(await log.loadCheckpoint('sub-a'), { next: 6, doneAbove: [7] });
      assert.equal(await log.loadCheckpoint('never'), undefined);
      await log.addDeadLetter({ id: 'sub-a:3', subscription: 'sub-a', sequence: 3, event: ev(3), reason: 'retries-exhausted', lastError: 'http 500', attempts: 3, at: new Date().toISOString() });
      await log.addDeadLetter({ id: 'sub-b:4', subscription: 'sub-b', sequence: 4, event: ev(4), reason: 'retries-exhausted', attempts: 3, at: new Date().toISOString() });
      assert.deepEqual((await log.deadLetters('sub-a')).map((d) => d.id), ['sub-a:3']);
      assert.equal(await log.removeDeadLetter('sub-a:3'), true);
      assert.equal(await log.removeDeadLetter('sub-a:3'), false);
    });

    test('after a crash and restart: every acknowledged event, checkpoint and dead letter is still there; dedup holds', async () => {
      const ids = await Promise.all(Array.from({ length: 100 }, async (_, i) => {
        const e = ev(1000 + i);
        await log.publish(e);
        return e.id;
      }));
      const head = await log.lastSequence();
      log = await engine.restart(log);
      assert.equal(await log.lastSequence(), head);
      const all = await log.read(1, 10_000);
      const stored = new Set(all.map((s) => s.event.id));
      for (const id of ids) assert.ok(stored.has(id), 'acknowledged event lost');
      assert.deepEqual(await log.loadCheckpoint('sub-a'), { next: 6, doneAbove: [7] });
      assert.deepEqual((await log.deadLetters()).map((d) => d.id), ['sub-b:4']);
      assert.equal((await log.publish(ev(0, ids[0]))).stored, false, 'an id stored before the restart is still a duplicate');
      assert.equal(await log.ready(), true);
    });
  });
}
