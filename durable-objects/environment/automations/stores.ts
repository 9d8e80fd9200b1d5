/**
 * The automations of one environment (gitpod.v1.EnvironmentAutomationService) as kept in the
 * EnvironmentDO's SQLite storage: services, tasks and task executions, each a module of its
 * own, wired together here with what spans them: triggers and the runner's reports. The
 * object runs every call inside one transaction (automations.ts); refusals are thrown as
 * ConnectErrors before anything is written.
 */
import type { AutomationTrigger, Service, Task } from "../../../proto/gen/gitpod/v1/environment_automation_pb";
import { ServicePhase } from "../../../proto/gen/gitpod/v1/environment_automation_pb";
import type { Subject } from "../../../proto/gen/gitpod/v1/identity_pb";
import { uuidv7 } from "../../../workers/core/gitpod-ids";
import type { RunnerMessage } from "../../../proto/frames/runner";
import { Executions } from "./executions";
import type { Op } from "./op";
import { Services } from "./services";
import { Tasks } from "./tasks";
import type { TriggerKind } from "./validation";

export class AutomationStores {
  readonly services: Services;
  readonly tasks: Tasks;
  readonly executions: Executions;

  constructor(sql: SqlStorage) {
    // Services and executions follow each other: a service's change moves the executions waiting for it.
    this.services = new Services(sql, { advance: (op) => this.executions.advanceAll(op), dependents: (id) => this.tasks.dependents(id) });
    this.tasks = new Tasks(sql, this.services);
    this.executions = new Executions(sql, this.services, this.tasks);
  }

  /** Services and tasks whose `triggeredBy` names one of `kinds`. */
  triggered(kinds: readonly TriggerKind[]): { services: Service[]; tasks: Task[] } {
    const fires = (ts: AutomationTrigger[]) => ts.some((t) => t.trigger.case !== undefined && kinds.includes(t.trigger.case));
    return {
      services: this.services.all().filter((s) => fires(s.metadata!.triggeredBy) && s.spec!.desiredPhase !== ServicePhase.DELETED),
      tasks: this.tasks.all().filter((t) => fires(t.metadata!.triggeredBy)),
    };
  }

  /**
   * The environment started: services triggered by one of `kinds` are started (StartService)
   * and each task so triggered gets one execution (StartTask), on behalf of `creator` (the
   * environment's), `startedBy` the first of the task's triggers among `kinds`.
   */
  environmentStarted(kinds: readonly TriggerKind[], op: Op, creator: Subject): void {
    const { services, tasks } = this.triggered(kinds);
    // Read again: starting one may have started another (an execution waiting for it).
    for (const { id } of services) this.services.start(this.services.get(id)!, op);
    for (const t of tasks) {
      const by = t.metadata!.triggeredBy.find((x) => x.trigger.case !== undefined && kinds.includes(x.trigger.case))!.trigger.case!;
      this.executions.start(t.id, uuidv7(op.now), op, creator, by);
    }
  }

  /** The environment stops or goes: services meant to run are stopped (StopService), ongoing executions too (StopTaskExecution). */
  environmentStopped(op: Op): void {
    // Executions first: one still running would start the services it waits for again.
    for (const x of this.executions.active()) this.executions.stop(x.id, op);
    for (const { id } of this.services.all()) this.services.stop(this.services.get(id)!, op);
  }

  /** A runner report about a service or a task step. Reports about what no longer exists are ignored. */
  report(msg: Extract<RunnerMessage, { type: "service-status" | "task-step-status" }>, op: Op): void {
    if (msg.type === "service-status") this.services.report(msg, op);
    else this.executions.report(msg, op);
  }

  /**
   * After a runner's hello: every service's desired state and the complete set, then the
   * steps of unfinished executions again (run or stop), and whatever waited for a runner moves.
   */
  resync(op: Op): void {
    this.services.resend(op);
    this.executions.resend(op);
  }
}
