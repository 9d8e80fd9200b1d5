/**
 * Fans an object's event log out to WebSocket subscribers. Subscribers connect with a
 * single-use ticket (browsers cannot put an Authorization header on a WebSocket) and
 * `?after=<seq>`; they first get every logged event after that number, then live ones.
 *
 * Sockets use the Hibernation API, so an idle object with thousands of subscribers is
 * evicted from memory without closing them. Nothing a subscriber needs lives only in memory:
 * what it has been sent is its attachment, and the events are in SQLite, so after a
 * disconnect, hibernation or eviction a reconnect with the last seq it saw misses nothing
 * and repeats nothing.
 */
import { toHex } from "../workers/auth/keys";
import type { EventLog, LoggedEvent } from "./event-log";

/** The wire form of an event: `{ seq, type, time, data }` with an RFC 3339 time. */
const wire = (e: LoggedEvent) => ({ seq: e.seq, type: e.type, time: new Date(e.time).toISOString(), data: e.data });

/** A frame holds one event as an object, or several as an array (bursts and replays). */
const frame = (events: LoggedEvent[]) => JSON.stringify(events.length === 1 ? wire(events[0]!) : events.map(wire));

/** Replays are sent in frames of at most this many events, to stay well under message limits. */
const REPLAY_FRAME = 500;
/** A ticket is good for this long after it is issued. */
export const TICKET_TTL_MS = 60_000;

interface Attachment {
  /** The highest seq this socket has been sent. */
  sent: number;
  subject: string;
}

export class EventStream {
  /** Events appended since the last flush, sent together once the current burst is over. */
  private pending: LoggedEvent[] = [];
  private flushScheduled = false;

  /**
   * `log` gives the object's event log, whose storage the object may create lazily (an
   * object whose storage was deleted starts again from empty tables).
   */
  constructor(
    private readonly ctx: DurableObjectState,
    private readonly log: () => EventLog,
  ) {
    // Keep-alive pings are answered by the runtime without waking the object.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
  }

  private tickets(): SqlStorage {
    const sql = this.ctx.storage.sql;
    sql.exec("CREATE TABLE IF NOT EXISTS stream_tickets (ticket TEXT PRIMARY KEY, subject TEXT NOT NULL, expires_at INTEGER NOT NULL)");
    return sql;
  }

  /** A single-use ticket for `subject` (a caller already authorized by the Worker). */
  issueTicket(subject: string): { ticket: string; expiresAt: number } {
    const ticket = toHex(crypto.getRandomValues(new Uint8Array(24)));
    const expiresAt = Date.now() + TICKET_TTL_MS;
    const sql = this.tickets();
    sql.exec("DELETE FROM stream_tickets WHERE expires_at <= ?", Date.now());
    sql.exec("INSERT INTO stream_tickets (ticket, subject, expires_at) VALUES (?, ?, ?)", ticket, subject, expiresAt);
    return { ticket, expiresAt };
  }

  /**
   * Accepts a WebSocket upgrade carrying `?ticket=` and `?after=`. The ticket is consumed
   * here, inside the object, so it works exactly once even when two connects race.
   */
  subscribe(request: Request): Response {
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return Response.json({ code: "invalid_argument", message: "expected a WebSocket upgrade" }, { status: 426 });
    }
    const url = new URL(request.url);
    const after = Number(url.searchParams.get("after") ?? "0");
    if (!Number.isSafeInteger(after) || after < 0) {
      return Response.json({ code: "invalid_argument", message: "after: must be a non-negative integer" }, { status: 400 });
    }
    const last = this.log().lastSeq();
    if (after > last) {
      // A cursor from the future: most likely kept from an environment of the same name that was
      // deleted and created again. Resuming from it would silently skip events, so say so.
      return Response.json(
        { code: "out_of_range", message: `after: ${after} is beyond the last event (${last}); resubscribe with after=0` },
        { status: 400 },
      );
    }
    const row = this.tickets()
      .exec<{ subject: string; expires_at: number }>(
        "DELETE FROM stream_tickets WHERE ticket = ? RETURNING subject, expires_at",
        url.searchParams.get("ticket") ?? "",
      )
      .toArray()[0];
    if (!row || row.expires_at <= Date.now()) {
      return Response.json({ code: "unauthenticated", message: "the ticket is unknown, used or expired: get a new one" }, { status: 401 });
    }
    const { 0: client, 1: server } = new WebSocketPair();
    this.ctx.acceptWebSocket(server);
    // Replay synchronously: no other event can be appended before the socket is caught up.
    let sent = after;
    for (let batch = this.log().after(sent, REPLAY_FRAME); batch.length > 0; batch = this.log().after(sent, REPLAY_FRAME)) {
      server.send(frame(batch));
      sent = batch[batch.length - 1]!.seq;
    }
    // Events appended earlier in this turn but not flushed yet were part of the replay.
    server.serializeAttachment({ sent, subject: row.subject } satisfies Attachment);
    return new Response(null, { status: 101, webSocket: client });
  }

  /** Appends an event and sends it to every subscriber (batched with the rest of its burst). */
  publish(type: string, data: LoggedEvent["data"]): LoggedEvent {
    const event = this.log().append(type, data);
    this.pending.push(event);
    if (!this.flushScheduled) {
      // A macrotask, not a microtask: events appended across awaits of one burst (a chain of
      // steps, several RPCs handled back to back) still leave in one frame.
      this.flushScheduled = true;
      setTimeout(() => this.flush(), 0);
    }
    return event;
  }

  private flush(): void {
    this.flushScheduled = false;
    const events = this.pending;
    this.pending = [];
    if (events.length === 0) return;
    for (const ws of this.ctx.getWebSockets()) {
      const a = ws.deserializeAttachment() as Attachment | null;
      const unsent = a ? events.filter((e) => e.seq > a.sent) : events;
      if (unsent.length === 0) continue;
      try {
        ws.send(frame(unsent));
        ws.serializeAttachment({ ...a, sent: unsent[unsent.length - 1]!.seq });
      } catch {
        // A socket closing under us; its client resumes with ?after= and misses nothing.
      }
    }
  }
}
