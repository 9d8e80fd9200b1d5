/**
 * The runner's WebSocket to its environment: ticket, hello/welcome, keep-alive pings, and
 * reconnects with exponential backoff and jitter, until edgeplane ends it for good
 * (superseded by a newer runner, environment deleted, credentials refused).
 */
import { parseServerFrame, RUNNER_PROTOCOL_VERSION, type RunnerMessage, type ServerMessage } from "../../proto/frames/runner";
import { Refused, type Session } from "./edgeplane";
import { log, reason } from "./log";

/** Close codes after which reconnecting cannot help, and what they mean to an operator. */
const FINAL: Record<number, string> = {
  4001: "superseded: another runner connected to the environment",
  4002: "edgeplane does not speak this runner's protocol version",
  1001: "the environment was deleted",
};

export interface ConnectionOptions {
  session: Session;
  environmentId: string;
  name: string;
  version: string;
  /** Keep-alive period; a socket with no pong for two periods is taken as dead. */
  pingMs?: number;
  /** Backoff bounds between reconnects. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Each checked frame from edgeplane. */
  onMessage(msg: ServerMessage): void;
  /** A socket said hello and got welcome. */
  onConnected(): void;
}

/** Delay before reconnect attempt `n` (0-based): doubling up to the cap, with "equal jitter" so runners restarted together spread out. */
export function backoff(n: number, minMs: number, maxMs: number, random = Math.random): number {
  const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(n, 20));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

export class Connection {
  private ws: WebSocket | null = null;
  private welcomed = false;
  private stopping = false;
  private wake: (() => void) | null = null;

  constructor(private readonly o: ConnectionOptions) {}

  /** Whether a frame sent now reaches edgeplane. */
  get connected(): boolean {
    return this.welcomed && this.ws?.readyState === WebSocket.OPEN;
  }

  /** Sends a frame if connected; false if not (the caller decides what to keep). */
  send(msg: RunnerMessage): boolean {
    if (!this.connected) return false;
    this.ws!.send(JSON.stringify(msg));
    return true;
  }

  /** Connects and stays connected; resolves with the reason once edgeplane ended it for good or `close` was called. */
  async run(): Promise<string> {
    const min = this.o.minBackoffMs ?? 500;
    const max = this.o.maxBackoffMs ?? 30_000;
    for (let attempt = 0; !this.stopping; ) {
      let url: URL;
      try {
        url = await this.o.session.runnerSocketUrl(this.o.environmentId);
      } catch (e) {
        if (e instanceof Refused) throw e;
        const wait = backoff(attempt++, min, max);
        log("warn", `cannot reach edgeplane (${reason(e)}); retrying in ${wait} ms`);
        await this.sleep(wait);
        continue;
      }
      const closed = await this.session(url);
      if (this.stopping) break;
      const final = FINAL[closed.code];
      if (final) return `${final} (${closed.code}${closed.reason ? `: ${closed.reason}` : ""})`;
      if (closed.welcomed) attempt = 0;
      const wait = backoff(attempt++, min, max);
      log("warn", `disconnected from edgeplane (${closed.code}${closed.reason ? ` ${closed.reason}` : ""}); reconnecting in ${wait} ms`);
      await this.sleep(wait);
    }
    return "stopped";
  }

  /** Closes the socket and ends `run`. */
  close(): void {
    this.stopping = true;
    this.wake?.();
    this.ws?.close(1000, "runner stopping");
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.wake = done;
    });
  }

  /** One socket, from open to close. */
  private session(url: URL): Promise<{ code: number; reason: string; welcomed: boolean }> {
    const pingMs = this.o.pingMs ?? 20_000;
    return new Promise((resolve) => {
      const ws = new WebSocket(url);
      this.ws = ws;
      this.welcomed = false;
      let lastPong = Date.now();
      let welcomed = false;
      const pinger = setInterval(() => {
        if (ws.readyState !== WebSocket.OPEN) return;
        // Half-open TCP shows no close: silence past two periods means the peer is gone.
        if (Date.now() - lastPong > 2 * pingMs + 1000) {
          log("warn", "edgeplane stopped answering pings; reconnecting");
          ws.close(4000, "no pong");
          finish(1006, "no pong");
          return;
        }
        ws.send("ping");
      }, pingMs);
      let done = false;
      const finish = (code: number, why: string) => {
        if (done) return;
        done = true;
        clearInterval(pinger);
        this.welcomed = false;
        resolve({ code, reason: why, welcomed });
      };
      ws.addEventListener("open", () => {
        const hello: RunnerMessage = { type: "hello", version: RUNNER_PROTOCOL_VERSION, runner: { name: this.o.name, version: this.o.version }, cluster: { type: "docker" } };
        ws.send(JSON.stringify(hello));
      });
      ws.addEventListener("message", (e) => {
        const text = typeof e.data === "string" ? e.data : Buffer.from(e.data as ArrayBuffer).toString("utf8");
        lastPong = Date.now();
        if (text === "pong") return;
        const frame = parseServerFrame(text);
        if (!frame.ok) {
          log("warn", `ignored a frame from edgeplane: ${frame.reason}`);
          return;
        }
        const msg = frame.message;
        if (msg.type === "welcome") {
          welcomed = true;
          this.welcomed = true;
          log("info", `connected to environment ${msg.environmentId} as ${this.o.name}`);
          this.o.onConnected();
          return;
        }
        if (msg.type === "error") log("warn", `edgeplane refused a frame: ${msg.code}: ${msg.message}`);
        try {
          this.o.onMessage(msg);
        } catch (err) {
          log("error", `handling ${msg.type}: ${reason(err)}`);
        }
      });
      ws.addEventListener("close", (e) => finish(e.code, e.reason));
      ws.addEventListener("error", () => {
        // The close event follows with the code.
      });
    });
  }
}
