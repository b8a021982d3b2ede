#!/usr/bin/env node
// Node 20's test runner takes no glob patterns: find the *.test.ts files ourselves and hand them over.
// Extra arguments are passed through (e.g. `npm test -- --test-name-pattern=jwt`).
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const roots = ['test', 'policies', 'plugins', 'gateway'];
const files = [];
const walk = (dir) => {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'fixtures') continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith('.test.ts')) files.push(p);
  }
};
for (const r of roots) {
  try {
    walk(r);
  } catch {
    /* root absent */
  }
}
const args = process.argv.slice(2);
const only = args.filter((a) => !a.startsWith('-'));
const flags = args.filter((a) => a.startsWith('-'));
const selected = only.length ? files.filter((f) => only.some((o) => f.includes(o))) : files;
if (!selected.length) {
  console.error('no test files found');
  process.exit(1);
}
const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-timeout=120000', ...flags, ...selected.sort()], { stdio: 'inherit' });
process.exit(r.status ?? 1);
