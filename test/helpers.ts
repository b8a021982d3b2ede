import http from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { mkdtempSync, symlinkSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Writable } from 'node:stream';
import winston from 'winston';
import { parseConfig } from '../gateway/config/load.ts';
import { createLogger } from '../gateway/ops/logger.ts';
import { Gateway } from '../gateway/http/server.ts';
import { ConfigError } from '../gateway/config/errors.ts';
import assert from 'node:assert/strict';

const tempDirs: string[] = [];
process.once('exit', () => {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

/** A fresh temporary directory, removed when the test process exits. */
export function tempDir(prefix = 'hcgw-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

/** Writes a YAML text to a fresh temp file (the gateway reads files, as in production). */
export function writeConfig(yaml: string, name = 'routes.yaml'): string {
  const dir = tempDir('hcgw-test-');
  const file = join(dir, name);
  writeFileSync(file, yaml);
  return file;
}

/**
 * A temp copy of the shipped routes.yaml with `edit` applied (which must change it), next to the files it
 * references relative to itself: the schemas and the sandbox's dev key files under gateway/.
 */
export function shippedConfigCopy(edit?: (yaml: string) => string): string {
  const yaml = readFileSync('routes.yaml', 'utf8');
  const changed = edit ? edit(yaml) : yaml;
  if (edit && changed === yaml) throw new Error('the edit did not change routes.yaml');
  const dir = tempDir('hcgw-shipped-');
  writeFileSync(join(dir, 'routes.yaml'), changed);
  symlinkSync(resolve('schemas'), join(dir, 'schemas'));
  symlinkSync(resolve('gateway'), join(dir, 'gateway'));
  return join(dir, 'routes.yaml');
}

/** `edit` applied to one route's block of a routes.yaml text (from its `- id:` line to the next route). */
export function editRoute(yaml: string, id: string, edit: (block: string) => string): string {
  const start = yaml.indexOf(`\n  - id: ${id}\n`);
  if (start < 0) throw new Error(`no route ${id}`);
  const next = yaml.indexOf('\n  - id: ', start + 1);
  const end = next < 0 ? yaml.length : next;
  const block = yaml.slice(start, end);
  const changed = edit(block);
  if (changed === block) throw new Error(`the edit did not change route ${id}`);
  return yaml.slice(0, start) + changed + yaml.slice(end);
}

/** The shipped routes.yaml with text edits, each [from, to] of which must change it (shippedConfigCopy). */
export function sandboxVariant(...edits: Array<[from: string, to: string]>): string {
  if (!edits.length) return shippedConfigCopy();
  return shippedConfigCopy((yaml) =>
    edits.reduce((text, [from, to]) => {
      assert.ok(text.includes(from), `edit target not found in routes.yaml: ${from}`);
      return text.replace(from, to);
    }, yaml),
  );
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

/**
 * Compiles a config as `hcgw start` does (YAML text, or an already written file) and returns its issues
 * as `path: message` lines: [] when it is valid. Anything but a ConfigError fails the test.
 */
export async function configIssues(config: string | { file: string }): Promise<string[]> {
  const file = typeof config === 'string' ? writeConfig(config) : config.file;
  try {
    const gw = await Gateway.create({ file, logger: captureLogger().logger });
    await gw.close();
    return [];
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.issues.map((i) => `${i.path}: ${i.message}`);
  }
}

/** Every pattern must match one of the issues; a miss lists them all. */
export function assertIssues(issues: string[], patterns: RegExp[]): void {
  for (const re of patterns) assert.ok(issues.some((i) => re.test(i)), `${re} in\n${issues.join('\n')}`);
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

// ---- Redis, token issuers and gateway child processes (throttling tests; reusable by any shared-state test) ----
// (imports are hoisted; they sit here so this file only ever grows at the end)
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';

/** The shared Redis every engineer's tests use; never stop it — spawn your own with startRedisServer(). */
export const SHARED_REDIS_URL = 'redis://127.0.0.1:6379';

/** True when a Redis answers PING on host:port within timeoutMs. */
export function redisAnswers(port: number, host = '127.0.0.1', timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (d) => done(d.toString().startsWith('+PONG')));
  });
}

/**
 * Redis tests never skip: without the shared Redis they fail with instructions (under CI as well as locally),
 * so a missing Redis can never pass for green.
 */
export async function requireSharedRedis(): Promise<string> {
  if (!(await redisAnswers(6379))) {
    throw new Error(`Redis is required at ${SHARED_REDIS_URL}${process.env.CI ? ' (CI)' : ''}: start one with \`redis-server --port 6379 --save '' --appendonly no\``);
  }
  return SHARED_REDIS_URL;
}

/** A key prefix no other test (or earlier run) uses. */
export function uniquePrefix(name: string): string {
  return `hcgw-test:${name}:${randomUUID().slice(0, 8)}:`;
}

export interface RedisChild {
  port: number;
  url: string;
  /** Starts the server (again) on the same port; resolves once it answers PING. */
  start(): Promise<void>;
  /** Kills the server (SIGKILL: an outage, not a shutdown) and waits for the process to exit. */
  stop(): Promise<void>;
  /** SIGSTOP / SIGCONT: a Redis that accepts connections but never answers. */
  pause(): void;
  resume(): void;
}

/**
 * A private redis-server on a free loopback port, for tests that stop and restart Redis (never the shared
 * one). No persistence, so a restart loses data and scripts, as a real crash without AOF does.
 */
export async function startRedisServer(): Promise<RedisChild> {
  const port = await deadPort();
  let child: ChildProcess | undefined;
  const exited = () => new Promise<void>((r) => (child && child.exitCode === null && child.signalCode === null ? child.once('exit', () => r()) : r()));
  const handle: RedisChild = {
    port,
    url: `redis://127.0.0.1:${port}`,
    async start() {
      child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
      const failed = new Promise<never>((_, reject) => child!.once('error', (err) => reject(new Error(`redis-server cannot start (${(err as NodeJS.ErrnoException).code}); install redis-server`))));
      const deadline = Date.now() + 10_000;
      const ready = (async () => {
        while (!(await redisAnswers(port))) {
          if (Date.now() > deadline) throw new Error(`redis-server did not answer on port ${port} within 10s`);
          await new Promise((r) => setTimeout(r, 50));
        }
      })();
      await Promise.race([ready, failed]);
    },
    async stop() {
      if (child?.exitCode === null && child.signalCode === null) {
        const gone = exited();
        child.kill('SIGCONT');
        child.kill('SIGKILL');
        await gone;
      }
    },
    pause: () => void child?.kill('SIGSTOP'),
    resume: () => void child?.kill('SIGCONT'),
  };
  await handle.start();
  return handle;
}

/** Polls `check` every 50ms until it returns true; fails after timeoutMs (every wait is bounded). */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface TestIssuer {
  /** YAML flow mapping for `identity.issuers` (static key, RS256). */
  yaml: string;
  name: string;
  mint(claims?: { clientId?: string; sub?: string; scope?: string; extra?: Record<string, unknown> }): Promise<string>;
}

/** A signing key of our own, trusted through a static JWK: real RS256 tokens without an IdP. */
export async function createTestIssuer(name = 'test-idp'): Promise<TestIssuer> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const kid = `${name}-key`;
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  const issuer = `https://${name}.test`;
  return {
    name,
    yaml: `{ name: ${name}, issuer: "${issuer}", audiences: [hcgw-test], algorithms: [RS256], keys: [${JSON.stringify(jwk)}] }`,
    mint: (c = {}) =>
      new SignJWT({ ...(c.clientId ? { client_id: c.clientId } : {}), scope: c.scope ?? 'system/*.rs', ...c.extra })
        .setProtectedHeader({ alg: 'RS256', kid })
        .setIssuer(issuer)
        .setAudience('hcgw-test')
        .setSubject(c.sub ?? c.clientId ?? 'user-1')
        .setIssuedAt()
        .setExpirationTime('10m')
        .sign(privateKey),
  };
}

export interface GatewayProcess {
  url: string;
  pid: number;
  close(): Promise<void>;
}

const GATEWAY_FIXTURE = fileURLToPath(new URL('./fixtures/gateway-process.ts', import.meta.url));

/** A gateway in its own node process (same code, its own store client), as N instances behind a balancer run. */
export async function spawnGateway(file: string, timeoutMs = 30_000): Promise<GatewayProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', GATEWAY_FIXTURE, file], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const close = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`gateway process did not start within ${timeoutMs}ms`)), timeoutMs);
      let out = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const line = /^\{"port":(\d+)\}$/m.exec(out);
        if (line) {
          clearTimeout(timer);
          resolve(Number(line[1]));
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`gateway process exited (${code}) before listening`));
      });
    });
    return { url: `http://127.0.0.1:${port}`, pid: child.pid!, close };
  } catch (err) {
    await close();
    throw err;
  }
}

