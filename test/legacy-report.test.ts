import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { GENESIS, seal } from '../gateway/audit/chain.ts';
import { UsageError } from '../gateway/cli/command.ts';
import { report } from '../gateway/cli/report.ts';
import { tempDir } from './helpers.ts';

/** A capture stream for the command's stdout / stderr. */
function sink() {
  let text = '';
  const stream = new Writable({ write: (c, _e, cb) => ((text += String(c)), cb()) });
  return { stream, text: () => text };
}

const rest = (recorded: string, route: string, clientId: string, requestId: string, code: string, patients: string[]) => ({ schema: 'hcgw.audit/1', type: 'rest', subtype: 'read', action: 'R', recorded, outcome: { code, status: code === '0' ? 200 : 403 }, agent: { clientId, patientContext: false }, entity: { route, layer: 'system', ...(patients.length ? { patientHashes: patients } : {}) }, requestId });
const pas = (recorded: string, subtype: 'submit' | 'decision', requestId: string | undefined, decision: string, patients: string[], decisionMs?: number) => ({
  schema: 'hcgw.audit/1', type: 'pas', subtype, action: 'E', recorded,
  outcome: { code: decision === 'failed' ? '8' : '0' },
  agent: requestId ? { clientId: 'app-a' } : { system: 'gateway' },
  entity: { route: subtype === 'decision' ? 'decision' : 'prior-auth', priorAuth: { decision, ...(decisionMs !== undefined ? { decisionMs } : {}) }, patientHashes: patients },
  ...(requestId ? { requestId } : {}),
});

/**
 * The fixture, with the numbers worked out by hand in the comments. h1…h8 stand for patient hashes.
 * Window [2026-01-01, 2027-01-01).
 */
const FIXTURE = [
  rest('2026-03-01T10:00:00Z', 'patient-access', 'app-a', 'r1', '0', ['h1']),
  rest('2026-03-01T10:01:00Z', 'patient-access', 'app-a', 'r2', '0', ['h1', 'h2']), // h1 now returned twice
  rest('2026-03-01T10:02:00Z', 'patient-access', 'app-a', 'r3', '4', ['h3']), // refused: a request, no patient returned
  rest('2026-03-02T09:00:00Z', 'patient-access', 'app-b', 'r4', '0', ['h1']), // other app: counted apart
  { schema: 'hcgw.audit/1', type: 'x12', subtype: '270/271', action: 'E', recorded: '2026-04-01T08:00:00Z', outcome: { code: '0' }, agent: { clientId: 'app-a' }, entity: { route: 'eligibility', control: { isa13: '000000001', gs06: '1', st02: '0001', trn02: 'T1' }, patientHashes: ['h4'] }, requestId: 'r5' },
  rest('2026-04-01T08:00:00Z', 'eligibility', 'app-a', 'r5', '0', ['h4']), // same request audited twice: h4 once
  rest('2025-12-31T23:59:59Z', 'patient-access', 'app-a', 'r6', '0', ['h2']), // before the window
  rest('2027-01-01T00:00:00Z', 'patient-access', 'app-a', 'r6b', '0', ['h2']), // `to` is exclusive
  { schema: 'hcgw.audit/1', type: 'hl7v2', subtype: 'ADT^A01', action: 'C', recorded: '2026-05-01T00:00:00Z', outcome: { code: '0', ack: 'AA' }, agent: { facility: 'SANDBOXHOSP' }, entity: { listener: 'adt-in', controlId: 'C1', patientHashes: ['h1'] } },
  pas('2026-06-01T00:00:00Z', 'submit', 'r7', 'approved', ['h5'], 1000),
  rest('2026-06-01T00:00:00Z', 'prior-auth', 'app-a', 'r7', '0', ['h5']),
  pas('2026-06-01T00:01:00Z', 'submit', 'r8', 'denied', ['h6'], 3000),
  pas('2026-06-01T00:02:00Z', 'submit', 'r9', 'pended', ['h5']), // h5 returned in r7 and r9
  pas('2026-06-01T00:03:00Z', 'decision', undefined, 'approved', ['h5'], 60000), // r9 decided a minute later
  pas('2026-06-01T00:04:00Z', 'submit', 'r10', 'pended', ['h7']), // never decided
  pas('2026-06-01T00:05:00Z', 'submit', 'r11', 'failed', ['h8']), // payer failed: not a submission, no patient
];

