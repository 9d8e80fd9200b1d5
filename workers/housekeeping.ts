/**
 * Cron housekeeping: rows that only matter for a while. Failed-login counters are written
 * for any identifier anyone tries, so without this the table grows with every guess.
 */
import { defaults } from "./core/config";
import { deleteExpiredRows } from "./d1/expired";
import type { Env } from "./env";

export async function sweepExpired(env: Env, now = Date.now()): Promise<void> {
  await deleteExpiredRows(env, defaults.loginFailureWindowMs, now);
}
