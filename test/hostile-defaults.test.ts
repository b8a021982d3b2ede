import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { dirname, join } from 'node:path';
import { SignJWT } from 'jose';
import { ConfigError } from '../gateway/config/errors.ts';
import { buildOpenApi } from '../gateway/cli/openapi.ts';
import { metricValue, problem, startGateway, writeConfig, type TestGateway, tempDir } from './helpers.ts';

/**
 * Secure defaults, each exercised for real: TLS to upstreams (private CA, client certificates), the
 * client address when X-Forwarded-For is sent, the admin port, and secrets read from files.
 */

/** A private CA, a server certificate for 127.0.0.1 and a client certificate, made with the openssl CLI. */
function makePki(dir: string) {
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const key = (name: string) => openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`);
  const ca = (name: string) => {
    key(name);
    openssl('req', '-x509', '-new', '-key', `${name}.key`, '-out', `${name}.pem`, '-days', '1', '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign');
  };
  const leaf = (name: string, signer: string, ext: string) => {
    key(name);
    openssl('req', '-new', '-key', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    writeFileSync(join(dir, `${name}.ext`), ext);
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${signer}.pem`, '-CAkey', `${signer}.key`, '-CAcreateserial', '-out', `${name}.pem`, '-days', '1', '-extfile', `${name}.ext`);
  };
  ca('hospital-ca');
  ca('other-ca');
  leaf('ehr-server', 'hospital-ca', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  leaf('hcgw-gateway', 'hospital-ca', 'extendedKeyUsage=clientAuth\n');
  return (f: string) => join(dir, f);
}

describe('TLS to upstreams: private CA and mTLS', () => {
  let server: https.Server;
  let gw: TestGateway;
  const served: string[] = [];
  before(async () => {
    const file = makePki(tempDir('hcgw-pki-'));
    server = https.createServer(
      { key: readFileSync(file('ehr-server.key')), cert: readFileSync(file('ehr-server.pem')), ca: readFileSync(file('hospital-ca.pem')), requestCert: true, rejectUnauthorized: true },
      (req, res) => {
        const peer = (req.socket as TLSSocket).getPeerCertificate();
        served.push(String(peer.subject?.CN));
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ client: peer.subject?.CN }));
      },
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const mtls = `certFile: ${file('hcgw-gateway.pem')}, keyFile: ${file('hcgw-gateway.key')}`;
    const route = (name: string) => `  - { id: ${name}, layer: system, match: { path: /${name} }, target: { upstream: ${name}, path: /x } }\n`;
    gw = await startGateway(`
version: 1
upstreams:
  trusted: { url: "${url}", tls: { caFile: ${file('hospital-ca.pem')}, ${mtls} } }
  wrongca: { url: "${url}", tls: { caFile: ${file('other-ca.pem')}, ${mtls} } }
  nocert: { url: "${url}", tls: { caFile: ${file('hospital-ca.pem')} } }
  systemca: { url: "${url}", tls: { ${mtls} } }
routes:
${['trusted', 'wrongca', 'nocert', 'systemca'].map(route).join('')}`);
  });
  after(async () => {
    await gw.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  test('the private CA and a client certificate: proxied, and the upstream saw the gateway’s certificate', async () => {
    const res = await fetch(`${gw.url}/trusted`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { client: 'hcgw-gateway' });
  });

  test('an upstream certificate from another CA, no client certificate, or the system trust store: 502, closed', async () => {
    const before = served.length;
    for (const name of ['wrongca', 'nocert', 'systemca']) {
      const res = await fetch(`${gw.url}/${name}`);
      assert.equal(res.status, 502, name);
      assert.equal((await problem(res)).type, 'https://hcgw.dev/problems/bad-gateway');
    }
    assert.equal(served.length, before, 'the upstream served none of them');
    assert.equal(await metricValue(gw.url, 'hcgw_upstream_errors_total', { upstream: 'wrongca', kind: 'tls' }), 1);
    assert.equal(await metricValue(gw.url, 'hcgw_upstream_errors_total', { upstream: 'systemca', kind: 'tls' }), 1);
    assert.equal(await metricValue(gw.url, 'hcgw_upstream_errors_total', { upstream: 'nocert' }), 1);
  });
});

