/**
 * Dev identity provider: RS256 keys with rotation, a JWKS, OAuth client_credentials for a fixed table of
 * dev clients, and a `/dev/token` minting endpoint for the CLI. Never for production: secrets are public.
 */
import { createPublicKey, randomUUID, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { calculateJwkThumbprint, EmbeddedJWK, exportJWK, exportSPKI, generateKeyPair, jwtVerify, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { HttpError, reply, startUpstream, type Ctx, type ListenOpts, type UpstreamServer } from './http.ts';

export const DEFAULT_AUDIENCE = 'hcgw-sandbox';
/** Audience of the tokens the sandbox ERP accepts (issued to the gateway only). */
export const ERP_AUDIENCE = 'hcgw-erp';
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

export interface DevClient {
  /** Client secret (client_secret_basic / _post); absent for private_key_jwt clients. */
  secret?: string;
  /** RFC 7523 private_key_jwt: PEM file (private or public) whose public key verifies the client's assertions. */
  keyFile?: string;
  /** `aud` of this client's tokens (default: hcgw-sandbox). */
  audience?: string;
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
  // The gateway itself, calling the ERP with its own token (routes.yaml upstreams.erp.auth): private_key_jwt.
  'hcgw-gateway': { keyFile: fileURLToPath(new URL('./keys/hcgw-gateway.dev.pem', import.meta.url)), scopes: ['erp.read', 'erp.write'], audience: ERP_AUDIENCE },
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

const invalidClient = () => new HttpError(401, 'Client authentication failed', 'invalid_client', {}, { 'www-authenticate': 'Basic realm="hcgw-sandbox-idp"' });

/**
 * RFC 7523 §2.2 client assertion: signed by the client's registered key, iss = sub = client id, aud =
 * the token endpoint (or the issuer), unexpired, and its jti used once.
 */
async function assertionAuth(form: URLSearchParams, audiences: string[], seenJti: Set<string>): Promise<{ id: string; client: DevClient }> {
  const assertion = form.get('client_assertion') ?? '';
  let id: string | undefined;
  try {
    id = JSON.parse(Buffer.from(assertion.split('.')[1] ?? '', 'base64url').toString('utf8')).sub;
  } catch { throw invalidClient(); }
  const client = typeof id === 'string' && Object.hasOwn(DEV_CLIENTS, id) ? DEV_CLIENTS[id] : undefined;
  if (!id || !client?.keyFile || (form.get('client_id') ?? id) !== id) throw invalidClient();
  try {
    const key = createPublicKey(readFileSync(client.keyFile));
    const { payload } = await jwtVerify(assertion, key, { issuer: id, subject: id, audience: audiences, requiredClaims: ['exp', 'jti'], maxTokenAge: '5m' });
    if (seenJti.has(payload.jti!)) throw new Error('replayed assertion');
    // Assertions live at most 5 minutes (maxTokenAge): a bounded memory of recent jtis is enough for a dev IdP.
    if (seenJti.size >= 10_000) seenJti.clear();
    seenJti.add(payload.jti!);
  } catch { throw invalidClient(); }
  return { id, client };
}

/** RFC 9449 §4.3 at the token endpoint: a proof for POST <token endpoint>, fresh; the token gets its key's thumbprint. */
async function dpopBinding(ctx: Ctx, tokenEndpoint: string): Promise<string | undefined> {
  const proof = ctx.headers.dpop;
  if (proof === undefined) return undefined;
  const invalid = () => new HttpError(400, 'Invalid DPoP proof', 'invalid_dpop_proof');
  try {
    const { payload, protectedHeader } = await jwtVerify(String(proof), EmbeddedJWK, { typ: 'dpop+jwt', maxTokenAge: '60s' });
    if (payload.htm !== 'POST' || payload.htu !== tokenEndpoint || typeof payload.jti !== 'string') throw invalid();
    return await calculateJwkThumbprint(protectedHeader.jwk!, 'sha256');
  } catch { throw invalid(); }
}

/** RFC 6749 §2.3.1: HTTP Basic (form-urlencoded id/secret) or client_id/client_secret in the body. */
function clientAuth(ctx: Ctx, form: URLSearchParams): { id: string; client: DevClient } {
  const invalid = invalidClient;
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
  if (!id || !client?.secret || !secret || !safeEqual(secret, client.secret)) throw invalid();
  return { id, client };
}

export async function startIdp(opts: ListenOpts = {}): Promise<DevIdp> {
  let keys: SigningKey[] = [await newKey()];
  const current = () => keys[keys.length - 1];

  const seenJti = new Set<string>();
  const tokenResponse = async (o: MintOptions, jkt?: string) => {
    const bound = jkt ? { ...o, claims: { ...o.claims, cnf: { jkt } } } : o;
    const c = idp.claims(bound);
    return reply(200, { access_token: await idp.signWith(c), token_type: jkt ? 'DPoP' : 'Bearer', expires_in: (c.exp as number) - (c.iat as number), scope: c.scope },
      { 'cache-control': 'no-store', pragma: 'no-cache' });
  };

  const server = await startUpstream({
    name: 'idp',
    errorBody: (e) => ({ error: e.code, error_description: e.message }),
    routes: [
      ['GET', '/.well-known/jwks.json', () => reply(200, idp.jwks(), { 'cache-control': 'public, max-age=300' })],
      ['GET', '/.well-known/openid-configuration', () => reply(200, {
        issuer: idp.issuer, jwks_uri: idp.jwksUri, token_endpoint: idp.tokenEndpoint,
        grant_types_supported: ['client_credentials'], token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'private_key_jwt'],
        token_endpoint_auth_signing_alg_values_supported: ['ES256', 'RS256'], dpop_signing_alg_values_supported: ['ES256', 'RS256', 'PS256', 'EdDSA'],
        id_token_signing_alg_values_supported: ['RS256'], response_types_supported: ['token'],
        scopes_supported: [...new Set(Object.values(DEV_CLIENTS).flatMap((c) => c.scopes))],
      })],
      ['POST', '/token', async (ctx) => {
        const form = new URLSearchParams(ctx.text);
        const { id, client } = form.get('client_assertion_type') === ASSERTION_TYPE
          ? await assertionAuth(form, [idp.tokenEndpoint, idp.issuer], seenJti)
          : clientAuth(ctx, form);
        if (form.get('grant_type') !== 'client_credentials') throw new HttpError(400, 'Only client_credentials is supported', 'unsupported_grant_type');
        const jkt = await dpopBinding(ctx, idp.tokenEndpoint);
        const requested = scopeList(form.get('scope') ?? undefined);
        const granted = requested.length ? requested.filter((s) => allows(client.scopes, s)) : client.scopes;
        if (!granted.length) throw new HttpError(400, 'None of the requested scopes is allowed for this client', 'invalid_scope');
        return tokenResponse({ clientId: id, subject: id, scopes: granted, patient: client.patient, fhirUser: client.fhirUser, audience: client.audience }, jkt);
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
