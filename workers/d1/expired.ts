/** Rows that only matter for a while, which the cron's housekeeping deletes once they are over. */
import type { Env } from "../env";
import { deleteEndedWindows } from "./login-failures";
import { deleteExpiredCodes } from "./verification-codes";

/** Deletes, in one batch, the login-failure windows (`failureWindowMs` long) that ended by `now` and the codes expired by then. */
export async function deleteExpiredRows(env: Env, failureWindowMs: number, now: number): Promise<void> {
  await env.DB.batch([deleteEndedWindows(env, failureWindowMs, now), deleteExpiredCodes(env, now)]);
}
