/**
 * The environment's runner connection: one WebSocket (a newer one takes over), its hello, and
 * its reports, each handed to the concern it is about.
 */
import type { EnvironmentAutomations } from "../automations/automations";
import type { DevEnvironment } from "../dev/dev";
import type { ExecSessions } from "./exec";
import type { EnvironmentHost } from "../host";
import type { CapsuleInstances } from "../instances/instances";
import type { JobExecutions } from "../jobs/jobs";
import type { CapsuleRollouts } from "../rollouts/rollouts";
import type { EnvironmentSkaffold } from "../skaffold/skaffold";
import { applyingBy } from "../../rollout/rollout";
import { parseRunnerFrame, RUNNER_PROTOCOL_VERSION, type ServerMessage } from "../../../proto/frames/runner";
import type { Watched } from "../../lib/socket-liveness";
import { badTicket, type Tickets } from "../../lib/tickets";

/** The runner of the environment, as last seen. Times are ms since the epoch. */
export interface RunnerInfo {
  connected: boolean;
  name: string;
  version: string;
  connectedAt: number | null;
  disconnectedAt: number | null;
}

interface RunnerAttachment extends Watched {
  subject: string;
  /** Set by the runner's `hello`. */
  name?: string;
  version?: string;
}

/** Hibernation tag of the runner's socket. */
export const RUNNER = "runner";
/** Close code for a runner replaced by a newer connection of the environment's runner. */
export const SUPERSEDED = 4001;

/** The concerns the runner's messages are about. */
export interface RunnerListeners {
  rollouts: CapsuleRollouts;
  jobs: JobExecutions;
  instances: CapsuleInstances;
  exec: ExecSessions;
  automations: EnvironmentAutomations;
  skaffold: EnvironmentSkaffold;
  dev: DevEnvironment;
}

export class RunnerConnection {
  constructor(
    private readonly host: EnvironmentHost,
    private readonly tickets: Tickets,
    private readonly to: RunnerListeners,
  ) {}

  /** The runner that said hello on an open socket, if any. */
  private active(): { ws: WebSocket; name: string; version: string } | null {
    for (const ws of this.host.ctx.getWebSockets(RUNNER)) {
      const a = ws.deserializeAttachment() as RunnerAttachment | null;
      if (a?.name && ws.readyState === WebSocket.OPEN) return { ws, name: a.name, version: a.version ?? "" };
    }
    return null;
  }

  runner(): { name: string; version: string } | null {
    const r = this.active();
    return r ? { name: r.name, version: r.version } : null;
  }

  /** The environment's runner as last seen. */
  info(): RunnerInfo {
    const row = this.host
      .open()
      .sql.exec<{ name: string; version: string; connected_at: number | null; disconnected_at: number | null }>("SELECT * FROM runner")
      .toArray()[0];
    return {
      connected: this.active() !== null,
      name: row?.name ?? "",
      version: row?.version ?? "",
      connectedAt: row?.connected_at ?? null,
      disconnectedAt: row?.disconnected_at ?? null,
    };
  }

  send(msg: ServerMessage): boolean {
    const r = this.active();
    if (!r) return false;
    try {
      r.ws.send(JSON.stringify(msg));
      return true;
    } catch {
      return false;
    }
  }

  /** Sends every runner socket, said hello or not, a message. */
  sendAll(msg: ServerMessage): void {
    for (const ws of this.host.ctx.getWebSockets(RUNNER)) {
      try {
        ws.send(JSON.stringify(msg));
      } catch {
        // Closing anyway.
      }
    }
  }

  /** A ticket for the runner's WebSocket; the Worker has checked `runner:connect`. */
  issueTicket(subject: string): { ticket: string; expiresAt: number } {
    this.host.requireIdentity();
    return this.tickets.issue(RUNNER, subject);
  }

  accept(request: Request): Response {
    const ticket = this.tickets.consume(RUNNER, request);
    if (!ticket) return badTicket();
    const { ctx } = this.host;
    // One runner per environment: a new connection (a restarted runner) takes over.
    const old = ctx.getWebSockets(RUNNER);
    for (const ws of old) ws.close(SUPERSEDED, "superseded by a newer runner connection");
    // Sessions relayed through the old runner cannot continue on the new one.
    if (old.length > 0) this.to.exec.closeAll("the runner was replaced");
    const { 0: client, 1: server } = new WebSocketPair();
    ctx.acceptWebSocket(server, [RUNNER]);
    server.serializeAttachment({ subject: ticket.subject, acceptedAt: Date.now() } satisfies RunnerAttachment);
    return new Response(null, { status: 101, webSocket: client });
  }

