/**
 * The one way email leaves edgeplane. A message is first written to D1, then sent after
 * the response; a failed send stays `pending` with its error and is retried by the cron
 * trigger on a backoff, and ends `failed` (logged) after the last try, so nothing is lost
 * silently. With no provider configured the message is printed to the dev log and kept as
 * `logged`, so a newcomer can finish sign-up without a mail server.
 */
import { defaults } from "../core/config";
import type { Env } from "../env";
import { claimEmail, dueEmails, insertEmail, markEmailFailed, markEmailSent, type OutboxRow } from "../d1/outbox";
import { type EmailProviderConfig, loadUserSettings, type UserSettings } from "../d1/settings";
import { sendViaMailjet, sendViaSmtp } from "./providers";

export interface Email {
  to: string;
  subject: string;
  body: string;
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
  await insertEmail(env, {
    id,
    recipient: email.to,
    subject: email.subject,
    body: email.body,
    status: viaProvider ? "pending" : "logged",
    provider: provider?.kind ?? "",
    created_at: now,
    next_attempt_at: viaProvider ? now : null,
  });
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
  const claimed = await claimEmail(env, id, now, now + backoff(1));
  if (!claimed) return;
  const provider = (await loadUserSettings(env)).emailProvider;
  try {
    if (!provider || provider.kind === "default") throw new Error("no email provider is configured any more");
    await send(env, provider, claimed);
    await markEmailSent(env, id, Date.now());
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const giveUp = claimed.attempts > defaults.outboxBackoffMs.length;
    await markEmailFailed(env, id, {
      status: giveUp ? "failed" : "pending",
      last_error: message,
      next_attempt_at: giveUp ? null : now + backoff(claimed.attempts),
    });
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
  await Promise.all((await dueEmails(env, Date.now())).map((id) => deliver(env, id)));
}
