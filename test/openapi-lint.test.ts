import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Spectral } from '@stoplight/spectral-core';
import { oas } from '@stoplight/spectral-rulesets';
import { loadConfigFile } from '../gateway/config/load.ts';
import { buildOpenApi } from '../gateway/cli/openapi.ts';

/** Spectral's `oas` ruleset, every rule on (`all`), against the document `hcgw openapi` writes for the shipped routes.yaml. */
async function lint(doc: unknown) {
  const spectral = new Spectral();
  spectral.setRuleset({ extends: [[oas as never, 'all']] } as never);
  return spectral.run(JSON.stringify(doc, null, 2));
}

test('the OpenAPI export of routes.yaml has no error and no warning under Spectral oas (all rules)', async () => {
  const loaded = await loadConfigFile('routes.yaml');
  const doc = buildOpenApi(loaded.config, loaded.file, { version: loaded.hash }) as Record<string, any>;
  const results = await lint(doc);
  const shown = results.map((r) => `${['error', 'warn', 'info', 'hint'][r.severity]} ${r.code} ${r.path.join('.')}: ${r.message}`);
  assert.deepEqual(shown.filter((s) => !s.startsWith('hint') && !s.startsWith('info')), []);
  // What the fixes are about, checked directly too:
  const ops = Object.values(doc.paths as Record<string, Record<string, any>>).flatMap((item) => Object.values(item));
  assert.ok(ops.every((op) => typeof op.summary === 'string' && op.summary.length > 0), 'every operation has a summary');
  const p429 = doc.components.responses.Problem429;
  assert.deepEqual(Object.keys(p429.headers).sort(), ['RateLimit', 'RateLimit-Policy', 'Retry-After']);
  const scheme = doc.components.securitySchemes['sandbox-idp'];
  assert.equal(scheme.type, 'oauth2');
  assert.equal(scheme.flows.clientCredentials.tokenUrl, 'http://127.0.0.1:9100/token');
  assert.ok('patient/Observation.s' in scheme.flows.clientCredentials.scopes && 'claims.read' in scheme.flows.clientCredentials.scopes);
  assert.ok(doc.info.license?.url && doc.info.contact?.email);
  assert.ok(!JSON.stringify(doc).includes('/$defs/'), 'no references into a component\'s $defs');
});

test('the linter does find problems (the test can fail): a document without summaries, license or security scopes', async () => {
  const results = await lint({
    openapi: '3.1.0',
    info: { title: 't', version: '1' },
    paths: { '/x': { get: { security: [{ s: ['nope'] }], responses: { '200': { description: 'ok' } } } } },
    components: { securitySchemes: { s: { type: 'oauth2', flows: { clientCredentials: { tokenUrl: 'https://a/t', scopes: {} } } } } },
  });
  const codes = new Set(results.map((r) => r.code));
  for (const c of ['info-license', 'info-contact', 'oas3-operation-security-defined', 'operation-description', 'oas3-api-servers']) assert.ok(codes.has(c), c);
});
