#!/usr/bin/env node
// In a checkout the TypeScript sources are the truth and run through tsx (a stale dist/ can never shadow
// them); a package shipped without sources runs the build in dist/ (`npm run build`).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const source = fileURLToPath(new URL('../gateway/cli/index.ts', import.meta.url));
if (existsSync(source)) {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../gateway/cli/index.ts');
} else {
  await import('../dist/gateway/cli/index.js');
}
