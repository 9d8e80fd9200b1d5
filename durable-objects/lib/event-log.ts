/**
 * The append-only event log every Durable Object keeps in its SQLite storage. Sequence
 * numbers only grow (AUTOINCREMENT never reuses a number, even after deletes), so a
 * subscriber that remembers the last one it saw can resume after any disconnect or eviction.
 */
export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

export interface LoggedEvent {
  seq: number;
  type: string;
  /** Milliseconds since the epoch. */
  time: number;
  data: Json;
}

export class EventLog {
  constructor(private readonly sql: SqlStorage) {}

  append(type: string, data: Json, time = Date.now()): LoggedEvent {
    const row = this.sql
      .exec<{ seq: number }>("INSERT INTO events (type, time, data) VALUES (?, ?, ?) RETURNING seq", type, time, JSON.stringify(data))
      .one();
    return { seq: row.seq, type, time, data };
  }

  /** Events with a sequence number above `after`, oldest first. */
  after(after: number, limit = 1000): LoggedEvent[] {
    return this.sql
      .exec<{ seq: number; type: string; time: number; data: string }>(
        "SELECT seq, type, time, data FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
        after,
        limit,
      )
      .toArray()
      .map((r) => ({ seq: r.seq, type: r.type, time: r.time, data: JSON.parse(r.data) }));
  }

  /** A page of the log for list RPCs: `limit` events from `offset`, oldest first unless `descending`, and the total. */
  page(offset: number, limit: number, descending = false): { events: LoggedEvent[]; total: number } {
    const total = this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM events").one().n;
    const events = this.sql
      .exec<{ seq: number; type: string; time: number; data: string }>(
        `SELECT seq, type, time, data FROM events ORDER BY seq ${descending ? "DESC" : "ASC"} LIMIT ? OFFSET ?`,
        limit,
        offset,
      )
      .toArray()
      .map((r) => ({ seq: r.seq, type: r.type, time: r.time, data: JSON.parse(r.data) }));
    return { events, total };
  }

  lastSeq(): number {
    return this.sql.exec<{ seq: number | null }>("SELECT MAX(seq) AS seq FROM events").one().seq ?? 0;
  }
}
