/**
 * CMS-0057-F API usage metrics from audit records (already verified by the caller):
 * - per API (route id) and client app: requests, unique patients whose data was returned, and how many of
 *   those were returned more than once (in two or more distinct requests);
 * - prior authorization: approved / denied / pended, and mean / median decision time.
 * "Returned" means a successful record (outcome 0) naming patients: a request audited twice (the route's
 * `audit` policy and an adapter's own record share a requestId) counts once.
 */
export interface ApiUsageRow {
  api: string;
  clientApp: string;
  requests: number;
  uniquePatients: number;
  patientsReturnedMoreThanOnce: number;
}

export interface PriorAuthStats {
  submitted: number;
  approved: number;
  denied: number;
  pended: number;
  stillPending: number;
  decisions: number;
  meanDecisionMs: number | null;
  medianDecisionMs: number | null;
}

export interface ApiUsageReport {
  from: string;
  to: string;
  apis: ApiUsageRow[];
  priorAuthorization: PriorAuthStats;
}

type Rec = Record<string, any>;

const NO_CLIENT = '(none)';

function median(sorted: number[]): number | null {
  if (!sorted.length) return null;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Records with `recorded` in [from, to). */
export function apiUsage(records: Iterable<Rec>, from: Date, to: Date): ApiUsageReport {
  const groups = new Map<string, { api: string; clientApp: string; requests: Set<string>; byPatient: Map<string, Set<string>> }>();
  const pa = { submitted: 0, approved: 0, denied: 0, pended: 0, laterDecided: 0, times: [] as number[] };
  let anonymous = 0;
  for (const r of records) {
    const at = Date.parse(r.recorded);
    if (!(at >= from.getTime() && at < to.getTime())) continue;
    if (r.type === 'pas') {
      const d = r.entity?.priorAuth;
      // A call the payer never answered is a request to the API, not a submission.
      if (r.subtype === 'submit' && d && d.decision !== 'failed') {
        pa.submitted++;
        if (d.decision === 'pended') pa.pended++;
      }
      if (d?.decision === 'approved') pa.approved++;
      if (d?.decision === 'denied') pa.denied++;
      if (r.subtype === 'decision' && (d?.decision === 'approved' || d?.decision === 'denied')) pa.laterDecided++;
      if ((d?.decision === 'approved' || d?.decision === 'denied') && typeof d.decisionMs === 'number') pa.times.push(d.decisionMs);
    }
    const api = r.entity?.route;
    // Inbound feeds (HL7 v2) and background decisions have no API a client called.
    if (typeof api !== 'string' || !r.agent || r.subtype === 'decision') continue;
    const clientApp = typeof r.agent.clientId === 'string' ? r.agent.clientId : NO_CLIENT;
    const key = `${api}\u0000${clientApp}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { api, clientApp, requests: new Set(), byPatient: new Map() }));
    const requestId = typeof r.requestId === 'string' ? r.requestId : `anonymous-${anonymous++}`;
    g.requests.add(requestId);
    if (r.outcome?.code !== '0') continue;
    for (const p of r.entity.patientHashes ?? []) {
      let seen = g.byPatient.get(p);
      if (!seen) g.byPatient.set(p, (seen = new Set()));
      seen.add(requestId);
    }
  }
  const apis = [...groups.values()]
    .map((g) => ({
      api: g.api,
      clientApp: g.clientApp,
      requests: g.requests.size,
      uniquePatients: g.byPatient.size,
      patientsReturnedMoreThanOnce: [...g.byPatient.values()].filter((s) => s.size > 1).length,
    }))
    .sort((a, b) => a.api.localeCompare(b.api) || a.clientApp.localeCompare(b.clientApp));
  const times = pa.times.sort((a, b) => a - b);
  return {
    from: from.toISOString(),
    to: to.toISOString(),
    apis,
    priorAuthorization: {
      submitted: pa.submitted,
      approved: pa.approved,
      denied: pa.denied,
      pended: pa.pended,
      stillPending: Math.max(0, pa.pended - pa.laterDecided),
      decisions: times.length,
      meanDecisionMs: times.length ? Math.round((times.reduce((s, t) => s + t, 0) / times.length) * 10) / 10 : null,
      medianDecisionMs: median(times),
    },
  };
}

const csvCell = (v: unknown) => {
  const s = v === null || v === undefined ? '' : String(v);
  // Quote what CSV needs quoted, and defuse spreadsheet formulas in ids (CWE-1236).
  const safe = /^[=+\-@]/.test(s) ? `'${s}` : s;
  return /[",\n\r]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
};

export function apiUsageCsv(report: ApiUsageReport): string {
  const lines = [['api', 'client_app', 'requests', 'unique_patients', 'patients_returned_more_than_once'].join(',')];
  for (const r of report.apis) lines.push([r.api, r.clientApp, r.requests, r.uniquePatients, r.patientsReturnedMoreThanOnce].map(csvCell).join(','));
  lines.push('', 'prior_authorization_metric,value');
  const p = report.priorAuthorization;
  for (const [k, v] of Object.entries({ submitted: p.submitted, approved: p.approved, denied: p.denied, pended: p.pended, still_pending: p.stillPending, decisions: p.decisions, mean_decision_ms: p.meanDecisionMs, median_decision_ms: p.medianDecisionMs })) lines.push(`${k},${csvCell(v)}`);
  lines.push('', `period,${report.from}/${report.to}`);
  return `${lines.join('\n')}\n`;
}
