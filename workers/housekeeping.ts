/**
 * Cron housekeeping: rows that only matter for a while. Failed-login counters are written
 * for any identifier anyone tries, so without this the table grows with every guess.
 */
import { defaults } from "./core/config";
import type { Env } from "./env";

export async function sweepExpired(env: Env, now = Date.now()): Promise<void> {
  await env.DB.batch([
    env.DB.prepare("DELETE FROM login_failures WHERE window_started_at + ? <= ?").bind(defaults.loginFailureWindowMs, now),
    env.DB.prepare("DELETE FROM verification_codes WHERE expires_at <= ?").bind(now),
  ]);
}
