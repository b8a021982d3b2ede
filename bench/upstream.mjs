// Plain JavaScript: no TypeScript loader in the measured processes.
/**
 * The benchmark's backend: as fast as node:http allows, so the rows measure the gateway, not the
 * backend. Serves a ~1 KB FHIR Patient, a 50-entry searchset Bundle, and the bench issuer's JWKS.
 * Run as its own process: `node bench/upstream.mjs <port> <jwks-json-file>`; prints "ready <port>".
 */
import http from 'node:http';
import { readFileSync } from 'node:fs';

const port = Number(process.argv[2] ?? 0);
const jwks = process.argv[3] ? readFileSync(process.argv[3]) : Buffer.from('{"keys":[]}');

const patient = (id) => ({
  resourceType: 'Patient',
  id,
  meta: { versionId: '3', lastUpdated: '2026-01-15T10:00:00Z' },
  identifier: [
    { system: 'urn:oid:2.16.840.1.113883.19.5', value: 'MRN-000123451', type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR' }] } },
    { system: 'http://hl7.org/fhir/sid/us-ssn', value: '999-00-0001' },
  ],
  active: true,
  name: [{ use: 'official', family: 'Benchmark-Zyx', given: ['Bea', 'Quinn'] }],
  telecom: [
    { system: 'phone', value: '555-0199', use: 'home' },
    { system: 'email', value: 'bea.benchmark-zyx@example.org' },
  ],
  gender: 'female',
  birthDate: '1975-02-03',
  address: [{ use: 'home', line: ['1 Synthetic Plaza', 'Suite 9'], city: 'Faketown', state: 'ZZ', postalCode: '00009', country: 'ZZ' }],
  maritalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-MaritalStatus', code: 'M' }] },
  generalPractitioner: [{ reference: 'Practitioner/pr-1' }],
  managingOrganization: { reference: 'Organization/org-gp' },
});

const observation = (i) => ({
  resourceType: 'Observation',
  id: `obs-${i}`,
  status: 'final',
  category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] }],
  code: { coding: [{ system: 'http://loinc.org', code: '8867-4', display: 'Heart rate' }] },
  subject: { reference: 'Patient/p1' },
  effectiveDateTime: '2026-01-15T10:00:00Z',
  valueQuantity: { value: 60 + (i % 30), unit: 'beats/minute', system: 'http://unitsofmeasure.org', code: '/min' },
  note: [{ text: 'Synthetic note for benchmarking' }],
});

const patientBody = Buffer.from(JSON.stringify(patient('p1')));
const bundleBody = Buffer.from(
  JSON.stringify({ resourceType: 'Bundle', type: 'searchset', total: 50, entry: Array.from({ length: 50 }, (_, i) => ({ fullUrl: `http://bench/fhir/Observation/obs-${i}`, resource: observation(i), search: { mode: 'match' } })) }),
);

const send = (res, body, type = 'application/fhir+json') => {
  res.writeHead(200, { 'content-type': type, 'content-length': body.length });
  res.end(body);
};

const server = http.createServer((req, res) => {
  const url = req.url ?? '/';
  if (url.startsWith('/fhir/Patient/')) return send(res, patientBody);
  if (url.startsWith('/fhir/Observation')) return send(res, bundleBody);
  if (url.startsWith('/jwks')) return send(res, jwks, 'application/json');
  res.writeHead(404).end();
});
server.keepAliveTimeout = 60_000;
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`ready ${server.address().port}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
