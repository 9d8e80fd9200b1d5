/**
 * The Cron Trigger's part in cron jobs: find the environments with a job due (the D1 index
 * their objects keep) and wake each object, which runs its own jobs. Waking an object twice
 * for the same minute is harmless: each scheduled time has one execution.
 */
import { held } from "../durable-objects/contract";
import { environmentsWithJobsDue } from "./d1/cron-schedules";
import type { Env } from "./env";

/** Wakes the environments with a job due by `dueBy`, the trigger's scheduled time. */
export async function wakeDueJobs(env: Env, dueBy: number): Promise<void> {
  const due = await environmentsWithJobsDue(env, dueBy);
  const woken = await Promise.allSettled(
    due.map(async (id) => {
      using jobs = held(env.ENVIRONMENTS.getByName(id).jobs());
      return await jobs.runDue(dueBy);
    }),
  );
  for (const [i, w] of woken.entries()) {
    // The next trigger tries again: the index still says the job is due.
    if (w.status === "rejected") console.error(`cron jobs of environment ${due[i]} could not run`, w.reason);
  }
}
