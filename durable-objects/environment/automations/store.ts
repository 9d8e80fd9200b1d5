/**
 * The automations of one environment (gitpod.v1.EnvironmentAutomationService): its services,
 * its tasks and their executions, kept in the EnvironmentDO's SQLite storage as protobuf
 * messages. This module is storage and state machines; the object runs every call inside one
 * transaction, publishes the events the call collected in it, and sends the runner messages
 * once it committed. Nothing here claims that something runs: phases move on runner reports.
 */
import { clone, create, type DescMessage, equals, fromBinary, type MessageShape, toBinary, toJson } from "@bufbuild/protobuf";
import { type Duration, timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  type AutomationsFile,
  type AutomationsFile_Service,
  type AutomationsFile_Task,
  type AutomationTrigger,
  AutomationTriggerSchema,
  CreateServiceRequestSchema,
  CreateServiceResponseSchema,
  CreateTaskRequestSchema,
  CreateTaskResponseSchema,
  DeleteServiceRequestSchema,
  DeleteTaskRequestSchema,
  type EnvironmentVariableItem,
  EnvironmentVariableItemSchema,
  GetServiceRequestSchema,
  GetServiceResponseSchema,
  GetTaskExecutionRequestSchema,
  GetTaskExecutionResponseSchema,
  GetTaskRequestSchema,
  GetTaskResponseSchema,
  ListServicesRequestSchema,
  ListServicesResponseSchema,
  ListTaskExecutionsRequestSchema,
  ListTaskExecutionsResponseSchema,
  ListTasksRequestSchema,
  ListTasksResponseSchema,
  type RunsOn,
  RunsOnSchema,
  type Service,
  ServicePhase,
  ServiceRole,
  ServiceSchema,
  ServiceSpec_CommandsSchema,
  ServiceSpecSchema,
  StartServiceRequestSchema,
  StartTaskRequestSchema,
  StartTaskResponseSchema,
  StopServiceRequestSchema,
  StopTaskExecutionRequestSchema,
  type Task,
  type TaskExecution,
  TaskExecutionPhase,
  TaskExecutionSchema,
  type TaskExecutionSpec_Step,
  type TaskExecutionStatus_Step,
  TaskExecutionStatus_StepSchema,
  TaskExecutionStatusSchema,
  TaskSchema,
  TaskSpecSchema,
  UpdateServiceRequestSchema,
  type UpdateServiceRequest_ServiceStatus,
  UpdateTaskRequestSchema,
  UpsertAutomationsFileRequestSchema,
  UpsertAutomationsFileResponseSchema,
} from "../../../proto/gen/gitpod/v1/environment_automation_pb";
import type { Subject } from "../../../proto/gen/gitpod/v1/identity_pb";
import { checkUuid, uuidv7 } from "../../../workers/core/gitpod-ids";
import { alreadyExists, bounded, failedPrecondition, invalidArgument, notFound, permissionDenied, quote } from "../../../workers/core/errors";
import type { Json } from "../../lib/event-log";
import type { RunnerMessage, ServerMessage, ServiceRunPhase, StepRunPhase } from "../../../proto/frames/runner";
import { findCycle, planGroups } from "./task-plan";

// ---- Calls ---------------------------------------------------------------------------------

/** Every RPC of the service, by the local name of its method. */
export type AutomationMethod =
  | "upsertAutomationsFile"
  | "createService"
  | "getService"
  | "listServices"
  | "updateService"
  | "deleteService"
  | "startService"
  | "stopService"
  | "createTask"
  | "getTask"
  | "listTasks"
  | "updateTask"
  | "deleteTask"
  | "startTask"
  | "listTaskExecutions"
  | "getTaskExecution"
  | "stopTaskExecution";

/** Lists and reads: they change nothing, so they need no write permission and no ephemeral check. */
export const isRead = (m: AutomationMethod) => m.startsWith("get") || m.startsWith("list");

/** Who calls, as the Worker established it. */
export interface AutomationCaller {
  subject: { id: string; principal: number };
  /** The caller holds `environment:edit` here, needed to change automations of a non-ephemeral environment. */
  mayEditPermanent: boolean;
  /** The caller holds `runner:connect` here, so it may write a service's status (UpdateService.status). */
  mayReportStatus: boolean;
}

/** One RPC, handed from the Worker to the environment's object. */
export interface AutomationCall {
  method: AutomationMethod;
  /** The request message, in binary. */
  request: Uint8Array;
  /**
   * Ids the Worker registered in D1 for what the call may create: `service:<reference>` and
   * `task:<reference>` for an upsert, `new` for a Create or StartTask.
   */
  newIds?: Record<string, string>;
  /** Lists: the last id of the previous page in this environment ("" for the first), and the page size. */
  after?: string;
  limit?: number;
}

export interface AutomationResult {
  /** The response message, in binary. */
  response: Uint8Array;
  /** Ids the call created and deleted, for the D1 index. */
  created: string[];
  deleted: string[];
  /** Lists: more items follow in this environment. */
  more?: boolean;
}

/** What a call does beyond storage: events for the environment's stream, messages for its runner. */
export class Op {
  readonly events: { type: string; data: Json }[] = [];
  readonly messages: ServerMessage[] = [];
  readonly created: string[] = [];
  readonly deleted: string[] = [];

  constructor(
    readonly environmentId: string,
    /** The name of the connected runner, or null. */
    readonly runner: string | null,
    readonly now = Date.now(),
  ) {}

  emit(type: string, data: Record<string, Json>): void {
    this.events.push({ type, data });
  }

  send(msg: ServerMessage): void {
    if (this.runner) this.messages.push(msg);
  }

  /** The status text of something that cannot move without a runner. */
  waiting(what: string): string {
    return `${WAITING}: none is connected to environment ${this.environmentId}, so nothing can ${what} until one connects`;
  }
}

/** How status texts of things waiting for a runner begin; they are cleared once one is there. */
export const WAITING = "waiting for a runner";

// ---- Validation ----------------------------------------------------------------------------

const REFERENCE = /^[a-zA-Z0-9_-]{1,128}$/;

function checkReference(field: string, v: string): void {
  if (!REFERENCE.test(v)) throw invalidArgument(field, v ? `${quote(v)} must be 1-128 letters, digits, '_' or '-'` : "is required");
}

function checkRunsOn(field: string, r: RunsOn | undefined): void {
  if (r?.target.case === "docker" && !r.target.value.image) throw invalidArgument(`${field}.docker.image`, "is required");
}

function checkEnv(field: string, env: EnvironmentVariableItem[]): void {
  env.forEach((e, i) => {
    if (!e.name) throw invalidArgument(`${field}[${i}].name`, "is required");
  });
}

