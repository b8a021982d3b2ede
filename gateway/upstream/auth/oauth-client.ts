import { createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import * as oauth from 'oauth4webapi';
import { importPKCS8 } from 'jose';
import { PolicyConfigError } from '../../sdk/errors.ts';
import { UpstreamCredentialsUnavailable } from './errors.ts';
import type { OAuthClientConfig } from './schema.ts';

export interface TokenAnswer {
  accessToken: string;
  /** Seconds, as the authorization server said (undefined when it did not). */
  expiresIn?: number;
}

/** What an OAuth token call failed on, for logs and metrics: never a token, secret or response body. */
export function failureReason(err: unknown): string {
  if (err instanceof oauth.ResponseBodyError) return `oauth-${err.error}`;
  if ((err as Error)?.name === 'TimeoutError' || (err as Error)?.name === 'AbortError') return 'timeout';
  if (err instanceof oauth.OperationProcessingError || err instanceof oauth.UnsupportedOperationError) return 'bad-response';
  return 'unreachable';
}

/**
 * The gateway as an OAuth client of one token endpoint, through oauth4webapi (a maintained, spec-checked
 * client: RFC 6749 errors, token_type, expires_in) rather than hand-built form posts. The client
 * authentication is a secret (HTTP Basic) or an RFC 7523 private_key_jwt assertion, whose key is read
 * and checked at config load.
 */
export function createOAuthClient(config: OAuthClientConfig, configDir: string) {
  if ((config.clientSecret === undefined) === (config.privateKeyJwt === undefined)) {
    throw new PolicyConfigError('needs exactly one of clientSecret or privateKeyJwt', '');
  }
  const tokenUrl = new URL(config.tokenUrl);
  const as: oauth.AuthorizationServer = { issuer: tokenUrl.origin, token_endpoint: config.tokenUrl };
  const client: oauth.Client = { client_id: config.clientId };
  const insecure = tokenUrl.protocol === 'http:';
  let clientAuth: () => Promise<oauth.ClientAuth>;
  if (config.privateKeyJwt) {
    const pk = config.privateKeyJwt;
    let key: KeyObject;
    let pem: string;
    try {
      pem = readFileSync(resolve(configDir, pk.keyFile), 'utf8');
      key = createPrivateKey(pem);
    } catch {
      throw new PolicyConfigError(`private key file ${pk.keyFile} cannot be read as a PEM private key`, 'privateKeyJwt.keyFile');
    }
    if (key.type !== 'private') throw new PolicyConfigError('privateKeyJwt.keyFile must hold a private key', 'privateKeyJwt.keyFile');
    const alg = pk.alg ?? 'RS256';
    // oauth4webapi signs with WebCrypto keys; importing is async, so it happens once, on first use.
    let auth: Promise<oauth.ClientAuth> | undefined;
    clientAuth = () =>
      (auth ??= importPKCS8(key.export({ type: 'pkcs8', format: 'pem' }) as string, alg).then((cryptoKey) =>
        oauth.PrivateKeyJwt({ key: cryptoKey, kid: pk.kid }, {
          // RFC 7523 §3 / SMART Backend Services: the assertion's audience is the token endpoint.
          [oauth.modifyAssertion]: (_header, payload) => {
            payload.aud = config.tokenUrl;
          },
        }),
      ));
  } else {
    const basic = oauth.ClientSecretBasic(config.clientSecret!);
    clientAuth = async () => basic;
  }
  const timeoutMs = config.timeoutMs ?? 5000;
  const options = () => ({ signal: AbortSignal.timeout(timeoutMs), [oauth.allowInsecureRequests]: insecure });
  const common = () => {
    const p = new URLSearchParams();
    if (config.scope) p.set('scope', config.scope);
    if (config.audience) p.set('audience', config.audience);
    if (config.resource) p.set('resource', config.resource);
    return p;
  };
  const answer = (r: oauth.TokenEndpointResponse): TokenAnswer => ({ accessToken: r.access_token, expiresIn: r.expires_in });
  const failed = (err: unknown) => new UpstreamCredentialsUnavailable({ reason: failureReason(err), cause: err });

  return {
    tokenUrl: config.tokenUrl,
    /** RFC 6749 §4.4 client credentials grant. */
    async clientCredentials(): Promise<TokenAnswer> {
      try {
        const res = await oauth.clientCredentialsGrantRequest(as, client, await clientAuth(), common(), options());
        return answer(await oauth.processClientCredentialsResponse(as, client, res));
      } catch (err) {
        throw failed(err);
      }
    },
    /** RFC 8693 token exchange of `subjectToken` (the caller's access token). */
    async exchange(subjectToken: string, requestedTokenType: string): Promise<TokenAnswer> {
      const p = common();
      p.set('subject_token', subjectToken);
      p.set('subject_token_type', 'urn:ietf:params:oauth:token-type:access_token');
      p.set('requested_token_type', requestedTokenType);
      try {
        const res = await oauth.genericTokenEndpointRequest(as, client, await clientAuth(), 'urn:ietf:params:oauth:grant-type:token-exchange', p, options());
        // RFC 8693 §2.2.1: token_type is "N_A" when the issued token is not an access token.
        return answer(await oauth.processGenericTokenEndpointResponse(as, client, res, { recognizedTokenTypes: { n_a: () => undefined } }));
      } catch (err) {
        throw failed(err);
      }
    },
  };
}

export type OAuthClient = ReturnType<typeof createOAuthClient>;
