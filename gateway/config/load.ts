import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { createAjv } from '../lib/ajv.ts';
import type { GatewayConfig } from '../sdk/types.ts';
import { ConfigError, ajvIssues, type ConfigIssue } from './errors.ts';
import { configSchema } from './schema.ts';
import { resolveSecrets } from './secrets.ts';

const ajv = createAjv({ useDefaults: true });
const validateTop = ajv.compile(configSchema);

export interface LoadedConfig {
  file: string;
  config: GatewayConfig;
  /**
   * Schema violations. Compilation goes on past them (checking policies and cross-references of the
   * parts that are well-formed) so that one run reports every mistake, then throws them all together.
   */
  issues: ConfigIssue[];
  /** sha256 of the file bytes: the config version reported by /readyz and the admin API. */
  hash: string;
}

/** Keys that must never become object keys (prototype pollution through YAML). */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

function forbiddenKeys(value: unknown, path: string, out: ConfigIssue[]): void {
  if (value === null || typeof value !== 'object') return;
  if (Array.isArray(value)) {
    value.forEach((v, i) => forbiddenKeys(v, `${path}[${i}]`, out));
    return;
  }
  for (const key of Object.keys(value)) {
    const p = path ? `${path}.${key}` : key;
    if (FORBIDDEN_KEYS.has(key)) out.push({ path: p, message: 'forbidden key' });
    else forbiddenKeys((value as Record<string, unknown>)[key], p, out);
  }
}

/**
 * Parse YAML text and validate the document structure. Syntax errors and forbidden keys throw at once
 * (nothing else can be trusted); schema violations are returned for the compiler to report with its own.
 */
export function parseConfig(text: string, file: string): { config: GatewayConfig; issues: ConfigIssue[] } {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length) {
    // The first syntax error only: the parser's later ones are mostly echoes of it.
    const e = doc.errors[0];
    const message = e.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
    throw new ConfigError(file, [{ path: e.linePos ? `line ${e.linePos[0].line}, column ${e.linePos[0].col}` : '', message: `YAML syntax error: ${message}` }]);
  }
  const raw = doc.toJS({ maxAliasCount: 100 }) as unknown;
  const issues: ConfigIssue[] = [];
  forbiddenKeys(raw, '', issues);
  if (issues.length) throw new ConfigError(file, issues);
  const resolved = resolveSecrets(raw, issues, '', dirname(resolve(file)));
  if (issues.length) throw new ConfigError(file, issues);
  const valid = validateTop(resolved);
  return { config: resolved as GatewayConfig, issues: valid ? [] : ajvIssues(validateTop.errors) };
}

/** The config version reported by /readyz: a digest of the file bytes, so an unchanged file keeps its version. */
export function configVersion(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex').slice(0, 16);
}

export async function loadConfigFile(file: string): Promise<LoadedConfig> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    throw new ConfigError(file, [{ path: '', message: `cannot read file (${(err as NodeJS.ErrnoException).code ?? 'error'})` }]);
  }
  const { config, issues } = parseConfig(bytes.toString('utf8'), file);
  return { file, config, issues, hash: configVersion(bytes) };
}