function checkReadiness(field: string, d: Duration | undefined): void {
  if (d && (d.seconds < 0n || d.seconds > 86_400n || (d.seconds === 86_400n && d.nanos > 0))) {
    throw invalidArgument(field, "must be between 0s and 86400s");
  }
}

/** Trigger names of the file format (the members of AutomationTrigger). */
const TRIGGERS = ["manual", "postMachineStart", "postEnvironmentStart", "postDevcontainerStart", "prebuild", "beforeSnapshot"] as const;
export type TriggerKind = (typeof TRIGGERS)[number];

function checkTriggers(field: string, triggers: AutomationTrigger[], forTask: boolean): void {
  triggers.forEach((t, i) => {
    if (!t.trigger.case) throw invalidArgument(`${field}[${i}]`, "names no trigger");
    if (t.trigger.case === "beforeSnapshot" && !forTask) throw invalidArgument(`${field}[${i}]`, "beforeSnapshot triggers tasks only");
  });
}

/** The file's trigger strings as AutomationTrigger messages. */
function fileTriggers(field: string, names: string[], forTask: boolean): AutomationTrigger[] {
  return names.map((name, i) => {
    const known = TRIGGERS.find((t) => t === name);
    if (!known || (known === "beforeSnapshot" && !forTask)) {
      const allowed = TRIGGERS.filter((t) => forTask || t !== "beforeSnapshot").join(", ");
      throw invalidArgument(`${field}[${i}]`, `${quote(name)} is not a trigger: use one of ${allowed}`);
    }
    return create(AutomationTriggerSchema, { trigger: { case: known, value: true } });
  });
}

const ROLES: Record<string, ServiceRole> = {
  "": ServiceRole.UNSPECIFIED,
  default: ServiceRole.DEFAULT,
  editor: ServiceRole.EDITOR,
  "ai-agent": ServiceRole.AI_AGENT,
};

// ---- Phases -----------------------------------------------------------------------------------

const SERVICE_PHASES: Record<ServiceRunPhase, ServicePhase> = {
  starting: ServicePhase.STARTING,
  running: ServicePhase.RUNNING,
  stopping: ServicePhase.STOPPING,
  stopped: ServicePhase.STOPPED,
  failed: ServicePhase.FAILED,
};

const STEP_PHASES: Record<StepRunPhase, TaskExecutionPhase> = {
  running: TaskExecutionPhase.RUNNING,
  succeeded: TaskExecutionPhase.SUCCEEDED,
  failed: TaskExecutionPhase.FAILED,
  stopped: TaskExecutionPhase.STOPPED,
};

/** A service whose process may be alive: it must be stopped before its spec changes or it goes. */
const isActive = (s: Service) => [ServicePhase.STARTING, ServicePhase.RUNNING, ServicePhase.STOPPING].includes(s.status!.phase);
const isEnded = (p: TaskExecutionPhase) => p === TaskExecutionPhase.SUCCEEDED || p === TaskExecutionPhase.FAILED || p === TaskExecutionPhase.STOPPED;
const servicePhaseName = (p: ServicePhase) => ServicePhase[p];
const executionPhaseName = (p: TaskExecutionPhase) => TaskExecutionPhase[p];

/** Output maps: an empty value removes its key. */
function mergeOutput(into: Record<string, string>, from: Record<string, string> | undefined): void {
  for (const [k, v] of Object.entries(from ?? {})) {
    if (v === "") delete into[k];
    else into[k] = String(v);
  }
}

const DESIRED: Partial<Record<ServicePhase, "running" | "stopped" | "deleted">> = {
  [ServicePhase.RUNNING]: "running",
  [ServicePhase.STOPPED]: "stopped",
  [ServicePhase.DELETED]: "deleted",
};

function serviceDesired(s: Service): ServerMessage {
  const { commands, runsOn, env } = s.spec!;
  return {
    type: "service-desired",
    serviceId: s.id,
    reference: s.metadata!.reference,
    desiredPhase: DESIRED[s.spec!.desiredPhase] ?? "stopped",
    session: s.spec!.session,
    commands: { start: commands?.start ?? "", ...(commands?.ready ? { ready: commands.ready } : {}), ...(commands?.stop ? { stop: commands.stop } : {}) },
    ...(runsOn ? { runsOn: toJson(RunsOnSchema, runsOn) } : {}),
    ...(env.length ? { env: env.map((e) => toJson(EnvironmentVariableItemSchema, e)) } : {}),
  };
}

function stepRun(x: TaskExecution, step: TaskExecutionSpec_Step): ServerMessage {
  const task = step.step.value as { id: string; spec?: Task["spec"] };
  const spec = task.spec;
  return {
    type: "task-step-run",
    executionId: x.id,
    stepId: step.id,
    taskId: task.id,
    label: step.label,
    command: spec?.command ?? "",
    ...(spec?.runsOn ? { runsOn: toJson(RunsOnSchema, spec.runsOn) } : {}),
    ...(spec?.env.length ? { env: spec.env.map((e) => toJson(EnvironmentVariableItemSchema, e)) } : {}),
  };
}

// ---- The store ----------------------------------------------------------------------------------

type Row = { body: ArrayBuffer };
const decode = <D extends DescMessage>(schema: D, row: Row) => fromBinary(schema, new Uint8Array(row.body));
const asJsonList = (v: string[]) => JSON.stringify(v);

export class Automations {
  constructor(private readonly sql: SqlStorage) {}

  /** Spec and status versions: one counter for the environment, so they only grow. */
  private nextVersion(): bigint {
    const row = this.sql
      .exec<{ value: number }>("INSERT INTO automation_version (singleton, value) VALUES (1, 1) ON CONFLICT DO UPDATE SET value = value + 1 RETURNING value")
      .one();
    return BigInt(row.value);
  }

  // ---- Rows

  private service(id: string): Service | undefined {
    const row = this.sql.exec<Row>("SELECT body FROM automation_services WHERE id = ?", id).toArray()[0];
    return row ? decode(ServiceSchema, row) : undefined;
  }

  private requireService(id: string): Service {
    const s = this.service(id);
    if (!s) throw notFound(`service ${bounded(id)}`);
    return s;
  }

  private allServices(): Service[] {
    return this.sql.exec<Row>("SELECT body FROM automation_services ORDER BY id").toArray().map((r) => decode(ServiceSchema, r));
  }

  private saveService(s: Service, fromFile?: boolean): void {
    this.sql.exec(
      `INSERT INTO automation_services (id, reference, from_file, body) VALUES (?1, ?2, coalesce(?3, 0), ?4)
       ON CONFLICT (id) DO UPDATE SET reference = ?2, from_file = coalesce(?3, from_file), body = ?4`,
      s.id,
      s.metadata!.reference,
      fromFile === undefined ? null : Number(fromFile),
      toBinary(ServiceSchema, s),
    );
  }