// ---- Audit trail (audit tests) ----
import { existsSync, readFileSync } from 'node:fs';
import { createAjv } from '../gateway/lib/ajv.ts';
import { auditSectionSchema, type AuditConfig } from '../gateway/audit/schema.ts';
import { parseAuditLine } from '../gateway/audit/read.ts';

const validateAuditSection = createAjv({ useDefaults: true }).compile(auditSectionSchema);

/** An `audit:` section as the config loader would produce it (schema defaults filled in); throws if invalid. */
export function auditSection(section: Record<string, unknown>): AuditConfig {
  const copy = structuredClone(section);
  if (!validateAuditSection(copy)) throw new Error(`invalid audit section: ${JSON.stringify(validateAuditSection.errors)}`);
  return copy as unknown as AuditConfig;
}

/** The records of a JSON-lines audit file (none when it does not exist yet). */
/**
 * The lines of an audit file as the gateway's reader sees them: a record (either line format) as its facts
 * plus `resource` (the AuditEvent), `prev` and `hash`; any other line (chain entries, test objects) as is.
 */
export function readAuditRecords(file: string): Array<Record<string, any>> {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const parsed = parseAuditLine(l);
      if (parsed.kind === 'invalid') throw new Error(`not a JSON line: ${l.slice(0, 80)}`);
      return parsed.kind === 'record' ? { ...parsed.view, prev: parsed.raw.prev, hash: parsed.raw.hash } : parsed.raw;
    });
}

