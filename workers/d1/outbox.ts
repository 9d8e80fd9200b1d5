/** `outbox`: every email, from its insert to its last delivery attempt. */
import type { Env } from "../env";
import type { Columns, Row } from "./row";
import type { outbox } from "./schema";

export type OutboxRow = Row<typeof outbox>;

/** Stores an email; `next_attempt_at` null means no provider will send it. */
export async function insertEmail(
  env: Env,
  e: Columns<typeof outbox, "id" | "recipient" | "subject" | "body" | "status" | "provider" | "created_at" | "next_attempt_at">,
): Promise<void> {
  await env.DB.prepare(
    `INSERT INTO outbox (id, channel, recipient, subject, body, status, provider, attempts, created_at, next_attempt_at)
     VALUES (?, 'email', ?, ?, ?, ?, ?, 0, ?, ?)`,
  )
    .bind(e.id, e.recipient, e.subject, e.body, e.status, e.provider, e.created_at, e.next_attempt_at)
    .run();
}

/**
 * Claims pending email `id` for one attempt if it is due by `now`, by counting the attempt and
 * pushing its next one to `retryAt` in the statement that reads it; null when not claimed.
 */
export const claimEmail = (env: Env, id: string, now: number, retryAt: number) =>
  env.DB.prepare(
    `UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?3
     WHERE id = ?1 AND status = 'pending' AND next_attempt_at <= ?2 RETURNING *`,
  )
    .bind(id, now, retryAt)
    .first<OutboxRow>();

export async function markEmailSent(env: Env, id: string, at: number): Promise<void> {
  await env.DB.prepare("UPDATE outbox SET status = 'sent', sent_at = ?, last_error = NULL WHERE id = ?").bind(at, id).run();
}

/** Records a failed attempt: `pending` again with its next attempt, or `failed` (next attempt null) for good. */
export async function markEmailFailed(
  env: Env,
  id: string,
  failure: Columns<typeof outbox, "status" | "last_error" | "next_attempt_at">,
): Promise<void> {
  await env.DB.prepare("UPDATE outbox SET status = ?, last_error = ?, next_attempt_at = ? WHERE id = ?")
    .bind(failure.status, failure.last_error, failure.next_attempt_at, id)
    .run();
}

/** The ids of the pending emails due by `now`, most overdue first (at most 50 a run). */
export async function dueEmails(env: Env, now: number): Promise<string[]> {
  const { results } = await env.DB.prepare("SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT 50")
    .bind(now)
    .all<Columns<typeof outbox, "id">>();
  return results.map((r) => r.id);
}
