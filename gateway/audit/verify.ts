import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { GENESIS, recordHash } from './chain.ts';

export type VerifyResult =
  | { ok: true; records: number; head: string }
  | { ok: false; records: number; file: string; line: number; reason: string };

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
  for (const file of files) {
    let lineNo = 0;
    const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
    const fail = (reason: string): VerifyResult => {
      lines.close();
      return { ok: false, records, file, line: lineNo, reason };
    };
    try {
      for await (const text of lines) {
        lineNo++;
        let rec: Record<string, unknown>;
        try {
          rec = JSON.parse(text) as Record<string, unknown>;
        } catch {
          return fail('not a JSON record');
        }
        if (rec === null || typeof rec !== 'object' || Array.isArray(rec) || typeof rec.hash !== 'string' || typeof rec.prev !== 'string') {
          return fail('not an audit record (no hash/prev)');
        }
        if (recordHash(rec) !== rec.hash) return fail('record was altered: its content does not match its hash');
        if (prev !== undefined && rec.prev !== prev) {
          return fail(`chain broken: prev does not match ${prevAt} (a record was deleted or inserted here, or files are out of order)`);
        }
        prev = rec.hash;
        prevAt = `the hash of ${file}:${lineNo}`;
        records++;
      }
    } catch (err) {
      return fail(`cannot read file (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  }
  return { ok: true, records, head: prev ?? GENESIS };
}
