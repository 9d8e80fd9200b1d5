/**
 * The protocol side of the runner: turns edgeplane's messages into driver calls and the
 * driver's reports into frames. It knows nothing of Docker. Per capsule, desired/stop/synced
 * are applied one at a time in arrival order; reports are level-triggered (instances are
 * sent again after every reconnect), and log lines are batched and kept while disconnected.
 */
import { fromJson } from "@bufbuild/protobuf";
import { type RolloutConfig, RolloutConfigSchema } from "../../proto/gen/api/v1/capsule/rollout_pb";
import type { LogLine, ReportedInstance, RunnerMessage, ServerMessage } from "../../proto/frames/runner";
import { ApplyFailed, type CapsuleRef, type Driver, type ExecSession, type Reporter } from "./driver";
import { log, reason } from "./log";

/** Log lines are sent at most this often per instance, and at most this many per frame. */
const LOG_FLUSH_MS = 200;
const LOG_BATCH = 500;
/** Log lines kept while disconnected; beyond it the oldest are dropped (and that is logged). */
const LOG_BACKLOG = 20_000;

/** Messages the agent does not handle itself (jobs, developer environments, automations…): another module may. */
export type ExtraHandler = (msg: ServerMessage) => void;

const keyOf = (ref: CapsuleRef) => `${ref.projectId}/${ref.capsuleId}`;

export class Agent implements Reporter {
  private readonly queues = new Map<string, Promise<void>>();
  private readonly execs = new Map<string, ExecSession>();
  private readonly pendingLogs = new Map<string, { ref: CapsuleRef; instanceId: string; lines: LogLine[] }>();
  private pendingCount = 0;
  private flushTimer: NodeJS.Timeout | null = null;
  private readonly unhandled = new Set<string>();
  readonly extra = new Map<ServerMessage["type"], ExtraHandler>();

  constructor(
    private readonly driver: Driver,
    private readonly send: (msg: RunnerMessage) => boolean,
  ) {}

  /** A new socket said hello: report every capsule's instances again and send what waited. */
  onConnected(): void {
    for (const { ref, instances } of this.driver.current()) this.send({ type: "instances", ...ref, instances });
    this.flushLogs();
  }

  onMessage(msg: ServerMessage): void {
    switch (msg.type) {
      case "desired":
        this.serially(msg, async () => {
          let config: RolloutConfig;
          try {
            config = fromJson(RolloutConfigSchema, msg.config, { ignoreUnknownFields: true });
          } catch (e) {
            this.send({ type: "apply-failed", projectId: msg.projectId, capsuleId: msg.capsuleId, rolloutId: msg.rolloutId, message: `unreadable rollout configuration: ${reason(e)}` });
            return;
          }
          try {
            const applied = await this.driver.apply({ ref: msg, rolloutId: msg.rolloutId, config, registries: msg.registries ?? [] });
            this.send({ type: "applied", projectId: msg.projectId, capsuleId: msg.capsuleId, rolloutId: msg.rolloutId, ...applied });
          } catch (e) {
            if (!(e instanceof ApplyFailed)) log("error", `applying rollout ${msg.rolloutId} of ${keyOf(msg)}: ${reason(e)}`);
            this.send({ type: "apply-failed", projectId: msg.projectId, capsuleId: msg.capsuleId, rolloutId: msg.rolloutId, message: reason(e) });
          }
        });
        return;
      case "stop":
        this.serially(msg, () => this.driver.stop(msg, msg.rolloutId));
        return;
      case "synced": {
        // After every capsule's queued desired: the set is complete only once those are applied.
        const all = [...this.queues.values()];
        void Promise.allSettled(all).then(() =>
          this.driver.retain(msg.capsules.map((c) => ({ ref: c, rolloutId: c.rolloutId }))).catch((e) => log("error", `removing undesired capsules: ${reason(e)}`)),
        );
        return;
      }
      case "restart-instance":
        this.serially(msg, () => this.driver.restartInstance(msg, msg.instanceId));
        return;
      case "exec-start":
        void this.execStart(msg);
        return;
      case "exec-input":
        this.execs.get(msg.sessionId)?.input(Buffer.from(msg.data, "base64"), msg.closed ?? false);
        return;
      case "exec-resize":
        this.execs.get(msg.sessionId)?.resize(msg.width, msg.height);
        return;
      case "exec-close":
        this.execs.get(msg.sessionId)?.close();
        return;
      case "welcome":
      case "error":
        return;
      default: {
        const handler = this.extra.get(msg.type);
        if (handler) {
          handler(msg);
          return;
        }
        if (!this.unhandled.has(msg.type)) log("warn", `this runner does not handle ${msg.type} messages; ignoring them`);
        this.unhandled.add(msg.type);
      }
    }
  }

