/**
 * Task executions: the execution engine. An execution's plan (task-plan.ts) runs what its
 * task depends on first, in groups; task steps are sent to the runner and move on its
 * reports, service steps follow their service (services.ts), and the execution's phase is
 * derived from its steps.
 */
import { clone, create, equals, fromBinary, type MessageShape, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  type ListTaskExecutionsRequestSchema,
  ServicePhase,
  type TaskExecution,
  TaskExecutionPhase,
  TaskExecutionSchema,
  type TaskExecutionSpec_Step,
  type TaskExecutionStatus_Step,
  TaskExecutionStatus_StepSchema,
  TaskExecutionStatusSchema,
  TaskSpecSchema,
} from "../../../proto/gen/gitpod/v1/environment_automation_pb";
import type { Subject } from "../../../proto/gen/gitpod/v1/identity_pb";
import { failedPrecondition, quote } from "../../../workers/core/errors";
import { uuidv7 } from "../../../workers/core/gitpod-ids";
import type { RunnerMessage } from "../../../proto/frames/runner";
import { mergeOutput, STEP_PHASES, stepRun, stepStop } from "./messages";
import { type Op, WAITING } from "./op";
import { asJsonList, MessageTable, nextVersion, type Page, pageOf } from "./table";
import { isActive, type Services } from "./services";
import { planGroups } from "./task-plan";
import type { Tasks } from "./tasks";

const isEnded = (p: TaskExecutionPhase) => p === TaskExecutionPhase.SUCCEEDED || p === TaskExecutionPhase.FAILED || p === TaskExecutionPhase.STOPPED;
const executionPhaseName = (p: TaskExecutionPhase) => TaskExecutionPhase[p];

export class Executions extends MessageTable<typeof TaskExecutionSchema> {
  constructor(
    sql: SqlStorage,
    private readonly services: Services,
    private readonly tasks: Tasks,
  ) {
    super(sql, "task_executions", TaskExecutionSchema, "task execution");
  }



  /** Executions not yet ended, pending or running. */
  active(): TaskExecution[] {
    return this.select("SELECT body FROM task_executions WHERE phase IN (?, ?) ORDER BY id", TaskExecutionPhase.PENDING, TaskExecutionPhase.RUNNING);
  }

  private save(x: TaskExecution, taskReference?: string): void {
    this.sql.exec(
      `INSERT INTO task_executions (id, task_id, task_reference, phase, body) VALUES (?1, ?2, ?3, ?4, ?5)
       ON CONFLICT (id) DO UPDATE SET phase = ?4, body = ?5`,
      x.id,
      x.metadata!.taskId,
      taskReference ?? "",
      x.status!.phase,
      toBinary(TaskExecutionSchema, x),
    );
  }

  /**
   * StartTask: an execution whose plan runs everything the task depends on first, in groups
   * (tasks/services of a group run concurrently, groups one after another). Service steps are
   * done once their service runs; task steps are sent to the runner.
   */
  start(taskId: string, id: string, op: Op, creator: Subject, startedBy = "manual"): TaskExecution {
    const task = this.tasks.require(taskId);
    const tasks = new Map(this.tasks.all().map((t) => [t.id, t]));
    const groups = planGroups(task.id, new Map([...tasks].map(([i, t]) => [i, t.dependsOn])));
    const stepIds = new Map<string, string>();
    const plan = groups.map((group) => ({
      steps: group.map((automationId) => {
        const stepId = uuidv7(op.now);
        stepIds.set(automationId, stepId);
        const t = tasks.get(automationId);
        if (t) {
          return {
            id: stepId,
            dependsOn: t.dependsOn.map((d) => stepIds.get(d)!),
            label: t.metadata!.name || t.metadata!.reference,
            step: { case: "task" as const, value: { id: t.id, spec: clone(TaskSpecSchema, t.spec ?? create(TaskSpecSchema)) } },
          };
        }
        const s = this.services.get(automationId);
        if (!s) throw failedPrecondition(`task ${task.metadata!.reference} depends on ${automationId}, which no longer exists: update its depends_on`);
        return { id: stepId, label: s.metadata!.name || s.metadata!.reference, step: { case: "serviceId" as const, value: s.id } };
      }),
    }));
    const x = create(TaskExecutionSchema, {
      id,
      metadata: { taskId: task.id, environmentId: op.environmentId, createdAt: timestampFromMs(op.now), creator, startedBy },
      spec: { plan, desiredPhase: TaskExecutionPhase.RUNNING },
      status: { statusVersion: nextVersion(this.sql), phase: TaskExecutionPhase.PENDING },
    });
    this.save(x, task.metadata!.reference);
    op.created.push(id);
    op.emit("task-execution.created", { taskExecutionId: id, taskId: task.id, reference: task.metadata!.reference });
    this.advance(x, op);
    return this.get(id)!;
  }

