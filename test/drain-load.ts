import http from 'node:http';

/** Keep-alive load for the drain tests: tallies answers, refusals and resets (which must stay at 0). */

const RESET = new Set(['ECONNRESET', 'EPIPE', 'socket hang up']);

export interface Tally {
  ok: number;
  closeHeaders: number;
  refused: number;
  resets: string[];
  other: string[];
}
export const tally = (): Tally => ({ ok: 0, closeHeaders: 0, refused: 0, resets: [], other: [] });

function request(url: string, agent: http.Agent, method: string, t: Tally): Promise<void> {
  return new Promise((resolve) => {
    const fail = (e: NodeJS.ErrnoException) => {
      const code = e.code ?? e.message;
      if (code === 'ECONNREFUSED') t.refused++;
      else if (RESET.has(code) || RESET.has(e.message)) t.resets.push(`${method} ${code}`);
      else t.other.push(`${method} ${code}`);
      resolve();
    };
    const req = http.request(url, { agent, method, headers: { 'content-type': 'application/json' } }, (res) => {
      res.resume();
      res.on('end', () => {
        if (res.statusCode === 200) t.ok++;
        else t.other.push(`${method} status ${res.statusCode}`);
        if (res.headers.connection === 'close') t.closeHeaders++;
        resolve();
      });
      res.on('error', fail);
    });
    req.on('error', fail);
    req.end(method === 'POST' ? '{"a":1}' : undefined);
  });
}

/** `loops` keep-alive clients, each bounded in count, until `stop()` says so. */
export function load(url: string, loops: number, t: Tally, stop: () => boolean): { done: Promise<void> } {
  const agent = new http.Agent({ keepAlive: true, maxSockets: loops });
  const done = Promise.all(
    Array.from({ length: loops }, async (_, i) => {
      for (let n = 0; n < 5000 && !stop(); n++) await request(url, agent, (n + i) % 3 === 0 ? 'POST' : 'GET', t);
    }),
  ).then(() => agent.destroy());
  return { done };
}

