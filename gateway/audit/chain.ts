import { createHash } from 'node:crypto';

/** `prev` of the first record of a chain. */
export const GENESIS = '0'.repeat(64);

/**
 * JSON with object keys sorted at every depth and no whitespace, so that a record parsed back from its
 * line hashes to the same value whatever a JSON tool did to its key order or spacing.
 */
export function canonicalJson(value: unknown): string {
  // Records are built with their keys in sorted order (gateway/audit/fhir-event.ts): for those the engine's
  // own JSON.stringify writes the very same text, at a fraction of the cost of concatenation.
  return inCanonicalOrder(value) ? (JSON.stringify(value) ?? 'null') : concatenated(value);
}

/**
 * True when JSON.stringify(value) is its canonical JSON: plain objects and arrays only (no toJSON, no
 * functions or symbols, which the two treat differently) and every object's keys in sorted order. V8
 * lists integer-like keys first in numeric order ("2" before "10"), which fails the check, so such
 * objects take the concatenating path.
 */
function inCanonicalOrder(value: unknown): boolean {
  if (typeof value !== 'object') return typeof value !== 'function' && typeof value !== 'symbol';
  if (value === null) return true;
  if (Array.isArray(value)) {
    if (Object.getPrototypeOf(value) !== Array.prototype) return false;
    for (let i = 0; i < value.length; i++) if (!inCanonicalOrder(value[i])) return false;
    return true;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return false;
  // for…in, not Object.keys: no array per object (~12 KB of garbage per record). It lists the own keys in
  // Object.keys's order, then inherited enumerable ones: there are none unless Object.prototype was
  // polluted, and then the concatenating path (own keys only) writes the record.
  let prev: string | undefined;
  for (const k in value) {
    if (!Object.hasOwn(value, k) || (prev !== undefined && prev >= k)) return false;
    prev = k;
    if (!inCanonicalOrder((value as Record<string, unknown>)[k])) return false;
  }
  return true;
}

function concatenated(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  // Built by concatenation, keys sorted only when they are not already: the map/join version cost twice as much.
  if (Array.isArray(value)) {
    let s = '[';
    for (let i = 0; i < value.length; i++) {
      const v: unknown = value[i];
      s += (i ? ',' : '') + (v === undefined ? 'null' : canonicalJson(v));
    }
    return `${s}]`;
  }
  const keys = Object.keys(value);
  for (let i = 1; i < keys.length; i++) {
    if (keys[i - 1] > keys[i]) {
      keys.sort();
      break;
    }
  }
  let s = '{';
  for (const key of keys) {
    const v = (value as Record<string, unknown>)[key];
    if (v !== undefined) s += `${s.length > 1 ? ',' : ''}${JSON.stringify(key)}:${canonicalJson(v)}`;
  }
  return `${s}}`;
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
  // `prev` first: it sorts before `resource`, so a record built in order stays in order. Set again after
  // the spread: a record's own `prev` never replaces the link.
  const linked: Record<string, unknown> = { prev, ...record };
  linked.prev = prev;
  const body = canonicalJson(linked);
  const hash = sha256(body);
  return { line: `${body.slice(0, -1)},"hash":"${hash}"}`, hash };
}

/**
 * Entries of the chain's own kind, next to the audit records (whatever their shape): `gap` stands for
 * records a sink could not keep (count, time span, reason), `segment` for a chain that restarted without
 * the previous record (the file was unreadable when this writer started). Each is sealed like a record,
 * links to the entry before it, and names in `resume` the hash the entry after it links to, so the
 * chain stays verifiable and the hole is stated in the file itself instead of looking like tampering.
 */
export type ChainMarker =
  | { chain: 'gap'; count: number; reason: string; from: string; to: string; resume: string }
  | { chain: 'segment'; reason: string; resume: string };

const HASH = /^[0-9a-f]{64}$/;

/** The marker a parsed entry is, or undefined for an ordinary record (or a malformed marker). */
export function markerOf(rec: Record<string, unknown>): ChainMarker | undefined {
  if (rec.chain !== 'gap' && rec.chain !== 'segment') return undefined;
  return typeof rec.resume === 'string' && HASH.test(rec.resume) ? (rec as unknown as ChainMarker) : undefined;
}

/** Canonical JSON sorts `chain` before every other key of a marker, and records have no such key. */
export const isMarkerLine = (line: string): boolean => line.startsWith('{"chain":');

/** `seal()` puts the hash last: `…,"hash":"<64 hex>"}`. */
export const hashOfLine = (line: string): string => line.slice(-66, -2);

/** The `prev` of a sealed line (parsed: canonical key order puts it anywhere). */
export function prevOfLine(line: string): string | undefined {
  try {
    const prev = (JSON.parse(line) as { prev?: unknown }).prev;
    return typeof prev === 'string' ? prev : undefined;
  } catch {
    return undefined;
  }
}
