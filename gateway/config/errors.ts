import type { ErrorObject } from 'ajv';

export interface ConfigIssue {
  /** Dotted path inside the document, e.g. `routes[2].policies[0].jwt.issuers`. */
  path: string;
  message: string;
}

/** Every problem of a config file at once; never the first one only. */
export class ConfigError extends Error {
  readonly code = 'ERR_CONFIG_INVALID';
  constructor(
    readonly file: string,
    readonly issues: ConfigIssue[],
  ) {
    super(`${file}: ${issues.length} error${issues.length === 1 ? '' : 's'}\n` + issues.map((i) => `  ${formatIssue(file, i)}`).join('\n'));
    this.name = 'ConfigError';
  }
}

export function formatIssue(file: string, i: ConfigIssue): string {
  return `${file}: ${i.path || '(root)'}: ${i.message}`;
}

export { PolicyConfigError, PolicyConfigErrors } from '../sdk/errors.ts';

/** `/routes/2/policies/0` → `routes[2].policies[0]` */
export function pointerToPath(pointer: string): string {
  if (!pointer) return '';
  return pointer
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((acc, seg) => (/^\d+$/.test(seg) ? `${acc}[${seg}]` : acc ? `${acc}.${seg}` : seg), '');
}

export function joinPath(base: string, rel: string): string {
  if (!rel) return base;
  if (!base) return rel;
  return rel.startsWith('[') ? base + rel : `${base}.${rel}`;
}

/** ajv errors → issues with our paths; unknown keys are named as such. */
export function ajvIssues(errors: ErrorObject[] | null | undefined, base = ''): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  const seen = new Set<string>();
  for (const e of errors ?? []) {
    let path = joinPath(base, pointerToPath(e.instancePath));
    let message = e.message ?? 'is invalid';
    if (e.keyword === 'additionalProperties') {
      path = joinPath(path, String((e.params as { additionalProperty: string }).additionalProperty));
      message = 'unknown key';
    } else if (e.keyword === 'enum') {
      message = `must be one of: ${(e.params as { allowedValues: unknown[] }).allowedValues.join(', ')}`;
    } else if (e.keyword === 'required') {
      path = joinPath(path, String((e.params as { missingProperty: string }).missingProperty));
      message = 'is required';
    }
    const key = `${path}\u0000${message}`;
    if (!seen.has(key)) {
      seen.add(key);
      out.push({ path, message });
    }
  }
  return out;
}
