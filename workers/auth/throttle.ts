/**
 * Throttles password guessing per identifier. Each attempt is counted before the password
 * is checked, in one atomic upsert, so a burst of parallel guesses cannot slip past the
 * limit; a successful login clears the count.
 */
import { defaults } from "../core/config";
import type { Env } from "../env";
import { resourceExhausted } from "../core/errors";

export async function countLoginAttempt(env: Env, identifier: string): Promise<void> {
  const now = Date.now();
  const windowMs = defaults.loginFailureWindowMs;
  const row = await env.DB.prepare(
    `INSERT INTO login_failures (identifier, failures, window_started_at) VALUES (?1, 1, ?2)
     ON CONFLICT (identifier) DO UPDATE SET
       failures = CASE WHEN window_started_at + ?3 <= ?2 THEN 1 ELSE failures + 1 END,
       window_started_at = CASE WHEN window_started_at + ?3 <= ?2 THEN ?2 ELSE window_started_at END
     RETURNING failures, window_started_at`,
  )
    .bind(identifier, now, windowMs)
    .first<{ failures: number; window_started_at: number }>();
  if (row && row.failures > defaults.loginFailureLimit) {
    const retryAfter = Math.ceil((row.window_started_at + windowMs - now) / 1000);
    throw resourceExhausted(`too many failed logins for this account: try again in ${retryAfter} seconds`, retryAfter);
  }
}

/** Forgets the failures of `identifier`: run it in the batch of a successful login. */
export function clearLoginAttempts(env: Env, identifier: string): D1PreparedStatement {
  return env.DB.prepare("DELETE FROM login_failures WHERE identifier = ?").bind(identifier);
}
