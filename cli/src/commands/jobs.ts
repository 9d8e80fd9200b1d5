/** `edgeplane capsule jobs list|executions`: the cron jobs of the current rollout and their runs. */
import { Command, Option } from "@commander-js/extra-typings";
import { JobState } from "../../../proto/gen/api/v1/capsule/job_pb";
import { GetJobExecutionsResponseSchema, Service as CapsuleService } from "../../../proto/gen/api/v1/capsule/service_pb";
import { printJson, printMessage, printTable, when } from "../output";
import type { Cli } from "./cli";
import { pagination, paginationOptions } from "./pages";

export function jobsCommand(cli: Cli) {
  const jobs = new Command("jobs").description("a capsule's cron jobs in the environment");

  jobs
    .command("list")
    .description("the cron jobs of the capsule's current rollout")
    .argument("<capsule>")
    .action(async (capsuleId) => {
      const session = cli.session();
      const { rollouts } = await session.client(CapsuleService).listRollouts({ projectId: session.project, environmentId: session.environment, capsuleId, pagination: { limit: 1 } });
      const cronJobs = rollouts[0]?.config?.cronJobs ?? [];
      if (session.options.output !== "pretty") return printJson(session.options.output, { rolloutId: String(rollouts[0]?.rolloutId ?? 0), cronJobs: cronJobs.map((j) => ({ jobName: j.jobName, schedule: j.schedule, maxRetries: j.maxRetries, kind: j.jobType.case })) });
      printTable(
        ["job", "schedule", "kind", "max retries"],
        cronJobs.map((j) => [j.jobName, j.schedule, j.jobType.case ?? "-", j.maxRetries]),
      );
    });

  paginationOptions(jobs.command("executions"))
    .description("the runs of the capsule's jobs, newest first")
    .argument("<capsule>")
    .argument("[job]", "only this job's runs")
    .addOption(new Option("--state <state>", "only runs in this state").choices(["ongoing", "completed", "failed", "terminated"] as const))
    .action(async (capsuleId, jobName, opts) => {
      const session = cli.session();
      const states = { ongoing: JobState.ONGOING, completed: JobState.COMPLETED, failed: JobState.FAILED, terminated: JobState.TERMINATED };
      const res = await session.client(CapsuleService).getJobExecutions({
        projectId: session.project,
        environmentId: session.environment,
        capsuleId,
        jobName: jobName ?? "",
        states: opts.state ? [states[opts.state]] : [],
        pagination: pagination(opts),
      });
      printMessage(session.options.output, GetJobExecutionsResponseSchema, res, () =>
        printTable(
          ["job", "execution", "state", "retries", "rollout", "created", "finished"],
          res.jobExecutions.map((e) => [e.jobName, e.executionId, JobState[e.state], e.retries, String(e.rolloutId), when(e.createdAt), when(e.finishedAt)]),
        ),
      );
    });

  return jobs;
}
