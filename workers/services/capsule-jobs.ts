/** api.v1.capsule.Service: executions of a capsule's cron jobs, kept by the environment's object. */
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { JobState } from "../../proto/gen/api/v1/capsule/job_pb";
import type { Service } from "../../proto/gen/api/v1/capsule/service_pb";
import { held } from "../../durable-objects/contract";
import { namedCapsule, requireCapsule } from "../d1/capsules";
import { requireExisting } from "../d1/exists";
import { envOf } from "./context";
import { invalidArgument } from "../core/errors";
import { pageOf } from "../core/pagination";
import { environmentOf } from "./capsule-rollouts";

export const jobHandlers: Pick<ServiceImpl<typeof Service>, "getJobExecutions"> = {
  /** Newest first by default (`descending` gives oldest first), filtered by job, states and creation time. */
  async getJobExecutions(req, ctx) {
    const env = envOf(ctx);
    const { projectId, capsuleId } = namedCapsule(req);
    const environmentId = await environmentOf(env, req);
    req.states.forEach((s, i) => {
      if (!(s in JobState) || s === JobState.UNSPECIFIED) throw invalidArgument(`states[${i}]`, `${s} is not a job state`);
    });
    const createdFrom = req.createdFrom ? timestampMs(req.createdFrom) : undefined;
    const createdTo = req.createdTo ? timestampMs(req.createdTo) : undefined;
    if (createdFrom !== undefined && createdTo !== undefined && createdFrom > createdTo) {
      throw invalidArgument("created_from", "is after created_to");
    }
    await Promise.all([requireCapsule(env, projectId, capsuleId), requireExisting(env, "environment", environmentId)]);
    const page = pageOf(req.pagination);
    using jobs = held(env.ENVIRONMENTS.getByName(environmentId).jobs());
    const { rows, total } = await jobs.executions({
      projectId,
      capsuleId,
      jobName: req.jobName || undefined,
      states: req.states,
      createdFrom,
      createdTo,
      offset: page.offset,
      limit: page.limit,
      oldestFirst: page.descending,
    });
    return {
      jobExecutions: rows.map((r) => ({
        jobName: r.job_name,
        createdAt: timestampFromMs(r.created_at),
        finishedAt: r.finished_at === null ? undefined : timestampFromMs(r.finished_at),
        state: JobState[r.state as keyof typeof JobState],
        retries: r.retries,
        rolloutId: BigInt(r.rollout_id),
        capsuleId,
        projectId,
        executionId: r.execution_id,
        environmentId,
      })),
      total: BigInt(total),
    };
  },
};