  private task(id: string): Task | undefined {
    const row = this.sql.exec<Row>("SELECT body FROM automation_tasks WHERE id = ?", id).toArray()[0];
    return row ? decode(TaskSchema, row) : undefined;
  }

  private requireTask(id: string): Task {
    const t = this.task(id);
    if (!t) throw notFound(`task ${bounded(id)}`);
    return t;
  }

  private allTasks(): Task[] {
    return this.sql.exec<Row>("SELECT body FROM automation_tasks ORDER BY id").toArray().map((r) => decode(TaskSchema, r));
  }

  private saveTask(t: Task, fromFile?: boolean): void {
    this.sql.exec(
      `INSERT INTO automation_tasks (id, reference, from_file, body) VALUES (?1, ?2, coalesce(?3, 0), ?4)
       ON CONFLICT (id) DO UPDATE SET reference = ?2, from_file = coalesce(?3, from_file), body = ?4`,
      t.id,
      t.metadata!.reference,
      fromFile === undefined ? null : Number(fromFile),
      toBinary(TaskSchema, t),
    );
  }

  private execution(id: string): TaskExecution | undefined {
    const row = this.sql.exec<Row>("SELECT body FROM task_executions WHERE id = ?", id).toArray()[0];
    return row ? decode(TaskExecutionSchema, row) : undefined;
  }

  private activeExecutions(): TaskExecution[] {
    return this.sql
      .exec<Row>("SELECT body FROM task_executions WHERE phase IN (?, ?) ORDER BY id", TaskExecutionPhase.PENDING, TaskExecutionPhase.RUNNING)
      .toArray()
      .map((r) => decode(TaskExecutionSchema, r));
  }

