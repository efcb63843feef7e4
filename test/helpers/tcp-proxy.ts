import net from 'node:net';

/**
 * A TCP proxy of our own between a client and a broker, on a free loopback port, for link-fault tests.
 *
 * - normal: every accepted connection gets its own upstream connection to 127.0.0.1:targetPort and bytes are
 *   forwarded both ways (with backpressure). A close on either side closes the other, as a proxy would.
 * - `cut()`: a hard cut. Every client and upstream socket is destroyed at once (both ends see the connection go),
 *   and until `restore()` new connections are accepted and destroyed immediately (a refused link).
 * - `halfOpen()`: a half-open link — the peer vanished without a FIN or RST. Sockets stay open, but whatever
 *   either side sends is silently dropped; new connections are accepted and black-holed too (no upstream is opened,
 *   so their CONNECT is never answered). A close on one side is not passed on to the other, so the client can only
 *   notice through its keepalive (and the broker through its own keepalive timeout).
 * - `restore()`: new connections are forwarded again. Black-holed connections are destroyed, not resumed.
 *   Real TCP would retransmit unacknowledged segments once a link heals, so a short blip can be survived; but these
 *   tests hold the link half-open until the client has given up on the connection (keepalive timeout), and by
 *   then the old connection is dead on one side: the surviving peer's next segment would be answered with an RST.
 *   Destroying the leftovers on restore models exactly that, and guarantees nothing stale (a PUBACK, a PUBLISH
 *   dropped during the outage) is ever delivered later. Data sent while half-open is dropped, never replayed.
 *   A short blip that TCP would heal transparently is not modelled; a test that needs it can simply not cut.
 */

export interface TcpProxy {
  port: number;
  /** `mqtt://127.0.0.1:<port>`. */
  url: string;
  /** Client connections accepted and forwarded or black-holed since start (the refused ones during a cut are not counted). */
  connections(): number;
  /** Client connections open now. */
  openConnections(): number;
  /** Connections accepted and destroyed at once while cut. */
  refused(): number;
  /** Bytes passed on: up = client → broker, down = broker → client. */
  bytesForwarded(): { up: number; down: number };
  /** Bytes dropped while half-open. */
  bytesDropped(): { up: number; down: number };
  /** The current link state. */
  state(): 'normal' | 'cut' | 'halfOpen';
  cut(): void;
  halfOpen(): void;
  restore(): void;
  stop(): Promise<void>;
}

interface Pair {
  client: net.Socket;
  upstream: net.Socket | undefined;
  blackholed: boolean;
}

export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  let mode: 'normal' | 'cut' | 'halfOpen' = 'normal';
  const pairs = new Set<Pair>();
  const forwarded = { up: 0, down: 0 };
  const dropped = { up: 0, down: 0 };
  let accepted = 0;
  let refusedCount = 0;

  const destroyPair = (pair: Pair) => {
    pair.client.destroy();
    pair.upstream?.destroy();
    pairs.delete(pair);
  };

  /** Forwards `from` to `to` unless the pair is black-holed; pauses on backpressure. */
  const pipe = (pair: Pair, from: net.Socket, to: net.Socket, dir: 'up' | 'down') => {
    from.on('data', (chunk: Buffer) => {
      if (pair.blackholed) {
        dropped[dir] += chunk.length;
        return;
      }
      forwarded[dir] += chunk.length;
      if (!to.write(chunk)) {
        from.pause();
        to.once('drain', () => from.resume());
      }
    });
    // A clean end is passed on as an end, anything else as a destroy — unless the link is half-open, in which case
    // the other side hears nothing.
    from.on('end', () => {
      if (!pair.blackholed) to.end();
    });
    from.on('close', () => {
      if (pair.blackholed) return;
      to.destroy();
      pairs.delete(pair);
    });
    from.on('error', () => undefined);
  };

  const server = net.createServer({ pauseOnConnect: false }, (client) => {
    client.on('error', () => undefined);
    if (mode === 'cut') {
      refusedCount += 1;
      client.destroy();
      return;
    }
    accepted += 1;
    client.setNoDelay(true);
    if (mode === 'halfOpen') {
      const pair: Pair = { client, upstream: undefined, blackholed: true };
      pairs.add(pair);
      client.on('data', (chunk: Buffer) => (dropped.up += chunk.length));
      client.on('close', () => {
        // Nothing upstream to tell; keep the entry only while something is open.
        pairs.delete(pair);
      });
      return;
    }
    const upstream = net.connect(targetPort, targetHost);
    upstream.setNoDelay(true);
    upstream.on('error', () => undefined);
    const pair: Pair = { client, upstream, blackholed: false };
    pairs.add(pair);
    pipe(pair, client, upstream, 'up');
    pipe(pair, upstream, client, 'down');
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as net.AddressInfo;

  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    connections: () => accepted,
    openConnections: () => [...pairs].filter((p) => !p.client.destroyed).length,
    refused: () => refusedCount,
    bytesForwarded: () => ({ ...forwarded }),
    bytesDropped: () => ({ ...dropped }),
    state: () => mode,
    cut: () => {
      mode = 'cut';
      for (const pair of [...pairs]) destroyPair(pair);
    },
    halfOpen: () => {
      mode = 'halfOpen';
      for (const pair of pairs) pair.blackholed = true;
    },
    restore: () => {
      mode = 'normal';
      for (const pair of [...pairs]) if (pair.blackholed) destroyPair(pair);
    },
    stop: async () => {
      mode = 'cut';
      for (const pair of [...pairs]) destroyPair(pair);
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