describe('client addresses: X-Forwarded-For is not trusted unless trustProxy says so', () => {
  const yaml = (trustProxy: string) => `
version: 1
server: { trustProxy: ${trustProxy} }
upstreams:
  app: { url: "http://127.0.0.1:1" }
routes:
  - { id: ward, layer: system, match: { path: /ward }, target: { upstream: app, path: /x }, policies: [ { ip-allow: { allow: [10.0.0.0/8] } } ] }
  - { id: limited, layer: system, match: { path: /limited }, target: { upstream: app, path: /x }, policies: [ { rate-limit: { key: ip, limit: 3, window: 1m } } ] }
`;
  let strict: TestGateway;
  let behindProxy: TestGateway;
  before(async () => {
    strict = await startGateway(yaml('false'));
    behindProxy = await startGateway(yaml('loopback'));
  });
  after(async () => {
    await strict.close();
    await behindProxy.close();
  });

  test('by default a forged X-Forwarded-For does not pass an ip-allow list', async () => {
    const res = await fetch(`${strict.url}/ward`, { headers: { 'x-forwarded-for': '10.1.2.3' } });
    assert.equal(res.status, 403);
    assert.equal((await problem(res)).type, 'https://hcgw.dev/problems/forbidden');
  });

  test('by default rotating X-Forwarded-For does not escape a per-IP rate limit', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await fetch(`${strict.url}/limited`, { headers: { 'x-forwarded-for': `198.51.100.${i}` } });
      statuses.push(res.status);
      await res.arrayBuffer();
    }
    assert.deepEqual(statuses.slice(3), [429, 429], `statuses ${statuses}`);
  });

  test('with trustProxy naming the proxy (loopback), its X-Forwarded-For is the client address', async () => {
    const res = await fetch(`${behindProxy.url}/ward`, { headers: { 'x-forwarded-for': '10.1.2.3' } });
    assert.equal(res.status, 502, 'admitted by ip-allow; the upstream of this test is unreachable');
    await res.arrayBuffer();
  });
});

describe('admin port: closed unless configured, loopback when configured', () => {
  test('without server.admin there is no admin listener and /admin is not served on the main port', async () => {
    const gw = await startGateway('version: 1\nroutes: []\n');
    try {
      assert.equal(gw.gw.adminAddress, undefined);
      const res = await fetch(`${gw.url}/admin/routes`);
      assert.equal(res.status, 404);
      assert.equal((await problem(res)).type, 'https://hcgw.dev/problems/route-not-found');
    } finally {
      await gw.close();
    }
  });

  test('server.admin without host binds 127.0.0.1; without a token its API is off', async () => {
    const gw = await startGateway('version: 1\nserver: { admin: { port: 0 } }\nroutes: []\n');
    try {
      const admin = gw.gw.adminAddress!;
      assert.equal(admin.address, '127.0.0.1');
      assert.equal((await fetch(`http://127.0.0.1:${admin.port}/admin/routes`)).status, 404);
      assert.equal((await fetch(`${gw.url}/metrics`)).status, 404, 'metrics move to the admin port');
    } finally {
      await gw.close();
    }
  });
});

describe('secrets from files (${file:...})', () => {
  const ADMIN_TOKEN = 'admin-token-from-a-file-0123456789';
  const HS_SECRET = 'hs256-shared-secret-from-a-file-0123456789abcdef';

  test('relative and absolute ${file:} values are read (trimmed), used, and never shown', async () => {
    const absolute = join(tempDir('hcgw-secret-'), 'hs-secret');
    writeFileSync(absolute, `${HS_SECRET}\n`);
    const file = writeConfig(`
version: 1
server: { admin: { port: 0, token: "\${file:admin-token}" } }
identity:
  issuers:
    - { name: legacy, issuer: https://legacy.test, audiences: [hcgw], algorithms: [HS256], secret: "\${file:${absolute}}" }
upstreams:
  app: { url: "http://127.0.0.1:1" }
routes:
  - { id: legacy, layer: system, match: { path: /legacy }, target: { upstream: app, path: /x }, policies: [ { jwt: { issuers: [legacy] } } ] }
`);
    writeFileSync(join(dirname(file), 'admin-token'), `${ADMIN_TOKEN}\n`);
    const gw = await startGateway('', { file });
    try {
      const admin = `http://127.0.0.1:${gw.gw.adminAddress!.port}`;
      const routes = await fetch(`${admin}/admin/routes`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      assert.equal(routes.status, 200);
      const token = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setIssuer('https://legacy.test').setAudience('hcgw').setExpirationTime('5m').sign(new TextEncoder().encode(HS_SECRET));
      const res = await fetch(`${gw.url}/legacy`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(res.status, 502, 'the token verified against the secret from the file; the upstream is unreachable');
      await res.arrayBuffer();
      const shown = [await routes.text(), gw.lines.join('\n'), JSON.stringify(buildOpenApi(gw.gw.compiled.config, file))].join('\n');
      for (const secret of [ADMIN_TOKEN, HS_SECRET]) assert.ok(!shown.includes(secret), 'a secret leaked into admin output, logs or the OpenAPI document');
    } finally {
      await gw.close();
    }
  });

  test('an unreadable secret file stops start-up with the path, never a partial config', async () => {
    const file = writeConfig('version: 1\nserver: { admin: { port: 0, token: "${file:missing-token}" } }\nroutes: []\n');
    await assert.rejects(startGateway('', { file }), (err: unknown) => err instanceof ConfigError && err.issues.some((i) => i.path === 'server.admin.token' && /missing-token cannot be read/.test(i.message)));
  });
});
