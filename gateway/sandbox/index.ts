/**
 * The sandbox: demo EHR, billing, ERP and payer upstreams plus the dev IdP, all on loopback with synthetic data.
 * Run standalone with `tsx gateway/sandbox/index.ts`; the gateway CLI starts it with `--sandbox`.
 */
import { pathToFileURL } from 'node:url';
import { startBilling } from './billing.ts';
import { startEhr } from './ehr.ts';
import { startErp } from './erp.ts';
import { startPayer } from './payer.ts';
import { startReceivers, type Receivers } from './receivers.ts';
import { LOOPBACK, type UpstreamServer } from './http.ts';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { ERP_AUDIENCE, startIdp, type DevIdp } from './idp.ts';

export { startBilling } from './billing.ts';
export { startEhr, FHIR_JSON } from './ehr.ts';
export { startErp } from './erp.ts';
export { startPayer } from './payer.ts';
export { startReceivers, PORTAL_HOOK_TOKEN, SANDBOX_WEBHOOK_SECRET_FILES, type Receivers, type Received } from './receivers.ts';
export { startIdp, DEV_CLIENTS, DEFAULT_AUDIENCE, ERP_AUDIENCE, type DevIdp, type DevClient, type MintOptions } from './idp.ts';
export type { Fault, Stats, UpstreamServer } from './http.ts';

export interface SandboxPorts { idp?: number; ehr?: number; billing?: number; erp?: number; payer?: number; receivers?: number }
export const DEFAULT_PORTS = { idp: 9100, ehr: 9101, billing: 9102, erp: 9103, payer: 9104, receivers: 9105 } as const;
/** All ports ephemeral, for tests. */
export const EPHEMERAL_PORTS: Required<SandboxPorts> = { idp: 0, ehr: 0, billing: 0, erp: 0, payer: 0, receivers: 0 };

export interface Sandbox {
  urls: { idp: string; ehr: string; billing: string; erp: string; payer: string; receivers: string };
  idp: DevIdp;
  /** Direct handles for faults, stats and per-upstream reset. */
  upstreams: { ehr: UpstreamServer; billing: UpstreamServer; erp: UpstreamServer; payer: UpstreamServer };
  /** The demo event subscribers (CRM, charge capture, patient portal) the sandbox routes.yaml delivers to. */
  receivers: Receivers;
  close(): Promise<void>;
  /** Seed data back, faults cleared, stats zeroed on every server (IdP keys are kept). */
  reset(): void;
}

export interface SandboxOptions {
  host?: string;
  ports?: SandboxPorts;
  /**
   * The ERP accepts only a token the dev IdP issued to the gateway (client hcgw-gateway, audience
   * hcgw-erp), as a real cloud ERP would: `npm start` turns this on (routes.yaml gives the ERP upstream
   * its client credentials). Off by default so tests can call the ERP directly.
   */
  erpRequiresGatewayToken?: boolean;
}

export async function startSandbox(opts: SandboxOptions = {}): Promise<Sandbox> {
  const host = opts.host ?? LOOPBACK;
  const port = (k: keyof SandboxPorts) => opts.ports?.[k] ?? DEFAULT_PORTS[k];
  const idpStarted = startIdp({ host, port: port('idp') });
  const verifyToken = opts.erpRequiresGatewayToken
    ? async (token: string) => {
        const idp = await idpStarted;
        try {
          const { payload } = await jwtVerify(token, createLocalJWKSet(idp.jwks()), { issuer: idp.issuer, audience: ERP_AUDIENCE, algorithms: ['RS256'] });
          return payload.client_id === 'hcgw-gateway';
        } catch {
          return false;
        }
      }
    : undefined;
  const results = await Promise.allSettled([
    idpStarted, startEhr({ host, port: port('ehr') }),
    startBilling({ host, port: port('billing') }), startErp({ host, port: port('erp'), verifyToken }),
    startPayer({ host, port: port('payer') }),
    // The charge-capture service calls the gateway with its own client-credentials token.
    startReceivers({ host, port: port('receivers'), token: async () => (await idpStarted).mint({ clientId: 'charge-capture', scopes: ['erp.write', 'billing.write'] }) }),
  ]);
  const started = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  // A half-started sandbox would hold ports and keep the process alive; release what did start.
  if (failed) {
    await Promise.all(started.map((s) => s.close()));
    throw failed.reason;
  }
  const [idp, ehr, billing, erp, payer, receivers] = started as [DevIdp, UpstreamServer, UpstreamServer, UpstreamServer, UpstreamServer, Receivers];
  const all = [idp, ehr, billing, erp, payer, receivers];
  return {
    urls: { idp: idp.url, ehr: ehr.url, billing: billing.url, erp: erp.url, payer: payer.url, receivers: receivers.url },
    idp, upstreams: { ehr, billing, erp, payer }, receivers,
    close: async () => { await Promise.all(all.map((s) => s.close())); },
    reset: () => all.forEach((s) => s.reset()),
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const sb = await startSandbox({ erpRequiresGatewayToken: true });
  console.log(JSON.stringify({ sandbox: sb.urls, note: 'synthetic data only' }, null, 2));
  const stop = () => void sb.close().then(() => process.exit(0));
  process.once('SIGINT', stop).once('SIGTERM', stop);
}
