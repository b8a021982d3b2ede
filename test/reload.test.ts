import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../gateway/config/errors.ts';
import { reloadConfig, watchConfig } from '../gateway/ops/reload.ts';
import { startGateway, startUpstream, waitFor, writeConfig, type TestGateway, type TestUpstream } from './helpers.ts';

/** A plugin whose close() is observable: proves when a retired router is closed. */
const CLOSE_PROBE = `
const closed = (globalThis.__hcgwClosedTags ??= []);
export default {
  name: 'close-probe',
  configSchema: { type: 'object', additionalProperties: false, required: ['tag'], properties: { tag: { type: 'string', description: 'Name recorded on close' } } },
  create(config) {
    return { onRequest() {}, close() { closed.push(config.tag); } };
  },
};
`;
const closedTags = () => ((globalThis as { __hcgwClosedTags?: string[] }).__hcgwClosedTags ??= []);

function configYaml(upstream: string, version: 'v1' | 'v2', extra = ''): string {
  return `
version: 1
plugins: [./close-probe.mjs]
upstreams:
  echo: { url: "${upstream}", timeoutMs: 5000 }
routes:
  - id: versioned
    layer: system
    match: { methods: [GET], path: /r }
    target: { upstream: echo, path: /${version} }
  - id: slow
    layer: system
    match: { methods: [GET], path: /slow }
    target: { upstream: echo, path: /slow }
    policies:
      - close-probe: { tag: ${version} }
${extra}`;
}

async function version(url: string): Promise<string> {
  const body = (await (await fetch(`${url}/readyz`)).json()) as { config: { version: string } };
  return body.config.version;
}

describe('hot reload in process', () => {
  let up: TestUpstream;
  let gw: TestGateway;
  let file: string;
  before(async () => {
    up = await startUpstream((req, res) => {
      const answer = () => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ path: req.url }));
      };
      if (req.url === '/slow') setTimeout(answer, 600).unref();
      else answer();
    });
    file = writeConfig(configYaml(up.url, 'v1'));
    writeFileSync(join(dirname(file), 'close-probe.mjs'), CLOSE_PROBE);
    gw = await startGateway('', { file });
  });
  after(async () => {
    await gw?.close();
    await up?.close();
  });

  /** Writes the next config the way editors do: a new file renamed over the old one. */
  const replaceConfig = (yaml: string) => {
    const tmp = `${file}.tmp`;
    writeFileSync(tmp, yaml);
    renameSync(tmp, file);
  };

  test('reloads under load: zero failed requests, both configs served, each request on one router', async () => {
    const seen = new Map<string, number>();
    const failures: string[] = [];
    let stop = false;
    let sent = 0;
    const deadline = Date.now() + 15_000;
    const client = async () => {
      while (!stop && sent < 600 && Date.now() < deadline) {
        sent++;
        try {
          const res = await fetch(`${gw.url}/r`);
          const text = await res.text();
          if (res.status !== 200) failures.push(`${res.status} ${text}`);
          else {
            const path = (JSON.parse(text) as { path: string }).path;
            seen.set(path, (seen.get(path) ?? 0) + 1);
          }
        } catch (err) {
          failures.push(String(err));
        }
      }
    };
    const load = Promise.all(Array.from({ length: 6 }, client));
    for (let i = 0; i < 6; i++) {
      await new Promise((r) => setTimeout(r, 60));
      replaceConfig(configYaml(up.url, i % 2 === 0 ? 'v2' : 'v1'));
      await gw.gw.reload();
    }
    stop = true;
    await load;
    assert.deepEqual(failures, []);
    assert.ok((seen.get('/v1') ?? 0) > 0 && (seen.get('/v2') ?? 0) > 0, `both versions served: ${JSON.stringify([...seen])}`);
    assert.deepEqual([...seen.keys()].sort(), ['/v1', '/v2'], 'never a mix of the two');
    assert.match(await (await fetch(`${gw.url}/metrics`)).text(), /hcgw_config_reloads_total\{result="applied"\} [6-9]/);
  });

  test('an in-flight request finishes on the old router, which is closed only after it', async () => {
    replaceConfig(configYaml(up.url, 'v1'));
    await gw.gw.reload();
    closedTags().length = 0;
    const slow = fetch(`${gw.url}/slow`);
    await waitFor(() => up.requests.some((r) => r.url === '/slow'), 3000, 'the slow request to reach the upstream');
    replaceConfig(configYaml(up.url, 'v2'));
    await gw.gw.reload();
    assert.deepEqual(closedTags(), [], 'the retired router still has a request in flight');
    const res = await slow;
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { path: '/slow' });
    await waitFor(() => closedTags().includes('v1'), 3000, 'the retired router to be closed');
    assert.deepEqual(closedTags(), ['v1']);
  });

  test('a broken config is rejected with every error logged; the running config keeps serving unchanged', async () => {
    replaceConfig(configYaml(up.url, 'v2'));
    await gw.gw.reload();
    const before = await version(gw.url);
    const logged = gw.lines.length;
    replaceConfig(
      configYaml(
        up.url,
        'v1',
        `  - { id: bad, layer: system, match: { methods: [GET], path: /bad }, target: { upstream: nowhere, path: /x } }
  - { id: worse, layer: system, match: { methods: [GET], path: /worse }, target: { upstream: echo, path: /x }, policies: [ { no-such-policy: {} } ] }`,
      ),
    );
    await assert.rejects(gw.gw.reload(), ConfigError);
    const result = await reloadConfig(gw.gw, 'test');
    assert.equal(result.ok, false);
    assert.equal(result.version, before);
    assert.deepEqual(
      !result.ok && result.issues.map((i) => i.path),
      ['routes[2].target.upstream', 'routes[3].policies[0]'],
    );
    assert.equal(await version(gw.url), before);
    const res = await fetch(`${gw.url}/r`);
    assert.deepEqual(await res.json(), { path: '/v2' }, 'still the old routes');
    assert.equal((await fetch(`${gw.url}/bad`)).status, 404);
    const rejected = gw.lines.slice(logged).filter((l) => l.includes('config reload rejected'));
    assert.equal(rejected.length, 2);
    assert.match(rejected[0], /unknown upstream \\"nowhere\\"/);
    assert.match(rejected[0], /unknown policy \\"no-such-policy\\"/);
    assert.match(await (await fetch(`${gw.url}/metrics`)).text(), /hcgw_config_reloads_total\{result="rejected"\} 2/);
  });

  test('reloads asked for together run one after another; the last file written wins', async () => {
    replaceConfig(configYaml(up.url, 'v1'));
    const first = gw.gw.reload();
    replaceConfig(configYaml(up.url, 'v2'));
    const second = gw.gw.reload();
    await Promise.all([first, second]);
    assert.deepEqual(await (await fetch(`${gw.url}/r`)).json(), { path: '/v2' });
  });

  test('file watch: a saved change is picked up, a touch or a broken save changes nothing', async () => {
    replaceConfig(configYaml(up.url, 'v1'));
    await gw.gw.reload();
    const watcher = watchConfig(gw.gw, { debounceMs: 50 });
    try {
      const v1 = await version(gw.url);
      replaceConfig(configYaml(up.url, 'v2'));
      await waitFor(async () => (await version(gw.url)) !== v1, 5000, 'the watcher to reload');
      const v2 = await version(gw.url);
      assert.deepEqual(await (await fetch(`${gw.url}/r`)).json(), { path: '/v2' });

      const applied = () => fetch(`${gw.url}/metrics`).then(async (r) => Number(/hcgw_config_reloads_total\{result="applied"\} (\d+)/.exec(await r.text())?.[1]));
      const rejectedCount = () => fetch(`${gw.url}/metrics`).then(async (r) => Number(/hcgw_config_reloads_total\{result="rejected"\} (\d+)/.exec(await r.text())?.[1] ?? 0));
      const appliedBefore = await applied();
      replaceConfig(configYaml(up.url, 'v2')); // same bytes
      await new Promise((r) => setTimeout(r, 400));
      assert.equal(await applied(), appliedBefore, 'identical content is not reloaded');

      const rejectedBefore = await rejectedCount();
      replaceConfig('version: 1\nroutes: [ { id: x } ]\n');
      await waitFor(async () => (await rejectedCount()) > rejectedBefore, 5000, 'the broken save to be rejected');
      assert.equal(await version(gw.url), v2);
      assert.equal((await fetch(`${gw.url}/r`)).status, 200);
    } finally {
      watcher.close();
    }
  });
});

