/**
 * What the store holds per idempotency key (JSON, versioned): a lock while the first request is in
 * flight, then its outcome. `fp` is the sha256 of method, URL and body, so a key reused for a different
 * request is recognised.
 */
export type StoredRecord = { v: 1; state: 'pending'; fp: string } | DoneRecord;

export type DoneRecord =
  | { v: 1; state: 'done'; fp: string; kind: 'response'; status: number; headers: Record<string, string>; body: unknown }
  | { v: 1; state: 'done'; fp: string; kind: 'problem'; code: string; status: number; title: string; detail?: string; extensions?: Record<string, unknown> }
  /** The response was not JSON or too large to keep: repeats are refused, never re-run. */
  | { v: 1; state: 'done'; fp: string; kind: 'opaque'; status: number };

const KINDS = new Set(['response', 'problem', 'opaque']);

/**
 * undefined only when the key is absent. A record we cannot read is treated as in flight: refusing a
 * repeat is safe, running it twice is not.
 */
export function decodeRecord(text: string | undefined): StoredRecord | undefined {
  if (text === undefined) return undefined;
  let r: Partial<DoneRecord> & { state?: string };
  try {
    r = JSON.parse(text) as typeof r;
  } catch {
    return { v: 1, state: 'pending', fp: '' };
  }
  const fp = typeof r?.fp === 'string' ? r.fp : '';
  if (r?.v !== 1 || r.state !== 'done' || !KINDS.has(r.kind ?? '') || typeof r.status !== 'number') return { v: 1, state: 'pending', fp };
  return r as DoneRecord;
}
