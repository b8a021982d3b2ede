import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import winston from 'winston';
import { parseConfig } from '../gateway/config/load.ts';
import { createLogger } from '../gateway/logger.ts';
import { Gateway } from '../gateway/server.ts';

/** Writes a YAML text to a fresh temp file (the gateway reads files, as in production). */
export function writeConfig(yaml: string, name = 'routes.yaml'): string {
  const dir = mkdtempSync(join(tmpdir(), 'hcgw-test-'));
  const file = join(dir, name);
  writeFileSync(file, yaml);
  return file;
}

/** A logger whose JSON lines tests can read (and grep for secrets). */
export function captureLogger(level = 'debug') {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk).trim());
      cb();
    },
  });
  const logger = createLogger({ level, transports: [new winston.transports.Stream({ stream })] });
  return { logger, lines };
}

export interface TestGateway {
  gw: Gateway;
  url: string;
  lines: string[];
  close(): Promise<void>;
}

export async function startGateway(yaml: string, opts: { file?: string } = {}): Promise<TestGateway> {
  const file = opts.file ?? writeConfig(yaml);
  const { logger, lines } = captureLogger();
  const gw = await Gateway.create({ file, logger, port: 0, host: '127.0.0.1' });
  const addr = await gw.listen();
  return { gw, url: `http://127.0.0.1:${addr.port}`, lines, close: () => gw.close(1000) };
}

/** Validates YAML text without starting anything (config error tests). */
export { parseConfig };

export interface TestUpstream {
  url: string;
  requests: Array<{ method: string; url: string; headers: http.IncomingHttpHeaders; body: string }>;
  close(): Promise<void>;
}

/** A loopback upstream that records what it receives; `handler` may answer differently. */
export async function startUpstream(
  handler?: (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void,
): Promise<TestUpstream> {
  const requests: TestUpstream['requests'] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      if (handler) return handler(req, res, body);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** A port that nothing listens on (bound then released). */
export async function deadPort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export async function problem(res: Response): Promise<Record<string, unknown>> {
  const ct = res.headers.get('content-type') ?? '';
  if (!ct.startsWith('application/problem+json')) throw new Error(`expected problem+json, got ${ct} (status ${res.status})`);
  return (await res.json()) as Record<string, unknown>;
}

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  json(): any;
}

/** node:http request for what fetch refuses to send (hop-by-hop headers, odd paths, raw bodies). */
export function rawRequest(url: string, opts: { method?: string; headers?: http.OutgoingHttpHeaders; body?: string | Buffer; path?: string } = {}): Promise<RawResponse> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, method: opts.method ?? 'GET', path: opts.path ?? u.pathname + u.search, headers: opts.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: () => JSON.parse(body) });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}
