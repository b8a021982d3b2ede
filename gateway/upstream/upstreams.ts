import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Logger } from 'winston';
import type { Metrics } from '../ops/metrics.ts';
import { createResilience, type UpstreamResilience } from './resilience.ts';
import type { UpstreamConfig } from '../sdk/types.ts';
import { PolicyConfigError } from '../sdk/errors.ts';
import type { ConfigIssue } from '../config/errors.ts';
import { createUpstreamAuth, type UpstreamAuth } from './auth/index.ts';

export interface Upstream {
  readonly name: string;
  readonly url: URL;
  /** Base URL without a trailing slash, for joining with route paths. */
  readonly base: string;
  readonly agent: http.Agent;
  readonly timeoutMs: number;
  readonly config: Readonly<UpstreamConfig>;
  /** Retry budget and circuit breaker, shared by the proxy and the gateway's own client. */
  readonly resilience: UpstreamResilience;
  /** The gateway's own credentials for this upstream (`auth`), when it needs any. */
  readonly auth?: UpstreamAuth;
}

export interface UpstreamDeps {
  metrics?: Metrics;
  logger?: Logger;
}

/**
 * One keep-alive agent per upstream, built at config load. `maxSockets` bounds the connections a
 * slow backend can hold; TLS options (custom CA, client certificate for mTLS) are read once here.
 */
export function createUpstream(name: string, config: UpstreamConfig, configDir: string, deps: UpstreamDeps = {}): Upstream {
  const url = new URL(config.url);
  const common = { keepAlive: true, keepAliveMsecs: 1000, maxSockets: config.maxSockets ?? 256, maxFreeSockets: 64, scheduling: 'lifo' as const };
  const read = (f?: string) => (f ? readFileSync(resolve(configDir, f)) : undefined);
  const agent =
    url.protocol === 'https:'
      ? new https.Agent({
          ...common,
          ca: read(config.tls?.caFile),
          cert: read(config.tls?.certFile),
          key: read(config.tls?.keyFile),
          rejectUnauthorized: config.tls?.rejectUnauthorized ?? true,
        })
      : new http.Agent(common);
  return Object.freeze({
    name,
    url,
    base: config.url.replace(/\/+$/, ''),
    agent,
    timeoutMs: config.timeoutMs ?? 10_000,
    config: Object.freeze({ ...config }),
    resilience: createResilience(name, config, deps),
    auth: config.auth ? createUpstreamAuth(name, config.auth, configDir, deps.logger) : undefined,
  });
}

/**
 * How a call to an upstream broke, for metrics, logs and retries: `tls` (certificate refused, handshake
 * failed) is a configuration fault that a retry cannot mend, unlike a refused connection or a reset.
 */
export function failureKind(err: NodeJS.ErrnoException): 'connect' | 'tls' | 'reset' {
  if (err.code === 'ECONNREFUSED') return 'connect';
  return /CERT|SSL|TLS|EPROTO|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(err.code ?? '') ? 'tls' : 'reset';
}

/** Upstreams whose `auth` cannot be built (unreadable key file, …) are left out and reported in `issues`. */
export function createUpstreams(configs: Record<string, UpstreamConfig>, configDir: string, deps: UpstreamDeps = {}, issues: ConfigIssue[] = []): Map<string, Upstream> {
  const out = new Map<string, Upstream>();
  for (const [name, c] of Object.entries(configs)) {
    try {
      out.set(name, createUpstream(name, c, configDir, deps));
    } catch (err) {
      if (!(err instanceof PolicyConfigError)) throw err;
      issues.push({ path: `upstreams.${name}.auth${err.path ? `.${err.path}` : ''}`, message: err.message });
    }
  }
  return out;
}

export function closeUpstreams(upstreams: ReadonlyMap<string, Upstream>): void {
  for (const u of upstreams.values()) u.agent.destroy();
}
