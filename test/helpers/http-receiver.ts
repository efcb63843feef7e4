import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A webhook receiver for tests: a real HTTP server on a loopback port that keeps every JSON body POSTed to it.
 * `failWith(503)` makes it answer errors (a receiver in trouble), `close()` then `listen()` again takes it off the
 * network and back on the same port.
 */

export interface ReceivedRequest {
  path: string;
  headers: http.IncomingHttpHeaders;
  body: unknown;
  ts: number;
}

export interface HttpReceiver {
  url: string;
  port: number;
  received: ReceivedRequest[];
  /** Answer every request with this status (0: 200 again). */
  failWith(status: number): void;
  close(): Promise<void>;
  listen(): Promise<void>;
}

export async function startHttpReceiver(port = 0): Promise<HttpReceiver> {
  const received: ReceivedRequest[] = [];
  let failStatus = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (failStatus) {
        res.writeHead(failStatus).end('failing on purpose');
        return;
      }
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        res.writeHead(400).end('not JSON');
        return;
      }
      received.push({ path: req.url ?? '/', headers: req.headers, body, ts: Date.now() });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        port = (server.address() as AddressInfo).port;
        resolve();
      });
    });
  await listen();
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    received,
    failWith(status) {
      failStatus = status;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
    listen,
  };
}
