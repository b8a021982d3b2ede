import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { GENESIS, canonicalJson, hashOfLine, recordHash, seal } from '../gateway/audit/chain.ts';
import { createAuditRegistry } from '../gateway/audit/registry.ts';
import { auditFilesInOrder } from '../gateway/audit/sinks/file.ts';
import { linesToBuffer } from '../gateway/audit/sinks/line-bytes.ts';
import { verifyAuditFiles } from '../gateway/audit/verify.ts';
import { createMetrics } from '../gateway/ops/metrics.ts';
import { auditSection, captureLogger, readAuditRecords, tempDir } from './helpers.ts';

const CLI = fileURLToPath(new URL('../gateway/cli/index.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const HASH_KEY = 'k'.repeat(32);

const log = captureLogger();
const metrics = createMetrics();

/** Writes `count` records through a real trail (file sink) and closes it, as a gateway run would. */
async function writeRun(dir: string, count: number, opts: { from?: number; maxBytes?: number } = {}): Promise<string> {
  const registry = createAuditRegistry({ logger: log.logger, metrics });
  const section = auditSection({ hashKey: HASH_KEY, flushIntervalMs: 5, sinks: [{ kind: 'file', path: 'audit.log', maxBytes: opts.maxBytes ?? 0 }] });
  const { trail } = registry.acquire(section, dir);
  for (let i = 0; i < count; i++) trail.append({ n: (opts.from ?? 0) + i, route: 'test-route', outcome: { code: '0', status: 200 } });
  await registry.close();
  return join(dir, 'audit.log');
}

const freshDir = () => tempDir('hcgw-audit-');
const lines = (file: string) => readFileSync(file, 'utf8').split('\n').filter(Boolean);
const rewrite = (file: string, ls: string[]) => writeFileSync(file, `${ls.join('\n')}\n`);

async function cli(...args: string[]): Promise<{ code: number; stdout: string }> {
  try {
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', CLI, 'audit', 'verify', ...args], { cwd: ROOT, timeout: 60_000 });
    return { code: 0, stdout };
  } catch (err) {
    const e = err as { code?: number; stdout?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '' };
  }
}

describe('audit hash chain and verify', () => {
  after(() => log.logger.close());

  test('an untouched log verifies; every record links to the one before, starting at genesis', async () => {
    const file = await writeRun(freshDir(), 6);
    const recs = readAuditRecords(file);
    assert.equal(recs.length, 6);
    assert.equal(recs[0].prev, GENESIS);
    recs.forEach((r, i) => {
      assert.equal(r.n, i, 'records keep their append order');
      assert.equal(r.hash, recordHash(r));
      if (i) assert.equal(r.prev, recs[i - 1].hash);
    });
    assert.deepEqual(await verifyAuditFiles([file]), { ok: true, records: 6, head: recs[5].hash });
  });

  test('an edited record is reported at its own line', async () => {
    const file = await writeRun(freshDir(), 6);
    const ls = lines(file);
    ls[2] = ls[2].replace('"status":200', '"status":403');
    rewrite(file, ls);
    const r = await verifyAuditFiles([file]);
    assert.equal(r.ok, false);
    assert.ok(!r.ok && r.line === 3 && /altered/.test(r.reason) && r.records === 2, JSON.stringify(r));
  });

  test('an edit that also recomputes the hash breaks the link of the next line', async () => {
    const file = await writeRun(freshDir(), 6);
    const ls = lines(file);
    const forged = { ...JSON.parse(ls[2]), route: 'other-route' };
    forged.hash = recordHash(forged);
    ls[2] = JSON.stringify(forged);
    rewrite(file, ls);
    const r = await verifyAuditFiles([file]);
    assert.ok(!r.ok && r.line === 4 && /chain broken/.test(r.reason), JSON.stringify(r));
  });

  test('a deleted record is reported where the gap is', async () => {
    const file = await writeRun(freshDir(), 6);
    const ls = lines(file);
    ls.splice(2, 1);
    rewrite(file, ls);
    const r = await verifyAuditFiles([file]);
    assert.ok(!r.ok && r.line === 3 && /chain broken/.test(r.reason), JSON.stringify(r));
  });

  test('an inserted record (even a valid copy of another) is reported at its line', async () => {
    const file = await writeRun(freshDir(), 6);
    const ls = lines(file);
    ls.splice(4, 0, ls[1]);
    rewrite(file, ls);
    const r = await verifyAuditFiles([file]);
    assert.ok(!r.ok && r.line === 5 && /chain broken/.test(r.reason), JSON.stringify(r));
  });

  test('removing the oldest records is detected; --partial accepts a chain that starts later', async () => {
    const file = await writeRun(freshDir(), 5);
    rewrite(file, lines(file).slice(2));
    const strict = await verifyAuditFiles([file]);
    assert.ok(!strict.ok && strict.line === 1, JSON.stringify(strict));
    const partial = await verifyAuditFiles([file], { partial: true });
    assert.equal(partial.ok && partial.records, 3);
  });

  test('key order and whitespace do not change the hash (JSON tools may reformat lines)', async () => {
    const file = await writeRun(freshDir(), 3);
    const ls = lines(file);
    const rec = JSON.parse(ls[1]) as Record<string, unknown>;
    ls[1] = JSON.stringify(Object.fromEntries(Object.entries(rec).reverse()), null, 1).replace(/\n/g, ' ');
    rewrite(file, ls);
    assert.equal((await verifyAuditFiles([file])).ok, true);
  });

  test('rotation keeps the chain across files; verify wants the files oldest first', async () => {
    const dir = freshDir();
    const live = await writeRun(dir, 12, { maxBytes: 600 });
    const files = await auditFilesInOrder(live);
    assert.ok(files.length >= 3, `rotated into ${files.length} files`);
    assert.equal(files.at(-1), live);
    assert.match(files[0], /audit\.log\.000001$/);
    for (const f of files) assert.ok(readFileSync(f).length <= 600, `${f} stays within maxBytes`);
    for (let i = 1; i < files.length; i++) {
      const prevFile = readAuditRecords(files[i - 1]);
      assert.equal(readAuditRecords(files[i])[0].prev, prevFile.at(-1)!.hash, 'first record of a new file links to the last of the old one');
    }
    assert.equal((await verifyAuditFiles(files)).records, 12);
    const swapped = [files[1], files[0], ...files.slice(2)];
    const r = await verifyAuditFiles(swapped);
    assert.ok(!r.ok && r.file === files[1] && r.line === 1, JSON.stringify(r));
  });

  test('a restart continues the chain from the newest record on disk, across rotated files', async () => {
    const dir = freshDir();
    await writeRun(dir, 4, { maxBytes: 600 });
    const live = await writeRun(dir, 4, { from: 4, maxBytes: 600 });
    const files = await auditFilesInOrder(live);
    const all = files.flatMap(readAuditRecords);
    assert.deepEqual(
      all.map((r) => r.n),
      [0, 1, 2, 3, 4, 5, 6, 7],
    );
    assert.deepEqual(await verifyAuditFiles(files), { ok: true, records: 8, head: all[7].hash });
  });

  test('a record torn by a crash mid-write is removed on start, and the chain continues', async () => {
    const dir = freshDir();
    const file = await writeRun(dir, 3);
    appendFileSync(file, '{"n":99,"route":"torn');
    await writeRun(dir, 2, { from: 3 });
    assert.deepEqual(
      readAuditRecords(file).map((r) => r.n),
      [0, 1, 2, 3, 4],
    );
    assert.equal((await verifyAuditFiles([file])).ok, true);
    assert.ok(log.lines.some((l) => l.includes('partial record')));
  });

  test('hcgw audit verify: OK <n> records (exit 0) or the first broken line (exit 1)', async () => {
    const dir = freshDir();
    const live = await writeRun(dir, 5, { maxBytes: 600 });
    const files = await auditFilesInOrder(live);
    assert.deepEqual(await cli(...files), { code: 0, stdout: 'OK 5 records\n' });
    assert.deepEqual(await cli('--rotated', live), { code: 0, stdout: 'OK 5 records\n' });
    const ls = lines(live);
    rewrite(live, [ls[0].replace('"n":', '"n":1'), ...ls.slice(1)]);
    const broken = await cli(...files);
    assert.equal(broken.code, 1);
    assert.ok(broken.stdout.startsWith(`BROKEN ${live}:1: record was altered`), broken.stdout);
  });
});

describe('canonical JSON (what every record hash is taken over)', () => {
  /** The original definition, kept here as the specification the faster one must match byte for byte. */
  function reference(value: unknown): string {
    if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
    if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : reference(v))).join(',')}]`;
    const parts: string[] = [];
    for (const key of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[key];
      if (v !== undefined) parts.push(`${JSON.stringify(key)}:${reference(v)}`);
    }
    return `{${parts.join(',')}}`;
  }

  test('matches the sorted-keys definition for any JSON value, undefined members and odd keys included', () => {
    const key = fc.oneof(fc.string(), fc.constantFrom('__proto__', 'a', 'B', 'é', '\u2028', '10', '2', ''));
    const value = fc.letrec((tie) => ({
      any: fc.oneof({ depthSize: 'small' }, fc.jsonValue({ maxDepth: 2 }), fc.constant(undefined), tie('obj'), tie('arr')),
      obj: fc.dictionary(key, tie('any'), { maxKeys: 6 }),
      arr: fc.array(tie('any'), { maxLength: 5 }),
    })).any;
    fc.assert(fc.property(value, (v) => assert.equal(canonicalJson(v), reference(v))), { numRuns: 2000 });
    // The same values with their keys already sorted (as records are built): the engine's JSON.stringify
    // path must write exactly what the definition says, integer-like keys and `__proto__` included.
    const sortedDeep = (v: unknown): unknown => {
      if (v === null || typeof v !== 'object') return v;
      if (Array.isArray(v)) return v.map(sortedDeep);
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(v).sort()) Object.defineProperty(out, k, { value: sortedDeep((v as Record<string, unknown>)[k]), enumerable: true, writable: true, configurable: true });
      return out;
    };
    fc.assert(fc.property(value, (v) => assert.equal(canonicalJson(sortedDeep(v)), reference(v))), { numRuns: 2000 });
  });

  test('what JSON.stringify writes differently from the definition never takes the fast path', () => {
    class Tagged extends Array {
      toJSON() {
        return 'tagged';
      }
    }
    const odd: Array<[unknown, string]> = [
      [{ a: new Date(0) }, '{"a":{}}'],
      [{ a: () => 1, b: 2 }, '{"a":null,"b":2}'],
      [{ a: Symbol('s') }, '{"a":null}'],
      [{ a: { toJSON: () => 'x' } }, '{"a":{"toJSON":null}}'],
      [{ a: Tagged.from([1]) }, '{"a":[1]}'],
      [{ a: Object.create({ inherited: 1 }) }, '{"a":{}}'],
      [{ 10: 'x', 2: 'y' }, '{"10":"x","2":"y"}'],
      [[undefined, { b: undefined }], '[null,{}]'],
      [undefined, 'null'],
    ];
    for (const [v, want] of odd) {
      assert.equal(reference(v), want);
      assert.equal(canonicalJson(v), want);
    }
  });

  test('a polluted Object.prototype (enumerable keys) changes nothing: records hash over their own keys only', () => {
    const sortedRecordLike = fc.dictionary(fc.constantFrom('action', 'agent', 'b', 'm', 'recorded', 'z'), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 5 }).map((o) => {
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(o).sort()) out[k] = o[k];
      return out;
    });
    const pollution = fc.tuple(fc.constantFrom('a', 'aa', 'n', 'zz', '0', '__x'), fc.oneof(fc.constant(1), fc.constant('x'), fc.constant({}), fc.constant(() => 1), fc.constant(null)));
    fc.assert(
      fc.property(sortedRecordLike, pollution, (record, [key, polluted]) => {
        const want = reference(record);
        const proto = Object.prototype as Record<string, unknown>;
        proto[key] = polluted;
        try {
          assert.equal(canonicalJson(record), want);
          assert.equal(canonicalJson({ nested: [record, { deeper: record }] }), reference({ nested: [record, { deeper: record }] }));
        } finally {
          delete proto[key];
        }
      }),
      { numRuns: 500 },
    );
  });

  test('key order and spacing of the input do not change it', () => {
    assert.equal(canonicalJson(JSON.parse('{ "b": 1, "a": [ {"d": 2, "c": null} ] }')), '{"a":[{"c":null,"d":2}],"b":1}');
  });
});

describe('sealing a record', () => {
  test("a record's own prev or hash never replaces the link: the line links to the chain's head, whatever the record says", () => {
    const head = 'a'.repeat(64);
    for (const record of [{ resource: { resourceType: 'AuditEvent' } }, { prev: GENESIS, resource: {} }, { resource: {}, prev: 'f'.repeat(64) }, JSON.parse('{"__proto__": {"prev": "x"}, "resource": {}}')]) {
      const { line, hash } = seal(record, head);
      const parsed = JSON.parse(line) as Record<string, unknown>;
      assert.equal(parsed.prev, head);
      assert.equal(hashOfLine(line), hash);
      assert.equal(recordHash(parsed), hash, 'the line verifies as written');
    }
  });
});

describe('audit lines to bytes (file and spill sinks)', () => {
  test('writes exactly what Buffer.from(lines.join("\\n") + "\\n") writes, for any text', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ unit: 'binary' }), { minLength: 1, maxLength: 8 }), (lines) => {
        const bytes = lines.reduce((n, l) => n + Buffer.byteLength(l) + 1, 0);
        assert.deepEqual(linesToBuffer(lines, bytes), Buffer.from(`${lines.join('\n')}\n`));
      }),
      { numRuns: 500 },
    );
    assert.deepEqual(linesToBuffer(['é', '\ud83d', '😀'], 2 + 1 + 3 + 1 + 4 + 1), Buffer.from('é\n\ud83d\n😀\n'));
  });

  test('a byte count that does not match the lines is refused, never written short', () => {
    assert.throws(() => linesToBuffer(['abc'], 3), RangeError);
    assert.throws(() => linesToBuffer(['abc'], 5), RangeError);
  });
});
