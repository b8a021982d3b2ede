import { dirname, resolve } from 'node:path';
import { loadPolicies } from '../../config/registry.ts';
import { compileCheck } from '../compile-check.ts';
import { compareSurfaces } from './compare.ts';
import { report, type DiffReport } from './render.ts';
import { extractSurface, type Surface } from './surface.ts';

export { renderText, type DiffReport } from './render.ts';
export { compareSurfaces, type Change } from './compare.ts';

/** Compiles a file exactly as `hcgw validate` does (ConfigError when it would not start), then reads its governed surface. */
export async function surfaceOf(file: string): Promise<Surface> {
  const { compiled, release } = await compileCheck(file);
  try {
    const registry = await loadPolicies({ extra: compiled.config.plugins, configDir: dirname(resolve(compiled.file)) });
    return extractSurface(compiled, registry);
  } finally {
    await release();
  }
}

/** What changes in access, data and limits when `newFile` replaces `oldFile`. */
export async function diffConfigs(oldFile: string, newFile: string): Promise<DiffReport> {
  const [prev, next] = [await surfaceOf(oldFile), await surfaceOf(newFile)];
  return report(oldFile, newFile, compareSurfaces(prev, next));
}
