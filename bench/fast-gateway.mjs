/**
 * The fast-gateway row: fast-gateway (restana + fast-proxy-lite), no policies — the fastest maintained Node
 * gateway we compare with. `node bench/fast-gateway.mjs <port> <upstream-url>`; prints "ready <port>".
 */
import gateway from 'fast-gateway';

const server = gateway({ routes: [{ prefix: '/fhir', prefixRewrite: '/fhir', target: process.argv[3] }] });
server.start(Number(process.argv[2] ?? 0), '127.0.0.1').then((s) => {
  process.stdout.write(`ready ${s.address().port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
// Plain JavaScript: no TypeScript loader in the measured processes.
