/**
 * Everything a policy test runs against, all real and on loopback: a throw-away token issuer wired into
 * the config in place of the configured ones, one recording stub server per configured upstream (answering
 * from the case, else from the demo sandbox), and a gateway compiled from the config under test per test
 * file (cases of one file share its counters, as requests in production do: give a rate-limit case its own
 * client id).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import { fileSinkSchema, type FileSinkConfig } from '../audit/schema.ts';
import { loadConfigFile, type LoadedConfig } from '../config/load.ts';
import { Gateway } from '../http/server.ts';
import { createLogger } from '../ops/logger.ts';
import type { GatewayConfig, IssuerConfig } from '../sdk/types.ts';
import type { Caller, UpstreamAnswer } from './spec.ts';

export interface RecordedCall {
  upstream: string;
  method: string;
  path: string;
  query: URLSearchParams;
  headers: http.IncomingHttpHeaders;
  /** What the stub answered, when it was JSON (`hcgw explain` compares it with what the client got). */
  answer?: { status: number; body: unknown };
}

interface Stub {
  name: string;
  /** Path part of the configured upstream URL (`/fhir`), kept so targets build the same paths. */
  basePath: string;
  url: string;
  server: http.Server;
}

type SandboxHandle = { urls: Record<string, string>; close(): Promise<void>; reset(): void };

/** The demo sandbox upstream a configured upstream name stands for. */
const SANDBOX_OF: Record<string, string> = { ehr: 'ehr', billing: 'billing', erp: 'erp', payer: 'payer' };

/**
 * The file sink the loader would have made: the rewired config is not re-validated, so every default comes
 * from the audit file-sink schema itself (a new sink key cannot be missed, as `spillMaxBytes` once was);
 * one file per run, never rotated.
 */
const FILE_SINK_DEFAULTS = {
  ...Object.fromEntries(Object.entries(fileSinkSchema.properties).flatMap(([key, p]) => ('default' in p ? [[key, p.default]] : []))),
  kind: 'file',
  maxBytes: 0,
} as Omit<FileSinkConfig, 'path'>;

/** The signing side of the throw-away issuer: one RS256 key made per run, never written anywhere. */
class TestIssuer {
  private constructor(
    private readonly privateKey: CryptoKey,
    readonly jwk: JWK,
    private readonly strangerKey: CryptoKey,
  ) {}

  static async create(): Promise<TestIssuer> {
    const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
    const stranger = await generateKeyPair('RS256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'hcgw-test', alg: 'RS256', use: 'sig' };
    return new TestIssuer(privateKey, jwk, stranger.privateKey);
  }

  async token(caller: Caller, issuer: IssuerConfig): Promise<string> {
    if (caller.token === 'malformed') return 'not.a.token';
    const now = Math.floor(Date.now() / 1000);
    const claims: Record<string, unknown> = {
      ...(caller.claims ?? {}),
      client_id: caller.client,
      scope: caller.scopes?.join(' '),
      patient: caller.patient,
      fhirUser: caller.fhirUser,
      roles: caller.roles,
    };
    for (const k of Object.keys(claims)) if (claims[k] === undefined) delete claims[k];
    const aud = caller.token === 'wrong-audience' ? 'urn:hcgw:test:not-this-audience' : (caller.audience ?? issuer.audiences?.[0]);
    const jwt = new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', kid: 'hcgw-test' })
      .setIssuer(issuer.issuer)
      .setSubject(caller.subject ?? caller.client ?? 'test-user')
      .setIssuedAt(caller.token === 'expired' ? now - 7200 : now)
      .setExpirationTime(caller.token === 'expired' ? now - 3600 : now + 300);
    if (aud) jwt.setAudience(aud);
    return jwt.sign(caller.token === 'bad-signature' ? this.strangerKey : this.privateKey);
  }
}

function jsonOrUndefined(bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString('utf8')) as unknown;
  } catch {
    return undefined; // a malformed body is passed on as it is; only the comparison lacks it
  }
}

export class TestWorld {
  /** Calls the stubs received during the current case. */
  calls: RecordedCall[] = [];
  private answers: Record<string, UpstreamAnswer[]> = {};
  private answerDir = '.';
  private constructor(
    readonly issuer: TestIssuer,
    private readonly stubs: Stub[],
    private readonly sandbox: SandboxHandle | undefined,
    private readonly tmp: string,
  ) {}

  static async create(opts: { upstreams: Record<string, { url: string }>; sandbox: boolean }): Promise<TestWorld> {
    const issuer = await TestIssuer.create();
    let sandbox: SandboxHandle | undefined;
    if (opts.sandbox) {
      const { startSandbox, EPHEMERAL_PORTS } = await import('../sandbox/index.ts');
      sandbox = await startSandbox({ ports: EPHEMERAL_PORTS });
    }
    const tmp = await mkdtemp(join(tmpdir(), 'hcgw-policy-test-'));
    const world = new TestWorld(issuer, [], sandbox, tmp);
    for (const [name, u] of Object.entries(opts.upstreams)) world.stubs.push(await world.startStub(name, new URL(u.url).pathname.replace(/\/$/, '')));
    return world;
  }

