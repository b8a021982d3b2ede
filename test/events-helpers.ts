import http from 'node:http';
import net from 'node:net';
import { spawn, type ChildProcess } from 'node:child_process';
import { waitFor } from './helpers.ts';
import { randomBytes, randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { join } from 'node:path';
import type { CloudEvent } from '../gateway/events/types.ts';

export const newSecret = () => `whsec_${randomBytes(24).toString('base64')}`;

export interface Receiver {
  url: string;
  /** Verified deliveries in arrival order (body parsed). */
  received: Array<Record<string, any>>;
  /** Deliveries whose signature did not verify (must stay empty). */
  rejected: number;
  /** Ids seen more than once (at-least-once duplicates, flagged by id). */
  duplicates(): string[];
  /** Answer the next n deliveries with 503. */
  failNext(n: number): void;
  /** Answer every delivery with this status (0: normal). */
  status: number;
  close(): Promise<void>;
}

/** A webhook receiver on loopback that verifies each delivery with the `standardwebhooks` package. */
export async function startReceiver(secret: string | undefined, opts: { delayMs?: number } = {}): Promise<Receiver> {
  const verifier = secret ? new Webhook(secret) : undefined;
  let failing = 0;
  const r: Receiver = {
    url: '',
    received: [],
    rejected: 0,
    status: 0,
    duplicates() {
      const seen = new Set<string>();
      const dup = new Set<string>();
      for (const m of r.received) {
        const id = String(m.id ?? m.entry?.[0]?.fullUrl);
        if (seen.has(id)) dup.add(id);
        seen.add(id);
      }
      return [...dup];
    },
    failNext(n) {
      failing = n;
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((res) => server.close(() => res()));
    },
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const body = Buffer.concat(chunks).toString('utf8');
      if (opts.delayMs) await new Promise((d) => setTimeout(d, opts.delayMs));
      if (failing > 0 || r.status) {
        failing = Math.max(0, failing - 1);
        res.writeHead(r.status || 503).end();
        return;
      }
      try {
        const msg = verifier ? (verifier.verify(body, req.headers as Record<string, string>) as Record<string, any>) : (JSON.parse(body) as Record<string, any>);
        r.received.push(msg);
        res.writeHead(204).end();
      } catch {
        r.rejected++;
        res.writeHead(400).end();
      }
    });
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', () => res()));
  r.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  return r;
}

/** Signs a payload as a Standard Webhooks sender would. */
export function signedHeaders(secret: string, id: string, body: string, at = new Date()): Record<string, string> {
  return {
    'content-type': 'application/json',
    'webhook-id': id,
    'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
    'webhook-signature': new Webhook(secret).sign(id, at, body),
  };
}

export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** Our own nats-server with JetStream in a temp store dir, so the test may kill and restart it. */
export async function startNats(port: number, dir: string): Promise<ChildProcess> {
  const child = spawn('nats-server', ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', dir], { stdio: 'ignore' });
  await waitFor(() => new Promise<boolean>((r) => net.connect(port, '127.0.0.1').once('connect', function (this: net.Socket) { this.destroy(); r(true); }).once('error', () => r(false))), 15_000, 'nats-server');
  return child;
}
export const stopNats = (c: ChildProcess) => new Promise<void>((r) => (c.exitCode !== null ? r() : (c.once('exit', () => r()), c.kill('SIGKILL'))));


/** The head of an `events:` section: an embedded log under `dir` and the encounter.discharged schema; subscriptions follow. */
export const encounterEventsYaml = (dir: string) => `events:
  engine: { kind: embedded, dir: "${join(dir, 'log')}" }
  schemas:
    encounter.discharged: { "1": { type: object, required: [resourceType, id], properties: { resourceType: { const: Encounter }, id: { type: string } } } }
  subscriptions:`;

/** An encounter.discharged event about `patient`, with clinical detail only care may see. */
export const discharged = (patient: string): CloudEvent => ({
  specversion: '1.0',
  id: randomUUID(),
  source: '/test',
  type: 'encounter.discharged',
  time: new Date().toISOString(),
  patient,
  partitionkey: patient,
  data: {
    resourceType: 'Encounter',
    id: `enc-${patient}`,
    status: 'finished',
    subject: { reference: `Patient/${patient}` },
    period: { start: '2024-05-01T08:00:00Z', end: '2024-05-03T10:00:00Z' },
    serviceProvider: { reference: 'Organization/org-north' },
    reasonCode: [{ text: 'clinical detail nobody outside care should get' }],
  },
});
