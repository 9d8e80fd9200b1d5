/** Execute sessions: a client's WebSocket relayed to and from a command the runner runs in an instance. */
import { bounded, notFound } from "../../../workers/core/errors";
import { type EnvironmentHost, noRunner } from "../host";
import type { Json } from "../../lib/event-log";
import type { ServerMessage } from "../../../proto/frames/runner";
import type { Watched } from "../../lib/socket-liveness";
import { badTicket, socketError, type Tickets } from "../../lib/tickets";

/** The session an Execute ticket opens, as the Worker authorized it: what `exec-start` tells the runner. */
export type ExecSession = Omit<Extract<ServerMessage, { type: "exec-start" }>, "type" | "sessionId">;

interface ExecAttachment extends Watched {
  sessionId: string;
}

/** Hibernation tags of Execute sockets. */
export const EXEC = "exec";
const execTag = (sessionId: string) => `exec:${sessionId}`;

export class ExecSessions {
  constructor(
    private readonly host: EnvironmentHost,
    private readonly tickets: Tickets,
  ) {}

  /** A ticket for an Execute session; the Worker has checked `capsule:execute`. */
  issueTicket(subject: string, session: ExecSession): { ticket: string; expiresAt: number } {
    const i = this.host.open().reports.instance(session.projectId, session.capsuleId, session.instanceId);
    if (!i || i.deleted_at !== null) throw notFound(`instance ${bounded(session.instanceId)} of capsule ${bounded(session.capsuleId)}`);
    if (!this.host.runner()) throw noRunner(this.host, "execute a command");
    return this.tickets.issue(EXEC, subject, session);
  }

  accept(request: Request): Response {
    const ticket = this.tickets.consume(EXEC, request);
    if (!ticket) return badTicket();
    const session = ticket.payload as ExecSession;
    const sessionId = crypto.randomUUID();
    if (!this.host.toRunner({ type: "exec-start", sessionId, ...session })) {
      // 412, not Connect's 400: the request was fine, the environment's state is what refuses it (docs/execute.md).
      return socketError(412, "failed_precondition", "the runner disconnected: no command can be executed until it reconnects");
    }
    const { 0: client, 1: server } = new WebSocketPair();
    this.host.ctx.acceptWebSocket(server, [EXEC, execTag(sessionId)]);
    server.serializeAttachment({ sessionId, acceptedAt: Date.now() } satisfies ExecAttachment);
    return new Response(null, { status: 101, webSocket: client });
  }

  /** Sends an api.v1.capsule.ExecuteResponse (protobuf JSON) to the session's client. */
  toClient(sessionId: string, response: Json, last = false): void {
    for (const ws of this.host.ctx.getWebSockets(execTag(String(sessionId)))) {
      try {
        ws.send(JSON.stringify(response));
        if (last) ws.close(1000, "command finished");
      } catch {
        // The client left; the runner learns it from exec-close.
      }
    }
  }

  /** A client frame: an api.v1.capsule.ExecuteRequest in protobuf JSON (stdin or resize). */
  onMessage(ws: WebSocket, text: string): void {
    const { sessionId } = ws.deserializeAttachment() as ExecAttachment;
    let req: { stdin?: { data?: string; closed?: boolean }; resize?: { height?: number; width?: number } };
    try {
      req = JSON.parse(text);
    } catch {
      ws.send(JSON.stringify({ error: { code: "invalid_argument", message: "frames are api.v1.capsule.ExecuteRequest in protobuf JSON" } }));
      return;
    }
    if (req.stdin) this.host.toRunner({ type: "exec-input", sessionId, data: req.stdin.data ?? "", closed: req.stdin.closed === true });
    else if (req.resize) this.host.toRunner({ type: "exec-resize", sessionId, width: req.resize.width ?? 0, height: req.resize.height ?? 0 });
  }

  /** The client left: the runner stops the command. */
  onGone(ws: WebSocket): void {
    this.host.toRunner({ type: "exec-close", sessionId: (ws.deserializeAttachment() as ExecAttachment).sessionId });
  }

  /** Closes every session: they were relayed through a runner that is gone. */
  closeAll(reason: string): void {
    for (const exec of this.host.ctx.getWebSockets(EXEC)) exec.close(1011, reason);
  }
}
