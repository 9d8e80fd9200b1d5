/**
 * Single-use tickets for WebSockets. Browsers cannot put an Authorization header on a
 * WebSocket, so a client authorizes over HTTP and gets a ticket, then opens the socket with
 * it. The ticket lives in the object that accepts the socket and is consumed there, so it
 * works exactly once even when two connects race.
 */
import { toHex } from "../../workers/core/encoding";

/** A ticket is good for this long after it is issued. */
export const TICKET_TTL_MS = 60_000;

/** What a ticket is for: a ticket for one kind of socket never opens another. */
export type TicketPurpose = "events" | "runner" | "exec";

export interface Ticket {
  subject: string;
  /** Whatever the issuer attached (an exec session's request, say). */
  payload: unknown;
}

export class Tickets {
  /** `sql` gives the object's storage with its tables (an object may create them lazily). */
  constructor(private readonly sql: () => SqlStorage) {}

  /** A ticket for `subject`, who the Worker has already authorized for `purpose`. */
  issue(purpose: TicketPurpose, subject: string, payload: unknown = null): { ticket: string; expiresAt: number } {
    const ticket = toHex(crypto.getRandomValues(new Uint8Array(24)));
    const expiresAt = Date.now() + TICKET_TTL_MS;
    const sql = this.sql();
    sql.exec("DELETE FROM tickets WHERE expires_at <= ?", Date.now());
    sql.exec("INSERT INTO tickets (ticket, purpose, subject, payload, expires_at) VALUES (?, ?, ?, ?, ?)", ticket, purpose, subject, JSON.stringify(payload), expiresAt);
    return { ticket, expiresAt };
  }

  /** Consumes the ticket of `request` (`?ticket=`); null if it is unknown, used, expired or for another purpose. */
  consume(purpose: TicketPurpose, request: Request): Ticket | null {
    const ticket = new URL(request.url).searchParams.get("ticket") ?? "";
    const row = this.sql()
      .exec<{ purpose: string; subject: string; payload: string; expires_at: number }>(
        "DELETE FROM tickets WHERE ticket = ? RETURNING purpose, subject, payload, expires_at",
        ticket,
      )
      .toArray()[0];
    if (!row || row.purpose !== purpose || row.expires_at <= Date.now()) return null;
    return { subject: row.subject, payload: JSON.parse(row.payload) };
  }
}

/** A JSON error answer to a socket request, in Connect's error shape. */
export const socketError = (status: number, code: string, message: string) => Response.json({ code, message }, { status });

/** The answer to a socket request without a valid ticket. */
export const badTicket = () => socketError(401, "unauthenticated", "the ticket is unknown, used or expired: get a new one");

/** The answer to a plain HTTP request where a WebSocket upgrade was expected. */
export function requireUpgrade(request: Request): Response | null {
  return request.headers.get("upgrade")?.toLowerCase() === "websocket" ? null : socketError(426, "invalid_argument", "expected a WebSocket upgrade");
}
