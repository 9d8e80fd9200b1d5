/**
 * Follows one container's output across its restarts. `docker logs --follow` ends when the
 * container stops (docker/cli #3426), so the follower re-attaches with `since` set to the
 * last timestamp it saw and drops the lines it already has: no line lost, none doubled.
 */
import { PassThrough, Readable } from "node:stream";
import type Docker from "dockerode";
import type { LogLine } from "../../../proto/frames/runner";
import { log, reason } from "../log";

/** Docker's RFC 3339 timestamps as nanoseconds, comparable whatever their fraction's length. */
export function nanos(ts: string): bigint | null {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(ts);
  if (!m) return null;
  const ms = Date.parse(`${m[1]}${m[3]}`);
  if (!Number.isFinite(ms)) return null;
  return BigInt(ms) * 1_000_000n + BigInt((m[2] ?? "").padEnd(9, "0").slice(0, 9));
}

export class LogFollower {
  private closed = false;
  private stream: Readable | null = null;
  /** The newest timestamp sent, and the lines sent with exactly that timestamp. */
  private lastNs: bigint | null = null;
  private lastTs = "";
  private atLast = new Set<string>();
  private attached = false;
  private wake: (() => void) | null = null;

  constructor(
    private readonly docker: Docker,
    private readonly containerId: string,
    private readonly emit: (lines: LogLine[]) => void,
  ) {
    void this.loop();
  }

  /** The container (re)started: attach now rather than at the next poll. */
  nudge(): void {
    this.wake?.();
  }

  close(): void {
    this.closed = true;
    this.stream?.destroy();
    this.wake?.();
  }

  private async loop(): Promise<void> {
    const container = this.docker.getContainer(this.containerId);
    while (!this.closed) {
      try {
        const info = await container.inspect();
        if (info.State.Running || !this.attached) {
          this.attached = true;
          await this.follow(container, info.Config.Tty);
        }
      } catch (e) {
        if (this.closed) return;
        if (/no such container|404/i.test(reason(e))) return;
        log("warn", `following logs of ${this.containerId.slice(0, 12)}: ${reason(e)}`);
      }
      // Ended: the container stopped. Wait for it to run again.
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, 1000);
        function done() {
          clearTimeout(t);
          resolve();
        }
        this.wake = done;
      });
    }
  }

  private async follow(container: Docker.Container, tty: boolean): Promise<void> {
    // `since` has second resolution in the engine's filter: lines of that second come again and are dropped below.
    const since = this.lastNs === null ? 0 : Number(this.lastNs / 1_000_000_000n);
    const stream = await container.logs({ follow: true, stdout: true, stderr: true, timestamps: true, since });
    if (!(stream instanceof Readable)) throw new Error("the engine's log stream is not readable");
    this.stream = stream;
    const out = new PassThrough();
    const err = new PassThrough();
    if (tty) stream.pipe(out);
    else container.modem.demuxStream(stream, out, err);
    const pending = [this.lines(out, "stdout"), this.lines(err, "stderr")];
    await new Promise<void>((resolve) => {
      stream.once("end", resolve);
      stream.once("close", resolve);
      stream.once("error", resolve);
    });
    out.end();
    err.end();
    await Promise.all(pending);
    this.stream = null;
  }

  private lines(s: PassThrough, name: "stdout" | "stderr"): Promise<void> {
    let rest = "";
    s.setEncoding("utf8");
    s.on("data", (chunk: string) => {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop() ?? "";
      const lines = parts.flatMap((p) => this.accept(p, name));
      if (lines.length > 0) this.emit(lines);
    });
    return new Promise((resolve) =>
      s.once("end", () => {
        const last = rest ? this.accept(rest, name) : [];
        if (last.length > 0) this.emit(last);
        resolve();
      }),
    );
  }

  /** A timestamped line, unless it was sent already. */
  private accept(raw: string, stream: "stdout" | "stderr"): LogLine[] {
    const space = raw.indexOf(" ");
    const ts = space > 0 ? raw.slice(0, space) : "";
    const ns = nanos(ts);
    if (ns === null) return [{ stream, text: `${raw}\n` }];
    const text = `${raw.slice(space + 1)}\n`;
    const key = `${stream}:${text}`;
    if (this.lastNs !== null && ns < this.lastNs) return [];
    if (this.lastNs !== null && ns === this.lastNs) {
      if (this.atLast.has(key)) return [];
    } else {
      this.lastNs = ns;
      this.lastTs = ts;
      this.atLast = new Set();
    }
    this.atLast.add(key);
    return [{ time: this.lastTs, stream, text }];
  }
}