  private serially(ref: CapsuleRef, work: () => Promise<void>): void {
    const key = keyOf(ref);
    const next = (this.queues.get(key) ?? Promise.resolve()).then(work).catch((e) => log("error", `${key}: ${reason(e)}`));
    this.queues.set(key, next);
    void next.then(() => {
      if (this.queues.get(key) === next) this.queues.delete(key);
    });
  }

  private async execStart(msg: Extract<ServerMessage, { type: "exec-start" }>): Promise<void> {
    const { sessionId } = msg;
    try {
      const session = await this.driver.exec(
        { ref: msg, instanceId: msg.instanceId, command: msg.command, arguments: msg.arguments, interactive: msg.interactive, tty: msg.tty },
        {
          output: (stream, data) => this.send({ type: "exec-output", sessionId, stream, data: data.toString("base64") }),
          exit: (exitCode, message) => {
            this.execs.delete(sessionId);
            this.send({ type: "exec-exit", sessionId, exitCode, ...(message ? { message } : {}) });
          },
        },
      );
      this.execs.set(sessionId, session);
    } catch (e) {
      this.send({ type: "exec-output", sessionId, stream: "stderr", data: Buffer.from(`${reason(e)}\n`).toString("base64") });
      this.send({ type: "exec-exit", sessionId, exitCode: 126, message: reason(e) });
    }
  }

  // ---- Reporter ----

  instances(ref: CapsuleRef, instances: ReportedInstance[]): void {
    this.send({ type: "instances", ...ref, instances });
  }

  log(ref: CapsuleRef, instanceId: string, lines: LogLine[]): void {
    const key = `${keyOf(ref)}/${instanceId}`;
    let pending = this.pendingLogs.get(key);
    if (!pending) this.pendingLogs.set(key, (pending = { ref, instanceId, lines: [] }));
    pending.lines.push(...lines);
    this.pendingCount += lines.length;
    if (this.pendingCount > LOG_BACKLOG) this.dropOldest(this.pendingCount - LOG_BACKLOG);
    this.flushTimer ??= setTimeout(() => this.flushLogs(), LOG_FLUSH_MS);
  }

  metrics(ref: CapsuleRef, samples: Parameters<Reporter["metrics"]>[1]): void {
    // Samples are only worth something now: none are kept while disconnected.
    if (samples.length > 0) this.send({ type: "metrics", ...ref, samples });
  }

  private flushLogs(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    for (const [key, p] of this.pendingLogs) {
      while (p.lines.length > 0) {
        const batch = p.lines.slice(0, LOG_BATCH);
        if (!this.send({ type: "log", ...p.ref, instanceId: p.instanceId, lines: batch })) return;
        p.lines.splice(0, batch.length);
        this.pendingCount -= batch.length;
      }
      this.pendingLogs.delete(key);
    }
  }

  private dropOldest(n: number): void {
    log("warn", `disconnected too long: dropping the ${n} oldest log line(s)`);
    for (const p of this.pendingLogs.values()) {
      const k = Math.min(n, p.lines.length);
      p.lines.splice(0, k);
      this.pendingCount -= k;
      n -= k;
      if (n <= 0) return;
    }
  }
}
