/**
 * A capsule's cron jobs in one environment and their executions, kept in the EnvironmentDO's
 * SQLite storage. The jobs come from the capsule's desired rollout; each scheduled time runs
 * at most once (the execution's key is job and scheduled time), however often the Cron
 * Trigger fires or from wherever. This module is storage and bookkeeping; the object runs
 * the attempts (HTTP or through the runner) and owns the timers.
 */
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { type CronJob, CronJobSchema, JobState } from "../../../proto/gen/api/v1/capsule/job_pb";
import { defaults } from "../../../workers/core/config";
import { nextFireTime, parseCron } from "../../../workers/core/rollouts/cron";

/** A job's next run, as the object and the D1 index record it. */
export interface PlannedJob {
  jobName: string;
  schedule: string;
  /** Null for a schedule that never fires. */
  nextRunAt: number | null;
}

export type ExecutionRow = {
  execution_id: string;
  project_id: string;
  capsule_id: string;
  job_name: string;
  rollout_id: number;
  scheduled_at: number;
  created_at: number;
  finished_at: number | null;
  state: string;
  retries: number;
  deadline_at: number | null;
  message: string;
  job: ArrayBuffer;
};

export interface ExecutionQuery {
  projectId: string;
  capsuleId: string;
  jobName?: string;
  states?: JobState[];
  createdFrom?: number;
  createdTo?: number;
  offset: number;
  limit: number;
  oldestFirst: boolean;
}

const stateName = (s: JobState) => JobState[s];

export class CronJobs {
  constructor(private readonly sql: SqlStorage) {}

  /**
   * The next runs of a capsule's jobs if `jobs` replaced its current ones: a job whose
   * schedule is unchanged keeps its next run, so a redeploy neither skips nor repeats one.
   */
  plan(projectId: string, capsuleId: string, jobs: CronJob[], now: number): PlannedJob[] {
    const existing = new Map(
      this.sql
        .exec<{ job_name: string; schedule: string; next_run_at: number | null }>(
          "SELECT job_name, schedule, next_run_at FROM cron_jobs WHERE project_id = ? AND capsule_id = ?",
          projectId,
          capsuleId,
        )
        .toArray()
        .map((r) => [r.job_name, r]),
    );
    return jobs.map((j) => {
      const old = existing.get(j.jobName);
      const nextRunAt = old && old.schedule === j.schedule ? old.next_run_at : nextFireTime(parseCron(j.schedule), now);
      return { jobName: j.jobName, schedule: j.schedule, nextRunAt };
    });
  }

  /** Replaces a capsule's jobs with those of `rolloutId`, at the times `plan` gave. */
  setJobs(projectId: string, capsuleId: string, rolloutId: number, jobs: CronJob[], plan: PlannedJob[]): void {
    this.clearJobs(projectId, capsuleId);
    jobs.forEach((j, i) => {
      this.sql.exec(
        "INSERT INTO cron_jobs (project_id, capsule_id, job_name, rollout_id, schedule, job, next_run_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        projectId,
        capsuleId,
        j.jobName,
        rolloutId,
        j.schedule,
        toBinary(CronJobSchema, j),
        plan[i]!.nextRunAt,
      );
    });
  }

  clearJobs(projectId: string, capsuleId: string): void {
    this.sql.exec("DELETE FROM cron_jobs WHERE project_id = ? AND capsule_id = ?", projectId, capsuleId);
  }

  /** Jobs whose next run is due by `now`. */
  due(now: number) {
    return this.sql
      .exec<{ project_id: string; capsule_id: string; job_name: string; rollout_id: number; job: ArrayBuffer; next_run_at: number }>(
        "SELECT project_id, capsule_id, job_name, rollout_id, job, next_run_at FROM cron_jobs WHERE next_run_at <= ?",
        now,
      )
      .toArray();
  }