  private saveExecution(x: TaskExecution, taskReference?: string): void {
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

  /** Tasks that depend on `id`. */
  private dependents(id: string): Task[] {
    return this.allTasks().filter((t) => t.dependsOn.includes(id));
  }

  /** Refuses a dependency cycle among the tasks as they would be, naming it by references. */
  private checkAcyclic(field: string, tasks: Map<string, { reference: string; dependsOn: string[] }>): void {
    const cycle = findCycle(new Map([...tasks].map(([id, t]) => [id, t.dependsOn])));
    if (cycle) throw invalidArgument(field, `dependency cycle ${cycle.map((id) => tasks.get(id)?.reference ?? id).join(" -> ")}: a task cannot depend on itself, directly or not`);
  }

  // ---- Dispatch

  /** Runs one RPC. Refusals are thrown as ConnectErrors before anything is written. */
  call(call: AutomationCall, op: Op, caller: AutomationCaller): AutomationResult {
    const creator = caller.subject as Subject;
    const ok = <D extends DescMessage>(schema: D, message: MessageShape<D>, more?: boolean): AutomationResult => ({
      response: toBinary(schema, message),
      created: op.created,
      deleted: op.deleted,
      ...(more === undefined ? {} : { more }),
    });
    const empty = (): AutomationResult => ({ response: new Uint8Array(), created: op.created, deleted: op.deleted });
    const newId = (key = "new") => call.newIds?.[key] ?? uuidv7(op.now);
    const page = { after: call.after ?? "", limit: call.limit ?? 25 };
    const r = call.request;
    switch (call.method) {
      case "upsertAutomationsFile": {
        const req = fromBinary(UpsertAutomationsFileRequestSchema, r);
        return ok(UpsertAutomationsFileResponseSchema, create(UpsertAutomationsFileResponseSchema, this.upsert(req.automationsFile, op, creator, newId)));
      }
      case "createService":
        return ok(CreateServiceResponseSchema, create(CreateServiceResponseSchema, { service: this.createService(fromBinary(CreateServiceRequestSchema, r), newId(), op, creator) }));
      case "getService":
        return ok(GetServiceResponseSchema, create(GetServiceResponseSchema, { service: this.requireService(fromBinary(GetServiceRequestSchema, r).id) }));
      case "listServices": {
        const { items, more } = this.listServices(fromBinary(ListServicesRequestSchema, r), page.after, page.limit);
        return ok(ListServicesResponseSchema, create(ListServicesResponseSchema, { services: items }), more);
      }
      case "updateService":
        this.updateService(fromBinary(UpdateServiceRequestSchema, r), op, caller);
        return empty();
      case "deleteService": {
        const req = fromBinary(DeleteServiceRequestSchema, r);
        this.deleteService(req.id, req.force, op);
        return empty();
      }
      case "startService":
        this.startService(this.requireService(fromBinary(StartServiceRequestSchema, r).id), op);
        return empty();
      case "stopService":
        this.stopService(this.requireService(fromBinary(StopServiceRequestSchema, r).id), op);
        return empty();
      case "createTask":
        return ok(CreateTaskResponseSchema, create(CreateTaskResponseSchema, { task: this.createTask(fromBinary(CreateTaskRequestSchema, r), newId(), op, creator) }));
      case "getTask":
        return ok(GetTaskResponseSchema, create(GetTaskResponseSchema, { task: this.requireTask(fromBinary(GetTaskRequestSchema, r).id) }));
      case "listTasks": {
        const { items, more } = this.listTasks(fromBinary(ListTasksRequestSchema, r), page.after, page.limit);
        return ok(ListTasksResponseSchema, create(ListTasksResponseSchema, { tasks: items }), more);
      }
      case "updateTask":
        this.updateTask(fromBinary(UpdateTaskRequestSchema, r), op);
        return empty();
      case "deleteTask":
        this.deleteTask(fromBinary(DeleteTaskRequestSchema, r).id, op);
        return empty();
      case "startTask": {
        const taskExecution = this.startTask(fromBinary(StartTaskRequestSchema, r).id, newId(), op, creator);
        return ok(StartTaskResponseSchema, create(StartTaskResponseSchema, { taskExecution }));
      }
      case "listTaskExecutions": {
        const { items, more } = this.listExecutions(fromBinary(ListTaskExecutionsRequestSchema, r), page.after, page.limit);
        return ok(ListTaskExecutionsResponseSchema, create(ListTaskExecutionsResponseSchema, { taskExecutions: items }), more);
      }
      case "getTaskExecution": {
        const id = fromBinary(GetTaskExecutionRequestSchema, r).id;
        const taskExecution = this.execution(id);
        if (!taskExecution) throw notFound(`task execution ${bounded(id)}`);
        return ok(GetTaskExecutionResponseSchema, create(GetTaskExecutionResponseSchema, { taskExecution }));
      }
      case "stopTaskExecution":
        this.stopExecution(fromBinary(StopTaskExecutionRequestSchema, r).id, op);
        return empty();
    }
  }

  // ---- Automations file

  /**
   * Makes the environment's services and tasks match the file, matched by reference (the map
   * keys): missing ones are created, changed ones updated in place (same id), and those an
   * earlier file created that this one no longer has are deleted. Entries made with
   * CreateService/CreateTask are left alone unless the file names their reference. Everything
   * is checked before anything is written, so a bad file changes nothing. A running service
   * whose commands the file changes is restarted (a new session); one the file drops is
   * stopped, then removed.
   */
  private upsert(file: AutomationsFile | undefined, op: Op, creator: Subject, newId: (key: string) => string) {
    const services = Object.entries(file?.services ?? {});
    const tasks = Object.entries(file?.tasks ?? {});
    const wantedServices = services.map(([ref, f]) => fileService(ref, f));
    const wantedTasks = tasks.map(([ref, f]) => fileTask(ref, f));

    const byRef = <T extends Service | Task>(items: T[]) => new Map(items.map((i) => [i.metadata!.reference, i]));
    const fromFile = (table: string) => new Set(this.sql.exec<{ id: string }>(`SELECT id FROM ${table} WHERE from_file = 1`).toArray().map((r) => r.id));
    const oldServices = byRef(this.allServices());
    const oldTasks = byRef(this.allTasks());
    const fileServiceIds = fromFile("automation_services");
    const fileTaskIds = fromFile("automation_tasks");

    // Ids after the change, by reference, for dependsOn; a reference missing here is gone.
    const serviceIds = new Map<string, string>();
    for (const [ref, s] of oldServices) if (!fileServiceIds.has(s.id)) serviceIds.set(ref, s.id);
    for (const [ref] of services) serviceIds.set(ref, oldServices.get(ref)?.id ?? newId(`service:${ref}`));
    const taskIds = new Map<string, string>();
    for (const [ref, t] of oldTasks) if (!fileTaskIds.has(t.id)) taskIds.set(ref, t.id);
    for (const [ref] of tasks) taskIds.set(ref, oldTasks.get(ref)?.id ?? newId(`task:${ref}`));

    const deps = new Map<string, { reference: string; dependsOn: string[] }>();
    for (const [ref, t] of oldTasks) if (taskIds.has(ref)) deps.set(t.id, { reference: ref, dependsOn: t.dependsOn });
    for (const [i, [ref, f]] of tasks.entries()) {
      const field = `automations_file.tasks.${ref}.depends_on`;
      const dependsOn = f.dependsOn.map((d, j) => {
        const task = taskIds.get(d);
        const service = serviceIds.get(d);
        if (task && service) throw invalidArgument(`${field}[${j}]`, `${quote(d)} names both a task and a service: rename one of them`);
        if (!task && !service) throw invalidArgument(`${field}[${j}]`, `${quote(d)} is not a task or service of this file or environment`);
        return (task ?? service)!;
      });
      wantedTasks[i]!.dependsOn = dependsOn;
      deps.set(taskIds.get(ref)!, { reference: ref, dependsOn });
    }
    this.checkAcyclic("automations_file.tasks", deps);

    const goneServices = [...oldServices.values()].filter((s) => !serviceIds.has(s.metadata!.reference));
    const goneTasks = [...oldTasks.values()].filter((t) => !taskIds.has(t.metadata!.reference));
    const goneRefs = new Map([...goneServices, ...goneTasks].map((x) => [x.id, x.metadata!.reference]));
    // Only tasks made with CreateTask can still depend on what goes: the file's resolve to what stays.
    for (const t of deps.values()) {
      const lost = t.dependsOn.filter((d) => goneRefs.has(d)).map((d) => goneRefs.get(d));
      if (lost.length) throw failedPrecondition(`task ${t.reference} (not from the file) depends on ${lost.join(", ")}, which the file no longer has: change or delete that task first`);
    }

    // All checked: write.
    const updatedServiceIds: string[] = [];
    const updatedTaskIds: string[] = [];
    for (const [i, [ref]] of services.entries()) {
      const old = oldServices.get(ref);
      const s = old ? clone(ServiceSchema, old) : this.newService(serviceIds.get(ref)!, op, creator);
      const metaBefore = create(ServiceSchema, { metadata: clone(ServiceSchema, s).metadata });
      Object.assign(s.metadata!, wantedServices[i]!.metadata);
      const metaChanged = !equals(ServiceSchema, metaBefore, create(ServiceSchema, { metadata: s.metadata }));
      const specChanged = setServiceSpec(s, wantedServices[i]!.spec);
      // Named again while it was being deleted: it stays (stopped).
      const revived = old?.spec?.desiredPhase === ServicePhase.DELETED;
      if (revived) s.spec!.desiredPhase = ServicePhase.STOPPED;
      // Unchanged, and the file's already (not one made by CreateService that the file takes over).
      if (old && !metaChanged && !specChanged && !revived && fileServiceIds.has(s.id)) continue;
      if (old) this.touchServiceSpec(s, op, specChanged);
      else op.created.push(s.id);
      this.saveService(s, true);
      op.emit(old ? "service.updated" : "service.created", { serviceId: s.id, reference: ref });
      updatedServiceIds.push(s.id);
    }
    for (const s of goneServices) this.removeService(s, false, op);
    for (const [i, [ref]] of tasks.entries()) {
      const wanted = wantedTasks[i]!;
      const old = oldTasks.get(ref);
      const t = old ? clone(TaskSchema, old) : create(TaskSchema, { id: taskIds.get(ref)!, environmentId: op.environmentId, metadata: { createdAt: timestampFromMs(op.now), creator } });
      Object.assign(t.metadata!, wanted.metadata);
      t.spec = wanted.spec;
      t.dependsOn = wanted.dependsOn;
      if (old && equals(TaskSchema, old, t) && fileTaskIds.has(t.id)) continue;
      if (!old) op.created.push(t.id);
      this.saveTask(t, true);
      op.emit(old ? "task.updated" : "task.created", { taskId: t.id, reference: ref });
      updatedTaskIds.push(t.id);
    }
    for (const t of goneTasks) this.removeTask(t, op);
    return { updatedServiceIds, updatedTaskIds };
  }

  // ---- Services

  private newService(id: string, op: Op, creator: Subject): Service {
    return create(ServiceSchema, {
      id,
      environmentId: op.environmentId,
      metadata: { createdAt: timestampFromMs(op.now), creator },
      spec: { specVersion: this.nextVersion(), desiredPhase: ServicePhase.STOPPED, session: uuidv7(op.now) },
      // Nothing was ever asked to run it.
      status: { statusVersion: this.nextVersion(), phase: ServicePhase.STOPPED },
    });
  }

  private createService(req: MessageShape<typeof CreateServiceRequestSchema>, id: string, op: Op, creator: Subject): Service {
    const m = req.metadata;
    checkReference("metadata.reference", m?.reference ?? "");
    if (!m?.name) throw invalidArgument("metadata.name", "is required");
    checkTriggers("metadata.triggered_by", m.triggeredBy, false);
    if (m.role !== undefined && !(m.role in ServiceRole)) throw invalidArgument("metadata.role", `${m.role} is not a ServiceRole`);
    const spec = req.spec;
    if (!spec?.commands?.start) throw invalidArgument("spec.commands.start", "is required: the command that runs the service");
    checkRunsOn("spec.runs_on", spec.runsOn);
    checkEnv("spec.env", spec.env);
    checkReadiness("spec.readiness_timeout", spec.readinessTimeout);
    const desired = spec.desiredPhase;
    if (![ServicePhase.UNSPECIFIED, ServicePhase.RUNNING, ServicePhase.STOPPED].includes(desired)) {
      throw invalidArgument("spec.desired_phase", `${servicePhaseName(desired) ?? desired} cannot be asked for at creation: use SERVICE_PHASE_RUNNING or SERVICE_PHASE_STOPPED`);
    }
    if (this.sql.exec("SELECT 1 FROM automation_services WHERE reference = ?", m.reference).toArray().length) {
      throw alreadyExists(`service with reference ${bounded(m.reference)} in environment ${bounded(op.environmentId)}`);
    }
    const s = this.newService(id, op, creator);
    Object.assign(s.metadata!, { reference: m.reference, name: m.name, description: m.description, triggeredBy: m.triggeredBy, role: m.role });
    setServiceSpec(s, { commands: spec.commands, runsOn: spec.runsOn, env: spec.env, readinessTimeout: spec.readinessTimeout });
    this.saveService(s, false);
    op.created.push(s.id);
    op.emit("service.created", { serviceId: s.id, reference: m.reference });
    if (desired === ServicePhase.RUNNING) this.startService(s, op);
    return this.service(s.id)!;
  }

  /** A new spec version; with `restart`, a new session too, so the runner restarts the service. */
  private touchServiceSpec(s: Service, op: Op, restart: boolean): void {
    s.spec!.specVersion = this.nextVersion();
    if (restart) s.spec!.session = uuidv7(op.now);
    this.noteWaiting(s, op);
    op.send(serviceDesired(s));
  }

  /**
   * The service's status text while its desired phase cannot be reached for want of a runner;
   * cleared once one is connected. Returns whether the status changed.
   */
  private noteWaiting(s: Service, op: Op): boolean {
    const st = s.status!;
    const desired = s.spec!.desiredPhase;
    let note = "";
    if (!op.runner) {
      if (desired === ServicePhase.RUNNING && !isActive(s)) note = op.waiting("start the service");
      else if (desired !== ServicePhase.RUNNING && isActive(s)) note = op.waiting("stop the service");
    }
    if (note === st.failureMessage) return false;
    // Clear only our own note: a failure the runner reported stays until the next report.
    if (!note && !st.failureMessage.startsWith(WAITING)) return false;
    st.failureMessage = note;
    st.statusVersion = this.nextVersion();
    return true;
  }

  /** `advance` false: called while an execution is being advanced, which must not be re-entered. */
  private setDesired(s: Service, phase: ServicePhase, op: Op, restart: boolean, advance = true): void {
    s.spec!.desiredPhase = phase;
    this.touchServiceSpec(s, op, restart);
    this.saveService(s);
    op.emit("service.updated", { serviceId: s.id, reference: s.metadata!.reference, desiredPhase: servicePhaseName(phase) });
    if (advance) this.advanceAll(op);
  }

  /**
   * StartService: no-op when it is already starting or running, or asked to run with no report
   * on that session yet (a trigger and a task depending on it start it once, not twice); an
   * ended service gets a new session.
   */
  private startService(s: Service, op: Op, advance = true): void {
    if (s.spec!.desiredPhase === ServicePhase.DELETED) throw failedPrecondition(`service ${s.metadata!.reference} is being deleted`);
    if (s.spec!.desiredPhase === ServicePhase.RUNNING && (isActive(s) || s.status!.session !== s.spec!.session)) return;
    this.setDesired(s, ServicePhase.RUNNING, op, !isActive(s), advance);
  }

  /** StopService: no-op when it is already meant to stop. */
  private stopService(s: Service, op: Op): void {
    if (s.spec!.desiredPhase !== ServicePhase.RUNNING) return;
    this.setDesired(s, ServicePhase.STOPPED, op, false);
  }

  /** UpdateService: present fields change; the spec only while the service is stopped. */
  private updateService(req: MessageShape<typeof UpdateServiceRequestSchema>, op: Op, caller: AutomationCaller): void {
    const s = this.requireService(req.id);
    const ref = s.metadata!.reference;
    const { metadata: m, spec } = req;
    if (m?.name !== undefined && !m.name) throw invalidArgument("metadata.name", "must not be empty");
    if (m?.name !== undefined && m.name.length > 128) throw invalidArgument("metadata.name", "must be at most 128 characters");
    if (m?.triggeredBy) checkTriggers("metadata.triggered_by.trigger", m.triggeredBy.trigger, false);
    if (m?.role !== undefined && !(m.role in ServiceRole)) throw invalidArgument("metadata.role", `${m.role} is not a ServiceRole`);
    if (spec?.commands?.start !== undefined && !spec.commands.start) throw invalidArgument("spec.commands.start", "must not be empty");
    checkRunsOn("spec.runs_on", spec?.runsOn);
    checkEnv("spec.env", spec?.env ?? []);
    checkReadiness("spec.readiness_timeout", spec?.readinessTimeout);
    const specChange = !!spec && !!(spec.commands || spec.runsOn || spec.env.length || spec.readinessTimeout);
    if (specChange && (isActive(s) || s.spec!.desiredPhase === ServicePhase.RUNNING)) {
      throw failedPrecondition(`service ${ref} is ${servicePhaseName(s.status!.phase)} and meant to run: stop it (StopService) before changing its spec`);
    }
    const status = req.status && statusReport(req.status);
    if (status && !caller.mayReportStatus) {
      throw permissionDenied("status: a service's status is reported by the environment's runner; runner:connect in the environment is needed to set it");
    }

    if (m) {
      const md = s.metadata!;
      if (m.name !== undefined) md.name = m.name;
      if (m.description !== undefined) md.description = m.description;
      if (m.triggeredBy) md.triggeredBy = m.triggeredBy.trigger;
      if (m.role !== undefined) md.role = m.role;
    }
    if (spec && specChange) {
      const c = s.spec!.commands ?? create(ServiceSpec_CommandsSchema);
      if (spec.commands?.start !== undefined) c.start = spec.commands.start;
      if (spec.commands?.ready !== undefined) c.ready = spec.commands.ready;
      if (spec.commands?.stop !== undefined) c.stop = spec.commands.stop;
      s.spec!.commands = c;
      if (spec.runsOn) s.spec!.runsOn = spec.runsOn;
      if (spec.env.length) s.spec!.env = spec.env;
      if (spec.readinessTimeout) s.spec!.readinessTimeout = spec.readinessTimeout;
      this.touchServiceSpec(s, op, true);
    }
    if (m || specChange) {
      this.saveService(s);
      op.emit("service.updated", { serviceId: s.id, reference: ref });
    }
    if (status) this.applyServiceStatus(s, status, op);
  }

  /**
   * DeleteService: a service that may be running is stopped first and removed once its runner
   * reports it stopped; one that is not, or with `force`, is removed at once.
   */
  private deleteService(id: string, force: boolean, op: Op): void {
    const s = this.requireService(id);
    const users = this.dependents(id);
    if (users.length) {
      throw failedPrecondition(`tasks ${users.map((t) => t.metadata!.reference).join(", ")} depend on service ${s.metadata!.reference}: change or delete them first`);
    }
    this.removeService(s, force, op);
  }

  private removeService(s: Service, force: boolean, op: Op): void {
    if (force || !isActive(s)) {
      this.dropService(s, op);
      this.advanceAll(op);
    } else if (s.spec!.desiredPhase !== ServicePhase.DELETED) {
      this.setDesired(s, ServicePhase.DELETED, op, false);
    }
  }

  /** Removes the service now; its runner is told to forget it. */
  private dropService(s: Service, op: Op): void {
    this.sql.exec("DELETE FROM automation_services WHERE id = ?", s.id);
    s.spec!.desiredPhase = ServicePhase.DELETED;
    op.send(serviceDesired(s));
    op.deleted.push(s.id);
    op.emit("service.deleted", { serviceId: s.id, reference: s.metadata!.reference });
  }

  /** A status report (runner or UpdateService.status). */
  private applyServiceStatus(s: Service, report: ServiceReport, op: Op): void {
    const st = s.status!;
    if (report.phase !== undefined) st.phase = report.phase;
    if (report.failureMessage !== undefined || report.phase !== undefined) st.failureMessage = report.failureMessage ?? "";
    if (report.logUrl) st.logUrl = report.logUrl;
    // A report without a session is about the current one.
    st.session = report.session || s.spec!.session;
    mergeOutput(st.output, report.output);
    st.statusVersion = this.nextVersion();
    if (s.spec!.desiredPhase === ServicePhase.DELETED && !isActive(s)) {
      this.dropService(s, op);
    } else {
      this.noteWaiting(s, op);
      this.saveService(s);
      op.emit("service.status-updated", { serviceId: s.id, reference: s.metadata!.reference, phase: servicePhaseName(st.phase) });
    }
    this.advanceAll(op);
  }

  private listServices(req: MessageShape<typeof ListServicesRequestSchema>, after: string, limit: number) {
    const f = req.filter;
    const rows = this.sql
      .exec<Row>(
        `SELECT body FROM automation_services WHERE id > ?1
         AND (?2 = '[]' OR reference IN (SELECT value FROM json_each(?2)))
         AND (?3 = '[]' OR id IN (SELECT value FROM json_each(?3))) ORDER BY id`,
        after,
        asJsonList(f?.references ?? []),
        asJsonList((f?.serviceIds ?? []).map((i) => i.toLowerCase())),
      )
      .toArray()
      .map((r) => decode(ServiceSchema, r))
      .filter((s) => !f?.roles.length || f.roles.includes(s.metadata!.role));
    return { items: rows.slice(0, limit), more: rows.length > limit };
  }

  // ---- Tasks

  private createTask(req: MessageShape<typeof CreateTaskRequestSchema>, id: string, op: Op, creator: Subject): Task {
    const m = req.metadata;
    checkReference("metadata.reference", m?.reference ?? "");
    if (!m?.name) throw invalidArgument("metadata.name", "is required");
    checkTriggers("metadata.triggered_by", m.triggeredBy, true);
    if (!req.spec?.command) throw invalidArgument("spec.command", "is required: the command the task runs");
    checkRunsOn("spec.runs_on", req.spec.runsOn);
    checkEnv("spec.env", req.spec.env);
    const dependsOn = this.checkDependencies("depends_on", req.dependsOn);
    if (this.sql.exec("SELECT 1 FROM automation_tasks WHERE reference = ?", m.reference).toArray().length) {
      throw alreadyExists(`task with reference ${bounded(m.reference)} in environment ${bounded(op.environmentId)}`);
    }
    const t = create(TaskSchema, {
      id,
      environmentId: op.environmentId,
      metadata: { reference: m.reference, name: m.name, description: m.description, triggeredBy: m.triggeredBy, createdAt: timestampFromMs(op.now), creator },
      spec: req.spec,
      dependsOn,
    });
    this.saveTask(t, false);
    op.created.push(id);
    op.emit("task.created", { taskId: id, reference: m.reference });
    return t;
  }

  /** Dependency ids must name tasks or services of this environment. */
  private checkDependencies(field: string, ids: string[]): string[] {
    return ids.map((raw, i) => {
      const id = checkUuid(`${field}[${i}]`, raw);
      if (!this.task(id) && !this.service(id)) throw invalidArgument(`${field}[${i}]`, `${id} is not a task or service of this environment`);
      return id;
    });
  }

  private updateTask(req: MessageShape<typeof UpdateTaskRequestSchema>, op: Op): void {
    const t = this.requireTask(req.id);
    const m = req.metadata;
    if (m?.name !== undefined && !m.name) throw invalidArgument("metadata.name", "must not be empty");
    if (m?.name !== undefined && m.name.length > 128) throw invalidArgument("metadata.name", "must be at most 128 characters");
    if (m?.triggeredBy) checkTriggers("metadata.triggered_by.trigger", m.triggeredBy.trigger, true);
    const spec = req.spec;
    if (spec?.command !== undefined && !spec.command) throw invalidArgument("spec.command", "must not be empty");
    checkRunsOn("spec.runs_on", spec?.runsOn);
    checkEnv("spec.env", spec?.env ?? []);
    // A repeated field has no presence: an empty list leaves the dependencies as they are.
    if (req.dependsOn.length) {
      const dependsOn = this.checkDependencies("depends_on", req.dependsOn);
      const graph = new Map(this.allTasks().map((x) => [x.id, { reference: x.metadata!.reference, dependsOn: x.dependsOn }]));
      graph.set(t.id, { reference: t.metadata!.reference, dependsOn });
      this.checkAcyclic("depends_on", graph);
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
    if (equals(TaskSchema, t, this.task(t.id)!)) return;
    this.saveTask(t);
    op.emit("task.updated", { taskId: t.id, reference: md.reference });
  }

  private deleteTask(id: string, op: Op): void {
    const t = this.requireTask(id);
    const users = this.dependents(id);
    if (users.length) throw failedPrecondition(`tasks ${users.map((u) => u.metadata!.reference).join(", ")} depend on task ${t.metadata!.reference}: change or delete them first`);
    this.removeTask(t, op);
  }

  /** Executions of the task keep running: each carries a copy of what it runs. */
  private removeTask(t: Task, op: Op): void {
    this.sql.exec("DELETE FROM automation_tasks WHERE id = ?", t.id);
    op.deleted.push(t.id);
    op.emit("task.deleted", { taskId: t.id, reference: t.metadata!.reference });
  }

  private listTasks(req: MessageShape<typeof ListTasksRequestSchema>, after: string, limit: number) {
    const f = req.filter;
    const rows = this.sql
      .exec<Row>(
        `SELECT body FROM automation_tasks WHERE id > ?1
         AND (?2 = '[]' OR reference IN (SELECT value FROM json_each(?2)))
         AND (?3 = '[]' OR id IN (SELECT value FROM json_each(?3))) ORDER BY id LIMIT ?4`,
        after,
        asJsonList(f?.references ?? []),
        asJsonList((f?.taskIds ?? []).map((i) => i.toLowerCase())),
        limit + 1,
      )
      .toArray()
      .map((r) => decode(TaskSchema, r));
    return { items: rows.slice(0, limit), more: rows.length > limit };
  }

  // ---- Task executions

  /**
   * StartTask: an execution whose plan runs everything the task depends on first, in groups
   * (tasks/services of a group run concurrently, groups one after another). Service steps are
   * done once their service runs; task steps are sent to the runner.
   */
  private startTask(taskId: string, id: string, op: Op, creator: Subject, startedBy = "manual"): TaskExecution {
    const task = this.requireTask(taskId);
    const tasks = new Map(this.allTasks().map((t) => [t.id, t]));
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
        const s = this.service(automationId);
        if (!s) throw failedPrecondition(`task ${task.metadata!.reference} depends on ${automationId}, which no longer exists: update its depends_on`);
        return { id: stepId, label: s.metadata!.name || s.metadata!.reference, step: { case: "serviceId" as const, value: s.id } };
      }),
    }));
    const x = create(TaskExecutionSchema, {
      id,
      metadata: { taskId: task.id, environmentId: op.environmentId, createdAt: timestampFromMs(op.now), creator, startedBy },
      spec: { plan, desiredPhase: TaskExecutionPhase.RUNNING },
      status: { statusVersion: this.nextVersion(), phase: TaskExecutionPhase.PENDING },
    });
    this.saveExecution(x, task.metadata!.reference);
    op.created.push(id);
    op.emit("task-execution.created", { taskExecutionId: id, taskId: task.id, reference: task.metadata!.reference });
    this.advance(x, op);
    return this.execution(id)!;
  }

  /** StopTaskExecution: running task steps are told to stop; the execution is STOPPED once none runs. */
  private stopExecution(id: string, op: Op): void {
    const x = this.execution(id);
    if (!x) throw notFound(`task execution ${bounded(id)}`);
    if (isEnded(x.status!.phase) || x.spec!.desiredPhase === TaskExecutionPhase.STOPPED) return;
    x.spec!.desiredPhase = TaskExecutionPhase.STOPPED;
    this.saveExecution(x);
    op.emit("task-execution.updated", { taskExecutionId: id, taskId: x.metadata!.taskId, desiredPhase: executionPhaseName(TaskExecutionPhase.STOPPED) });
    for (const step of this.runningTaskSteps(x)) op.send({ type: "task-step-stop", executionId: id, stepId: step.id });
    this.advance(x, op);
  }

  /** Task steps sent to the runner that have not ended. */
  private runningTaskSteps(x: TaskExecution): TaskExecutionSpec_Step[] {
    const live = new Set(x.status!.steps.filter((s) => !isEnded(s.phase)).map((s) => s.id));
    return x.spec!.plan.flatMap((g) => g.steps).filter((s) => s.step.case === "task" && live.has(s.id));
  }

  private advanceAll(op: Op): void {
    for (const x of this.activeExecutions()) this.advance(x, op);
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
      for (const step of this.runningTaskSteps(x)) op.send({ type: "task-step-stop", executionId: x.id, stepId: step.id });
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
    status.statusVersion = this.nextVersion();
    this.saveExecution(x);
    op.emit("task-execution.status-updated", { taskExecutionId: x.id, taskId: x.metadata!.taskId, phase: executionPhaseName(status.phase) });
  }

  /**
   * A service step: starts the service when first reached, then mirrors its phase. A status
   * of an earlier session (before the restart) says nothing about this one.
   */
  private followService(serviceId: string, st: TaskExecutionStatus_Step | undefined, set: (p: TaskExecutionPhase, msg?: string) => void, op: Op): void {
    const s = this.service(serviceId);
    if (!s || s.spec!.desiredPhase === ServicePhase.DELETED) {
      set(TaskExecutionPhase.FAILED, `service ${serviceId} was deleted`);
      return;
    }
    if (!st) {
      set(TaskExecutionPhase.PENDING);
      if (s.spec!.desiredPhase !== ServicePhase.RUNNING || !isActive(s)) this.startService(s, op, false);
    }
    const { phase, session, failureMessage } = s.status!;
    if (session !== s.spec!.session) return;
    const ref = s.metadata!.reference;
    if (phase === ServicePhase.RUNNING) set(TaskExecutionPhase.SUCCEEDED);
    else if (phase === ServicePhase.STARTING) set(TaskExecutionPhase.RUNNING);
    else if (phase === ServicePhase.FAILED) set(TaskExecutionPhase.FAILED, `service ${ref} failed${failureMessage ? `: ${failureMessage}` : ""}`);
    else if (st?.phase === TaskExecutionPhase.RUNNING) set(TaskExecutionPhase.FAILED, `service ${ref} stopped before it was running`);
  }

  private listExecutions(req: MessageShape<typeof ListTaskExecutionsRequestSchema>, after: string, limit: number) {
    const f = req.filter;
    const rows = this.sql
      .exec<Row>(
        `SELECT body FROM task_executions WHERE id > ?1
         AND (?2 = '[]' OR task_id IN (SELECT value FROM json_each(?2)))
         AND (?3 = '[]' OR task_reference IN (SELECT value FROM json_each(?3)))
         AND (?4 = '[]' OR phase IN (SELECT value FROM json_each(?4))) ORDER BY id LIMIT ?5`,
        after,
        asJsonList((f?.taskIds ?? []).map((i) => i.toLowerCase())),
        asJsonList(f?.taskReferences ?? []),
        JSON.stringify(f?.phases ?? []),
        limit + 1,
      )
      .toArray()
      .map((r) => decode(TaskExecutionSchema, r));
    return { items: rows.slice(0, limit), more: rows.length > limit };
  }

  // ---- Triggers

  /** Services and tasks whose `triggeredBy` names one of `kinds`. */
  triggered(kinds: readonly TriggerKind[]): { services: Service[]; tasks: Task[] } {
    const fires = (ts: AutomationTrigger[]) => ts.some((t) => t.trigger.case !== undefined && kinds.includes(t.trigger.case));
    return {
      services: this.allServices().filter((s) => fires(s.metadata!.triggeredBy) && s.spec!.desiredPhase !== ServicePhase.DELETED),
      tasks: this.allTasks().filter((t) => fires(t.metadata!.triggeredBy)),
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
    for (const { id } of services) this.startService(this.service(id)!, op);
    for (const t of tasks) {
      const by = t.metadata!.triggeredBy.find((x) => x.trigger.case !== undefined && kinds.includes(x.trigger.case))!.trigger.case!;
      this.startTask(t.id, uuidv7(op.now), op, creator, by);
    }
  }

  /** The environment stops or goes: services meant to run are stopped (StopService), ongoing executions too (StopTaskExecution). */
  environmentStopped(op: Op): void {
    // Executions first: one still running would start the services it waits for again.
    for (const x of this.activeExecutions()) this.stopExecution(x.id, op);
    for (const { id } of this.allServices()) this.stopService(this.service(id)!, op);
  }

  // ---- The runner

  /** A runner report about a service or a task step. Reports about what no longer exists are ignored. */
  report(msg: Extract<RunnerMessage, { type: "service-status" | "task-step-status" }>, op: Op): void {
    if (msg.type === "service-status") {
      const phase = SERVICE_PHASES[msg.phase];
      if (phase === undefined) throw new Error(`phase: ${quote(msg.phase)} is not one of ${Object.keys(SERVICE_PHASES).join(", ")}`);
      const s = this.service(String(msg.serviceId));
      // A report about an earlier session (a process that was replaced) changes nothing.
      if (!s || (msg.session && msg.session !== s.spec!.session)) return;
      this.applyServiceStatus(s, { ...msg, phase }, op);
      return;
    }
    const phase = STEP_PHASES[msg.phase];
    if (phase === undefined) throw new Error(`phase: ${quote(msg.phase)} is not one of ${Object.keys(STEP_PHASES).join(", ")}`);
    const x = this.execution(String(msg.executionId));
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
    if (isEnded(x.status!.phase)) {
      // A step of an execution that already ended (failed elsewhere, or stopped) settling down.
      x.status!.statusVersion = this.nextVersion();
      this.saveExecution(x);
      op.emit("task-execution.status-updated", { taskExecutionId: x.id, taskId: x.metadata!.taskId, phase: executionPhaseName(x.status!.phase) });
      return;
    }
    this.advance(x, op, true);
  }

  /**
   * After a runner's hello: every service's desired state and the complete set, then the
   * steps of unfinished executions again (run or stop), and whatever waited for a runner moves.
   */
  resync(op: Op): void {
    const services = this.allServices();
    for (const s of services) {
      op.send(serviceDesired(s));
      if (this.noteWaiting(s, op)) {
        this.saveService(s);
        op.emit("service.status-updated", { serviceId: s.id, reference: s.metadata!.reference, phase: servicePhaseName(s.status!.phase) });
      }
    }
    op.send({ type: "services-synced", serviceIds: services.map((s) => s.id) });
    for (const x of this.activeExecutions()) {
      const stopping = x.spec!.desiredPhase === TaskExecutionPhase.STOPPED;
      for (const step of this.runningTaskSteps(x)) op.send(stopping ? { type: "task-step-stop", executionId: x.id, stepId: step.id } : stepRun(x, step));
      this.advance(x, op);
    }
  }
}

