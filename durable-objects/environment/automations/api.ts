/**
 * What the Worker calls for gitpod.v1.EnvironmentAutomationService on an environment's
 * object: `EnvironmentDO.automations(caller)`, one method per RPC. Messages cross as they are
 * (structured clone); refusals as Outcomes, since a thrown ConnectError would lose its code.
 * Every answer is null when the environment does not exist.
 */
import { RpcTarget } from "cloudflare:workers";
import { create } from "@bufbuild/protobuf";
import type {
  CreateServiceRequest,
  CreateServiceResponse,
  CreateTaskRequest,
  CreateTaskResponse,
  DeleteServiceRequest,
  DeleteTaskRequest,
  GetServiceRequest,
  GetServiceResponse,
  GetTaskExecutionRequest,
  GetTaskExecutionResponse,
  GetTaskRequest,
  GetTaskResponse,
  ListServicesRequest,
  ListTaskExecutionsRequest,
  ListTasksRequest,
  Service,
  StartServiceRequest,
  StartTaskRequest,
  StartTaskResponse,
  StopServiceRequest,
  StopTaskExecutionRequest,
  Task,
  TaskExecution,
  UpdateServiceRequest,
  UpdateTaskRequest,
  UpsertAutomationsFileRequest,
  UpsertAutomationsFileResponse,
} from "../../../proto/gen/gitpod/v1/environment_automation_pb";
import { CreateServiceResponseSchema, CreateTaskResponseSchema, GetServiceResponseSchema, GetTaskExecutionResponseSchema, GetTaskResponseSchema, StartTaskResponseSchema, UpsertAutomationsFileResponseSchema } from "../../../proto/gen/gitpod/v1/environment_automation_pb";
import { type Principal, type Subject, SubjectSchema } from "../../../proto/gen/gitpod/v1/identity_pb";
import { uuidv7 } from "../../../workers/core/gitpod-ids";
import type { Outcome } from "../../../workers/core/outcome";
import type { EnvironmentAutomations } from "./automations";
import { upsertAutomationsFile } from "./file";
import type { Op } from "./op";
import type { AutomationStores } from "./stores";
import type { Page } from "./table";

export type { Page } from "./table";

/** Who calls, as the Worker established it. */
export interface AutomationCaller {
  subject: { id: string; principal: Principal };
  /** The caller holds `environment:edit` here, needed to change automations of a non-ephemeral environment. */
  mayEditPermanent: boolean;
  /** The caller holds `runner:connect` here, so it may write a service's status (UpdateService.status). */
  mayReportStatus: boolean;
}

/** The answer of a call that changes automations, with the ids it created and deleted, for the D1 index. */
export interface Written<T> {
  response: T;
  created: string[];
  deleted: string[];
}

/** A call's answer across RPC: null when the environment does not exist. */
type Answer<T> = Promise<Outcome<T | null>>;

export class AutomationsApi extends RpcTarget {
  constructor(
    private readonly automations: EnvironmentAutomations,
    private readonly caller: AutomationCaller,
  ) {
    super();
  }

  /** The caller, as the subject that creates things. */
  private get creator(): Subject {
    return create(SubjectSchema, this.caller.subject);
  }

  /** A read: any caller the Worker let through. */
  private read<T>(fn: (store: AutomationStores, op: Op) => T): Answer<T> {
    return this.automations.call(false, this.caller, fn);
  }

  /** A change: in a non-ephemeral environment it runs commands there, so it needs `environment:edit`. */
  private write<T>(fn: (store: AutomationStores, op: Op) => T): Answer<Written<T>> {
    return this.automations.call(true, this.caller, (store, op) => ({ response: fn(store, op), created: op.created, deleted: op.deleted }));
  }

  /** UpsertAutomationsFile; `newIds` (`service:<reference>`, `task:<reference>`): ids the Worker indexed for entries made now. */
  upsertAutomationsFile(req: UpsertAutomationsFileRequest, newIds: Record<string, string>): Answer<Written<UpsertAutomationsFileResponse>> {
    return this.write((store, op) => {
      const updated = upsertAutomationsFile(store, req.automationsFile, op, this.creator, (key) => newIds[key] ?? uuidv7(op.now));
      return create(UpsertAutomationsFileResponseSchema, updated);
    });
  }

  /** CreateService, as `id` (indexed by the Worker). */
  createService(req: CreateServiceRequest, id: string): Answer<Written<CreateServiceResponse>> {
    return this.write((store, op) => create(CreateServiceResponseSchema, { service: store.services.create(req, id, op, this.creator) }));
  }

  getService(req: GetServiceRequest): Answer<GetServiceResponse> {
    return this.read((store) => create(GetServiceResponseSchema, { service: store.services.require(req.id) }));
  }

  /** ListServices here: the page after the id `after`. */
  listServices(req: ListServicesRequest, after: string, limit: number): Answer<Page<Service>> {
    return this.read((store) => store.services.list(req, after, limit));
  }

  updateService(req: UpdateServiceRequest): Answer<Written<void>> {
    return this.write((store, op) => store.services.update(req, op, this.caller.mayReportStatus));
  }

  deleteService(req: DeleteServiceRequest): Answer<Written<void>> {
    return this.write((store, op) => store.services.delete(req.id, req.force, op));
  }

  startService(req: StartServiceRequest): Answer<Written<void>> {
    return this.write((store, op) => store.services.start(store.services.require(req.id), op));
  }

  stopService(req: StopServiceRequest): Answer<Written<void>> {
    return this.write((store, op) => store.services.stop(store.services.require(req.id), op));
  }

  /** CreateTask, as `id` (indexed by the Worker). */
  createTask(req: CreateTaskRequest, id: string): Answer<Written<CreateTaskResponse>> {
    return this.write((store, op) => create(CreateTaskResponseSchema, { task: store.tasks.create(req, id, op, this.creator) }));
  }

  getTask(req: GetTaskRequest): Answer<GetTaskResponse> {
    return this.read((store) => create(GetTaskResponseSchema, { task: store.tasks.require(req.id) }));
  }

  /** ListTasks here: the page after the id `after`. */
  listTasks(req: ListTasksRequest, after: string, limit: number): Answer<Page<Task>> {
    return this.read((store) => store.tasks.list(req, after, limit));
  }

  updateTask(req: UpdateTaskRequest): Answer<Written<void>> {
    return this.write((store, op) => store.tasks.update(req, op));
  }

  deleteTask(req: DeleteTaskRequest): Answer<Written<void>> {
    return this.write((store, op) => store.tasks.delete(req.id, op));
  }

  /** StartTask: a new execution, as `executionId` (indexed by the Worker). */
  startTask(req: StartTaskRequest, executionId: string): Answer<Written<StartTaskResponse>> {
    return this.write((store, op) => create(StartTaskResponseSchema, { taskExecution: store.executions.start(req.id, executionId, op, this.creator) }));
  }

  /** ListTaskExecutions here: the page after the id `after`. */
  listTaskExecutions(req: ListTaskExecutionsRequest, after: string, limit: number): Answer<Page<TaskExecution>> {
    return this.read((store) => store.executions.list(req, after, limit));
  }

  getTaskExecution(req: GetTaskExecutionRequest): Answer<GetTaskExecutionResponse> {
    return this.read((store) => create(GetTaskExecutionResponseSchema, { taskExecution: store.executions.require(req.id) }));
  }

  stopTaskExecution(req: StopTaskExecutionRequest): Answer<Written<void>> {
    return this.write((store, op) => store.executions.stop(req.id, op));
  }
}
