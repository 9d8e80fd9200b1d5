/**
 * Hibernated sockets whose peer vanished. When a client's connection dies without a close frame
 * (a crash, kill -9, a network cut), the runtime may never deliver a close event and
 * `getWebSockets()` keeps listing the socket as open (workerd #1187). So every client pings
 * (the `ping`/`pong` auto-response answers without waking the object), and a sweep on the
 * object's alarm closes each socket that has not pinged within the deadline, then handles it
 * as gone, exactly as if its peer had closed it.
 */
import { defaults } from "../../workers/core/config";
import type { Env } from "../../workers/env";
import type { Timers } from "./timers";

/** The timer kind of the sweep (one per object, key ""). */
export const SOCKET_SWEEP = "socket-sweep";
/** Close code of a socket that stayed silent past the deadline (4xxx: 1006 can never be sent). */
export const SILENT = 4008;

/** What every socket's attachment carries, so that a socket that never pinged is timed from its start. */
export interface Watched {
  /** When the object accepted the socket, ms since the epoch. */
  acceptedAt: number;
}

/** The close code to answer a peer's close with: the ones RFC 6455 §7.4.1 forbids on the wire become 1000. */
export const replyCode = (code: number) => (code === 1000 || (code >= 1001 && code <= 1014 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999) ? code : 1000);

/** Completes the closing handshake of a socket whose peer closed it (the runtime leaves the reply to the object). */
export function answerClose(ws: WebSocket, code: number): void {
  try {
    ws.close(replyCode(code), "closing");
  } catch {
    // Closed by the runtime meanwhile: the handshake is over either way.
  }
}

export class SocketLiveness {
  /** A socket silent this long (ms) is taken as gone. */
  readonly deadlineMs: number;

  constructor(
    private readonly ctx: DurableObjectState,
    env: Pick<Env, "SOCKET_SILENCE_MS">,
  ) {
    this.deadlineMs = Number(env.SOCKET_SILENCE_MS) || defaults.sockets.silenceDeadlineMs;
  }

  /** Makes sure a sweep is due while the object holds sockets; call after accepting one. */
  async watch(timers: Timers): Promise<void> {
    await timers.setEarliest(SOCKET_SWEEP, "", Date.now() + this.deadlineMs);
  }

  /**
   * Closes every open socket silent past the deadline with `SILENT` and hands it to `gone`,
   * then schedules the next sweep if sockets remain (an alarm keeps the object awake, so none
   * is set for an object without sockets).
   */
  async sweep(timers: Timers, gone: (ws: WebSocket) => Promise<void>): Promise<void> {
    const now = Date.now();
    let next = Number.POSITIVE_INFINITY;
    for (const ws of this.ctx.getWebSockets()) {
      if (ws.readyState !== WebSocket.OPEN) continue;
      const heard = Math.max((ws.deserializeAttachment() as Partial<Watched> | null)?.acceptedAt ?? 0, this.ctx.getWebSocketAutoResponseTimestamp(ws)?.getTime() ?? 0);
      if (now - heard < this.deadlineMs) {
        next = Math.min(next, heard + this.deadlineMs);
        continue;
      }
      try {
        ws.close(SILENT, `no ping for ${Math.round(this.deadlineMs / 1000)}s: the connection is taken as lost`);
      } catch {
        // Already closing: it is gone all the same.
      }
      await gone(ws);
    }
    if (Number.isFinite(next)) await timers.setEarliest(SOCKET_SWEEP, "", next);
  }
}