  /** Sets what the stubs answer for the next case, and forgets the calls of the last one. */
  prepare(answers: Record<string, UpstreamAnswer | UpstreamAnswer[]> | undefined, dir: string): void {
    this.calls = [];
    this.answers = Object.fromEntries(Object.entries(answers ?? {}).map(([k, v]) => [k, Array.isArray(v) ? v : [v]]));
    this.answerDir = dir;
    this.sandbox?.reset();
  }

  /**
   * The config under test, rewired: issuers verify the test issuer's key (same names, issuer URIs and
   * audiences), upstreams point at the stubs, audit goes to a file of this case, admin and port are off.
   */
  rewire(loaded: LoadedConfig, auditFile: string): LoadedConfig {
    const c = structuredClone(loaded.config) as GatewayConfig & { audit?: Record<string, unknown> };
    c.identity.issuers = c.identity.issuers.map((i) => {
      const { jwksUri: _j, introspection: _i, secret: _s, ...rest } = i;
      return { ...rest, keys: [this.issuer.jwk as Record<string, unknown>], algorithms: ['RS256'] };
    });
    for (const stub of this.stubs) (c.upstreams as Record<string, { url: string }>)[stub.name].url = stub.url + stub.basePath;
    // The gateway's own upstream credentials (upstream `auth.tokenUrl`) come from the sandbox IdP when it runs.
    const idp = this.sandbox?.urls.idp;
    for (const up of Object.values(c.upstreams) as Array<{ auth?: { tokenUrl?: string } }>) {
      if (idp && up.auth?.tokenUrl) up.auth = { ...up.auth, tokenUrl: new URL(new URL(up.auth.tokenUrl).pathname, idp).href };
    }
    if (c.audit) c.audit = { ...c.audit, flushIntervalMs: 0, sinks: [{ ...FILE_SINK_DEFAULTS, path: auditFile }] };
    delete (c.server as { admin?: unknown }).admin;
    return { ...loaded, config: c };
  }

  /** A gateway for one test file: compiled from the rewired config, on an ephemeral loopback port. */
  async gateway(configFile: string): Promise<{ gw: Gateway; url: string; auditFile: string }> {
    const loaded = await loadConfigFile(configFile);
    const auditFile = join(await mkdtemp(join(this.tmp, 'case-')), 'audit.log');
    const gw = await Gateway.create({ file: configFile, loaded: this.rewire(loaded, auditFile), logger: createLogger({ silent: true }), port: 0, host: '127.0.0.1' });
    const addr = await gw.listen();
    return { gw, url: `http://127.0.0.1:${addr.port}`, auditFile };
  }

  async close(): Promise<void> {
    await Promise.all(this.stubs.map((s) => new Promise<void>((r) => (s.server.closeAllConnections(), s.server.close(() => r())))));
    await this.sandbox?.close();
    await rm(this.tmp, { recursive: true, force: true });
  }

  private async startStub(name: string, basePath: string): Promise<Stub> {
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => void this.answer(name, basePath, req, Buffer.concat(chunks), res));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    return { name, basePath, server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
  }

  private async answer(name: string, basePath: string, req: http.IncomingMessage, body: Buffer, res: http.ServerResponse): Promise<void> {
    const u = new URL(req.url ?? '/', 'http://stub');
    const path = u.pathname.startsWith(basePath) ? u.pathname.slice(basePath.length) || '/' : u.pathname;
    const call: RecordedCall = { upstream: name, method: req.method ?? 'GET', path, query: u.searchParams, headers: req.headers };
    this.calls.push(call);
    try {
      const given = this.answers[name]?.find((a) => a.path === undefined || path.startsWith(a.path));
      if (given) {
        const json = given.file ? JSON.parse(await readFile(resolve(this.answerDir, given.file), 'utf8')) : given.body;
        call.answer = { status: given.status ?? 200, body: json };
        res.writeHead(given.status ?? 200, { 'content-type': 'application/json', ...given.headers });
        res.end(json === undefined ? '' : JSON.stringify(json));
        return;
      }
      const sandboxUrl = this.sandbox?.urls[SANDBOX_OF[name] ?? ''];
      if (!sandboxUrl) {
        // Fail closed: a call nobody described is an error the case's expectations will show.
        res.writeHead(502, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: `no answer given for upstream ${name} ${req.method} ${path}` }));
        return;
      }
      const headers = Object.fromEntries(Object.entries(req.headers).filter(([k]) => !['host', 'connection', 'content-length'].includes(k))) as Record<string, string>;
      const up = await fetch(new URL(basePath + path + u.search, sandboxUrl), {
        method: req.method,
        headers,
        body: body.length ? new Uint8Array(body) : undefined,
      });
      const bytes = Buffer.from(await up.arrayBuffer());
      if (/json/.test(up.headers.get('content-type') ?? '')) call.answer = { status: up.status, body: jsonOrUndefined(bytes) };
      res.writeHead(up.status, { 'content-type': up.headers.get('content-type') ?? 'application/json' });
      res.end(bytes);
    } catch (err) {
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: (err as Error).message }));
    }
  }
}

export type { TestIssuer };
