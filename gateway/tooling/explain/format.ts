/** The text form of `hcgw explain` (the JSON form is the Explanation itself). Deterministic: no times, ids or ports. */
import { PROBLEM_BASE } from '../../sdk/errors.ts';
import type { PolicyDecision } from '../../sdk/types.ts';
import type { Explanation } from './run.ts';

const detailText = (d: PolicyDecision['detail']) =>
  Object.entries(d ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');

function table(rows: string[][], indent = '  '): string[] {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i]?.length ?? 0)));
  return rows.map((r) => (indent + r.map((c, i) => (i < r.length - 1 ? c.padEnd(widths[i]) : c)).join('  ')).trimEnd());
}

const counted = (xs: Array<{ path: string; count: number }>) => xs.map((x) => `${x.path} ×${x.count}`).join(', ');

/**
 * The response-phase decisions behind what is missing: a filter that counts resources it removed (consent,
 * patient-compartment, minimize's unreleased types), and the field filter (a minimize profile) when fields went.
 */
function filters(e: Explanation): PolicyDecision[] {
  const fieldsWent = Boolean(e.removed?.fields.length || e.removed?.rewritten.length);
  return e.decisions.filter(
    (d) => (d.outcome === 'modify' || d.outcome === 'would-modify') && (Number(d.detail?.removed) > 0 || (fieldsWent && d.detail?.profile !== undefined)),
  );
}

export function formatExplanation(e: Explanation): string {
  const out: string[] = [`${e.request.method} ${e.request.path}`];
  if (e.route) {
    out.push(`route     ${e.route.id} (${e.route.layer}) → ${e.route.target}`);
    out.push(`policies  ${e.route.policies.join(' → ')}`);
  }
  if (e.decisions.length) {
    out.push('', 'decisions (request phase in order, then response phase in reverse)');
    out.push(...table(e.decisions.map((d) => [d.policy, d.outcome, d.reason ?? '', detailText(d.detail)])));
  }
  if (e.notReached.length) out.push(`not reached: ${e.notReached.join(', ')}`);
  if (e.consent) out.push('', `consent   ${e.consent.decision}${e.consent.consentIds.length ? ` (${e.consent.consentIds.map((id) => `Consent/${id}`).join(', ')})` : ''}`);
  if (e.removed) {
    const r = e.removed;
    const resources = Object.entries(r.resources).map(([t, n]) => `${t} ×${n}`);
    out.push('', 'removed from the upstream answer before the client got it');
    const rows: string[][] = [];
    if (resources.length) rows.push(['resources', resources.join(', ')]);
    if (r.fields.length) rows.push(['fields', counted(r.fields)]);
    if (r.rewritten.length) rows.push(['rewritten', counted(r.rewritten)]);
    for (const d of filters(e)) rows.push(['by', `${d.policy}: ${d.reason ?? d.outcome} (${detailText(d.detail)})`]);
    out.push(...table(rows));
  }
  if (e.upstreamCalls.length) out.push('', `upstream  ${e.upstreamCalls.join(', ')}`);
  else if (e.route) out.push('', 'upstream  not called');
  const type = e.problem?.type?.startsWith(PROBLEM_BASE) ? e.problem.type.slice(PROBLEM_BASE.length) : e.problem?.type;
  out.push(`status    ${e.status}${type ? ` ${type}` : ''}${e.problem?.detail ? `: ${e.problem.detail}` : ''}`);
  if (e.note) out.push(`note      ${e.note}`);
  return `${out.join('\n')}\n`;
}
