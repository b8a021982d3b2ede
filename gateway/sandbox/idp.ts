/**
 * Dev identity provider: RS256 keys with rotation, a JWKS, OAuth client_credentials for a fixed table of
 * dev clients, and a `/dev/token` minting endpoint for the CLI. Never for production: secrets are public.
 */
import { randomUUID, timingSafeEqual } from 'node:crypto';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { HttpError, reply, startUpstream, type Ctx, type ListenOpts, type UpstreamServer } from './http.ts';

export const DEFAULT_AUDIENCE = 'hcgw-sandbox';

export interface DevClient {
  secret: string;
  /** Allowed scopes; `*` in a scope matches one resource type, so `user/*.rs` allows `user/Observation.rs`. */
  scopes: string[];
  /** Launch context put in every token of this client (a patient-facing app is bound to its patient). */
  patient?: string;
  fhirUser?: string;
}

export const DEV_CLIENTS: Record<string, DevClient> = {
  'partner-billing': { secret: 'partner-billing-secret', scopes: ['billing.read', 'billing.write', 'claims.read'] },
  'portal-app': { secret: 'portal-app-secret', scopes: ['patient/*.read', 'patient/*.rs', 'billing.read'], patient: 'p1', fhirUser: 'Patient/p1' },
  'clinician-app': { secret: 'clinician-app-secret', scopes: ['user/*.read', 'user/*.rs'], fhirUser: 'Practitioner/pr-1' },
  'erp-batch': { secret: 'erp-batch-secret', scopes: ['erp.read', 'erp.write'] },
};

export interface MintOptions {
  clientId?: string;
  subject?: string;
  scopes?: string[] | string;
  patient?: string;
  fhirUser?: string;
  audience?: string | string[];
  /** Seconds from now; negative values mint an already-expired token. Default 3600. */
  expiresIn?: number;
  /** Extra claims; they override the standard ones so tests can forge e.g. a foreign `iss`. */
  claims?: Record<string, unknown>;
}

export interface SigningKey { kid: string; privateKey: CryptoKey; publicKey: CryptoKey; jwk: JWK; pem: string }

export interface DevIdp extends UpstreamServer {
  issuer: string;
  jwksUri: string;
  tokenEndpoint: string;
  audience: string;
  /** kid of the key new tokens are signed with. */
  readonly kid: string;
  claims(opts?: MintOptions): JWTPayload;
  mint(opts?: MintOptions): Promise<string>;
  /** Sign arbitrary claims with the current (or a given) key and header, for attack tests. */
  signWith(payload: JWTPayload, opts?: { key?: CryptoKey | Uint8Array; alg?: string; kid?: string | null; header?: Record<string, unknown> }): Promise<string>;
  rotate(opts?: { keepOld?: boolean }): Promise<string>;
  currentKey(): SigningKey;
  /** SPKI PEM of the current public key (e.g. to forge an HS256 token keyed with it). */
  publicKeyPem(): string;
  jwks(): { keys: JWK[] };
}

async function newKey(): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const kid = `dev-${randomUUID().slice(0, 8)}`;
  return { kid, privateKey, publicKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' }, pem: await exportSPKI(publicKey) };
}

const scopeList = (s: string[] | string | undefined) => (Array.isArray(s) ? s : (s ?? '').split(' ')).filter(Boolean);
const allows = (allowed: string[], scope: string) => allowed.some((a) => a === scope || (a.includes('*') && new RegExp(`^${a.replace(/[.]/g, '\\.').replace(/\*/g, '[A-Za-z]+')}$`).test(scope)));

function safeEqual(a: string, b: string) {
  const x = Buffer.from(a), y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** RFC 6749 §2.3.1: HTTP Basic (form-urlencoded id/secret) or client_id/client_secret in the body. */
function clientAuth(ctx: Ctx, form: URLSearchParams): { id: string; client: DevClient } {
  const invalid = () => new HttpError(401, 'Client authentication failed', 'invalid_client', {}, { 'www-authenticate': 'Basic realm="hcgw-sandbox-idp"' });
  let id = form.get('client_id'), secret = form.get('client_secret');
  const basic = /^Basic\s+(.+)$/i.exec(ctx.headers.authorization ?? '');
  if (basic) {
    const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) throw invalid();
    try {
      id = decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, ' '));
      secret = decodeURIComponent(decoded.slice(colon + 1).replace(/\+/g, ' '));
    } catch { throw invalid(); }
  }
  const client = id ? Object.hasOwn(DEV_CLIENTS, id) ? DEV_CLIENTS[id] : undefined : undefined;
  if (!id || !client || !secret || !safeEqual(secret, client.secret)) throw invalid();
  return { id, client };
}

