import type http from 'node:http';
import type { Socket } from 'node:net';

/**
 * How long a connection must have been quiet before a draining server closes it. A keep-alive client
 * may send its next request on an idle connection at any moment, and a request that crosses the close
 * gets reset; a client under load reuses its connection within milliseconds (and is then answered with
 * `Connection: close`), so only connections quiet for this long are cut. It also covers connections
 * accepted just before accepting stopped, whose request has not arrived yet.
 */
export const QUIET_MS = 250;

interface Conn {
  busy: number;
  /** When the connection was accepted or last finished a response. */
  quietSince: number;
}

/** The server's connections, busy or quiet, so a drain can close only the ones no request is racing on. */
export function trackConnections(server: http.Server) {
  const conns = new Map<Socket, Conn>();
  server.on('connection', (socket: Socket) => {
    conns.set(socket, { busy: 0, quietSince: performance.now() });
    socket.once('close', () => conns.delete(socket));
  });
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const c = conns.get(req.socket);
    if (!c) return;
    c.busy++;
    res.once('close', () => {
      c.busy--;
      c.quietSince = performance.now();
    });
  });
  return {
    get size() {
      return conns.size;
    },
    /** Ends every connection with no request in progress that has been quiet for `quietMs`. */
    closeQuiet(quietMs = QUIET_MS): void {
      const now = performance.now();
      for (const [socket, c] of conns) if (c.busy === 0 && now - c.quietSince >= quietMs) socket.destroySoon();
    },
  };
}
