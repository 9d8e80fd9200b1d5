/**
 * Throttles password guessing per identifier. Each attempt is counted before the password
 * is checked, in one atomic upsert, so a burst of parallel guesses cannot slip past the
 * limit; a successful login clears the count in the batch that opens its session.
 */
import { defaults } from "../core/config";
import type { Env } from "../env";
import { resourceExhausted } from "../core/errors";
import { countLoginFailure } from "../d1/login-failures";

export async function countLoginAttempt(env: Env, identifier: string): Promise<void> {
  const now = Date.now();
  const windowMs = defaults.loginFailureWindowMs;
  const row = await countLoginFailure(env, identifier, now, windowMs);
  if (row && row.failures > defaults.loginFailureLimit) {
    const retryAfter = Math.ceil((row.window_started_at + windowMs - now) / 1000);
    throw resourceExhausted(`too many failed logins for this account: try again in ${retryAfter} seconds`, retryAfter);
  }
}
