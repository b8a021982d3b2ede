import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { compileConfig } from '../gateway/config/compile.ts';
import { ConfigError } from '../gateway/config/errors.ts';
import { loadConfigFile } from '../gateway/config/load.ts';
import { createLogger } from '../gateway/ops/logger.ts';
import { createMetrics } from '../gateway/ops/metrics.ts';
import { createMemoryStore } from '../gateway/store/memory.ts';
import { main } from '../gateway/cli/main.ts';
import { commands } from '../gateway/cli/commands/index.ts';
import { writeConfig } from './helpers.ts';

const BASE = `version: 1
identity:
  issuers:
    - { name: idp, issuer: http://127.0.0.1:1, jwksUri: http://127.0.0.1:1/jwks, algorithms: [RS256] }
upstreams:
  ehr: { url: http://127.0.0.1:1/fhir }
`;

async function issuesOf(yaml: string): Promise<Array<{ path: string; message: string }>> {
  const file = writeConfig(yaml);
  try {
    const loaded = await loadConfigFile(file);
    const compiled = await compileConfig(loaded, { logger: createLogger({ silent: true }), metrics: createMetrics(), store: createMemoryStore() });
    await compiled.close();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${(err as Error).message}`);
    assert.equal(err.file, file);
    return err.issues;
  }
  return [];
}

const cli = (...args: string[]) => spawnSync(process.execPath, ['bin/hcgw.js', ...args], { encoding: 'utf8', timeout: 30_000 });

const THREE_MISTAKES =
  BASE +
  `routes:
  - id: a
    layer: system
    matc: { path: /a }
    target: { upstream: ehr, path: /a }
  - id: b
    layer: system
    match: { path: /b }
    target: { upstream: ehr, path: /b }
    policies:
      - jwt: { issuers: "idp" }
  - id: c
    layer: system
    match: { path: /c }
    target: { upstream: nowhere, path: /c }
`;

describe('config validation', () => {
  test('a valid config compiles', async () => {
    assert.deepEqual(await issuesOf(BASE + `routes:\n  - { id: a, layer: system, match: { path: /a }, target: { upstream: ehr, path: /a } }\n`), []);
  });

  test('reports every mistake at once, each with its path', async () => {
    const issues = await issuesOf(THREE_MISTAKES);
    const paths = issues.map((i) => i.path);
    assert.ok(paths.includes('routes[0].matc'), paths.join(' | '));
    assert.ok(paths.includes('routes[0].match'), 'the missing match is named too');
    assert.ok(paths.includes('routes[1].policies[0].jwt.issuers'), paths.join(' | '));
    assert.ok(paths.includes('routes[2].target.upstream'), paths.join(' | '));
  });

  test('cross-references: unknown upstream, unknown issuer, unknown policy, duplicate ids and matches', async () => {
    const issues = await issuesOf(
      BASE +
        `routes:
  - id: a
    layer: system
    match: { path: /a }
    target: { upstream: nowhere, path: /a }
  - id: a
    layer: system
    match: { path: /a }
    target: { upstream: ehr, path: /x/:missing }
    policies:
      - jwt: { issuers: [other-idp] }
      - rate-limt: {}
`,
    );
    const text = issues.map((i) => `${i.path}: ${i.message}`).join('\n');
    assert.match(text, /routes\[0\]\.target\.upstream: unknown upstream "nowhere"/);
    assert.match(text, /routes\[1\]\.id: duplicate route id "a"/);
    assert.match(text, /routes\[1\]\.match: GET \/a is already matched by route "a"/);
    assert.match(text, /routes\[1\]\.target\.path: uses parameter\(s\) not in match\.path: missing/);
    assert.match(text, /routes\[1\]\.policies\[0\]\.jwt\.issuers\[0\]: unknown issuer "other-idp"/);
    assert.match(text, /routes\[1\]\.policies\[1\]: unknown policy "rate-limt"/);
  });

  test('unknown keys anywhere are errors (typos in security config must not pass)', async () => {
    const issues = await issuesOf(
      BASE.replace('algorithms: [RS256] }', 'algorithms: [RS256], audience: [x] }') +
        `routes:\n  - { id: a, layer: system, match: { path: /a }, target: { upstream: ehr, path: /a }, policies: [ { jwt: { issuers: [idp], optional: true } } ] }\n`,
    );
    const paths = issues.map((i) => `${i.path}: ${i.message}`);
    assert.ok(paths.includes('identity.issuers[0].audience: unknown key'), paths.join(' | '));
  });

  test('policy config errors carry the policy path', async () => {
    const issues = await issuesOf(BASE + `routes:\n  - { id: a, layer: system, match: { path: /a }, target: { upstream: ehr, path: /a }, policies: [ { jwt: { issuers: [idp], optional: true } } ] }\n`);
    assert.deepEqual(issues, [{ path: 'routes[0].policies[0].jwt.optional', message: 'unknown key' }]);
  });

  test('closed defaults: algorithm none and HS without secret are refused', async () => {
    const issues = await issuesOf(BASE.replace('algorithms: [RS256]', 'algorithms: [none, HS256]') + 'routes: []\n');
    const text = issues.map((i) => `${i.path}: ${i.message}`).join('\n');
    assert.match(text, /identity\.issuers\[0\]\.algorithms\[0\]: must be one of/);
  });

  test('YAML syntax errors name the line', async () => {
    const issues = await issuesOf('version: 1\nroutes:\n  - id: [unclosed\n');
    assert.match(issues[0].path, /^line \d+, column \d+$/);
  });

  test('prototype-pollution keys in YAML are refused', async () => {
    const issues = await issuesOf(BASE + 'routes: []\n__proto__: { polluted: true }\n');
    assert.deepEqual(issues, [{ path: '__proto__', message: 'forbidden key' }]);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });

  test('secrets come from the environment; a missing variable is an error', async () => {
    const yaml = BASE.replace('algorithms: [RS256] }', 'algorithms: [RS256, HS256], secret: "${env:HCGW_TEST_SECRET}" }') + 'routes: []\n';
    const missing = await issuesOf(yaml);
    assert.deepEqual(missing, [{ path: 'identity.issuers[0].secret', message: 'environment variable HCGW_TEST_SECRET is not set' }]);
    process.env.HCGW_TEST_SECRET = 'x'.repeat(40);
    try {
      assert.deepEqual(await issuesOf(yaml), []);
    } finally {
      delete process.env.HCGW_TEST_SECRET;
    }
  });

  test('routes cannot shadow the gateway endpoints', async () => {
    const issues = await issuesOf(BASE + `routes:\n  - { id: a, layer: system, match: { path: /healthz }, target: { upstream: ehr, path: /a } }\n`);
    assert.deepEqual(issues, [{ path: 'routes[0].match.path', message: 'is reserved for the gateway itself' }]);
  });

  test('plugins named by path in routes.yaml load through the same contract', async () => {
    const file = writeConfig(BASE + `plugins: [./tag.ts]\nroutes:\n  - { id: a, layer: system, match: { path: /a }, target: { upstream: ehr, path: /a }, policies: [ { tag: { value: 7 } } ] }\n`);
    writeFileSync(
      join(dirname(file), 'tag.ts'),
      `export default { name: 'tag', configSchema: { type: 'object', additionalProperties: false, required: ['value'], properties: { value: { type: 'string' } } }, create: () => ({}) };\n`,
    );
    await assert.rejects(loadConfigFile(file).then((l) => compileConfig(l, { logger: createLogger({ silent: true }), metrics: createMetrics(), store: createMemoryStore() })), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.deepEqual(err.issues, [{ path: 'routes[0].policies[0].tag.value', message: 'must be string' }]);
      return true;
    });
    writeFileSync(join(dirname(file), 'bad.ts'), `export default { name: 'bad', create: () => ({}) };\n`);
    const file2 = join(dirname(file), 'routes2.yaml');
    writeFileSync(file2, BASE + `plugins: [./bad.ts]\nroutes: []\n`);
    await assert.rejects(loadConfigFile(file2).then((l) => compileConfig(l, { logger: createLogger({ silent: true }), metrics: createMetrics(), store: createMemoryStore() })), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.issues[0].message, /has no configSchema/);
      return true;
    });
  });
});

describe('CLI', () => {
  test('validate prints all three mistakes with their paths and exits 1', () => {
    const file = writeConfig(THREE_MISTAKES);
    const r = cli('validate', file);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /routes\[0\]\.matc: unknown key/);
    assert.match(r.stderr, /routes\[1\]\.policies\[0\]\.jwt\.issuers: must be array/);
    assert.match(r.stderr, /routes\[2\]\.target\.upstream: unknown upstream "nowhere"/);
    const fixed = writeConfig(THREE_MISTAKES.replace('matc:', 'match:').replace('issuers: "idp"', 'issuers: [nope]'));
    const r2 = cli('validate', fixed);
    assert.equal(r2.status, 1);
    assert.match(r2.stderr, /routes\[1\]\.policies\[0\]\.jwt\.issuers\[0\]: unknown issuer "nope"/);
    assert.match(r2.stderr, /routes\[2\]\.target\.upstream: unknown upstream "nowhere"/);
  });

  test('validate prints a one-line summary and exits 0 on the sandbox routes.yaml', () => {
    const r = cli('validate', 'routes.yaml');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^routes\.yaml: OK — \d+ routes .*version [0-9a-f]{16}\n$/);
  });

  test('the gateway refuses to start on an invalid config', () => {
    const file = writeConfig(THREE_MISTAKES);
    const r = cli('start', '--config', file, '--port', '0');
    assert.equal(r.status, 1);
    assert.match(r.stderr, /routes\[0\]\.matc: unknown key/);
    assert.match(r.stdout + r.stderr, /refusing to start/);
  });
});

describe('renamed config keys (deprecation, not breakage)', () => {
  const limited = (rl: string, idem: string) =>
    BASE.replace('algorithms: [RS256] }', 'algorithms: [RS256], audiences: [api] }') +
    `routes:
  - id: charge
    layer: system
    match: { methods: [POST], path: /charge }
    target: { upstream: ehr, path: /charge }
    policies:
      - jwt: { issuers: [idp] }
      - rate-limit: { key: client, limit: 5, window: 1s${rl} }
      - idempotency: { required: true${idem} }
`;
  const compile = async (yaml: string) => {
    const compiled = await compileConfig(await loadConfigFile(writeConfig(yaml)), { logger: createLogger({ silent: true }), metrics: createMetrics(), store: createMemoryStore() });
    await compiled.close();
    return compiled;
  };

  // That the old key keeps its meaning is shown by behaviour in test/idempotency.test.ts (store down, `fail: open`).
  test('the old `fail` compiles, with a warning naming the path and the new key', async () => {
    const compiled = await compile(limited(', fail: closed', ', fail: open'));
    assert.deepEqual(
      compiled.warnings.map((w) => w.path),
      ['routes[0].policies[1].rate-limit.fail', 'routes[0].policies[2].idempotency.fail'],
    );
    assert.match(compiled.warnings[0].message, /deprecated: rename it to `failMode`/);
  });

  test('the new `failMode` compiles without warnings', async () => {
    assert.deepEqual((await compile(limited(', failMode: closed', ', failMode: open'))).warnings, []);
  });

  test('both spellings at once is an error: which one was meant cannot be known', async () => {
    const issues = await issuesOf(limited(', fail: open, failMode: closed', ''));
    assert.ok(issues.some((i) => i.path === 'routes[0].policies[1].rate-limit.fail' && /keep only `failMode`/.test(i.message)), JSON.stringify(issues));
  });

  test('a bad value under the old name is reported where the author wrote it', async () => {
    const issues = await issuesOf(limited(', fail: sometimes', ''));
    assert.ok(issues.some((i) => i.path === 'routes[0].policies[1].rate-limit.fail' && /must be one of: open, closed/.test(i.message)), JSON.stringify(issues));
  });

  test('`hcgw validate` prints the deprecation on stderr and still exits 0', () => {
    const r = cli('validate', writeConfig(limited(', fail: closed', '')));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /warning: routes\[0\]\.policies\[1\]\.rate-limit\.fail: `fail` is deprecated: rename it to `failMode`/);
  });
});

/** The CLI in this process (no node start-up per call): what it wrote to stdout and stderr, and its exit code. */
async function cliInProcess(...args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  const out = { stdout: '', stderr: '' };
  const write = { stdout: process.stdout.write, stderr: process.stderr.write };
  process.stdout.write = ((c: string | Uint8Array) => ((out.stdout += String(c)), true)) as typeof process.stdout.write;
  process.stderr.write = ((c: string | Uint8Array) => ((out.stderr += String(c)), true)) as typeof process.stderr.write;
  try {
    return { status: await main(args), ...out };
  } finally {
    process.stdout.write = write.stdout;
    process.stderr.write = write.stderr;
  }
}

describe('CLI basics a new user hits at once', () => {
  const COMMANDS = commands.map((c) => c.name);
  test('--help on every command prints its usage to stdout and exits 0', async () => {
    for (const args of [['--help'], ['-h'], ['help'], ...COMMANDS.map((c) => [c, '--help']), ['help', 'audit']]) {
      const r = await cliInProcess(...args);
      assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stdout, /^usage: hcgw/, args.join(' '));
      assert.equal(r.stderr, '', args.join(' '));
    }
    assert.match((await cliInProcess('audit', '--help')).stdout, /audit verify/);
  });

  test('--version prints the package version', async () => {
    const r = await cliInProcess('--version');
    assert.equal(r.status, 0);
    assert.match(r.stdout, /^hcgw \d+\.\d+\.\d+\n$/);
  });

  test('an unknown command names itself; an unknown flag names itself; both exit 2 without a stack trace', async () => {
    const r = await cliInProcess('frobnicate');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /unknown command "frobnicate"/);
    const f = await cliInProcess('validate', '--strictt');
    assert.equal(f.status, 2);
    assert.match(f.stderr, /--strictt/);
    assert.doesNotMatch(f.stderr + r.stderr, /\n\s+at /);
  });

  test('negative numbers parse as option values and are then judged as values', async () => {
    const r = await cliInProcess('start', '--port', '-1');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--port must be an integer from 0 to 65535/);
    assert.match((await cliInProcess('token', '--ttl', '-5')).stderr, /--ttl must be a positive number/);
  });

  test('audit verify on a missing file is a usage error (exit 2), not a broken chain', async () => {
    const r = await cliInProcess('audit', 'verify', '/nonexistent/audit.jsonl');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /no such file: \/nonexistent\/audit\.jsonl/);
    assert.doesNotMatch(r.stdout, /BROKEN/);
  });

  test('validate names the route by id as well as index, and a YAML syntax error is printed once, cleanly', async () => {
    const r = await cliInProcess('validate', writeConfig(THREE_MISTAKES));
    assert.match(r.stderr, /routes\[2\]\.target\.upstream: unknown upstream "nowhere"  \(route "c"\)/);
    const syntax = await cliInProcess('validate', writeConfig('version: 1\nroutes:\n  - id: a\n   bad: [\n'));
    assert.equal(syntax.status, 1);
    assert.equal(syntax.stderr.match(/YAML syntax error/g)?.length, 1, syntax.stderr);
    assert.match(syntax.stderr, /line 4, column \d+: YAML syntax error: [^\n]+\n$/);
    assert.doesNotMatch(syntax.stderr, /at line \d+, column \d+/);
  });
});