// ---- the sandbox behind a gateway (data-minimization, consent, validation and experience tests) ----
import { EPHEMERAL_PORTS, startSandbox, type Sandbox } from '../gateway/sandbox/index.ts';

export interface SandboxGateway {
  sb: Sandbox;
  gw: TestGateway;
  /** A sandbox IdP token (RS256) for the given client / subject / extra claims. */
  token(opts?: Parameters<Sandbox['idp']['mint']>[0]): Promise<string>;
  /** fetch against the gateway with a Bearer token and optional extra headers. */
  call(path: string, token: string, init?: RequestInit & { headers?: Record<string, string> }): Promise<Response>;
  close(): Promise<void>;
}

/**
 * `identity` and `upstreams` sections for a sandbox on ephemeral ports (issuer name: sandbox-idp);
 * `extraUpstreams` (name → base URL) join the upstreams section.
 */
export function sandboxPreamble(sb: Sandbox, extraUpstreams: Record<string, string> = {}): string {
  return `version: 1
identity:
  issuers:
    - { name: sandbox-idp, issuer: "${sb.idp.issuer}", jwksUri: "${sb.idp.jwksUri}", audiences: [${sb.idp.audience}], algorithms: [RS256] }
upstreams:
  ehr: { url: "${sb.urls.ehr}", timeoutMs: 3000 }
  billing: { url: "${sb.urls.billing}", timeoutMs: 3000 }
  erp: { url: "${sb.urls.erp}", timeoutMs: 3000 }
${Object.entries(extraUpstreams).map(([name, url]) => `  ${name}: { url: "${url}", timeoutMs: 3000 }\n`).join('')}`;
}

