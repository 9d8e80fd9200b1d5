/**
 * Fans an object's event log out to WebSocket subscribers. Subscribers connect with a
 * single-use ticket (see tickets.ts) and
 * `?after=<seq>`; they first get every logged event after that number, then live ones.
 *
 * Sockets use the Hibernation API, so an idle object with thousands of subscribers is
 * evicted from memory without closing them. Nothing a subscriber needs lives only in memory:
 * what it has been sent is its attachment, and the events are in SQLite, so after a
 * disconnect, hibernation or eviction a reconnect with the last seq it saw misses nothing
 * and repeats nothing.
 */
import type { EventLog, LoggedEvent } from "./event-log";
import type { Watched } from "./socket-liveness";
import { badTicket, requireUpgrade, socketError, type Tickets } from "./tickets";

/** The wire form of an event: `{ seq, type, time, data }` with an RFC 3339 time. */
const wire = (e: LoggedEvent) => ({ seq: e.seq, type: e.type, time: new Date(e.time).toISOString(), data: e.data });

/** A frame holds one event as an object, or several as an array (bursts and replays). */
const frame = (events: LoggedEvent[]) => JSON.stringify(events.length === 1 ? wire(events[0]!) : events.map(wire));

/** Replays are sent in frames of at most this many events, to stay well under message limits. */
const REPLAY_FRAME = 500;
/** The hibernation tag of subscriber sockets: an object may hold other sockets (a runner's, say). */
const TAG = "events";

interface Attachment extends Watched {
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
    private readonly tickets: Tickets,
  ) {
    // Keep-alive pings are answered by the runtime without waking the object.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
  }

  /** A single-use ticket for `subject` (a caller already authorized by the Worker). */
  issueTicket(subject: string): { ticket: string; expiresAt: number } {
    return this.tickets.issue("events", subject);
  }

  /**
   * Accepts a WebSocket upgrade carrying `?ticket=` and `?after=`. The ticket is consumed
   * here, inside the object, so it works exactly once even when two connects race.
   */
  subscribe(request: Request): Response {
    const notUpgrade = requireUpgrade(request);
    if (notUpgrade) return notUpgrade;
    const url = new URL(request.url);
    const after = Number(url.searchParams.get("after") ?? "0");
    if (!Number.isSafeInteger(after) || after < 0) {
      return socketError(400, "invalid_argument", "after: must be a non-negative integer");
    }
    const last = this.log().lastSeq();
    if (after > last) {
      // A cursor from the future: most likely kept from an environment of the same name that was
      // deleted and created again. Resuming from it would silently skip events, so say so.
      return socketError(400, "out_of_range", `after: ${after} is beyond the last event (${last}); resubscribe with after=0`);
    }
    const ticket = this.tickets.consume("events", request);
    if (!ticket) return badTicket();
    const { 0: client, 1: server } = new WebSocketPair();
    this.ctx.acceptWebSocket(server, [TAG]);
    const acceptedAt = Date.now();
    // Replay synchronously: no other event can be appended before the socket is caught up.
    let sent = after;
    for (let batch = this.log().after(sent, REPLAY_FRAME); batch.length > 0; batch = this.log().after(sent, REPLAY_FRAME)) {
      server.send(frame(batch));
      sent = batch[batch.length - 1]!.seq;
    }
    // Events appended earlier in this turn but not flushed yet were part of the replay.
    server.serializeAttachment({ sent, subject: ticket.subject, acceptedAt } satisfies Attachment);
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

  /** Sends the pending events now; called before subscribers are closed, so the last events reach them. */
  flush(): void {
    this.flushScheduled = false;
    const events = this.pending;
    this.pending = [];
    if (events.length === 0) return;
    for (const ws of this.ctx.getWebSockets(TAG)) {
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
