import { readdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, resolve, isAbsolute, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { ValidateFunction } from 'ajv';
import { createAjv } from '../lib/ajv.ts';
import { builtinPolicies } from '../../policies/index.ts';
import type { Policy } from '../sdk/types.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const PLUGINS_DIR = join(ROOT, 'plugins');

export interface RegisteredPolicy {
  policy: Policy;
  validate: ValidateFunction;
  source: string;
}

/** Thrown when a module does not honour the Policy contract: checked at load, never at first use. */
export class PolicyContractError extends Error {
  readonly code = 'ERR_POLICY_CONTRACT';
}

const ajv = createAjv({ useDefaults: true });
/** Schemas compile once per policy module, however often the config is reloaded. */
const compiled = new WeakMap<object, ValidateFunction>();

function register(map: Map<string, RegisteredPolicy>, candidate: unknown, source: string): void {
  const p = candidate as Partial<Policy> | undefined;
  if (!p || typeof p.name !== 'string' || !/^[a-z][a-z0-9-]*$/.test(p.name))
    throw new PolicyContractError(`${source}: policy must export a lowercase \`name\``);
  if (!p.configSchema || typeof p.configSchema !== 'object') throw new PolicyContractError(`${source}: policy "${p.name}" has no configSchema`);
  if (typeof p.create !== 'function') throw new PolicyContractError(`${source}: policy "${p.name}" has no create()`);
  if (map.has(p.name)) throw new PolicyContractError(`${source}: policy "${p.name}" is already registered by ${map.get(p.name)!.source}`);
  let validate = compiled.get(p);
  try {
    validate ??= ajv.compile(p.configSchema);
  } catch (err) {
    throw new PolicyContractError(`${source}: configSchema of "${p.name}" does not compile: ${(err as Error).message}`);
  }
  compiled.set(p, validate);
  map.set(p.name, { policy: p as Policy, validate, source });
}

async function importPolicy(specifier: string): Promise<unknown> {
  const mod = (await import(specifier)) as { default?: unknown; policy?: unknown };
  return mod.default ?? mod.policy;
}

/** Modules in plugins/: `name.ts`/`name.js` files and `name/index.(ts|js)` folders; tests are not plugins. */
async function pluginFiles(dir: string): Promise<string[]> {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.isFile() && /\.(ts|js|mjs)$/.test(entry.name) && !/\.(test|d)\.[mc]?[tj]s$/.test(entry.name)) out.push(join(dir, entry.name));
    if (entry.isDirectory()) {
      const idx = ['index.ts', 'index.js', 'index.mjs'].map((f) => join(dir, entry.name, f)).find(existsSync);
      if (idx) out.push(idx);
    }
  }
  return out.sort();
}

/**
 * Built-ins, then every module in plugins/, then the config's `plugins:` entries (paths relative to the
 * config file, or package names) — all through the same contract check and schema compilation.
 */
export async function loadPolicies(opts: { extra?: string[]; configDir?: string; pluginsDir?: string } = {}): Promise<Map<string, RegisteredPolicy>> {
  const map = new Map<string, RegisteredPolicy>();
  for (const p of builtinPolicies) register(map, p, `policies/${p.name}`);
  for (const file of await pluginFiles(opts.pluginsDir ?? PLUGINS_DIR)) register(map, await importPolicy(pathToFileURL(file).href), file);
  for (const spec of opts.extra ?? []) {
    const isPath = spec.startsWith('.') || isAbsolute(spec);
    const target = isPath ? pathToFileURL(resolve(opts.configDir ?? '.', spec)).href : spec;
    let mod: unknown;
    try {
      mod = await importPolicy(target);
    } catch (err) {
      throw new PolicyContractError(`plugin ${spec}: cannot be loaded (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    register(map, mod, spec);
  }
  return map;
}