/** `hcgw start` in its own process, as operators run it; resolves once it logged its port. */
async function startCli(file: string, args: string[] = []): Promise<{ url: string; child: ChildProcess; stop(): Promise<void> }> {
  const cli = fileURLToPath(new URL('../gateway/cli/index.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', cli, 'start', '--config', file, '--port', '0', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, HCGW_LOG_LEVEL: 'info' },
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('hcgw start did not listen within 30s')), 30_000);
      let out = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const lines = out.split('\n');
        out = lines.pop()!;
        for (const line of lines) {
          const entry = JSON.parse(line) as { message?: string; port?: number };
          if (entry.message !== 'gateway listening') continue;
          clearTimeout(timer);
          resolve(entry.port!);
        }
      });
      child.stderr!.resume();
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`hcgw start exited (${code}) before listening`));
      });
    });
    return { url: `http://127.0.0.1:${port}`, child, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

describe('hot reload triggers of `hcgw start`', () => {
  const yaml = (path: string) => `
version: 1
upstreams: { none: { url: "http://127.0.0.1:9" } }
routes:
  - { id: r, layer: system, match: { methods: [GET], path: ${path} }, target: { upstream: none, path: /x } }
`;
  let plain: Awaited<ReturnType<typeof startCli>> | undefined;
  let watching: Awaited<ReturnType<typeof startCli>> | undefined;
  const plainFile = writeConfig(yaml('/a'));
  const watchedFile = writeConfig(yaml('/a'));
  before(async () => {
    [plain, watching] = await Promise.all([startCli(plainFile), startCli(watchedFile, ['--watch'])]);
  });
  after(async () => {
    await Promise.all([plain?.stop(), watching?.stop()]);
  });

  test('SIGHUP reloads; without --watch a file change alone does not', async () => {
    const v0 = await version(plain!.url);
    writeFileSync(plainFile, yaml('/b'));
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(await version(plain!.url), v0, 'no watch: nothing happens until told');
    plain!.child.kill('SIGHUP');
    await waitFor(async () => (await version(plain!.url)) !== v0, 10_000, 'SIGHUP to reload');
    assert.equal((await fetch(`${plain!.url}/b`)).status, 502, 'the new route is served (its upstream is down)');
  });

  test('--watch reloads on save', async () => {
    const v0 = await version(watching!.url);
    writeFileSync(watchedFile, yaml('/c'));
    await waitFor(async () => (await version(watching!.url)) !== v0, 10_000, 'the watcher to reload');
    assert.equal((await fetch(`${watching!.url}/c`)).status, 502);
    assert.equal((await fetch(`${watching!.url}/a`)).status, 404);
  });
});
