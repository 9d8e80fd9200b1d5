/**
 * The Cron Trigger's part in cron jobs: find the environments with a job due (the D1 index
 * their objects keep) and wake each object, which runs its own jobs. Waking an object twice
 * for the same minute is harmless: each scheduled time has one execution.
 */
import { held } from "../durable-objects/contract";
import type { Env } from "./env";

/** Wakes the environments with a job due by `dueBy`, the trigger's scheduled time. */
export async function wakeDueJobs(env: Env, dueBy: number): Promise<void> {
  const { results } = await env.DB.prepare("SELECT DISTINCT environment_id FROM cron_schedules WHERE next_run_at <= ?").bind(dueBy).all<{ environment_id: string }>();
  const woken = await Promise.allSettled(
    results.map(async (r) => {
      using jobs = held(env.ENVIRONMENTS.getByName(r.environment_id).jobs());
      return await jobs.runDue(dueBy);
    }),
  );
  for (const [i, w] of woken.entries()) {
    // The next trigger tries again: the index still says the job is due.
    if (w.status === "rejected") console.error(`cron jobs of environment ${results[i]!.environment_id} could not run`, w.reason);
  }
}
