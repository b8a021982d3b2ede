import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createAuditRegistry } from '../gateway/audit/registry.ts';
import { verifyAuditFiles } from '../gateway/audit/verify.ts';
import { createMetrics, type Metrics } from '../gateway/ops/metrics.ts';
import { auditSection, captureLogger, tempDir, waitFor } from './helpers.ts';

/**
 * The audit file on a real, tiny file system (a tmpfs this test mounts): a full disk, an unwritable start,
 * a spill on another file system. The chain must verify in every case, with each hole stated in it.
 */

const HASH_KEY = 'h'.repeat(32);
const CLI = fileURLToPath(new URL('../gateway/cli/index.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const log = captureLogger();
const mounts: string[] = [];

/** A tmpfs of `kib` KiB, or undefined where mounting is not permitted (the tests then skip). */
function mountTmpfs(kib: number): string | undefined {
  const dir = tempDir('hcgw-tmpfs-');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${kib}k`, 'tmpfs', dir], { stdio: 'ignore' });
  } catch {
    return undefined;
  }
  mounts.push(dir);
  return dir;
}
const canMount = (() => {
  const d = mountTmpfs(16);
  return d !== undefined;
})();

/** Fills the file system at `dir` with a filler file; returns a function that frees the space again. */
function fill(dir: string): () => void {
  const filler = join(dir, 'filler');
  const chunk = Buffer.alloc(4096, 1);
  try {
    for (let i = 0; i < 1_000_000; i++) writeFileSync(filler, chunk, { flag: 'a' });
  } catch (err) {
    assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
  }
  return () => rmSync(filler);
}

async function counter(metrics: Metrics, name: string, labels: Record<string, string>): Promise<number> {
  const m = metrics.registry.getSingleMetric(name);
  const vs = (await m!.get()).values.filter((x) => Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  return vs.reduce((a, v) => a + v.value, 0);
}

function trailOn(file: Record<string, unknown>, dir = tempDir('hcgw-audit-cfg-')) {
  const metrics = createMetrics();
  const registry = createAuditRegistry({ logger: log.logger, metrics });
  const sink = { kind: 'file', retryInitialMs: 20, closeTimeoutMs: 2000, ...file };
  const { trail } = registry.acquire(auditSection({ hashKey: HASH_KEY, flushIntervalMs: 1, sinks: [sink] }), dir);
  let n = 0;
  /** Appends `count` records, one per turn, and waits until they are sealed. */
  const append = async (count: number) => {
    for (let i = 0; i < count; i++) trail.append({ n: n++, pad: 'p'.repeat(200) });
    await trail.flush();
  };
  return { metrics, registry, trail, append, appended: () => n };
}

const records = (file: string) =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('audit trail on a full or unwritable disk (tmpfs)', { skip: canMount ? false : 'mounting a tmpfs is not permitted here' }, () => {
  after(() => {
    for (const m of mounts) execFileSync('umount', ['-l', m]);
    log.logger.close();
  });

  test('disk full: dropped records become one signed gap entry; verify passes and reports it', async () => {
    const disk = mountTmpfs(64)!;
    const file = join(disk, 'audit.log');
    const t = trailOn({ path: file, maxBufferRecords: 20 });
    await t.append(10);
    await waitFor(() => existsSync(file) && records(file).length === 10, 5000, 'the first records on disk');
    const free = fill(disk);
    // The last page of the file may still take a few records: write until the disk refuses.
    const failures = () => counter(t.metrics, 'hcgw_audit_sink_failures_total', { kind: 'write' });
    for (let i = 0; i < 50 && (await failures()) === 0; i++) {
      await t.append(2);
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok((await failures()) > 0, 'the disk is full');
    await t.append(100);
    const dropped = await counter(t.metrics, 'hcgw_audit_records_dropped_total', { reason: 'overflow' });
    assert.ok(dropped >= 80, `dropped ${dropped}`);
    assert.equal(t.trail.healthy, false, 'fail-closed routes refuse while records are lost');
    free();
    const freedAt = Date.now();
    await waitFor(() => t.trail.healthy, 3000, 'recovery after space returns');
    assert.ok(Date.now() - freedAt < 1500, `recovered in ${Date.now() - freedAt} ms, not at the next long retry`);
    await t.append(5);
    await t.registry.close();

    const entries = records(file);
    const gaps = entries.filter((e) => e.chain === 'gap');
    assert.equal(gaps.length, 1);
    assert.equal(gaps[0].count, dropped);
    assert.equal(gaps[0].reason, 'disk full');
    assert.equal(entries.length, t.appended() - dropped + 1, 'every record kept, and the gap entry');
    const r = await verifyAuditFiles([file]);
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(r.records, t.appended() - dropped);
    assert.deepEqual(
      r.notes?.map((x) => [x.kind, x.count, x.reason]),
      [['gap', dropped, 'disk full']],
    );
    // The entry sits where the records were lost: the numbers jump by `dropped` across it.
    const at = entries.findIndex((e) => e.chain === 'gap');
    assert.equal(Number(entries[at + 1].n) - Number(entries[at - 1].n), dropped + 1);
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', CLI, 'audit', 'verify', file], { cwd: ROOT, timeout: 60_000 });
    const expected = new RegExp(`^NOTE gap of ${dropped} records \\(disk full\\) between \\d{4}-\\d\\d-\\d\\dT[^ ]+ and \\d{4}-[^ ]+, at .*audit\\.log:${at + 1}\\nOK ${r.records} records\\n$`);
    assert.match(stdout, expected);
  });

  test('a forged or edited gap entry is not accepted', async () => {
    const disk = mountTmpfs(64)!;
    const file = join(disk, 'audit.log');
    const t = trailOn({ path: file, maxBufferRecords: 5 });
    await t.append(3);
    await waitFor(() => existsSync(file) && records(file).length === 3, 5000, 'records on disk');
    const free = fill(disk);
    await t.append(20);
    await waitFor(async () => (await counter(t.metrics, 'hcgw_audit_records_dropped_total', {})) === 15, 5000, 'drops');
    free();
    await waitFor(() => t.trail.healthy, 3000, 'recovery');
    await t.append(2);
    await t.registry.close();
    const text = readFileSync(file, 'utf8');
    assert.ok((await verifyAuditFiles([file])).notes?.length === 1, 'the untouched file verifies with its gap');
    const copy = join(tempDir('hcgw-forged-'), 'audit.log');
    for (const [edit, why] of [
      [text.replace(/"count":\d+/, '"count":1'), /altered/],
      [text.replace(/"chain":"gap"/, '"chain":"gapp"'), /altered|chain broken/],
      [text.replace(/"resume":"[0-9a-f]{64}"/, `"resume":"${'0'.repeat(64)}"`), /altered/],
    ] as const) {
      writeFileSync(copy, edit);
      const r = await verifyAuditFiles([copy]);
      assert.ok(!r.ok && why.test(r.reason), JSON.stringify(r));
    }
    // Deleting records and writing a self-made "gap" without its hash fails as before.
    const lines = text.split('\n').filter(Boolean);
    const fake = JSON.stringify({ chain: 'gap', count: 1, reason: 'disk full', resume: 'x', prev: 'y', hash: 'z' });
    writeFileSync(copy, [...lines.slice(0, 2), fake, ...lines.slice(3)].join('\n') + '\n');
    assert.equal((await verifyAuditFiles([copy])).ok, false);
  });

  test('spill: a full disk loses nothing; the spill moves back in order once space returns', async () => {
    const disk = mountTmpfs(64)!;
    const file = join(disk, 'audit.log');
    const spill = join(tempDir('hcgw-spill-'), 'audit.spill');
    const t = trailOn({ path: file, spillPath: spill, maxBufferRecords: 1000 });
    await t.append(10);
    await waitFor(() => existsSync(file) && records(file).length === 10, 5000, 'the first records on disk');
    const free = fill(disk);
    await t.append(150);
    await waitFor(() => existsSync(spill) && statSync(spill).size > 0, 5000, 'records in the spill');
    await waitFor(() => readFileSync(spill, 'utf8').split('\n').filter(Boolean).length >= 140, 5000, 'the rest spilled');
    assert.equal(t.trail.healthy, true, 'nothing is being lost, so fail-closed routes keep serving');
    free();
    await t.append(10);
    await waitFor(() => statSync(spill).size === 0, 5000, 'the spill moved back');
    await t.registry.close();
    assert.equal(await counter(t.metrics, 'hcgw_audit_records_dropped_total', {}), 0);
    const entries = records(file);
    assert.deepEqual(
      entries.map((e) => e.n),
      Array.from({ length: 170 }, (_, i) => i),
      'every record, once, in order',
    );
    const r = await verifyAuditFiles([file]);
    assert.ok(r.ok && r.records === 170 && !r.notes, JSON.stringify(r));
  });

  test('spill survives a restart: the next process continues the chain from the spill and moves it back', async () => {
    const disk = mountTmpfs(64)!;
    const file = join(disk, 'audit.log');
    const spill = join(tempDir('hcgw-spill-'), 'audit.spill');
    const first = trailOn({ path: file, spillPath: spill });
    await first.append(5);
    await waitFor(() => existsSync(file) && records(file).length === 5, 5000, 'records on disk');
    const free = fill(disk);
    await first.append(40);
    await first.registry.close();
    assert.equal(readFileSync(spill, 'utf8').split('\n').filter(Boolean).length, 40, 'shutdown put the rest in the spill');
    free();
    const second = trailOn({ path: file, spillPath: spill });
    await second.append(3);
    await second.registry.close();
    assert.equal(statSync(spill).size, 0);
    const r = await verifyAuditFiles([file]);
    assert.ok(r.ok && r.records === 48 && !r.notes, JSON.stringify(r));
  });

  test('unwritable at start: the chain is a signed segment boundary, and the complete file verifies', async () => {
    const disk = mountTmpfs(64)!;
    const file = join(disk, 'audit.log');
    const before = trailOn({ path: file });
    await before.append(5);
    await before.registry.close();
    execFileSync('mount', ['-o', 'remount,ro', disk]);
    const t = trailOn({ path: file, retryInitialMs: 20 });
    await t.append(4);
    await waitFor(async () => (await counter(t.metrics, 'hcgw_audit_sink_failures_total', { kind: 'open' })) >= 2, 5000, 'failed opens');
    execFileSync('mount', ['-o', 'remount,rw', disk]);
    await t.append(3);
    await t.registry.close();
    const entries = records(file);
    assert.deepEqual(
      entries.map((e) => e.chain ?? e.n),
      [0, 1, 2, 3, 4, 'segment', 0, 1, 2, 3, 4, 5, 6],
    );
    const r = await verifyAuditFiles([file]);
    assert.ok(r.ok && r.records === 12, JSON.stringify(r));
    assert.deepEqual(
      r.notes?.map((x) => x.kind),
      ['segment'],
    );
    assert.match(String(entries[5].reason), /unreadable when this writer started/);
  });

  test('a path briefly unusable at start (EISDIR, no mount needed): the records join the file through a segment boundary', async () => {
    const dir = tempDir('hcgw-audit-late-');
    const file = join(dir, 'audit.log');
    const before = trailOn({ path: file });
    await before.append(3);
    await before.registry.close();
    // The path is briefly a directory (a misconfigured volume): open fails with EISDIR, then it is fixed.
    const aside = join(dir, 'aside.log');
    execFileSync('mv', [file, aside]);
    mkdirSync(file);
    const t = trailOn({ path: file, retryInitialMs: 20 });
    await t.append(2);
    await waitFor(async () => (await counter(t.metrics, 'hcgw_audit_sink_failures_total', { kind: 'open' })) >= 1, 5000, 'a failed open');
    rmSync(file, { recursive: true });
    execFileSync('mv', [aside, file]);
    await t.registry.close();
    const r = await verifyAuditFiles([file]);
    assert.ok(r.ok && r.records === 5, JSON.stringify(r));
    assert.deepEqual(
      r.notes?.map((x) => x.kind),
      ['segment'],
      'the trail started from genesis while the file was unreadable: stated, not hidden',
    );
  });
});