  /** StopTaskExecution: running task steps are told to stop; the execution is STOPPED once none runs. */
  stop(id: string, op: Op): void {
    const x = this.require(id);
    if (isEnded(x.status!.phase) || x.spec!.desiredPhase === TaskExecutionPhase.STOPPED) return;
    x.spec!.desiredPhase = TaskExecutionPhase.STOPPED;
    this.save(x);
    op.emit("task-execution.updated", { taskExecutionId: id, taskId: x.metadata!.taskId, desiredPhase: executionPhaseName(TaskExecutionPhase.STOPPED) });
    for (const step of this.runningTaskSteps(x)) op.send(stepStop(x, step));
    this.advance(x, op);
  }

  /** Task steps sent to the runner that have not ended. */
  private runningTaskSteps(x: TaskExecution): TaskExecutionSpec_Step[] {
    const live = new Set(x.status!.steps.filter((s) => !isEnded(s.phase)).map((s) => s.id));
    return x.spec!.plan.flatMap((g) => g.steps).filter((s) => s.step.case === "task" && live.has(s.id));
  }

  /** Moves every ongoing execution on: a service they follow changed. */
  advanceAll(op: Op): void {
    for (const x of this.active()) this.advance(x, op);
  }

  /**
   * Moves an execution as far as its steps allow: starts the steps of the first group not yet
   * done, follows its service steps, and derives the execution's phase from its steps.
   * `changed`: the caller already changed the status (a step report), so it is saved anyway.
   */
  private advance(x: TaskExecution, op: Op, changed = false): void {
    const status = x.status!;
    if (isEnded(status.phase)) return;
    const before = toBinary(TaskExecutionStatusSchema, status);
    const stepOf = (id: string) => status.steps.find((s) => s.id === id);
    const setStep = (id: string, phase: TaskExecutionPhase, failureMessage = "") => {
      let st = stepOf(id);
      if (!st) status.steps.push((st = create(TaskExecutionStatus_StepSchema, { id })));
      st.phase = phase;
      st.failureMessage = failureMessage;
    };
    const stopping = x.spec!.desiredPhase === TaskExecutionPhase.STOPPED;
    const failed = () => status.steps.some((s) => s.phase === TaskExecutionPhase.FAILED || (s.phase === TaskExecutionPhase.STOPPED && !stopping));
    const succeeded = (s: TaskExecutionSpec_Step) => stepOf(s.id)?.phase === TaskExecutionPhase.SUCCEEDED;
    let waiting = "";
    for (const group of x.spec!.plan) {
      if (group.steps.every(succeeded)) continue;
      if (!stopping && !failed()) {
        for (const step of group.steps) {
          const st = stepOf(step.id);
          if (step.step.case === "serviceId") this.followService(step.step.value, st, setStep.bind(null, step.id), op);
          else if (!st && op.runner) {
            setStep(step.id, TaskExecutionPhase.PENDING);
            op.send(stepRun(x, step));
          } else if (!st) waiting = op.waiting("run the execution's steps");
        }
        if (group.steps.every(succeeded)) continue;
      }
      break;
    }

    const running = this.runningTaskSteps(x).length > 0;
    if (failed()) {
      status.phase = TaskExecutionPhase.FAILED;
      for (const step of this.runningTaskSteps(x)) op.send(stepStop(x, step));
    } else if (x.spec!.plan.every((g) => g.steps.every(succeeded))) {
      status.phase = TaskExecutionPhase.SUCCEEDED;
    } else if (stopping && !running) {
      status.phase = TaskExecutionPhase.STOPPED;
      for (const st of status.steps) if (!isEnded(st.phase)) st.phase = TaskExecutionPhase.STOPPED;
    } else if (stopping && !op.runner) {
      waiting = op.waiting("stop the execution's steps");
    } else if (status.steps.some((s) => s.phase === TaskExecutionPhase.RUNNING || s.phase === TaskExecutionPhase.SUCCEEDED)) {
      status.phase = TaskExecutionPhase.RUNNING;
    }
    if (status.steps.some((s) => s.phase !== TaskExecutionPhase.PENDING)) x.metadata!.startedAt ??= timestampFromMs(op.now);
    if (isEnded(status.phase)) x.metadata!.completedAt = timestampFromMs(op.now);
    if (waiting || status.failureMessage.startsWith(WAITING)) status.failureMessage = waiting;
    if (!changed && equals(TaskExecutionStatusSchema, fromBinary(TaskExecutionStatusSchema, before), status)) return;
    this.saveStatus(x, op);
  }

