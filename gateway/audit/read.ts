import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { markerOf } from './chain.ts';
import { factsOf, type AuditEvent, type AuditFacts } from './fhir-event.ts';

/**
 * The one reader of audit files: `hcgw audit verify`/`export`, `hcgw report`, the console's audit search and
 * `hcgw test` all go through it, so each understands both line formats:
 * - format 1 (before AuditEvents): `{"schema":"hcgw.audit/1", …facts, "prev", "hash"}`;
 * - format 2: `{"prev", "resource": <FHIR R4 AuditEvent>, "hash"}`.
 * Either way a record reads as its facts (AuditFacts: route, client, outcome, decisions, …); format 2
 * also hands over the AuditEvent itself.
 */
export type AuditFormat = 1 | 2;

/** A record as readers see it: its facts, which format it was in, and (format 2) the AuditEvent. */
export type AuditView = AuditFacts & { format: AuditFormat; resource?: AuditEvent };

export type AuditLine =
  | { kind: 'record'; view: AuditView; raw: Record<string, unknown> }
  /** A chain entry (gap or segment) or anything else that is not an audit record. */
  | { kind: 'other'; raw: Record<string, unknown> }
  | { kind: 'invalid' };

/** The format of a parsed line, or undefined when it is no audit record (a chain marker, a foreign line). */
export function formatOf(rec: Record<string, unknown>): AuditFormat | undefined {
  if (markerOf(rec) || rec.chain !== undefined) return undefined;
  const resource = rec.resource as { resourceType?: unknown } | undefined;
  if (resource && typeof resource === 'object' && resource.resourceType === 'AuditEvent') return 2;
  if (rec.schema === 'hcgw.audit/1' && typeof rec.recorded === 'string') return 1;
  return undefined;
}

/** The view of a parsed line (already known to be a record of `format`). */
function viewOf(rec: Record<string, unknown>, format: AuditFormat): AuditView {
  if (format === 2) {
    const resource = rec.resource as AuditEvent;
    return { ...factsOf(resource), format, resource };
  }
  const { schema: _schema, prev: _prev, hash: _hash, ...facts } = rec;
  return { ...(facts as unknown as AuditFacts), format };
}

/** The JSON object on a line, or undefined when the line holds none. */
export function parseJsonLine(text: string): Record<string, unknown> | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return undefined;
  }
  return raw !== null && typeof raw === 'object' && !Array.isArray(raw) ? (raw as Record<string, unknown>) : undefined;
}

export function parseAuditLine(text: string): AuditLine {
  const rec = parseJsonLine(text);
  if (!rec) return { kind: 'invalid' };
  const format = formatOf(rec);
  if (format === undefined) return { kind: 'other', raw: rec };
  try {
    return { kind: 'record', view: viewOf(rec, format), raw: rec };
  } catch {
    // An AuditEvent missing required elements (agent, source) is not one this gateway wrote.
    return { kind: 'other', raw: rec };
  }
}

/** Lines of one file with their 1-based numbers; the caller may stop early (the file is closed). */
export async function* fileLines(file: string): AsyncGenerator<{ lineNo: number; text: string }> {
  const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  let lineNo = 0;
  try {
    for await (const text of lines) yield { lineNo: ++lineNo, text };
  } finally {
    lines.close();
  }
}

/** Every audit record of the files, in order (chain entries and lines that are no records are skipped). */
export async function* readAuditViews(files: string[]): AsyncGenerator<AuditView> {
  for (const file of files) {
    for await (const { text } of fileLines(file)) {
      if (!text) continue;
      const parsed = parseAuditLine(text);
      if (parsed.kind === 'record') yield parsed.view;
    }
  }
}
