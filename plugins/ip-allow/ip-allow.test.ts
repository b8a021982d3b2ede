import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../gateway/config/errors.ts';
import { problem, startGateway, startUpstream, type TestGateway, type TestUpstream } from '../../test/helpers.ts';

const yaml = (url: string, allow: string) => `version: 1
upstreams:
  up: { url: ${url} }
routes:
  - id: guarded
    layer: system
    match: { methods: [GET], path: /guarded }
    target: { upstream: up, path: /x }
    policies:
      - ip-allow: { allow: [${allow}], addHeader: { name: X-Zone, value: inside } }
`;

describe('ip-allow plugin (worked example of the plugin contract)', () => {
  let up: TestUpstream;
  let open: TestGateway;
  let closed: TestGateway;
  before(async () => {
    up = await startUpstream();
    open = await startGateway(yaml(up.url, '127.0.0.0/8, "::1"'));
    closed = await startGateway(yaml(up.url, '10.0.0.0/8'));
  });
  after(async () => {
    await open.close();
    await closed.close();
    await up.close();
  });

  test('admits a listed address and tags the upstream request', async () => {
    const res = await fetch(`${open.url}/guarded`);
    assert.equal(res.status, 200);
    const { headers } = (await res.json()) as { headers: Record<string, string> };
    assert.equal(headers['x-zone'], 'inside');
  });

  test('rejects an unlisted address with 403 problem+json before the upstream is called', async () => {
    const before = up.requests.length;
    const res = await fetch(`${closed.url}/guarded`);
    assert.equal(res.status, 403);
    const p = await problem(res);
    assert.equal(p.type, 'https://hcgw.dev/problems/forbidden');
    assert.equal(up.requests.length, before);
  });

  test('a bad CIDR is a config error with its path, found at load', async () => {
    await assert.rejects(startGateway(yaml('http://127.0.0.1:1', '"10.0.0.0/x"')), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.deepEqual(err.issues, [{ path: 'routes[0].policies[0].ip-allow.allow[0]', message: '"10.0.0.0/x" is not an IP address or CIDR range' }]);
      return true;
    });
  });
});
