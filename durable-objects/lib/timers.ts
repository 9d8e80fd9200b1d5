/**
 * Several timers on one alarm. A Durable Object has a single alarm, but an environment waits
 * on many things at once (job retries and deadlines, a rollout to hand over again); each is a
 * row here and the alarm is always set to the earliest.
 */
export interface Timer {
  kind: string;
  key: string;
  dueAt: number;
}

export class Timers {
  constructor(private readonly storage: DurableObjectStorage) {}

  /** Sets (or moves) the timer `kind`/`key`. */
  async set(kind: string, key: string, dueAt: number): Promise<void> {
    this.storage.sql.exec("INSERT INTO timers (kind, key, due_at) VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET due_at = excluded.due_at", kind, key, dueAt);
    await this.rearm();
  }

  /** Sets the timer `kind`/`key`, or moves it earlier; a timer already due sooner stays. */
  async setEarliest(kind: string, key: string, dueAt: number): Promise<void> {
    this.storage.sql.exec("INSERT INTO timers (kind, key, due_at) VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET due_at = MIN(due_at, excluded.due_at)", kind, key, dueAt);
    await this.rearm();
  }

  async cancel(kind: string, key: string): Promise<void> {
    this.storage.sql.exec("DELETE FROM timers WHERE kind = ? AND key = ?", kind, key);
    await this.rearm();
  }

  /** Removes and returns the timers that are due. */
  takeDue(now = Date.now()): Timer[] {
    return this.storage.sql
      .exec<{ kind: string; key: string; due_at: number }>("DELETE FROM timers WHERE due_at <= ? RETURNING kind, key, due_at", now)
      .toArray()
      .map((r) => ({ kind: r.kind, key: r.key, dueAt: r.due_at }))
      .sort((a, b) => a.dueAt - b.dueAt);
  }

  /** Points the alarm at the earliest timer, or clears it. */
  async rearm(): Promise<void> {
    const earliest = this.storage.sql.exec<{ t: number | null }>("SELECT MIN(due_at) AS t FROM timers").one().t;
    if (earliest === null) await this.storage.deleteAlarm();
    else if ((await this.storage.getAlarm()) !== earliest) await this.storage.setAlarm(earliest);
  }
}
