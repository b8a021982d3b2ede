import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createTestIssuer, configIssues, assertIssues, problem, startGateway, startUpstream, type TestGateway, type TestIssuer, type TestUpstream } from '../../test/helpers.ts';

const config = (issuer: TestIssuer, url: string, policies: string) => `version: 1
identity: { issuers: [${issuer.yaml}] }
upstreams:
  up: { url: ${url} }
routes:
  - id: partner
    layer: system
    match: { methods: [GET], path: /partner }
    target: { upstream: up, path: /x }
    policies:
${policies}`;
const JWT = (issuer: TestIssuer) => `      - jwt: { issuers: [${issuer.name}] }\n`;
const ALLOW = `      - client-allow: { clients: { partner-gold: gold, partner-std: standard } }\n`;

describe('client-allow plugin (the worked example of docs/sdk.md)', () => {
  let issuer: TestIssuer;
  let up: TestUpstream;
  let gw: TestGateway;
  before(async () => {
    issuer = await createTestIssuer('plugin-idp');
    up = await startUpstream();
    gw = await startGateway(config(issuer, up.url, JWT(issuer) + ALLOW));
  });
  after(async () => {
    await gw.close();
    await up.close();
  });
  const call = async (token?: string) => fetch(`${gw.url}/partner`, { headers: token ? { authorization: `Bearer ${token}` } : {} });

  test('a listed client passes and the upstream receives its tier', async () => {
    const res = await call(await issuer.mint({ clientId: 'partner-gold' }));
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { headers: Record<string, string> }).headers['x-partner-tier'], 'gold');
  });

  test('unlisted clients, tokens without a client id and a tier header forged by the caller are refused or overwritten', async () => {
    const before = up.requests.length;
    for (const claims of [{ clientId: 'someone-else' }, {}, { clientId: 'PARTNER-GOLD' }, { clientId: 'partner-gold ' }]) {
      const res = await call(await issuer.mint(claims));
      assert.equal(res.status, 403, JSON.stringify(claims));
      assert.equal((await problem(res)).type, 'https://hcgw.dev/problems/forbidden');
    }
    assert.equal(up.requests.length, before, 'no refused call reached the upstream');
    const forged = await fetch(`${gw.url}/partner`, { headers: { authorization: `Bearer ${await issuer.mint({ clientId: 'partner-std' })}`, 'x-partner-tier': 'gold' } });
    assert.equal(((await forged.json()) as { headers: Record<string, string> }).headers['x-partner-tier'], 'standard');
  });

  test('listed above jwt, the chain is refused at load with the path and the fix (declared requires: [principal])', async () => {
    assertIssues(await configIssues(config(issuer, 'http://127.0.0.1:1', ALLOW + JWT(issuer))), [/^routes\[0\]\.policies\[0\].*client-allow.*principal.*jwt/]);
    assertIssues(await configIssues(config(issuer, 'http://127.0.0.1:1', ALLOW)), [/^routes\[0\]\.policies\[0\].*principal/]);
  });

  test('schema mistakes are config errors with their paths', async () => {
    assertIssues(await configIssues(config(issuer, 'http://127.0.0.1:1', JWT(issuer) + `      - client-allow: { clients: { a: platinum } }\n`)), [/^routes\[0\]\.policies\[1\]\.client-allow\.clients\.a: must be one of/]);
    assertIssues(await configIssues(config(issuer, 'http://127.0.0.1:1', JWT(issuer) + `      - client-allow: { clients: {} }\n`)), [/^routes\[0\]\.policies\[1\]\.client-allow\.clients/]);
  });

  test('docs/sdk.md shows this plugin exactly as it is in plugins/client-allow/index.ts', () => {
    const source = readFileSync(new URL('./index.ts', import.meta.url), 'utf8');
    assert.ok(readFileSync('docs/sdk.md', 'utf8').includes('```ts\n' + source + '```'), 'the page embeds the current source');
  });
});
