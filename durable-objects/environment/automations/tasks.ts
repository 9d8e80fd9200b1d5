/**
 * The environment's tasks: commands with dependencies on other tasks and services. A task
 * runs only as an execution (executions.ts), which carries a copy of what it runs, so a task
 * changes or goes without touching executions under way.
 */
import { create, equals, type MessageShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  type CreateTaskRequestSchema,
  type ListTasksRequestSchema,
  type Task,
  TaskSchema,
  TaskSpecSchema,
  type UpdateTaskRequestSchema,
} from "../../../proto/gen/gitpod/v1/environment_automation_pb";
import type { Subject } from "../../../proto/gen/gitpod/v1/identity_pb";
import { checkUuid } from "../../../workers/core/gitpod-ids";
import { alreadyExists, bounded, failedPrecondition, invalidArgument } from "../../../workers/core/errors";
import type { Op } from "./op";
import { AutomationTable, asJsonList, type Page, pageOf } from "./table";
import type { Services } from "./services";
import { findCycle } from "./task-plan";
import { checkEnv, checkNewName, checkReference, checkRunsOn, checkTriggers } from "./validation";

/** A task as a node of the dependency graph: its reference names it in errors. */
export type TaskNode = { reference: string; dependsOn: string[] };

/** Refuses a dependency cycle among the tasks as they would be, naming it by references. */
export function checkAcyclic(field: string, tasks: Map<string, TaskNode>): void {
  const cycle = findCycle(new Map([...tasks].map(([id, t]) => [id, t.dependsOn])));
  if (cycle) throw invalidArgument(field, `dependency cycle ${cycle.map((id) => tasks.get(id)?.reference ?? id).join(" -> ")}: a task cannot depend on itself, directly or not`);
}

export class Tasks extends AutomationTable<typeof TaskSchema> {
  constructor(
    sql: SqlStorage,
    /** What a task may depend on besides tasks. */
    private readonly services: Services,
  ) {
    super(sql, "automation_tasks", TaskSchema, "task");
  }






  /** Tasks that depend on `id` (a task or a service). */
  dependents(id: string): Task[] {
    return this.all().filter((t) => t.dependsOn.includes(id));
  }

  /** CreateTask. */
  create(req: MessageShape<typeof CreateTaskRequestSchema>, id: string, op: Op, creator: Subject): Task {
    const m = req.metadata;
    checkReference("metadata.reference", m?.reference ?? "");
    if (!m?.name) throw invalidArgument("metadata.name", "is required");
    checkTriggers("metadata.triggered_by", m.triggeredBy, true);
    if (!req.spec?.command) throw invalidArgument("spec.command", "is required: the command the task runs");
    checkRunsOn("spec.runs_on", req.spec.runsOn);
    checkEnv("spec.env", req.spec.env);
    const dependsOn = this.checkDependencies("depends_on", req.dependsOn);
    if (this.hasReference(m.reference)) {
      throw alreadyExists(`task with reference ${bounded(m.reference)} in environment ${bounded(op.environmentId)}`);
    }
    const t = create(TaskSchema, {
      id,
      environmentId: op.environmentId,
      metadata: { reference: m.reference, name: m.name, description: m.description, triggeredBy: m.triggeredBy, createdAt: timestampFromMs(op.now), creator },
      spec: req.spec,
      dependsOn,
    });
    this.save(t, false);
    op.created.push(id);
    op.emit("task.created", { taskId: id, reference: m.reference });
    return t;
  }

  /** Dependency ids must name tasks or services of this environment. */
  private checkDependencies(field: string, ids: string[]): string[] {
    return ids.map((raw, i) => {
      const id = checkUuid(`${field}[${i}]`, raw);
      if (!this.get(id) && !this.services.get(id)) throw invalidArgument(`${field}[${i}]`, `${id} is not a task or service of this environment`);
      return id;
    });
  }

  /** UpdateTask: present fields change. */
  update(req: MessageShape<typeof UpdateTaskRequestSchema>, op: Op): void {
    const t = this.require(req.id);
    const m = req.metadata;
    checkNewName(m?.name);
    if (m?.triggeredBy) checkTriggers("metadata.triggered_by.trigger", m.triggeredBy.trigger, true);
    const spec = req.spec;
    if (spec?.command !== undefined && !spec.command) throw invalidArgument("spec.command", "must not be empty");
    checkRunsOn("spec.runs_on", spec?.runsOn);
    checkEnv("spec.env", spec?.env ?? []);
    // A repeated field has no presence: an empty list leaves the dependencies as they are.
    if (req.dependsOn.length) {
      const dependsOn = this.checkDependencies("depends_on", req.dependsOn);
      const graph = new Map(this.all().map((x) => [x.id, { reference: x.metadata!.reference, dependsOn: x.dependsOn }]));
      graph.set(t.id, { reference: t.metadata!.reference, dependsOn });
      checkAcyclic("depends_on", graph);
      t.dependsOn = dependsOn;
    }
    const md = t.metadata!;
    if (m?.name !== undefined) md.name = m.name;
    if (m?.description !== undefined) md.description = m.description;
    if (m?.triggeredBy) md.triggeredBy = m.triggeredBy.trigger;
    const ts = t.spec ?? create(TaskSpecSchema);
    if (spec?.command !== undefined) ts.command = spec.command;
    if (spec?.runsOn) ts.runsOn = spec.runsOn;
    if (spec?.env.length) ts.env = spec.env;
    if (spec?.prebuildRequiresSuccess !== undefined) ts.prebuildRequiresSuccess = spec.prebuildRequiresSuccess;
    t.spec = ts;
    if (equals(TaskSchema, t, this.get(t.id)!)) return;
    this.save(t);
    op.emit("task.updated", { taskId: t.id, reference: md.reference });
  }

  /** DeleteTask: refused while other tasks depend on it. */
  delete(id: string, op: Op): void {
    const t = this.require(id);
    const users = this.dependents(id);
    if (users.length) throw failedPrecondition(`tasks ${users.map((u) => u.metadata!.reference).join(", ")} depend on task ${t.metadata!.reference}: change or delete them first`);
    this.remove(t, op);
  }

  /** Executions of the task keep running: each carries a copy of what it runs. */
  remove(t: Task, op: Op): void {
    this.sql.exec("DELETE FROM automation_tasks WHERE id = ?", t.id);
    op.deleted.push(t.id);
    op.emit("task.deleted", { taskId: t.id, reference: t.metadata!.reference });
  }

  /** ListTasks: a page after the id `after`. */
  list(req: MessageShape<typeof ListTasksRequestSchema>, after: string, limit: number): Page<Task> {
    const f = req.filter;
    const rows = this.select(
      `SELECT body FROM automation_tasks WHERE id > ?1
       AND (?2 = '[]' OR reference IN (SELECT value FROM json_each(?2)))
       AND (?3 = '[]' OR id IN (SELECT value FROM json_each(?3))) ORDER BY id LIMIT ?4`,
      after,
      asJsonList(f?.references ?? []),
      asJsonList((f?.taskIds ?? []).map((i) => i.toLowerCase())),
      limit + 1,
    );
    return pageOf(rows, limit);
  }
}
