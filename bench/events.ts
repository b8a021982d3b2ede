/**
 * Event backbone bench: events/s published (durable receipts, 50 publishers) and publish-to-deliver latency
 * (publish call → verified arrival at a loopback webhook receiver) on both engines.
 * `npm run bench:events [count]` alone, or its rows at the end of `npm run bench` (eventBenchTable);
 * the JetStream row needs nats-server -js on 127.0.0.1:4222.
 */
import http from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { Webhook } from 'standardwebhooks';
import { Gateway } from '../gateway/http/server.ts';
import { createLogger } from '../gateway/ops/logger.ts';

const PUBLISHERS = 50;

const pct = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

async function row(engine: string, count: number, timeoutMs: number): Promise<string> {
  const secret = `whsec_${randomBytes(24).toString('base64')}`;
  const verifier = new Webhook(secret);
  const sentAt = new Map<string, number>();
  const latencies: number[] = [];
  let done!: () => void;
  const all = new Promise<void>((r) => (done = r));
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const msg = verifier.verify(Buffer.concat(chunks).toString('utf8'), req.headers as Record<string, string>) as { id: string };
      const t = sentAt.get(msg.id);
      if (t !== undefined) {
        latencies.push(performance.now() - t);
        sentAt.delete(msg.id);
      }
      res.writeHead(204).end();
      if (latencies.length === count) done();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const dir = mkdtempSync(join(tmpdir(), 'hcgw-bench-events-'));
  const engineYaml = engine === 'embedded' ? `{ kind: embedded, dir: "${join(dir, 'log')}" }` : `{ kind: jetstream, servers: ["nats://127.0.0.1:4222"], stream: HCGW_BENCH_${randomUUID().slice(0, 8).toUpperCase()} }`;
  const file = join(dir, 'routes.yaml');
  writeFileSync(file, `
version: 1
routes: []
events:
  engine: ${engineYaml}
  schemas: { bench.tick: { "1": { type: object, required: [n], properties: { n: { type: integer } } } } }
  subscriptions:
    - id: sink
      filter: { types: [bench.tick] }
      delivery: { kind: webhook, url: "http://127.0.0.1:${(server.address() as AddressInfo).port}/", secret: "${secret}" }
      concurrency: 32
`);
  const gw = await Gateway.create({ file, logger: createLogger({ level: 'error' }), port: 0, host: '127.0.0.1' });
  try {
    let next = 0;
    const start = performance.now();
    await Promise.all(
      Array.from({ length: PUBLISHERS }, async () => {
        while (next < count) {
          const n = next++;
          const id = randomUUID();
          sentAt.set(id, performance.now());
          // Keys spread over 64 partitions, as per-patient ordering would.
          await gw.events!.publish({ specversion: '1.0', id, source: '/bench', type: 'bench.tick', time: new Date().toISOString(), partitionkey: `k${n % 64}`, data: { n } });
        }
      }),
    );
    const publishSec = (performance.now() - start) / 1000;
    await Promise.race([all, new Promise((_, reject) => setTimeout(() => reject(new Error('deliveries timed out')), timeoutMs).unref())]);
    const deliverSec = (performance.now() - start) / 1000;
    latencies.sort((a, b) => a - b);
    return `| ${engine} | ${count} | ${Math.round(count / publishSec)} | ${Math.round(count / deliverSec)} | ${pct(latencies, 50).toFixed(1)} | ${pct(latencies, 99).toFixed(1)} |`;
  } finally {
    await gw.close(1000);
    server.closeAllConnections();
    server.close();
  }
}

/** Markdown rows for both engines, each bounded by `count` events and `timeoutMs` (a row that fails says so). */
export async function eventBenchTable(opts: { count?: number; timeoutMs?: number } = {}): Promise<string> {
  const out = ['| engine | events | published events/s | delivered events/s | publish→deliver p50 ms | p99 ms |', '|---|---|---|---|---|---|'];
  for (const engine of ['embedded', 'jetstream']) {
    try {
      out.push(await row(engine, opts.count ?? 2000, opts.timeoutMs ?? 120_000));
    } catch (err) {
      out.push(`| ${engine} | — | failed: ${(err as Error).message} | | | |`);
    }
  }
  return out.join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) process.stdout.write(`${await eventBenchTable({ count: Number(process.argv[2] ?? 2000) })}\n`);
