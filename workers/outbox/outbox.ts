/**
 * The one way email leaves edgeplane. A message is first written to D1, then sent after
 * the response; a failed send stays `pending` with its error and is retried by the cron
 * trigger on a backoff, and ends `failed` (logged) after the last try, so nothing is lost
 * silently. With no provider configured the message is printed to the dev log and kept as
 * `logged`, so a newcomer can finish sign-up without a mail server.
 */
import { defaults } from "../core/config";
import type { Env } from "../env";
import { type EmailProviderConfig, loadUserSettings, type UserSettings } from "../d1/user-settings";
import { sendViaMailjet, sendViaSmtp } from "./providers";

export interface Email {
  to: string;
  subject: string;
  body: string;
}

export interface OutboxRow {
  id: string;
  recipient: string;
  subject: string;
  body: string;
  status: "pending" | "sent" | "failed" | "logged";
  attempts: number;
  last_error: string | null;
}

/**
 * Stores the email; returns the row id and, when a provider must send it, the send to run.
 * `settings` are the caller's, read once for the request.
 */
export async function enqueueEmail(env: Env, email: Email, settings: UserSettings): Promise<{ id: string; delivery?: Promise<void> }> {
  const id = crypto.randomUUID();
  const provider = settings.emailProvider;
  const now = Date.now();
  const viaProvider = provider && provider.kind !== "default";
  await env.DB.prepare(
    `INSERT INTO outbox (id, channel, recipient, subject, body, status, provider, attempts, created_at, next_attempt_at)
     VALUES (?, 'email', ?, ?, ?, ?, ?, 0, ?, ?)`,
  )
    .bind(id, email.to, email.subject, email.body, viaProvider ? "pending" : "logged", provider?.kind ?? "", now, viaProvider ? now : null)
    .run();
  if (!viaProvider) {
    console.log(`[outbox] email to ${email.to}\nSubject: ${email.subject}\n\n${email.body}`);
    return { id };
  }
  return { id, delivery: deliver(env, id) };
}

/**
 * One delivery attempt. The row is claimed by pushing its next attempt time forward in the
 * same statement that reads it, so two cron runs never send the same message twice at once.
 */
export async function deliver(env: Env, id: string): Promise<void> {
  const now = Date.now();
  const claimed = await env.DB.prepare(
    `UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?3
     WHERE id = ?1 AND status = 'pending' AND next_attempt_at <= ?2 RETURNING *`,
  )
    .bind(id, now, now + backoff(1))
    .first<OutboxRow>();
  if (!claimed) return;
  const provider = (await loadUserSettings(env)).emailProvider;
  try {
    if (!provider || provider.kind === "default") throw new Error("no email provider is configured any more");
    await send(env, provider, claimed);
    await env.DB.prepare("UPDATE outbox SET status = 'sent', sent_at = ?, last_error = NULL WHERE id = ?").bind(Date.now(), id).run();
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const giveUp = claimed.attempts > defaults.outboxBackoffMs.length;
    await env.DB.prepare("UPDATE outbox SET status = ?, last_error = ?, next_attempt_at = ? WHERE id = ?")
      .bind(giveUp ? "failed" : "pending", message, giveUp ? null : now + backoff(claimed.attempts), id)
      .run();
    console.error(`[outbox] sending ${id} to ${claimed.recipient} failed (attempt ${claimed.attempts}${giveUp ? ", giving up" : ""}): ${message}`);
  }
}

const backoff = (attempt: number) =>
  defaults.outboxBackoffMs[Math.min(attempt, defaults.outboxBackoffMs.length) - 1]!;

function send(env: Env, provider: EmailProviderConfig, row: OutboxRow): Promise<void> {
  const email = { to: row.recipient, subject: row.subject, body: row.body };
  return provider.kind === "mailjet" ? sendViaMailjet(env, provider, email) : sendViaSmtp(provider, email);
}

/** Cron: retries every pending email whose next attempt is due. */
export async function retryDueEmails(env: Env): Promise<void> {
  const due = await env.DB.prepare("SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT 50")
    .bind(Date.now())
    .all<{ id: string }>();
  await Promise.all(due.results.map((r) => deliver(env, r.id)));
}