  /**
   * Fires a due job: every scheduled time up to `dueBy` (the trigger's time) gets an
   * execution, once. The latest runs if it is not older than the grace period at `now`; earlier ones (nothing ran at their time)
   * are recorded as missed, TERMINATED, rather than dropped or run in a burst. Returns the
   * executions created now, and the job's next run.
   */
  fire(job: ReturnType<CronJobs["due"]>[number], dueBy: number, now: number): { started: ExecutionRow[]; missed: number[]; nextRunAt: number | null } {
    const spec = fromBinary(CronJobSchema, new Uint8Array(job.job));
    const schedule = parseCron(spec.schedule);
    const times: number[] = [];
    for (let t: number | null = job.next_run_at; t !== null && t <= dueBy; t = nextFireTime(schedule, t)) {
      times.push(t);
      // A long outage: the oldest misses are not worth a row each.
      if (times.length > defaults.jobs.maxMissedRecorded) times.shift();
    }
    const latest = times.at(-1);
    const runs = latest !== undefined && now - latest <= defaults.jobs.lateGraceMs ? [latest] : [];
    const missed = times.filter((t) => !runs.includes(t));
    const started: ExecutionRow[] = [];
    for (const t of [...missed, ...runs]) {
      const isRun = runs.includes(t);
      const timeoutMs = spec.timeout ? Number(spec.timeout.seconds) * 1000 + Math.floor(spec.timeout.nanos / 1e6) : 0;
      const row = this.sql
        .exec<ExecutionRow>(
          `INSERT INTO job_executions (execution_id, project_id, capsule_id, job_name, rollout_id, scheduled_at, created_at, finished_at, state, deadline_at, message, job)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING *`,
          crypto.randomUUID(),
          job.project_id,
          job.capsule_id,
          job.job_name,
          job.rollout_id,
          t,
          now,
          isRun ? null : now,
          stateName(isRun ? JobState.ONGOING : JobState.TERMINATED),
          isRun ? now + (timeoutMs > 0 ? timeoutMs : defaults.jobs.defaultDeadlineMs) : null,
          isRun ? "" : `missed: nothing ran at ${new Date(t).toISOString()}`,
          job.job,
        )
        .toArray()[0];
      if (row && isRun) started.push(row);
    }
    const nextRunAt = nextFireTime(schedule, Math.max(dueBy, now));
    this.sql.exec("UPDATE cron_jobs SET next_run_at = ? WHERE project_id = ? AND capsule_id = ? AND job_name = ?", nextRunAt, job.project_id, job.capsule_id, job.job_name);
    return { started, missed, nextRunAt };
  }

  execution(executionId: string): ExecutionRow | undefined {
    return this.sql.exec<ExecutionRow>("SELECT * FROM job_executions WHERE execution_id = ?", executionId).toArray()[0];
  }

  /** Ends an ongoing execution; false if it had ended already. */
  finish(executionId: string, state: JobState, message: string, now: number): boolean {
    const changed = this.sql.exec(
      "UPDATE job_executions SET state = ?, message = ?, finished_at = ? WHERE execution_id = ? AND state = ?",
      stateName(state),
      message,
      now,
      executionId,
      stateName(JobState.ONGOING),
    ).rowsWritten;
    return changed > 0;
  }

  /** Records that a failed attempt will be retried; returns the retries so far. */
  countRetry(executionId: string, message: string): number {
    return this.sql
      .exec<{ retries: number }>("UPDATE job_executions SET retries = retries + 1, message = ? WHERE execution_id = ? RETURNING retries", message, executionId)
      .one().retries;
  }

  /** Ongoing executions of a capsule that belong to a rollout other than `keep` (or to any, without it). */
  ongoing(projectId: string, capsuleId: string, keep?: number): ExecutionRow[] {
    return this.sql
      .exec<ExecutionRow>(
        "SELECT * FROM job_executions WHERE project_id = ? AND capsule_id = ? AND state = ? AND rollout_id != ?",
        projectId,
        capsuleId,
        stateName(JobState.ONGOING),
        keep ?? -1,
      )
      .toArray();
  }

  setEndpoints(projectId: string, capsuleId: string, endpoints: { port: number; url: string }[]): void {
    this.sql.exec("DELETE FROM capsule_endpoints WHERE project_id = ? AND capsule_id = ?", projectId, capsuleId);
    for (const e of endpoints) {
      if (!Number.isInteger(e.port) || typeof e.url !== "string") continue;
      this.sql.exec("INSERT OR REPLACE INTO capsule_endpoints (project_id, capsule_id, port, url) VALUES (?, ?, ?, ?)", projectId, capsuleId, e.port, e.url);
    }
  }

  endpoint(projectId: string, capsuleId: string, port: number): string | undefined {
    return this.sql
      .exec<{ url: string }>("SELECT url FROM capsule_endpoints WHERE project_id = ? AND capsule_id = ? AND port = ?", projectId, capsuleId, port)
      .toArray()[0]?.url;
  }

  /** A page of a capsule's executions matching the query, and how many match. */
  list(q: ExecutionQuery): { rows: ExecutionRow[]; total: number } {
    const where = [
      "project_id = ?1",
      "capsule_id = ?2",
      "(?3 = '' OR job_name = ?3)",
      "(?4 = '[]' OR state IN (SELECT value FROM json_each(?4)))",
      "created_at >= ?5",
      "created_at <= ?6",
    ].join(" AND ");
    const args = [
      q.projectId,
      q.capsuleId,
      q.jobName ?? "",
      JSON.stringify((q.states ?? []).map(stateName)),
      q.createdFrom ?? 0,
      q.createdTo ?? Number.MAX_SAFE_INTEGER,
    ];
    const total = this.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM job_executions WHERE ${where}`, ...args).one().n;
    const order = q.oldestFirst ? "ASC" : "DESC";
    const rows = this.sql
      .exec<ExecutionRow>(`SELECT * FROM job_executions WHERE ${where} ORDER BY created_at ${order}, scheduled_at ${order} LIMIT ?7 OFFSET ?8`, ...args, q.limit, q.offset)
      .toArray();
    return { rows, total };
  }
}
