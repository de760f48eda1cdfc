// A loopback TCP proxy that can freeze its open connections (no bytes pass, nothing is closed):
// the half-open connection a watch must detect by itself.
import net from 'node:net';

export class FreezableProxy {
  private readonly server: net.Server;
  private readonly pairs = new Set<[net.Socket, net.Socket]>();
  port = 0;
  /** When set, new connections are accepted and never answered. */
  blackhole = false;
  private readonly held = new Set<net.Socket>();

  constructor(targetPort: number) {
    this.server = net.createServer((client) => {
      if (this.blackhole) {
        // Accept and say nothing: an API server that stopped answering.
        this.held.add(client);
        client.on('close', () => this.held.delete(client));
        client.on('error', () => client.destroy());
        return;
      }
      const upstream = net.connect(targetPort, '127.0.0.1');
      const pair: [net.Socket, net.Socket] = [client, upstream];
      this.pairs.add(pair);
      client.pipe(upstream);
      upstream.pipe(client);
      const drop = () => {
        this.pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      client.on('error', drop);
      upstream.on('error', drop);
      client.on('close', drop);
      upstream.on('close', drop);
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', () => resolve()));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this.port;
  }

  /** Stops forwarding on every open connection without closing it. New connections still work. */
  freezeOpenConnections(): number {
    for (const [client, upstream] of this.pairs) {
      client.unpipe(upstream);
      upstream.unpipe(client);
      client.pause();
      upstream.pause();
    }
    const n = this.pairs.size;
    for (const [a, b] of this.pairs) this.held.add(a).add(b);
    this.pairs.clear();
    return n;
  }

  async close(): Promise<void> {
    for (const c of this.held) c.destroy();
    for (const [a, b] of this.pairs) {
      a.destroy();
      b.destroy();
    }
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