  /** A changed status: a new version, saved and told. */
  private saveStatus(x: TaskExecution, op: Op): void {
    x.status!.statusVersion = nextVersion(this.sql);
    this.save(x);
    op.emit("task-execution.status-updated", { taskExecutionId: x.id, taskId: x.metadata!.taskId, phase: executionPhaseName(x.status!.phase) });
  }

  /**
   * A service step: starts the service when first reached, then mirrors its phase. A status
   * of an earlier session (before the restart) says nothing about this one.
   */
  private followService(serviceId: string, st: TaskExecutionStatus_Step | undefined, set: (p: TaskExecutionPhase, msg?: string) => void, op: Op): void {
    const s = this.services.get(serviceId);
    if (!s || s.spec!.desiredPhase === ServicePhase.DELETED) {
      set(TaskExecutionPhase.FAILED, `service ${serviceId} was deleted`);
      return;
    }
    if (!st) {
      set(TaskExecutionPhase.PENDING);
      if (s.spec!.desiredPhase !== ServicePhase.RUNNING || !isActive(s)) this.services.start(s, op, false);
    }
    const { phase, session, failureMessage } = s.status!;
    if (session !== s.spec!.session) return;
    const ref = s.metadata!.reference;
    if (phase === ServicePhase.RUNNING) set(TaskExecutionPhase.SUCCEEDED);
    else if (phase === ServicePhase.STARTING) set(TaskExecutionPhase.RUNNING);
    else if (phase === ServicePhase.FAILED) set(TaskExecutionPhase.FAILED, `service ${ref} failed${failureMessage ? `: ${failureMessage}` : ""}`);
    else if (st?.phase === TaskExecutionPhase.RUNNING) set(TaskExecutionPhase.FAILED, `service ${ref} stopped before it was running`);
  }

  /** ListTaskExecutions: a page after the id `after`. */
  list(req: MessageShape<typeof ListTaskExecutionsRequestSchema>, after: string, limit: number): Page<TaskExecution> {
    const f = req.filter;
    const rows = this.select(
      `SELECT body FROM task_executions WHERE id > ?1
       AND (?2 = '[]' OR task_id IN (SELECT value FROM json_each(?2)))
       AND (?3 = '[]' OR task_reference IN (SELECT value FROM json_each(?3)))
       AND (?4 = '[]' OR phase IN (SELECT value FROM json_each(?4))) ORDER BY id LIMIT ?5`,
      after,
      asJsonList((f?.taskIds ?? []).map((i) => i.toLowerCase())),
      asJsonList(f?.taskReferences ?? []),
      JSON.stringify(f?.phases ?? []),
      limit + 1,
    );
    return pageOf(rows, limit);
  }

  /** The runner's report about a task step. Reports about an execution that no longer exists are ignored. */
  report(msg: Extract<RunnerMessage, { type: "task-step-status" }>, op: Op): void {
    const phase = STEP_PHASES[msg.phase];
    if (phase === undefined) throw new Error(`phase: ${quote(msg.phase)} is not one of ${Object.keys(STEP_PHASES).join(", ")}`);
    const x = this.get(String(msg.executionId));
    if (!x) return;
    const step = x.spec!.plan.flatMap((g) => g.steps).find((s) => s.id === msg.stepId);
    if (!step || step.step.case !== "task") throw new Error(`stepId: ${msg.stepId} is not a task step of execution ${x.id}`);
    let st = x.status!.steps.find((s) => s.id === step.id);
    // Ended steps stay ended: a report resent after a reconnect must not revive them.
    if (st && isEnded(st.phase)) return;
    if (!st) x.status!.steps.push((st = create(TaskExecutionStatus_StepSchema, { id: step.id })));
    st.phase = phase;
    st.failureMessage = msg.failureMessage ?? "";
    mergeOutput(st.output, msg.output);
    if (msg.logUrl && !x.status!.logUrl) x.status!.logUrl = msg.logUrl;
    // A step of an execution that already ended (failed elsewhere, or stopped) settling down.
    if (isEnded(x.status!.phase)) this.saveStatus(x, op);
    else this.advance(x, op, true);
  }

  /** After a runner's hello: the steps of unfinished executions again (run or stop), and what waited for a runner moves. */
  resend(op: Op): void {
    for (const x of this.active()) {
      const stopping = x.spec!.desiredPhase === TaskExecutionPhase.STOPPED;
      for (const step of this.runningTaskSteps(x)) op.send(stopping ? stepStop(x, step) : stepRun(x, step));
      this.advance(x, op);
    }
  }
}
