/** `login_failures`: failed logins per identifier, counted in windows, for throttling guesses. */
import type { Env } from "../env";
import type { Columns } from "./row";
import type { loginFailures } from "./schema";

/**
 * Counts one attempt for `identifier` in one atomic upsert, starting a new window when the
 * last one (`windowMs` long) has passed; returns the count and when its window started.
 */
export const countLoginFailure = (env: Env, identifier: string, now: number, windowMs: number) =>
  env.DB.prepare(
    `INSERT INTO login_failures (identifier, failures, window_started_at) VALUES (?1, 1, ?2)
     ON CONFLICT (identifier) DO UPDATE SET
       failures = CASE WHEN window_started_at + ?3 <= ?2 THEN 1 ELSE failures + 1 END,
       window_started_at = CASE WHEN window_started_at + ?3 <= ?2 THEN ?2 ELSE window_started_at END
     RETURNING failures, window_started_at`,
  )
    .bind(identifier, now, windowMs)
    .first<Columns<typeof loginFailures, "failures" | "window_started_at">>();

/** Forgets the failures of `identifier`: a statement of the batch of a successful login. */
export const clearLoginFailures = (env: Env, identifier: string): D1PreparedStatement =>
  env.DB.prepare("DELETE FROM login_failures WHERE identifier = ?").bind(identifier);

/** Deletes the counts whose window (`windowMs` long) ended by `now`. */
export const deleteEndedWindows = (env: Env, windowMs: number, now: number): D1PreparedStatement =>
  env.DB.prepare("DELETE FROM login_failures WHERE window_started_at + ? <= ?").bind(windowMs, now);
