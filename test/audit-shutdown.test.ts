import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { verifyAuditFiles } from '../gateway/audit/verify.ts';
import { readAuditRecords, startUpstream, writeConfig, type TestUpstream } from './helpers.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const WORKERS = 8;
const MAX_REQUESTS = 600;
const SIGTERM_AFTER = 80;

/** `hcgw start` as an operator runs it; resolves with the port from its 'gateway listening' log line. */
function startCli(config: string): Promise<{ child: ChildProcess; port: number; exited: Promise<number | null> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'gateway/cli/index.ts', 'start', '--config', config], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('gateway did not start within 30s'));
    }, 30_000);
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      for (const line of buf.split('\n')) {
        if (!line.includes('"gateway listening"')) continue;
        clearTimeout(timer);
        resolve({ child, port: (JSON.parse(line) as { port: number }).port, exited });
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited (${code}) before listening`));
    });
  });
}

describe('graceful shutdown under load', () => {
  let up: TestUpstream;
  let child: ChildProcess | undefined;
  before(async () => {
    // Slow enough that requests are in flight when SIGTERM arrives.
    up = await startUpstream((_req, res) => setTimeout(() => res.end('{"ok":true}'), 15));
  });
  after(async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await up.close();
  });

  test('SIGTERM mid-load: every response that reached a client has its audit record, in one intact chain', async () => {
    const config = writeConfig(`version: 1
server: { port: 0 }
upstreams: { u: { url: "${up.url}" } }
audit:
  hashKey: "${'s'.repeat(32)}"
  flushIntervalMs: 250
  sinks: [ { kind: file, path: audit.log } ]
routes:
  - { id: r, layer: system, match: { path: /r }, target: { upstream: u, path: /x }, policies: [ { audit: {} } ] }
`);
    const auditFile = join(dirname(config), 'audit.log');
    const started = await startCli(config);
    child = started.child;
    const url = `http://127.0.0.1:${started.port}/r`;

    let sent = 0;
    let responses = 0;
    let afterSigterm = 0;
    let sigtermAt: number | undefined;
    const deadline = Date.now() + 30_000;
    const worker = async () => {
      while (sent < MAX_REQUESTS && Date.now() < deadline) {
        sent++;
        try {
          const res = await fetch(url, { signal: AbortSignal.timeout(15_000) });
          await res.arrayBuffer();
          responses++;
          if (sigtermAt !== undefined) afterSigterm++;
        } catch {
          if (sigtermAt !== undefined) return; // the gateway stopped accepting: this worker is done
        }
        if (sigtermAt === undefined && responses >= SIGTERM_AFTER) {
          sigtermAt = Date.now();
          child!.kill('SIGTERM');
        }
      }
    };
    await Promise.all(Array.from({ length: WORKERS }, worker));
    assert.ok(sigtermAt !== undefined, 'SIGTERM was sent');
    const code = await Promise.race([started.exited, new Promise<string>((r) => setTimeout(() => r('timeout'), 20_000).unref())]);
    assert.equal(code, 0, 'the gateway exited cleanly');

    const records = readAuditRecords(auditFile);
    assert.ok(afterSigterm > 0, 'requests in flight at SIGTERM were still answered');
    assert.equal(records.length, responses, `records (${records.length}) == responses received (${responses}); ${sent} sent`);
    assert.deepEqual(await verifyAuditFiles([auditFile]), { ok: true, records: responses, head: records.at(-1)!.hash });
  });
});