// ---- Helpers --------------------------------------------------------------------------------------

interface ServiceReport {
  phase?: ServicePhase;
  failureMessage?: string;
  logUrl?: string;
  session?: string;
  output?: Record<string, string>;
}

function statusReport(s: UpdateServiceRequest_ServiceStatus): ServiceReport {
  if (s.phase !== undefined && !(s.phase in ServicePhase)) throw invalidArgument("status.phase", `${s.phase} is not a ServicePhase`);
  return { phase: s.phase, failureMessage: s.failureMessage, logUrl: s.logUrl, session: s.session, output: s.output };
}

type ServiceSpecPart = Pick<NonNullable<Service["spec"]>, "commands" | "runsOn" | "env" | "readinessTimeout">;

/** Sets what the file or a create specifies of a service's spec; true when that changed it. */
function setServiceSpec(s: Service, part: ServiceSpecPart): boolean {
  const before = create(ServiceSpecSchema, { commands: s.spec!.commands, runsOn: s.spec!.runsOn, env: s.spec!.env, readinessTimeout: s.spec!.readinessTimeout });
  const after = create(ServiceSpecSchema, part);
  Object.assign(s.spec!, { commands: part.commands, runsOn: part.runsOn, env: part.env ?? [], readinessTimeout: part.readinessTimeout });
  return !equals(ServiceSpecSchema, before, after);
}