const EXPECTED = {
  from: '2026-01-01T00:00:00.000Z',
  to: '2027-01-01T00:00:00.000Z',
  apis: [
    { api: 'eligibility', clientApp: 'app-a', requests: 1, uniquePatients: 1, patientsReturnedMoreThanOnce: 0 },
    { api: 'patient-access', clientApp: 'app-a', requests: 3, uniquePatients: 2, patientsReturnedMoreThanOnce: 1 },
    { api: 'patient-access', clientApp: 'app-b', requests: 1, uniquePatients: 1, patientsReturnedMoreThanOnce: 0 },
    { api: 'prior-auth', clientApp: 'app-a', requests: 5, uniquePatients: 3, patientsReturnedMoreThanOnce: 1 },
  ],
  // approved: r7 + r9's later decision; decision times 1000, 3000, 60000 → mean 21333.3, median 3000.
  priorAuthorization: { submitted: 4, approved: 2, denied: 1, pended: 2, stillPending: 1, decisions: 3, meanDecisionMs: 21333.3, medianDecisionMs: 3000 },
};

function writeTrail(records: object[]): string {
  const file = join(tempDir('hcgw-report-'), 'audit.log');
  let prev = GENESIS;
  const lines = records.map((r) => {
    const { line, hash } = seal(r, prev);
    prev = hash;
    return line;
  });
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

describe('hcgw report api-usage', () => {
  it('JSON matches the hand-computed numbers of the fixture (after verifying the chain)', async () => {
    const file = writeTrail(FIXTURE);
    const out = sink();
    assert.equal(await report(['api-usage', '--from', '2026-01-01', '--to', '2027-01-01', file], out.stream, sink().stream), 0);
    const got = JSON.parse(out.text());
    assert.deepEqual({ from: got.from, to: got.to, apis: got.apis, priorAuthorization: got.priorAuthorization }, EXPECTED);
    assert.equal(got.verified.records, FIXTURE.length);
  });

  it('CSV carries the same numbers', async () => {
    const file = writeTrail(FIXTURE);
    const out = sink();
    assert.equal(await report(['api-usage', '--from', '2026-01-01', '--to', '2027-01-01', '--format', 'csv', file], out.stream, sink().stream), 0);
    const lines = out.text().split('\n');
    assert.equal(lines[0], 'api,client_app,requests,unique_patients,patients_returned_more_than_once');
    assert.deepEqual(lines.slice(1, 5), ['eligibility,app-a,1,1,0', 'patient-access,app-a,3,2,1', 'patient-access,app-b,1,1,0', 'prior-auth,app-a,5,3,1']);
    for (const l of ['approved,2', 'denied,1', 'pended,2', 'still_pending,1', 'mean_decision_ms,21333.3', 'median_decision_ms,3000']) assert.ok(lines.includes(l), l);
  });

  it('a narrower window counts only its records', async () => {
    const file = writeTrail(FIXTURE);
    const out = sink();
    assert.equal(await report(['api-usage', '--from', '2026-06-01T00:00:00Z', '--to', '2026-06-01T00:02:30Z', file], out.stream, sink().stream), 0);
    const got = JSON.parse(out.text());
    assert.deepEqual(got.apis, [{ api: 'prior-auth', clientApp: 'app-a', requests: 3, uniquePatients: 2, patientsReturnedMoreThanOnce: 1 }]);
    assert.deepEqual(got.priorAuthorization, { submitted: 3, approved: 1, denied: 1, pended: 1, stillPending: 1, decisions: 2, meanDecisionMs: 2000, medianDecisionMs: 2000 });
  });

  it('no report from a trail that does not verify: altered, deleted or reordered records', async () => {
    const file = writeTrail(FIXTURE);
    const original = readFileSync(file, 'utf8');
    const lines = original.trimEnd().split('\n');
    const variants = [
      original.replace('"r4"', '"r9"'), // altered
      `${[...lines.slice(0, 3), ...lines.slice(4)].join('\n')}\n`, // deleted
      `${[lines[1], lines[0], ...lines.slice(2)].join('\n')}\n`, // reordered
      `${lines.slice(1).join('\n')}\n`, // oldest removed
    ];
    for (const text of variants) {
      writeFileSync(file, text);
      const out = sink();
      const err = sink();
      assert.equal(await report(['api-usage', '--from', '2026-01-01', '--to', '2027-01-01', file], out.stream, err.stream), 1);
      assert.equal(out.text(), '');
      assert.match(err.text(), /does not verify/);
    }
  });

  it('bad arguments are usage errors', async () => {
    const file = writeTrail(FIXTURE);
    for (const args of [['api-usage', '--from', '2026-13-01', '--to', '2027-01-01', file], ['api-usage', '--from', '2026-01-01', '--to', 'tomorrow', file], ['api-usage', '--from', '2026-01-01', '--to', '2027-01-01', '--format', 'xml', file]]) {
      await assert.rejects(report(args, sink().stream, sink().stream), (e: Error) => e instanceof UsageError);
    }
    await assert.rejects(report(['api-usage', '--from', '2026-01-01', '--to', '2027-01-01'], sink().stream, sink().stream), UsageError);
    await assert.rejects(report(['api-usage', '--from', '2026-01-01', '--to', '2027-01-01', `${file}.missing`], sink().stream, sink().stream), UsageError);
  });
});