export async function startIdp(opts: ListenOpts = {}): Promise<DevIdp> {
  let keys: SigningKey[] = [await newKey()];
  const current = () => keys[keys.length - 1];

  const tokenResponse = async (o: MintOptions) => {
    const c = idp.claims(o);
    return reply(200, { access_token: await idp.mint(o), token_type: 'Bearer', expires_in: (c.exp as number) - (c.iat as number), scope: c.scope },
      { 'cache-control': 'no-store', pragma: 'no-cache' });
  };

  const server = await startUpstream({
    name: 'idp',
    errorBody: (e) => ({ error: e.code, error_description: e.message }),
    routes: [
      ['GET', '/.well-known/jwks.json', () => reply(200, idp.jwks(), { 'cache-control': 'public, max-age=300' })],
      ['GET', '/.well-known/openid-configuration', () => reply(200, {
        issuer: idp.issuer, jwks_uri: idp.jwksUri, token_endpoint: idp.tokenEndpoint,
        grant_types_supported: ['client_credentials'], token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
        id_token_signing_alg_values_supported: ['RS256'], response_types_supported: ['token'],
        scopes_supported: [...new Set(Object.values(DEV_CLIENTS).flatMap((c) => c.scopes))],
      })],
      ['POST', '/token', async (ctx) => {
        const form = new URLSearchParams(ctx.text);
        const { id, client } = clientAuth(ctx, form);
        if (form.get('grant_type') !== 'client_credentials') throw new HttpError(400, 'Only client_credentials is supported', 'unsupported_grant_type');
        const requested = scopeList(form.get('scope') ?? undefined);
        const granted = requested.length ? requested.filter((s) => allows(client.scopes, s)) : client.scopes;
        if (!granted.length) throw new HttpError(400, 'None of the requested scopes is allowed for this client', 'invalid_scope');
        return tokenResponse({ clientId: id, subject: id, scopes: granted, patient: client.patient, fhirUser: client.fhirUser });
      }],
      ['POST', '/dev/token', async (ctx) => {
        const b = ctx.text.trim() ? ctx.json<MintOptions>() : {};
        const bad = (k: keyof MintOptions, t: string) => b[k] !== undefined && typeof b[k] !== t;
        if (bad('clientId', 'string') || bad('subject', 'string') || bad('patient', 'string') || bad('fhirUser', 'string') || bad('expiresIn', 'number') || bad('claims', 'object')
          || (b.scopes !== undefined && typeof b.scopes !== 'string' && !(Array.isArray(b.scopes) && b.scopes.every((s) => typeof s === 'string')))) {
          throw new HttpError(400, 'Invalid mint options', 'invalid_request');
        }
        return tokenResponse(b);
      }],
    ],
  }, opts);

  // Object.assign would snapshot a getter, so the live `kid` is defined separately below.
  const idp = Object.assign(server, {
    issuer: server.origin,
    jwksUri: `${server.origin}/.well-known/jwks.json`,
    tokenEndpoint: `${server.origin}/token`,
    audience: DEFAULT_AUDIENCE,
    claims(o: MintOptions = {}): JWTPayload {
      const iat = Math.floor(Date.now() / 1000);
      const clientId = o.clientId ?? 'dev-client';
      return {
        iss: idp.issuer, sub: o.subject ?? clientId, aud: o.audience ?? DEFAULT_AUDIENCE,
        iat, exp: iat + (o.expiresIn ?? 3600), jti: randomUUID(), client_id: clientId, scope: scopeList(o.scopes).join(' '),
        ...(o.patient ? { patient: o.patient } : {}), ...(o.fhirUser ? { fhirUser: o.fhirUser } : {}),
        ...o.claims,
      };
    },
    mint: (o: MintOptions = {}) => idp.signWith(idp.claims(o)),
    signWith(payload: JWTPayload, o: { key?: CryptoKey | Uint8Array; alg?: string; kid?: string | null; header?: Record<string, unknown> } = {}) {
      const kid = o.kid === null ? undefined : o.kid ?? current().kid;
      return new SignJWT(payload).setProtectedHeader({ alg: o.alg ?? 'RS256', typ: 'JWT', ...(kid ? { kid } : {}), ...o.header }).sign(o.key ?? current().privateKey);
    },
    async rotate(o: { keepOld?: boolean } = {}) {
      const k = await newKey();
      keys = o.keepOld ? [...keys, k] : [k];
      return k.kid;
    },
    currentKey: current,
    publicKeyPem: () => current().pem,
    jwks: () => ({ keys: keys.map((k) => k.jwk) }),
  }) as DevIdp;
  Object.defineProperty(idp, 'kid', { get: () => current().kid, enumerable: true });
  return idp;
}