/** A file's service entry, checked; errors name it as `automations_file.services.<reference>`. */
function fileService(ref: string, f: AutomationsFile_Service) {
  const at = `automations_file.services.${ref}`;
  checkReference(at, ref);
  if (!f.name) throw invalidArgument(`${at}.name`, "is required");
  if (!f.commands?.start) throw invalidArgument(`${at}.commands.start`, "is required: the command that runs the service");
  checkRunsOn(`${at}.runs_on`, f.runsOn);
  checkReadiness(`${at}.readiness_timeout`, f.readinessTimeout);
  const role = ROLES[f.role];
  if (role === undefined) throw invalidArgument(`${at}.role`, `${quote(f.role)} is not a role: use default, editor or ai-agent`);
  return {
    metadata: { reference: ref, name: f.name, description: f.description, triggeredBy: fileTriggers(`${at}.triggered_by`, f.triggeredBy, false), role },
    spec: { commands: f.commands, runsOn: f.runsOn, env: [], readinessTimeout: f.readinessTimeout } satisfies ServiceSpecPart,
  };
}

/** A file's task entry, checked; `dependsOn` is resolved to ids by the caller. */
function fileTask(ref: string, f: AutomationsFile_Task) {
  const at = `automations_file.tasks.${ref}`;
  checkReference(at, ref);
  if (!f.name) throw invalidArgument(`${at}.name`, "is required");
  if (!f.command) throw invalidArgument(`${at}.command`, "is required: the command the task runs");
  checkRunsOn(`${at}.runs_on`, f.runsOn);
  return {
    metadata: { reference: ref, name: f.name, description: f.description, triggeredBy: fileTriggers(`${at}.triggered_by`, f.triggeredBy, true) },
    spec: create(TaskSpecSchema, { command: f.command, runsOn: f.runsOn, prebuildRequiresSuccess: f.prebuildRequiresSuccess }),
    dependsOn: [] as string[],
  };
}
