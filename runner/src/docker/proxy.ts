/**
 * One stable host address per interface: a TCP listener in the runner that hands each new
 * connection to the next ready replica (round robin), as a Kubernetes Service does. Replicas
 * are reached at their container IP on the environment's bridge network, so no replica
 * publishes a host port and old and new replicas can run side by side during a rollout.
 * A replica taken out of the set receives no new connection; open ones go on (draining).
 */
import { createServer, type Server, type Socket, connect } from "node:net";
import { log, reason } from "../log";

export interface Backend {
  /** The instance it is. */
  id: string;
  host: string;
  port: number;
}

export class Balancer {
  private backends: Backend[] = [];
  private next = 0;
  private readonly server: Server;
  /** Open connections per backend id, so a drain can tell when one is idle. */
  private readonly open = new Map<string, Set<Socket>>();

  private constructor(server: Server, readonly port: number) {
    this.server = server;
  }

  /** Listens on `host:port` (0: a free port). */
  static async listen(host: string, port: number, name: string): Promise<Balancer> {
    const server = createServer({ pauseOnConnect: true });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    const address = server.address();
    const balancer = new Balancer(server, typeof address === "object" && address ? address.port : port);
    server.on("connection", (client) => balancer.route(client, name));
    return balancer;
  }

  /** The replicas that take new connections, in order. */
  setBackends(backends: Backend[]): void {
    this.backends = [...backends].sort((a, b) => a.id.localeCompare(b.id));
  }

  /** Connections still open to a backend. */
  openTo(id: string): number {
    return this.open.get(id)?.size ?? 0;
  }

  async close(): Promise<void> {
    for (const sockets of this.open.values()) for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private route(client: Socket, name: string): void {
    if (this.backends.length === 0) {
      // Nothing ready: refuse rather than hold the client with no one to answer.
      client.destroy();
      return;
    }
    const b = this.backends[this.next++ % this.backends.length]!;
    const upstream = connect({ host: b.host, port: b.port });
    let sockets = this.open.get(b.id);
    if (!sockets) this.open.set(b.id, (sockets = new Set()));
    sockets.add(upstream);
    const done = () => {
      sockets.delete(upstream);
      client.destroy();
      upstream.destroy();
    };
    upstream.once("connect", () => {
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
    upstream.on("error", (e) => {
      log("warn", `${name}: connection to ${b.id} (${b.host}:${b.port}) failed: ${reason(e)}`);
      done();
    });
    client.on("error", done);
    upstream.on("close", done);
    client.on("close", done);
  }
}
