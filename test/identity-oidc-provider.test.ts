import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, decodeProtectedHeader } from 'jose';
import Provider, { errors as oidcErrors } from 'oidc-provider';
import { problem, startGateway, startUpstream, writeConfig, writePrincipalEchoPlugin, type TestGateway, type TestUpstream } from './helpers.ts';

/** Resource servers of the authorization server: one gets JWT access tokens, one opaque ones. */
const JWT_API = 'https://api.hcgw.test';
const OPAQUE_API = 'https://opaque.hcgw.test';
const API_SCOPES = 'billing.read claims.read patient/Observation.rs';
const CLIENTS = {
  partner: { id: 'partner-billing', secret: 'partner-billing-secret-0123456789' },
  portal: { id: 'portal-app', secret: 'portal-app-secret-0123456789abcd' },
  gateway: { id: 'hcgw-gateway', secret: 'hcgw-gateway-secret-0123456789ab' },
};

/**
 * A real OAuth 2.0 / OIDC authorization server (panva's oidc-provider, v8: the line that supports Node 20)
 * on loopback: client_credentials grants, RFC 8707 resource indicators choosing the token format, RFC 7662
 * introspection and RFC 7009 revocation. The portal client's tokens carry a SMART patient context.
 */
async function startAuthorizationServer() {
  const server = http.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  const provider = new Provider(issuer, {
    jwks: { keys: [{ ...(await exportJWK(privateKey)), kid: 'as-es256', alg: 'ES256', use: 'sig' }] as never },
    cookies: { keys: ['test-cookie-key-0123456789abcdef'] },
    clientDefaults: { id_token_signed_response_alg: 'ES256' },
    clients: [
      { client_id: CLIENTS.partner.id, client_secret: CLIENTS.partner.secret, grant_types: ['client_credentials'], response_types: [], redirect_uris: [] },
      { client_id: CLIENTS.portal.id, client_secret: CLIENTS.portal.secret, grant_types: ['client_credentials'], response_types: [], redirect_uris: [] },
      { client_id: CLIENTS.gateway.id, client_secret: CLIENTS.gateway.secret, grant_types: [], response_types: [], redirect_uris: [] },
    ],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => JWT_API,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resource) => {
          if (resource === JWT_API) return { scope: API_SCOPES, audience: JWT_API, accessTokenFormat: 'jwt', accessTokenTTL: 300, jwt: { sign: { alg: 'ES256' } } };
          if (resource === OPAQUE_API) return { scope: API_SCOPES, audience: OPAQUE_API, accessTokenFormat: 'opaque', accessTokenTTL: 300 };
          throw new oidcErrors.InvalidTarget();
        },
      },
    },
    extraTokenClaims: (_ctx, token) => ((token as { clientId?: string }).clientId === CLIENTS.portal.id ? { patient: 'p1', fhirUser: 'Patient/p1' } : undefined),
  });
  server.on('request', provider.callback());

  const basic = (c: { id: string; secret: string }) => `Basic ${Buffer.from(`${encodeURIComponent(c.id)}:${encodeURIComponent(c.secret)}`).toString('base64')}`;
  const post = (path: string, client: { id: string; secret: string }, form: Record<string, string>) =>
    fetch(`${issuer}${path}`, { method: 'POST', headers: { authorization: basic(client), 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(form) });
  return {
    issuer,
    async token(client: { id: string; secret: string }, scope: string, resource = JWT_API): Promise<string> {
      const res = await post('/token', client, { grant_type: 'client_credentials', scope, resource });
      const body = (await res.json()) as { access_token?: string; error?: string; error_description?: string };
      assert.equal(res.status, 200, `token request failed: ${body.error} (${body.error_description})`);
      return body.access_token!;
    },
    async revoke(client: { id: string; secret: string }, token: string): Promise<void> {
      const res = await post('/token/revocation', client, { token });
      await res.arrayBuffer();
      assert.equal(res.status, 200);
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe('jwt + scopes against a real OAuth authorization server (oidc-provider)', () => {
  let as: Awaited<ReturnType<typeof startAuthorizationServer>>;
  let up: TestUpstream;
  let gw: TestGateway;

  before(async () => {
    as = await startAuthorizationServer();
    up = await startUpstream();
    const file = writeConfig('');
    const plugin = writePrincipalEchoPlugin(file);
    writeFileSync(
      file,
      `version: 1
plugins: [${plugin}]
identity:
  issuers:
    - name: hospital-as
      issuer: "${as.issuer}"
      jwksUri: "${as.issuer}/jwks"
      audiences: ["${JWT_API}", "${OPAQUE_API}"]
      algorithms: [ES256, RS256]
      introspection: { url: "${as.issuer}/token/introspection", clientId: ${CLIENTS.gateway.id}, clientSecret: "${CLIENTS.gateway.secret}" }
upstreams:
  up: { url: "${up.url}" }
routes:
  - id: partner-claims
    layer: system
    match: { methods: [GET], path: /partner/claims }
    target: { upstream: up, path: /claims }
    policies:
      - jwt: { issuers: [hospital-as] }
      - scopes: { allOf: [claims.read] }
      - principal-echo: {}
`,
    );
    gw = await startGateway('', { file });
  });
  after(async () => {
    await gw?.close();
    await Promise.all([as?.close(), up?.close()]);
  });

  const call = (token: string) => fetch(`${gw.url}/partner/claims`, { headers: { authorization: `Bearer ${token}` } });
  const principalOf = async (res: Response) => JSON.parse(((await res.json()) as { headers: Record<string, string> }).headers['x-principal']);

  test('a client_credentials JWT access token (resource indicator) is verified against the JWKS', async () => {
    const token = await as.token(CLIENTS.partner, 'claims.read billing.read');
    assert.equal(decodeProtectedHeader(token).alg, 'ES256');
    const res = await call(token);
    assert.equal(res.status, 200);
    const p = await principalOf(res);
    assert.equal(p.issuer, as.issuer);
    assert.equal(p.clientId, CLIENTS.partner.id);
    assert.deepEqual([...p.scopes].sort(), ['billing.read', 'claims.read']);
  });

  test('a token without the route scope → 403 insufficient_scope naming it', async () => {
    const token = await as.token(CLIENTS.partner, 'billing.read');
    const res = await call(token);
    assert.equal(res.status, 403);
    assert.equal(res.headers.get('www-authenticate'), 'Bearer realm="hcgw", error="insufficient_scope", scope="claims.read"');
    const p = await problem(res);
    assert.equal(p.type, 'https://hcgw.dev/problems/insufficient-scope');
    assert.equal(p.scope, 'claims.read');
    assert.ok(!JSON.stringify(p).includes(token.split('.')[1]));
  });

  test('an opaque token is introspected at the authorization server', async () => {
    const token = await as.token(CLIENTS.partner, 'claims.read', OPAQUE_API);
    assert.equal(token.split('.').length, 1, 'opaque');
    const res = await call(token);
    assert.equal(res.status, 200);
    assert.equal((await principalOf(res)).clientId, CLIENTS.partner.id);
  });

  test('a revoked opaque token is inactive → 401 invalid_token', async () => {
    const token = await as.token(CLIENTS.partner, 'claims.read', OPAQUE_API);
    await as.revoke(CLIENTS.partner, token);
    const res = await call(token);
    assert.equal(res.status, 401);
    assert.match(res.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
    assert.equal((await problem(res)).detail, 'The access token is not active');
  });

  test('the SMART patient context of a token reaches the principal', async () => {
    const token = await as.token(CLIENTS.portal, 'claims.read patient/Observation.rs');
    const res = await call(token);
    assert.equal(res.status, 200);
    const p = await principalOf(res);
    assert.equal(p.patient, 'p1');
    assert.equal(p.fhirUser, 'Patient/p1');
    assert.ok(p.scopes.includes('patient/Observation.rs'));
  });
});
