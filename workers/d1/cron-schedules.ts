/**
 * `cron_schedules`: the Cron Trigger's index of when each environment's cron jobs next run.
 * Written by the environment's object, which owns the jobs (workers/jobs.ts reads it).
 */
import type { Env } from "../env";
import type { Columns } from "./row";
import type { cronSchedules } from "./schema";

/** Statements that make the index of a capsule's jobs in an environment match `plan`. */
export function scheduleStatements(
  env: Env,
  target: { environmentId: string; projectId: string; capsuleId: string },
  plan: { jobName: string; nextRunAt: number | null }[],
): D1PreparedStatement[] {
  const { environmentId, projectId, capsuleId } = target;
  return [
    env.DB.prepare("DELETE FROM cron_schedules WHERE environment_id = ? AND project_id = ? AND capsule_id = ?").bind(environmentId, projectId, capsuleId),
    ...plan.map((j) =>
      env.DB.prepare(
        `INSERT INTO cron_schedules (environment_id, project_id, capsule_id, job_name, next_run_at)
         SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM capsules WHERE project_id = ?2 AND id = ?3)`,
      ).bind(environmentId, projectId, capsuleId, j.jobName, j.nextRunAt),
    ),
  ];
}

/** Records when one job next runs (null: never). */
export async function setNextRun(
  env: Env,
  job: { environmentId: string; projectId: string; capsuleId: string; jobName: string },
  nextRunAt: number | null,
): Promise<void> {
  await env.DB.prepare("UPDATE cron_schedules SET next_run_at = ? WHERE environment_id = ? AND project_id = ? AND capsule_id = ? AND job_name = ?")
    .bind(nextRunAt, job.environmentId, job.projectId, job.capsuleId, job.jobName)
    .run();
}

/** The environments with a job due to run by `dueBy`. */
export async function environmentsWithJobsDue(env: Env, dueBy: number): Promise<string[]> {
  const { results } = await env.DB.prepare("SELECT DISTINCT environment_id FROM cron_schedules WHERE next_run_at <= ?")
    .bind(dueBy)
    .all<Columns<typeof cronSchedules, "environment_id">>();
  return results.map((r) => r.environment_id);
}

/** Drops the index of every job in environment `environmentId`. */
export const unscheduleEnvironment = (env: Env, environmentId: string) => env.DB.prepare("DELETE FROM cron_schedules WHERE environment_id = ?").bind(environmentId);
