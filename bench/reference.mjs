/**
 * The reference row: plain express + http-proxy-middleware, no policies — what "a bare Node proxy"
 * costs on this machine. `node bench/reference.mjs <port> <upstream-url>`; prints "ready <port>".
 */
import http from 'node:http';
import express from 'express';
import { createProxyMiddleware } from 'http-proxy-middleware';

const app = express();
app.use(createProxyMiddleware({ target: process.argv[3], changeOrigin: true, agent: new http.Agent({ keepAlive: true, maxSockets: 256 }) }));
const server = app.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  process.stdout.write(`ready ${server.address().port}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
