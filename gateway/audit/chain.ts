import { createHash } from 'node:crypto';

/** `prev` of the first record of a chain. */
export const GENESIS = '0'.repeat(64);

/**
 * JSON with object keys sorted at every depth and no whitespace, so that a record parsed back from its
 * line hashes to the same value whatever a JSON tool did to its key order or spacing.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  const parts: string[] = [];
  for (const key of Object.keys(value).sort()) {
    const v = (value as Record<string, unknown>)[key];
    if (v !== undefined) parts.push(`${JSON.stringify(key)}:${canonicalJson(v)}`);
  }
  return `{${parts.join(',')}}`;
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** The hash a record must carry: sha256 over its canonical JSON without `hash` (but with `prev`). */
export function recordHash(record: Record<string, unknown>): string {
  const { hash: _omit, ...rest } = record;
  return sha256(canonicalJson(rest));
}

/**
 * Links a record to its predecessor: returns the JSON line to write and the hash the next record links to.
 * `hash` is appended last so that readers see it at the end of each line.
 */
export function seal(record: object, prev: string): { line: string; hash: string } {
  const body = canonicalJson({ ...record, prev });
  const hash = sha256(body);
  return { line: `${body.slice(0, -1)},"hash":"${hash}"}`, hash };
}
