/**
 * Cost of `audit.durability: before-response` against `batched`: the same audited route, one gateway
 * each, autocannon side by side (`npx tsx bench/durability.ts [seconds]`). Prints req/s and latency.
 */
import http from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { Gateway } from '../gateway/http/server.ts';
import { createLogger } from '../gateway/ops/logger.ts';

const seconds = Number(process.argv[2] ?? 5);
const up = http.createServer((_req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end('{"resourceType":"Patient","id":"p1"}');
});
await new Promise<void>((r) => up.listen(0, '127.0.0.1', () => r()));
const upUrl = `http://127.0.0.1:${(up.address() as { port: number }).port}`;

for (const durability of ['batched', 'before-response']) {
  const dir = mkdtempSync(join(tmpdir(), 'hcgw-bench-dur-'));
  const file = join(dir, 'routes.yaml');
  writeFileSync(
    file,
    `version: 1
upstreams: { u: { url: "${upUrl}" } }
audit: { hashKey: "${'k'.repeat(32)}", durability: ${durability}, sinks: [ { kind: file, path: audit.log } ] }
routes:
  - { id: read, layer: system, match: { methods: [GET], path: /Patient/p1 }, target: { upstream: u, path: /Patient/p1 }, policies: [ { audit: {} } ] }
`,
  );
  const gw = await Gateway.create({ file, logger: createLogger({ level: 'error' }), port: 0, host: '127.0.0.1' });
  const { port } = await gw.listen();
  const url = `http://127.0.0.1:${port}/Patient/p1`;
  await autocannon({ url, connections: 10, duration: 1 });
  const r = await autocannon({ url, connections: 50, duration: seconds });
  console.log(`${durability.padEnd(16)} ${Math.round(r.requests.average)} req/s  p50 ${r.latency.p50} ms  p99 ${r.latency.p99} ms  errors ${r.errors + r.non2xx}`);
  await gw.close(2000);
}
up.close();
