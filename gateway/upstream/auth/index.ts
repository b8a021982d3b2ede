import { createHash } from 'node:crypto';
import type { Exchange } from '../../sdk/types.ts';
import type { Logger } from 'winston';
import { GatewayError, PolicyConfigError, Unauthorized } from '../../sdk/errors.ts';
import { lazyModule } from '../../lib/lazy-module.ts';
import { createTokenCache } from './token-cache.ts';
import type { UpstreamAuthConfig } from './schema.ts';

export { upstreamAuthSchema, type UpstreamAuthConfig } from './schema.ts';
export { UpstreamCredentialsUnavailable } from './errors.ts';

/** The credentials sent with one upstream call, and how to report that the upstream refused them. */
export interface Credentials {
  readonly headers: Readonly<Record<string, string>>;
  /**
   * The upstream answered 401 to these credentials: forget them. True when fresh ones may differ, so one
   * retry is worth it (a static api key or password would be refused again).
   */
  rejected(): boolean;
}

export interface UpstreamAuth {
  readonly kind: UpstreamAuthConfig['kind'];
  /** Rejects with a 503 (UpstreamCredentialsUnavailable) or 401 (token-exchange without a caller token). */
  credentials(ex?: Exchange): Promise<Credentials>;
}

/** The OAuth client (oauth4webapi), for the kinds that fetch tokens. */
const oauthClient = lazyModule('the upstream OAuth client', () => import('./oauth-client.ts'));

/** Imports oauth4webapi when some upstream fetches tokens, before createUpstreamAuth (synchronous) needs it. */
export async function loadUpstreamAuthLibraries(configs: readonly (UpstreamAuthConfig | undefined)[]): Promise<void> {
  if (configs.some((c) => c?.kind === 'client-credentials' || c?.kind === 'token-exchange')) await oauthClient.load();
}

const fixed = (headers: Record<string, string>): Credentials => Object.freeze({ headers: Object.freeze(headers), rejected: () => false });

/** The caller's access token (Bearer or DPoP scheme) for RFC 8693: exchanged, never forwarded. */
function callerToken(ex?: Exchange): string {
  const m = /^(?:Bearer|DPoP) +(\S+)$/i.exec(ex?.req.headers.authorization ?? '');
  if (!m) throw new Unauthorized({ reason: 'no-token-to-exchange', detail: 'This upstream needs the caller identity: send an access token' });
  return m[1];
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('base64url');

/**
 * Built once per upstream at config load. Secrets and tokens stay inside these closures: they are put
 * on the outgoing request only, never on the exchange, in logs or in admin answers.
 */
export function createUpstreamAuth(name: string, config: UpstreamAuthConfig, configDir: string, logger?: Logger): UpstreamAuth {
  const auth = build(config, configDir);
  return {
    kind: auth.kind,
    credentials: (ex) =>
      auth.credentials(ex).catch((err: unknown) => {
        // The reason is an OAuth error code or a failure kind: never a token, secret or response body.
        if (err instanceof GatewayError) logger?.warn('upstream credentials unavailable', { upstream: name, kind: config.kind, reason: err.reason, requestId: ex?.id });
        throw err;
      }),
  };
}

function build(config: UpstreamAuthConfig, configDir: string): UpstreamAuth {
  switch (config.kind) {
    case 'api-key': {
      const creds = fixed({ [config.header.toLowerCase()]: config.value });
      return { kind: config.kind, credentials: async () => creds };
    }
    case 'basic': {
      const creds = fixed({ authorization: `Basic ${Buffer.from(`${config.username}:${config.password}`, 'utf8').toString('base64')}` });
      return { kind: config.kind, credentials: async () => creds };
    }
    case 'client-credentials': {
      const oauth = oauthClient.get().createOAuthClient(config, configDir);
      const tokens = createTokenCache({ max: 1, refreshSkewSec: config.refreshSkewSec ?? 30, fetch: () => oauth.clientCredentials() });
      return {
        kind: config.kind,
        async credentials() {
          const token = await tokens.get('gateway');
          return { headers: { authorization: `Bearer ${token}` }, rejected: () => (tokens.invalidate('gateway', token), true) };
        },
      };
    }
    case 'token-exchange': {
      const oauth = oauthClient.get().createOAuthClient(config, configDir);
      const requested = config.requestedTokenType ?? 'urn:ietf:params:oauth:token-type:access_token';
      // Keyed by a hash of the caller's token: the cache never holds a caller token itself.
      const tokens = createTokenCache({ max: config.cacheMaxEntries ?? 10_000, refreshSkewSec: config.refreshSkewSec ?? 30, fetch: (_key, subject) => oauth.exchange(subject, requested) });
      return {
        kind: config.kind,
        async credentials(ex) {
          const subject = callerToken(ex);
          const key = sha256(subject);
          const token = await tokens.get(key, subject);
          return { headers: { authorization: `Bearer ${token}` }, rejected: () => (tokens.invalidate(key, token), true) };
        },
      };
    }
    default:
      throw new PolicyConfigError(`unknown kind "${(config as { kind?: unknown }).kind}"`, 'kind');
  }
}
