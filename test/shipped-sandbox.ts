import { readFileSync } from 'node:fs';
import { EPHEMERAL_PORTS, startSandbox, type Sandbox } from '../gateway/sandbox/index.ts';
import { shippedConfigCopy, startGateway, type TestGateway } from './helpers.ts';

/**
 * The shipped routes.yaml, end to end: the same file `npm start` runs, with the sandbox's fixed ports
 * swapped for ephemeral ones so the test never collides with a running sandbox.
 */
export async function startShippedSandbox(): Promise<{ sb: Sandbox; gw: TestGateway }> {
  const sb = await startSandbox({ ports: EPHEMERAL_PORTS, erpRequiresGatewayToken: true });
  const origin = (u: string) => new URL(u).origin;
  const file = shippedConfigCopy((yaml) =>
    yaml
      .replaceAll('http://127.0.0.1:9100', origin(sb.urls.idp))
      .replaceAll('http://127.0.0.1:9101', origin(sb.urls.ehr))
      .replaceAll('http://127.0.0.1:9102', origin(sb.urls.billing))
      .replaceAll('http://127.0.0.1:9103', origin(sb.urls.erp))
      .replaceAll('http://127.0.0.1:9104', origin(sb.urls.payer))
      .replaceAll('http://127.0.0.1:9105', origin(sb.urls.receivers))
      .replace('admin: { port: 9901,', 'admin: { port: 0,')
      .replace('port: 2575,', 'port: 0,'),
  );
  const gw = await startGateway(readFileSync(file, 'utf8'), { file });
  // The sandbox's charge-capture service calls the gateway back, as under `npm start`.
  sb.receivers.chargeCapture.gatewayUrl = gw.url;
  return { sb, gw };
}
