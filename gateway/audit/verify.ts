import { GENESIS, markerOf, recordHash } from './chain.ts';
import { fileLines, formatOf, parseJsonLine } from './read.ts';

/** A gap or segment entry found on the way: the chain holds, and says where it does not hold records. */
export interface ChainNote {
  kind: 'gap' | 'segment';
  file: string;
  line: number;
  reason: string;
  /** gap: how many records are missing, and when they were dropped. */
  count?: number;
  from?: string;
  to?: string;
}

/**
 * `format1`: how many records are in line format 1 (before AuditEvents), present only when there are any.
 * They stay verifiable; `hcgw audit export` converts format 2 only.
 */
export type VerifyResult =
  | { ok: true; records: number; head: string; notes?: ChainNote[]; format1?: number }
  | { ok: false; records: number; file: string; line: number; reason: string; notes?: ChainNote[]; format1?: number };

/** One line per note, as `hcgw audit verify` prints them. */
export function describeNote(n: ChainNote): string {
  const at = `${n.file}:${n.line}`;
  if (n.kind === 'gap') return `gap of ${n.count} records (${n.reason}) between ${n.from} and ${n.to}, at ${at}`;
  return `segment boundary (${n.reason}), at ${at}`;
}

export interface VerifyOptions {
  /**
   * Accept a first record that does not start at the genesis value (older files archived elsewhere).
   * Off by default: without it, removing the oldest records would go unnoticed.
   */
  partial?: boolean;
}

/**
 * Walks the files in the order given (rotated files oldest first, then the live one) and stops at the
 * first record whose hash or link does not hold. Line numbers are 1-based within each file.
 */
export async function verifyAuditFiles(files: string[], opts: VerifyOptions = {}): Promise<VerifyResult> {
  let prev: string | undefined = opts.partial ? undefined : GENESIS;
  let prevAt = 'the genesis value';
  let records = 0;
  const notes: ChainNote[] = [];
  let format1 = 0;
  /** Present only when there is something to say, so a clean chain reads as before. */
  const noted = () => ({ ...(notes.length ? { notes } : {}), ...(format1 ? { format1 } : {}) });
  for (const file of files) {
    let lineNo = 0;
    const fail = (reason: string): VerifyResult => ({ ok: false, records, file, line: lineNo, reason, ...noted() });
    try {
      for await (const { lineNo: n, text } of fileLines(file)) {
        lineNo = n;
        const rec = parseJsonLine(text);
        if (!rec) return fail('not a JSON record');
        if (typeof rec.hash !== 'string' || typeof rec.prev !== 'string') return fail('not an audit record (no hash/prev)');
        if (recordHash(rec) !== rec.hash) return fail('record was altered: its content does not match its hash');
        if (prev !== undefined && rec.prev !== prev) {
          return fail(`chain broken: prev does not match ${prevAt} (a record was deleted or inserted here, or files are out of order)`);
        }
        const marker = markerOf(rec);
        if (rec.chain !== undefined && !marker) return fail('malformed chain entry (gap or segment without a valid resume hash)');
        if (marker) {
          // Sealed and linked like a record; the entry after it links to the hash it names.
          const { count, from, to } = marker as { count?: number; from?: string; to?: string };
          notes.push({ kind: marker.chain, file, line: lineNo, reason: String(marker.reason), count, from, to });
          prev = marker.resume;
          prevAt = `the resume hash of the ${marker.chain} entry at ${file}:${lineNo}`;
          continue;
        }
        if (formatOf(rec) === 1) format1++;
        prev = rec.hash;
        prevAt = `the hash of ${file}:${lineNo}`;
        records++;
      }
    } catch (err) {
      return fail(`cannot read file (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  }
  return { ok: true, records, head: prev ?? GENESIS, ...noted() };
}