/** Starts the sandbox on ephemeral ports and a gateway on `sandboxPreamble(sb, extraUpstreams) + rest(sb)`. */
export async function startSandboxGateway(rest: (sb: Sandbox) => string, extraUpstreams: Record<string, string> = {}): Promise<SandboxGateway> {
  const sb = await startSandbox({ ports: EPHEMERAL_PORTS });
  let gw: TestGateway;
  try {
    gw = await startGateway(sandboxPreamble(sb, extraUpstreams) + rest(sb));
  } catch (err) {
    await sb.close();
    throw err;
  }
  return {
    sb,
    gw,
    token: (opts) => sb.idp.mint(opts),
    call: (path, token, init = {}) => fetch(gw.url + path, { ...init, headers: { authorization: `Bearer ${token}`, ...init.headers } }),
    close: async () => {
      await gw.close();
      await sb.close();
    },
  };
}

// ---- identity tests: seeing the principal the jwt policy put on the exchange ----
import { dirname } from 'node:path';

/**
 * Writes, beside a config file, a plugin `principal-echo` that copies the exchange's principal (without its
 * claims) into an `x-principal` upstream header, so tests can see what authentication put on the exchange.
 * Returns the `plugins:` entry to use.
 */
export function writePrincipalEchoPlugin(configFile: string): string {
  writeFileSync(
    join(dirname(configFile), 'principal-echo.mjs'),
    `export default {
  name: 'principal-echo',
  configSchema: { type: 'object', additionalProperties: false },
  create() {
    return { onRequest(ex) { if (ex.principal) ex.upstreamHeaders['x-principal'] = JSON.stringify({ ...ex.principal, claims: undefined }); } };
  },
};
`,
  );
  return './principal-echo.mjs';
}

// ---- hostile-input and fault tests: raw sockets and metric samples ----

export interface RawExchange {
  /** Everything the server sent back. */
  text: string;
  /** Status of the first response, 0 when none came. */
  status: number;
  /** The server closed the connection (false: still open when the wait ended). */
  closed: boolean;
  ms: number;
}

/**
 * Writes `parts` to a fresh TCP connection (a number pauses that many ms: slow clients) and collects the
 * answer until the server closes or `timeoutMs` passes. For requests no HTTP client would send.
 */
export function rawSocket(url: string, parts: Array<string | Buffer | number>, timeoutMs = 3000): Promise<RawExchange> {
  const { hostname, port } = new URL(url);
  const started = Date.now();
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let closed = false;
    const socket = net.connect({ host: hostname, port: Number(port) });
    const finish = () => {
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      resolve({ text, status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1] ?? 0), closed, ms: Date.now() - started });
    };
    const timer = setTimeout(finish, timeoutMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      closed = true;
      finish();
    });
    socket.on('connect', async () => {
      for (const p of parts) {
        if (socket.destroyed) return;
        if (typeof p === 'number') await new Promise((r) => setTimeout(r, p));
        else socket.write(p);
      }
    });
  });
}

/** Sum of the samples of one Prometheus metric whose labels include `labels`, read from `${url}/metrics`. */
export async function metricValue(url: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[3]);
  }
  return sum;
}

/** A request written byte for byte (duplicate or missing Host, absolute-form target), answered as text. */
export function rawHttp(base: string, request: string): Promise<string> {
  const { port } = new URL(base);
  return new Promise<string>((resolve, reject) => {
    const s = connect(Number(port), '127.0.0.1', () => s.write(request));
    let out = '';
    s.on('data', (c) => (out += c));
    s.on('end', () => resolve(out));
    s.on('error', reject);
  });
}
