#!/usr/bin/env node
// Runs the TypeScript CLI directly (tsx) unless a build exists in dist/.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const built = fileURLToPath(new URL('../dist/gateway/cli.js', import.meta.url));
if (existsSync(built)) {
  await import(built);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../gateway/cli.ts');
}
