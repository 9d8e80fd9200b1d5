/** What the Worker calls about an environment's cron jobs: `EnvironmentDO.jobs()`. */
import { RpcTarget } from "cloudflare:workers";
import type { JobExecutions } from "./jobs";
import type { ExecutionQuery, ExecutionRow } from "./store";

export class JobsApi extends RpcTarget {
  constructor(private readonly jobs: JobExecutions) {
    super();
  }

  /** For the Cron Trigger: starts an execution for every job due by `dueBy`. Returns how many started. */
  runDue(dueBy: number): Promise<number> {
    return this.jobs.runDue(dueBy);
  }

  /** GetJobExecutions: a page of a capsule's executions here, with the total. */
  executions(q: ExecutionQuery): { rows: Omit<ExecutionRow, "job">[]; total: number } {
    return this.jobs.list(q);
  }
}
