/** The executions of the environment's cron jobs: starting them when due, attempts, retries, deadlines and their end. */
import { fromBinary } from "@bufbuild/protobuf";
import { CronJobSchema, JobState } from "../../../proto/gen/api/v1/capsule/job_pb";
import { defaults } from "../../../workers/core/config";
import { setNextRun } from "../../../workers/d1/cron-schedules";
import type { ExecutionQuery, ExecutionRow } from "./store";
import type { EnvironmentHost } from "../host";
import type { RunnerMessage } from "../../../proto/frames/runner";

/** Timer kinds (timers.ts). */
export const JOB_ATTEMPT = "job-attempt";
export const JOB_DEADLINE = "job-deadline";

/** What every job event carries about its execution. */
const executionEvent = (x: ExecutionRow) => ({
  projectId: x.project_id,
  capsuleId: x.capsule_id,
  jobName: x.job_name,
  rolloutId: x.rollout_id,
  executionId: x.execution_id,
});

export class JobExecutions {
  constructor(private readonly host: EnvironmentHost) {}

  /**
   * Called by the Cron Trigger: starts an execution for every job due by `dueBy` (the
   * trigger's scheduled time). Each scheduled time gets one execution however many triggers
   * call this. Returns how many started.
   */
  async runDue(dueBy: number): Promise<number> {
    const identity = this.host.identity();
    if (!identity) return 0;
    const { jobs, timers } = this.host.open();
    const { ctx, stream, env } = this.host;
    const now = Date.now();
    let started = 0;
    for (const job of jobs.due(dueBy)) {
      const fired = ctx.storage.transactionSync(() => jobs.fire(job, dueBy, now));
      const base = { projectId: job.project_id, capsuleId: job.capsule_id, jobName: job.job_name, rolloutId: job.rollout_id };
      if (fired.missed.length > 0) stream.publish("job.missed", { ...base, scheduledAt: fired.missed.map((t) => new Date(t).toISOString()) });
      for (const x of fired.started) {
        stream.publish("job.started", { ...base, executionId: x.execution_id, scheduledAt: new Date(x.scheduled_at).toISOString() });
        await timers.set(JOB_ATTEMPT, x.execution_id, now);
        if (x.deadline_at !== null) await timers.set(JOB_DEADLINE, x.execution_id, x.deadline_at);
        started++;
      }
      await setNextRun(env, { environmentId: identity.environmentId, projectId: job.project_id, capsuleId: job.capsule_id, jobName: job.job_name }, fired.nextRunAt);
    }
    return started;
  }