  async onMessage(ws: WebSocket, text: string): Promise<void> {
    // Every frame is checked against the protocol's schema: a frame that fails it is refused whole, nothing of it is stored.
    const frame = parseRunnerFrame(text);
    if (!frame.ok) {
      ws.send(JSON.stringify({ type: "error", code: "invalid_argument", message: frame.reason } satisfies ServerMessage));
      return;
    }
    const msg = frame.message;
    const attachment = ws.deserializeAttachment() as RunnerAttachment;
    if (msg.type !== "hello" && !attachment.name) {
      ws.send(JSON.stringify({ type: "error", code: "failed_precondition", message: "send hello first" } satisfies ServerMessage));
      return;
    }
    const { sql } = this.host.open();
    const { rollouts, jobs, instances, exec, automations, skaffold, dev } = this.to;
    const now = Date.now();
    switch (msg.type) {
      case "hello": {
        if (msg.version !== RUNNER_PROTOCOL_VERSION) {
          ws.close(4002, `protocol version ${msg.version} is not supported; this server speaks ${RUNNER_PROTOCOL_VERSION}`);
          return;
        }
        const name = msg.runner.name || attachment.subject;
        ws.serializeAttachment({ ...attachment, name, version: msg.runner.version } satisfies RunnerAttachment);
        sql.exec(
          "INSERT INTO runner (singleton, name, version, connected_at, disconnected_at) VALUES (1, ?1, ?2, ?3, NULL) ON CONFLICT DO UPDATE SET name = ?1, version = ?2, connected_at = ?3, disconnected_at = NULL",
          name,
          msg.runner.version,
          now,
        );
        ws.send(JSON.stringify({ type: "welcome", environmentId: this.host.requireIdentity().environmentId, version: RUNNER_PROTOCOL_VERSION } satisfies ServerMessage));
        this.host.stream.publish("runner.connected", { name, version: msg.runner.version });
        for (const c of rollouts.deployed()) await rollouts.sendDesired(c.projectId, c.capsuleId);
        automations.resend();
        skaffold.onRunnerHello();
        await dev.onRunnerHello();
        // The complete desired set: the runner removes whatever it runs that is not in it.
        ws.send(JSON.stringify({ type: "synced", capsules: rollouts.deployed().map((c) => ({ ...c, rolloutId: rollouts.capsuleState(c.projectId, c.capsuleId).desired_rollout_id! })) } satisfies ServerMessage));
        await rollouts.runnerNews(applyingBy(name), true);
        return;
      }
      case "applied":
      case "apply-failed":
        await rollouts.onApplyReport(msg);
        return;
      case "job-result":
        await jobs.onResult(msg);
        return;
      case "instances":
        await instances.onInstances(msg, now);
        return;
      case "log":
        instances.onLog(msg, now);
        return;
      case "metrics":
        instances.onMetrics(msg, now);
        return;
      case "exec-output":
        exec.toClient(msg.sessionId, { [msg.stream === "stderr" ? "stderr" : "stdout"]: { data: msg.data } });
        return;
      case "exec-exit":
        exec.toClient(msg.sessionId, { exitCode: msg.exitCode }, true);
        return;
      case "service-status":
      case "task-step-status":
        await automations.onReport(msg);
        return;
      case "environment-status":
        await dev.onStatus(ws, msg, attachment.subject);
        return;
      case "verify-token":
        await dev.onVerifyToken(ws, msg);
        return;
    }
  }

  async onGone(ws: WebSocket): Promise<void> {
    const a = ws.deserializeAttachment() as RunnerAttachment | null;
    // A superseded connection's successor is in charge (or about to say hello); only the last one leaving matters.
    if (!a?.name || this.host.ctx.getWebSockets(RUNNER).some((other) => other !== ws && other.readyState === WebSocket.OPEN)) return;
    await this.lost();
  }

  /**
   * Records that the runner left when the record still says it is connected but no runner
   * socket is open: sockets the runtime dropped without any close event (an eviction that
   * closed them) leave nothing else behind.
   */
  async reconcile(): Promise<void> {
    if (!this.active()) await this.lost();
  }

  /** The runner is gone: recorded once, however many ways it was noticed (a close, the sweep, both). */
  private async lost(): Promise<void> {
    const at = Date.now();
    const row = this.host
      .open()
      .sql.exec<{ name: string }>("UPDATE runner SET disconnected_at = ? WHERE disconnected_at IS NULL AND connected_at IS NOT NULL RETURNING name", at)
      .toArray()[0];
    if (!row) return;
    this.host.stream.publish("runner.disconnected", { name: row.name });
    this.to.exec.closeAll("the runner disconnected");
    await this.to.rollouts.runnerNews(`runner ${row.name} disconnected at ${new Date(at).toISOString()}; waiting for it to reconnect`);
  }
}
