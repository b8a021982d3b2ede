import { once } from 'node:events';
import type { AuditEvent } from './fhir-event.ts';
import { fileLines, formatOf, parseJsonLine } from './read.ts';
import { verifyAuditFiles, type VerifyOptions, type VerifyResult } from './verify.ts';

/** Bundle.identifier system: the value is the chain head the export was verified up to. */
export const CHAIN_HEAD_SYSTEM = 'https://hcgw.dev/fhir/sid/audit-chain-head';

export interface ExportOptions extends VerifyOptions {
  /** Records with `recorded` in [from, to); either bound may be left open. */
  from?: Date;
  to?: Date;
  now?: Date;
}

export type ExportResult =
  | { ok: true; exported: number; format1: number; verified: Extract<VerifyResult, { ok: true }> }
  | { ok: false; verified: Extract<VerifyResult, { ok: false }> };

/**
 * Writes the AuditEvents of a verified trail as a FHIR R4 Bundle of type `collection`, streamed entry by
 * entry so an archive of any size exports in constant memory. The chain is verified first and a broken
 * chain exports nothing. Each AuditEvent's id is its line's hash, so an exported event names the chain
 * entry it came from. Format-1 records have no AuditEvent and are counted, not converted.
 */
export async function exportFhirBundle(files: string[], out: NodeJS.WritableStream, opts: ExportOptions = {}): Promise<ExportResult> {
  const verified = await verifyAuditFiles(files, opts);
  if (!verified.ok) return { ok: false, verified };
  const write = async (text: string) => {
    if (!out.write(text)) await once(out, 'drain');
  };
  const head = { resourceType: 'Bundle', identifier: { system: CHAIN_HEAD_SYSTEM, value: verified.head }, type: 'collection', timestamp: (opts.now ?? new Date()).toISOString() };
  // FHIR JSON has no empty arrays: `entry` opens with the first event.
  await write(JSON.stringify(head).slice(0, -1));
  let exported = 0;
  let format1 = 0;
  const from = opts.from?.getTime() ?? -Infinity;
  const to = opts.to?.getTime() ?? Infinity;
  for (const file of files) {
    for await (const { text } of fileLines(file)) {
      // Only `recorded` is needed to select a record: the AuditEvent goes out as it is on the line.
      const rec = parseJsonLine(text);
      const format = rec && formatOf(rec);
      if (!format) continue;
      const event = rec.resource as AuditEvent | undefined;
      const at = Date.parse(String(format === 2 ? event?.recorded : rec.recorded));
      if (!(at >= from && at < to)) continue;
      if (format === 1 || !event) {
        format1++;
        continue;
      }
      // resourceType and id first, as FHIR servers print them (the line itself is in canonical key order).
      const { resourceType, ...rest } = event;
      const resource = { resourceType, id: String(rec.hash), ...rest };
      await write(`${exported ? ',' : ',"entry":['}\n${JSON.stringify({ resource })}`);
      exported++;
    }
  }
  await write(exported ? '\n]}\n' : '}\n');
  return { ok: true, exported, format1, verified };
}