  /** One attempt of an execution: an HTTP request to the capsule, or a command sent to the runner. */
  async attempt(executionId: string): Promise<void> {
    const x = this.host.open().jobs.execution(executionId);
    if (!x || x.state !== JobState[JobState.ONGOING]) return;
    const job = fromBinary(CronJobSchema, new Uint8Array(x.job));
    const budget = (x.deadline_at ?? Date.now() + defaults.jobs.defaultDeadlineMs) - Date.now();
    if (budget <= 0) return this.end(x, JobState.TERMINATED, "its timeout was reached");
    if (job.jobType.case === "command") {
      const { command, args } = job.jobType.value;
      const sent = this.host.toRunner({ type: "job-run", executionId, projectId: x.project_id, capsuleId: x.capsule_id, jobName: x.job_name, command, args, timeoutMs: budget });
      // The runner answers with job-result; the deadline timer ends the execution if it never does.
      if (!sent) await this.attemptFailed(x, `no runner is connected to environment ${this.host.requireIdentity().environmentId}, so the command cannot run`);
      return;
    }
    if (job.jobType.case !== "url") return this.end(x, JobState.FAILED, "the job has neither a URL nor a command");
    const { port, path, queryParameters } = job.jobType.value;
    const base = this.host.open().jobs.endpoint(x.project_id, x.capsule_id, Number(port));
    if (!base) return this.attemptFailed(x, `capsule ${x.capsule_id} has no address for port ${port}: the runner has not reported one`);
    const url = new URL(path, base);
    for (const k of Object.keys(queryParameters).sort()) url.searchParams.set(k, queryParameters[k]!);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(budget) });
      await res.body?.cancel();
      if (res.ok) await this.end(x, JobState.COMPLETED, `${url} answered ${res.status}`);
      else await this.attemptFailed(x, `${url} answered ${res.status}`);
    } catch (err) {
      if (x.deadline_at !== null && Date.now() >= x.deadline_at) await this.end(x, JobState.TERMINATED, "its timeout was reached");
      else await this.attemptFailed(x, `${url} could not be reached: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /** The execution's deadline timer fired. */
  async deadlineReached(executionId: string): Promise<void> {
    const x = this.host.open().jobs.execution(executionId);
    if (x) await this.end(x, JobState.TERMINATED, "its timeout was reached");
  }

  /** `job-result`: how the runner's run of a command ended. */
  async onResult(msg: Extract<RunnerMessage, { type: "job-result" }>): Promise<void> {
    const x = this.host.open().jobs.execution(String(msg.executionId));
    if (!x || x.state !== JobState[JobState.ONGOING]) return;
    if (msg.exitCode === 0) await this.end(x, JobState.COMPLETED, `exit code 0${msg.message ? `: ${msg.message}` : ""}`);
    else await this.attemptFailed(x, `exit code ${msg.exitCode}${msg.message ? `: ${msg.message}` : ""}`);
  }

  /** A failed attempt: retried after a backoff while retries remain, else the execution FAILED. */
  private async attemptFailed(x: ExecutionRow, message: string): Promise<void> {
    const job = fromBinary(CronJobSchema, new Uint8Array(x.job));
    const current = this.host.open().jobs.execution(x.execution_id);
    if (!current || current.state !== JobState[JobState.ONGOING]) return;
    if (current.retries >= job.maxRetries) return this.end(current, JobState.FAILED, message);
    const retries = this.host.open().jobs.countRetry(x.execution_id, message);
    const first = Number(this.host.env.JOB_RETRY_BACKOFF_MS) || defaults.jobs.retryBackoffMs;
    const backoff = Math.min(defaults.jobs.retryBackoffCapMs, first * 2 ** (retries - 1));
    this.host.stream.publish("job.retrying", { ...executionEvent(current), retries, message, retryAt: new Date(Date.now() + backoff).toISOString() });
    await this.host.open().timers.set(JOB_ATTEMPT, x.execution_id, Date.now() + backoff);
  }

  /** Ends an ongoing execution in `state`, once, and drops its timers. */
  private async end(x: ExecutionRow, state: JobState, message: string): Promise<void> {
    const { jobs, timers } = this.host.open();
    if (!jobs.finish(x.execution_id, state, message, Date.now())) return;
    // Ended here while the runner may still run the command (deadline, rollout replaced): it stops the attempt.
    if (state === JobState.TERMINATED && fromBinary(CronJobSchema, new Uint8Array(x.job)).jobType.case === "command") {
      this.host.toRunner({ type: "job-cancel", executionId: x.execution_id });
    }
    this.host.stream.publish(`job.${JobState[state].toLowerCase()}`, { ...executionEvent(x), retries: jobs.execution(x.execution_id)!.retries, message });
    await timers.cancel(JOB_ATTEMPT, x.execution_id);
    await timers.cancel(JOB_DEADLINE, x.execution_id);
  }

  /** Terminates a capsule's ongoing executions (of rollouts other than `keep`): their rollout ended. */
  async terminate(projectId: string, capsuleId: string, why: string, keep?: number): Promise<void> {
    for (const x of this.host.open().jobs.ongoing(projectId, capsuleId, keep)) await this.end(x, JobState.TERMINATED, why);
  }

  /** GetJobExecutions: a page of a capsule's executions here, with the total. */
  list(q: ExecutionQuery): { rows: Omit<ExecutionRow, "job">[]; total: number } {
    const { rows, total } = this.host.open().jobs.list(q);
    return { rows: rows.map(({ job: _, ...r }) => r), total };
  }
}
