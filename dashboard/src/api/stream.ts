/**
 * Follows one of the ticketed event streams (docs/event-streams.md): takes a ticket, opens the
 * socket with `after=<last seq seen>`, and on any drop (network, a deploy of the Worker, a
 * hidden tab the browser throttled) takes a new ticket and resumes from the last seq. Events
 * at or below the last seq are dropped, so each reaches `onEvents` exactly once.
 */
import { type Signal, signal } from "@preact/signals";
import { describeError } from "./errors";
import { ticket } from "./clients";
import { parseFrame, type StreamEvent } from "./frames";

export type { StreamEvent };

export type StreamState = "connecting" | "live" | "reconnecting" | "closed";

/** Close codes after which resuming is pointless: the stream itself ended. */
const finalCodes = new Set([1001]);
const pingEveryMs = 25_000;

export interface Subscription {
  state: Signal<StreamState>;
  /** Why the last attempt failed, when it did. */
  problem: Signal<string | null>;
  /** The highest seq delivered. */
  lastSeq(): number;
  close(): void;
}

/**
 * Subscribes to the stream whose ticket is issued at `ticketPath`
 * (`/environments/<id>/events/tickets`, or a rollout's).
 */
export function subscribe(ticketPath: string, onEvents: (events: StreamEvent[]) => void, after = 0): Subscription {
  const state = signal<StreamState>("connecting");
  const problem = signal<string | null>(null);
  let last = after;
  let socket: WebSocket | null = null;
  let closed = false;
  let attempt = 0;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;
  let pingTimer: ReturnType<typeof setInterval> | undefined;

  const retry = () => {
    if (closed) return;
    state.value = "reconnecting";
    // Quick first retry (a deploy drops every socket at once), then back off to 10 s.
    const delay = Math.min(10_000, 250 * 2 ** attempt++);
    retryTimer = setTimeout(connect, delay);
  };

  async function connect() {
    if (closed) return;
    let url: string;
    try {
      url = await ticket(ticketPath);
    } catch (err) {
      const { code, message } = describeError(err);
      problem.value = `${code}: ${message}`;
      // Without permission or without the stream, retrying will not help.
      if (code === "permission_denied" || code === "not_found" || code === "unauthenticated") {
        state.value = "closed";
        return;
      }
      return retry();
    }
    if (closed) return;
    const ws = new WebSocket(`${url}&after=${last}`);
    socket = ws;
    ws.addEventListener("open", () => {
      attempt = 0;
      problem.value = null;
      state.value = "live";
      pingTimer = setInterval(() => ws.readyState === WebSocket.OPEN && ws.send("ping"), pingEveryMs);
    });
    ws.addEventListener("message", (e) => {
      if (typeof e.data !== "string" || e.data === "pong") return;
      const fresh = parseFrame(e.data).filter((ev) => ev.seq > last);
      if (fresh.length === 0) return;
      last = fresh[fresh.length - 1]!.seq;
      onEvents(fresh);
    });
    ws.addEventListener("close", (e) => {
      clearInterval(pingTimer);
      if (socket !== ws) return;
      socket = null;
      if (closed || finalCodes.has(e.code)) {
        state.value = "closed";
        return;
      }
      retry();
    });
  }

  void connect();
  return {
    state,
    problem,
    lastSeq: () => last,
    close() {
      closed = true;
      clearTimeout(retryTimer);
      clearInterval(pingTimer);
      state.value = "closed";
      socket?.close(1000, "dashboard left the page");
      socket = null;
    },
  };
}
