/**
 * The sandbox: demo EHR, billing, ERP and payer upstreams plus the dev IdP, all on loopback with synthetic data.
 * Run standalone with `tsx gateway/sandbox/index.ts`; the gateway CLI starts it with `--sandbox`.
 */
import { pathToFileURL } from 'node:url';
import { startBilling } from './billing.ts';
import { startEhr } from './ehr.ts';
import { startErp } from './erp.ts';
import { startPayer } from './payer.ts';
import { LOOPBACK, type UpstreamServer } from './http.ts';
import { startIdp, type DevIdp } from './idp.ts';

export { startBilling } from './billing.ts';
export { startEhr, FHIR_JSON } from './ehr.ts';
export { startErp } from './erp.ts';
export { startPayer } from './payer.ts';
export { startIdp, DEV_CLIENTS, DEFAULT_AUDIENCE, type DevIdp, type DevClient, type MintOptions } from './idp.ts';
export type { Fault, Stats, UpstreamServer } from './http.ts';

export interface SandboxPorts { idp?: number; ehr?: number; billing?: number; erp?: number; payer?: number }
export const DEFAULT_PORTS = { idp: 9100, ehr: 9101, billing: 9102, erp: 9103, payer: 9104 } as const;
/** All ports ephemeral, for tests. */
export const EPHEMERAL_PORTS: Required<SandboxPorts> = { idp: 0, ehr: 0, billing: 0, erp: 0, payer: 0 };

export interface Sandbox {
  urls: { idp: string; ehr: string; billing: string; erp: string; payer: string };
  idp: DevIdp;
  /** Direct handles for faults, stats and per-upstream reset. */
  upstreams: { ehr: UpstreamServer; billing: UpstreamServer; erp: UpstreamServer; payer: UpstreamServer };
  close(): Promise<void>;
  /** Seed data back, faults cleared, stats zeroed on every server (IdP keys are kept). */
  reset(): void;
}

export async function startSandbox(opts: { host?: string; ports?: SandboxPorts } = {}): Promise<Sandbox> {
  const host = opts.host ?? LOOPBACK;
  const port = (k: keyof SandboxPorts) => opts.ports?.[k] ?? DEFAULT_PORTS[k];
  const results = await Promise.allSettled([
    startIdp({ host, port: port('idp') }), startEhr({ host, port: port('ehr') }),
    startBilling({ host, port: port('billing') }), startErp({ host, port: port('erp') }),
    startPayer({ host, port: port('payer') }),
  ]);
  const started = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  // A half-started sandbox would hold ports and keep the process alive; release what did start.
  if (failed) {
    await Promise.all(started.map((s) => s.close()));
    throw failed.reason;
  }
  const [idp, ehr, billing, erp, payer] = started as [DevIdp, UpstreamServer, UpstreamServer, UpstreamServer, UpstreamServer];
  const all = [idp, ehr, billing, erp, payer];
  return {
    urls: { idp: idp.url, ehr: ehr.url, billing: billing.url, erp: erp.url, payer: payer.url },
    idp, upstreams: { ehr, billing, erp, payer },
    close: async () => { await Promise.all(all.map((s) => s.close())); },
    reset: () => all.forEach((s) => s.reset()),
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const sb = await startSandbox();
  console.log(JSON.stringify({ sandbox: sb.urls, note: 'synthetic data only' }, null, 2));
  const stop = () => void sb.close().then(() => process.exit(0));
  process.once('SIGINT', stop).once('SIGTERM', stop);
}
