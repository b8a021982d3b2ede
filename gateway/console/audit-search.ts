import { dirname } from 'node:path';
import { sinkPath } from '../audit/sinks/index.ts';
import { auditFilesInOrder } from '../audit/sinks/file.ts';
import { fileLines, parseAuditLine, type AuditView } from '../audit/read.ts';
import { verifyAuditFiles, type VerifyResult } from '../audit/verify.ts';
import type { AuditConfig } from '../audit/schema.ts';
import type { CompiledGateway } from '../config/compile.ts';

/** Most records scanned by one search: the console is for recent activity, `hcgw audit` tools for archives. */
export const MAX_SCANNED = 200_000;
export const MAX_RESULTS = 500;

export interface AuditQuery {
  from?: Date;
  to?: Date;
  route?: string;
  client?: string;
  /** AuditEvent outcome code (0, 4, 8, 12) */
  outcome?: string;
  /** Matches the error code, the outcome reason, the denying policy or any decision reason. */
  reason?: string;
  limit: number;
}

/** One search hit: only fields that name no person (no subject, no address, no patient hashes). */
export interface AuditHit {
  recorded: string;
  requestId: string;
  route: string;
  layer: string;
  action: string;
  subtype: string;
  status: number;
  outcome: string;
  error?: string;
  reason?: string;
  deniedBy?: string;
  decisions: Array<{ policy: string; outcome: string; reason?: string }>;
  clientId?: string;
  issuer?: string;
  purposeOfUse?: string;
  latencyMs?: number;
  upstreamStatus?: number;
}

/** The file sinks of the running config, as absolute paths (none: the console says audit search is off). */
export function auditFileSinks(c: CompiledGateway): string[] {
  const audit = c.config.audit as AuditConfig | undefined;
  const dir = dirname(c.file);
  return (audit?.sinks ?? []).map((s) => sinkPath(s, dir)).filter((p): p is string => p !== undefined);
}

const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
const num = (v: unknown) => (typeof v === 'number' ? v : undefined);

/** Builds a hit from a record (either line format), field by field. */
function hitOf(rec: AuditView): AuditHit {
  const decisions: Array<Record<string, unknown>> = Array.isArray(rec.policy?.decisions) ? rec.policy.decisions : [];
  return {
    recorded: rec.recorded,
    requestId: String(rec.requestId ?? ''),
    route: String(rec.entity?.route ?? ''),
    layer: String(rec.entity?.layer ?? ''),
    action: String(rec.action ?? ''),
    subtype: String(rec.subtype ?? ''),
    status: num(rec.outcome?.status) ?? 0,
    outcome: String(rec.outcome?.code ?? ''),
    error: str(rec.outcome?.error),
    reason: str(rec.outcome?.reason),
    deniedBy: str(rec.policy?.deniedBy),
    decisions: decisions.map((d) => ({ policy: String(d.policy ?? ''), outcome: String(d.outcome ?? ''), reason: str(d.reason) })),
    clientId: str(rec.agent?.clientId),
    issuer: str(rec.agent?.issuer),
    purposeOfUse: str(rec.purposeOfUse),
    latencyMs: num(rec.latencyMs),
    upstreamStatus: num(rec.upstream?.status),
  };
}

function matches(h: AuditHit, q: AuditQuery): boolean {
  if (q.route && h.route !== q.route) return false;
  if (q.client && h.clientId !== q.client) return false;
  if (q.outcome && h.outcome !== q.outcome) return false;
  if (q.from || q.to) {
    const t = Date.parse(h.recorded);
    if (q.from && !(t >= q.from.getTime())) return false;
    if (q.to && !(t <= q.to.getTime())) return false;
  }
  if (q.reason) {
    const r = q.reason;
    if (h.error !== r && h.reason !== r && h.deniedBy !== r && !h.decisions.some((d) => d.reason === r)) return false;
  }
  return true;
}

/** Newest `limit` matches, newest first, scanning the files oldest first (the order they were written). */
export async function searchAudit(files: string[], q: AuditQuery): Promise<{ hits: AuditHit[]; scanned: number; truncated: boolean }> {
  const hits: AuditHit[] = [];
  let scanned = 0;
  let truncated = false;
  const all = (await Promise.all(files.map(auditFilesInOrder))).flat();
  outer: for (const file of all) {
    try {
      for await (const { text } of fileLines(file)) {
        if (++scanned > MAX_SCANNED) {
          truncated = true;
          break outer;
        }
        const parsed = parseAuditLine(text);
        if (parsed.kind !== 'record') continue;
        const h = hitOf(parsed.view);
        if (matches(h, q)) {
          hits.push(h);
          if (hits.length > q.limit) hits.shift();
        }
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return { hits: hits.reverse(), scanned: Math.min(scanned, MAX_SCANNED), truncated };
}

/** `hcgw audit verify` over every file sink (rotated files oldest first, then the live one). */
export async function verifyAuditSinks(files: string[]): Promise<Array<{ sink: number } & VerifyResult>> {
  return Promise.all(files.map(async (f, i) => ({ sink: i, ...(await verifyAuditFiles(await auditFilesInOrder(f))) })));
}
