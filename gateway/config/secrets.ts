import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { ConfigIssue } from './errors.ts';

/**
 * Secrets stay out of routes.yaml: a string value `${env:NAME}` or `${file:/path}` is replaced by the
 * variable or the file's trimmed content. A missing one is a config error (closed by default). A relative
 * file path is relative to the config file's folder, like every other path in routes.yaml.
 */
const REF = /^\$\{(env|file):([^}]+)\}$/;

export function resolveSecrets(value: unknown, issues: ConfigIssue[], path = '', baseDir = process.cwd()): unknown {
  if (typeof value === 'string') {
    const m = REF.exec(value);
    if (!m) return value;
    if (m[1] === 'env') {
      const v = process.env[m[2]];
      if (v === undefined) issues.push({ path, message: `environment variable ${m[2]} is not set` });
      return v ?? '';
    }
    try {
      return readFileSync(resolve(baseDir, m[2]), 'utf8').trim();
    } catch {
      issues.push({ path, message: `secret file ${m[2]} cannot be read` });
      return '';
    }
  }
  if (Array.isArray(value)) return value.map((v, i) => resolveSecrets(v, issues, `${path}[${i}]`, baseDir));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = resolveSecrets(v, issues, path ? `${path}.${k}` : k, baseDir);
    return out;
  }
  return value;
}
