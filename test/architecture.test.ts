import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from './helpers.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DEPCRUISE = join(ROOT, 'node_modules', '.bin', 'depcruise');

function cruise(cwd: string, config = join(ROOT, '.dependency-cruiser.cjs')) {
  const r = spawnSync(DEPCRUISE, ['gateway', 'policies', 'plugins', '--config', config], { cwd, encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/** A tiny tree with the project's layout, the rules and tsconfig, and the files given. */
function tree(files: Record<string, string>): string {
  const dir = tempDir('hcgw-arch-');
  copyFileSync(join(ROOT, 'tsconfig.json'), join(dir, 'tsconfig.json'));
  const base: Record<string, string> = {
    'gateway/sdk/index.ts': "export const sdk = 1;\n",
    'gateway/lib/util.ts': "export const util = 1;\n",
    'gateway/http/server.ts': "export const server = 1;\n",
    ...files,
  };
  for (const [f, src] of Object.entries(base)) {
    mkdirSync(dirname(join(dir, f)), { recursive: true });
    writeFileSync(join(dir, f), src);
  }
  return dir;
}

describe('npm run lint enforces the architecture (dependency-cruiser)', () => {
  it('the project itself has no violation: policies and plugins use only the SDK and lib, and there is no cycle', () => {
    const r = cruise(ROOT);
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /no dependency violations/);
  });

  it('each rule fails on its violation: a policy or plugin importing core (by value or type), an impure lib, a type-only cycle', () => {
    const r = cruise(
      tree({
        'policies/by-value/index.ts': "import { server } from '../../gateway/http/server.ts';\nexport const p = server;\n",
        'policies/by-type/index.ts': "import type { X } from '../../gateway/http/server.ts';\nexport type P = X;\n",
        'plugins/x/index.ts': "import { server } from '../../gateway/http/server.ts';\nexport const x = server;\n",
        'gateway/lib/bad.ts': "import { server } from '../http/server.ts';\nexport const b = server;\n",
        'gateway/http/a.ts': "import type { B } from './b.ts';\nexport type A = { b?: B };\n",
        'gateway/http/b.ts': "import type { A } from './a.ts';\nexport type B = { a?: A };\n",
      }),
    );
    assert.notEqual(r.status, 0, r.out);
    assert.match(r.out, /policy-imports-core: policies\/by-value\/index\.ts → gateway\/http\/server\.ts/);
    assert.match(r.out, /policy-imports-core: policies\/by-type\/index\.ts → gateway\/http\/server\.ts/);
    assert.match(r.out, /policy-imports-core: plugins\/x\/index\.ts → gateway\/http\/server\.ts/);
    assert.match(r.out, /lib-is-pure: gateway\/lib\/bad\.ts → gateway\/http\/server\.ts/);
    assert.match(r.out, /no-cycles: gateway\/http\/(a|b)\.ts/);
  });

  it('a plugin and a policy importing only the SDK and lib pass', () => {
    const r = cruise(
      tree({
        'plugins/x/index.ts': "import { sdk } from '../../gateway/sdk/index.ts';\nimport { util } from '../../gateway/lib/util.ts';\nexport const x = sdk + util;\n",
        'policies/y/index.ts': "import { sdk } from '../../gateway/sdk/index.ts';\nexport const y = sdk;\n",
      }),
    );
    assert.equal(r.status, 0, r.out);
  });
});
