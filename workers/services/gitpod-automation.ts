/**
 * gitpod.v1.EnvironmentAutomationService: services, tasks and task executions of a
 * developer environment. Requests that name a service or task rather than the environment
 * have their environment resolved and checked by the handler.
 *
 * The environment's EnvironmentDO holds the automations (durable-objects/environment/automations/store.ts).
 * D1's `automation_index` says which environment holds an id: a row is written before the
 * object creates the item and removed after it deleted it, so a stale row only ever leads to
 * the object's not_found.
 */
import { type DescMessage, fromBinary, type MessageShape, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { AutomationCall, AutomationMethod, AutomationResult } from "../../durable-objects/contract";
import { unwrap } from "../core/outcome";
import {
  CreateServiceRequestSchema,
  CreateServiceResponseSchema,
  CreateTaskRequestSchema,
  CreateTaskResponseSchema,
  DeleteServiceRequestSchema,
  DeleteTaskRequestSchema,
  EnvironmentAutomationService,
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
  StartServiceRequestSchema,
  StartTaskRequestSchema,
  StartTaskResponseSchema,
  StopServiceRequestSchema,
  StopTaskExecutionRequestSchema,
  UpdateServiceRequestSchema,
  UpdateTaskRequestSchema,
  UpsertAutomationsFileRequestSchema,
  UpsertAutomationsFileResponseSchema,
} from "../../proto/gen/gitpod/v1/environment_automation_pb";
import { Principal } from "../../proto/gen/gitpod/v1/identity_pb";
import type { PaginationRequest } from "../../proto/gen/gitpod/v1/pagination_pb";
import type { Action } from "../core/actions";
import { allows } from "../auth/principal";
import { scoped } from "../auth/scopes";
import { checkUuid, uuidv7 } from "../core/gitpod-ids";
import { gitpodPage, pageToken } from "../core/gitpod-pages";
import { afterResponse, envOf, principalOf } from "./context";
import { bounded, invalidArgument, notFound, permissionDenied } from "../core/errors";
import { type AutomationKind, environmentOfItem, environmentsWith, indexItems, unindex } from "../d1/automation-index";
import { defineService } from "./registry";

const environment = scoped<{ environmentId?: string }>("environment", "environmentId");
const edit = { action: "environment:edit:ephemeral", scope: environment } as const;
// Requests that name only an item, or lists: the handler finds each environment and checks there.
const viewItem = { action: "environment:view", scope: "any" } as const;
const editItem = { action: "environment:edit:ephemeral", scope: "any" } as const;

type Kind = AutomationKind;
const KIND_NAMES: Record<Kind, string> = { service: "service", task: "task", execution: "task execution" };

/** Gitpod's limit on each filter list. */
const MAX_FILTER = 25;

const envScope = (environmentId: string) => ({ environment: environmentId, resource: `environment/${environmentId}` });

function requireAction(ctx: HandlerContext, action: Action, environmentId: string): void {
  if (!allows(principalOf(ctx), action, envScope(environmentId))) throw permissionDenied(`${action} on environment ${environmentId} is not granted to this caller`);
}

/**
 * Runs a call in the environment's object; a refusal is rethrown as the ConnectError it was.
 * A duplicate reference must not invite the SDK's automatic retry of 409s.
 */
async function run(ctx: HandlerContext, environmentId: string, call: AutomationCall): Promise<AutomationResult | null> {
  const p = principalOf(ctx);
  const caller = {
    subject: { id: p.subjectId, principal: p.subjectType === "user" ? Principal.USER : Principal.SERVICE_ACCOUNT },
    mayEditPermanent: allows(p, "environment:edit", envScope(environmentId)),
    mayReportStatus: allows(p, "runner:connect", envScope(environmentId)),
  };
  try {
    return unwrap(await envOf(ctx).ENVIRONMENTS.getByName(environmentId).automation(call, caller));
  } catch (err) {
    if (err instanceof ConnectError && err.code === Code.AlreadyExists) err.metadata.set("x-should-retry", "false");
    throw err;
  }
}

/** A call that may create (`fresh`, indexed first) and delete items; the index follows what it did. */
async function write(ctx: HandlerContext, environmentId: string, call: AutomationCall, fresh: { id: string; kind: Kind }[] = []): Promise<AutomationResult> {
  const env = envOf(ctx);
  // Indexed before the object may create the items.
  await indexItems(env, environmentId, fresh);
  let result: AutomationResult | null;
  try {
    result = await run(ctx, environmentId, call);
  } catch (err) {
    afterResponse(ctx, unindex(env, fresh.map((f) => f.id)));
    throw err;
  }
  if (!result) {
    afterResponse(ctx, unindex(env, fresh.map((f) => f.id)));
    throw notFound(`environment ${bounded(environmentId)}`);
  }
  const created = new Set(result.created);
  await unindex(env, [...fresh.filter((f) => !created.has(f.id)).map((f) => f.id), ...result.deleted]);
  return result;
}

/** The environment of an item named by id, once the caller may do `action` there. */
async function locate(ctx: HandlerContext, kind: Kind, rawId: string, action: Action): Promise<{ id: string; environmentId: string }> {
  const id = checkUuid("id", rawId);
  const environmentId = await environmentOfItem(envOf(ctx), id, kind);
  if (!environmentId) throw notFound(`${KIND_NAMES[kind]} ${bounded(id)}`);
  requireAction(ctx, action, environmentId);
  return { id, environmentId };
}

/** A call about one item named by id. */
async function onItem<D extends DescMessage>(
  ctx: HandlerContext,
  kind: Kind,
  method: AutomationMethod,
  schema: D,
  req: MessageShape<D> & { id: string },
  action: Action,
): Promise<AutomationResult> {
  const { id, environmentId } = await locate(ctx, kind, req.id, action);
  const call = { method, request: toBinary(schema, { ...req, id }) };
  if (action === "environment:view") {
    const result = await run(ctx, environmentId, call);
    if (!result) throw notFound(`${KIND_NAMES[kind]} ${bounded(id)}`);
    return result;
  }
  return write(ctx, environmentId, call);
}

// ---- Lists ----------------------------------------------------------------------------------------

/** Where a page starts: at environment `e`, after item `a` there. */
interface Cursor {
  e: string;
  a: string;
}

function checkFilter(field: string, values: string[], uuids: boolean): string[] {
  if (values.length > MAX_FILTER) throw invalidArgument(field, `has ${values.length} items; at most ${MAX_FILTER} are allowed`);
  return uuids ? values.map((v, i) => checkUuid(`${field}[${i}]`, v)) : values;
}

/**
 * One page of a list over environments, in order of environment and then of id. Environments
 * named in the filter must be viewable; otherwise the list spans every environment with such
 * items (or holding the filter's ids) that the caller may view.
 */
async function listAcross<T extends { id: string }>(
  ctx: HandlerContext,
  opts: {
    kind: Kind;
    method: AutomationMethod;
    request: Uint8Array;
    /** The items of a response. */
    items: (response: Uint8Array) => T[];
    environmentIds: string[];
    /** Ids the filter names, whose environments the list spans. */
    ids: { kind: Kind; ids: string[] };
  },
  pagination: PaginationRequest | undefined,
): Promise<{ items: T[]; nextToken: string }> {
  const { size, cursor } = gitpodPage<Cursor>(ctx, pagination, (c) => typeof c.e === "string" && typeof c.a === "string");
  const p = principalOf(ctx);
  let environments: string[];
  if (opts.environmentIds.length) {
    for (const e of opts.environmentIds) requireAction(ctx, "environment:view", e);
    environments = opts.environmentIds;
  } else {
    const held = await environmentsWith(envOf(ctx), opts.ids.ids.length ? opts.ids.kind : opts.kind, opts.ids.ids);
    environments = held.filter((e) => allows(p, "environment:view", envScope(e)));
  }
  environments = [...new Set(environments)].sort().filter((e) => !cursor || e >= cursor.e);
  const items: T[] = [];
  for (const [i, environmentId] of environments.entries()) {
    const after = cursor && environmentId === cursor.e ? cursor.a : "";
    const result = await run(ctx, environmentId, { method: opts.method, request: opts.request, after, limit: size - items.length });
    if (!result) continue;
    items.push(...opts.items(result.response));
    if (items.length < size) continue;
    if (result.more) return { items, nextToken: pageToken({ e: environmentId, a: items.at(-1)!.id }) };
    const next = environments[i + 1];
    return { items, nextToken: next ? pageToken({ e: next, a: "" }) : "" };
  }
  return { items, nextToken: "" };
}

// ---- The service ----------------------------------------------------------------------------------

export const gitpodAutomations = defineService(
  EnvironmentAutomationService,
  {
    upsertAutomationsFile: edit,
    createService: edit,
    getService: viewItem,
    listServices: viewItem,
    updateService: editItem,
    deleteService: editItem,
    startService: editItem,
    stopService: editItem,
    createTask: edit,
    getTask: viewItem,
    listTasks: viewItem,
    updateTask: editItem,
    deleteTask: editItem,
    startTask: editItem,
    listTaskExecutions: viewItem,
    getTaskExecution: viewItem,
    stopTaskExecution: editItem,
  },
  {
    async upsertAutomationsFile(req, ctx) {
      const environmentId = checkUuid("environment_id", req.environmentId);
      // One id per entry, used only by the entries the environment does not have yet.
      const newIds: Record<string, string> = {};
      const fresh: { id: string; kind: Kind }[] = [];
      for (const [kind, refs] of [
        ["service", Object.keys(req.automationsFile?.services ?? {})],
        ["task", Object.keys(req.automationsFile?.tasks ?? {})],
      ] as const) {
        for (const ref of refs) fresh.push({ id: (newIds[`${kind}:${ref}`] = uuidv7()), kind });
      }
      const request = toBinary(UpsertAutomationsFileRequestSchema, { ...req, environmentId });
      const result = await write(ctx, environmentId, { method: "upsertAutomationsFile", request, newIds }, fresh);
      return fromBinary(UpsertAutomationsFileResponseSchema, result.response);
    },

    async createService(req, ctx) {
      const environmentId = checkUuid("environment_id", req.environmentId);
      const id = uuidv7();
      const request = toBinary(CreateServiceRequestSchema, { ...req, environmentId });
      const result = await write(ctx, environmentId, { method: "createService", request, newIds: { new: id } }, [{ id, kind: "service" }]);
      return fromBinary(CreateServiceResponseSchema, result.response);
    },

    async getService(req, ctx) {
      return fromBinary(GetServiceResponseSchema, (await onItem(ctx, "service", "getService", GetServiceRequestSchema, req, "environment:view")).response);
    },

    async listServices(req, ctx) {
      const f = req.filter;
      const environmentIds = checkFilter("filter.environment_ids", f?.environmentIds ?? [], true);
      const serviceIds = checkFilter("filter.service_ids", f?.serviceIds ?? [], true);
      checkFilter("filter.references", f?.references ?? [], false);
      checkFilter("filter.roles", (f?.roles ?? []).map(String), false);
      const { items, nextToken } = await listAcross(
        ctx,
        {
          kind: "service",
          method: "listServices",
          items: (r) => fromBinary(ListServicesResponseSchema, r).services,
          request: toBinary(ListServicesRequestSchema, req),
          environmentIds,
          ids: { kind: "service", ids: serviceIds },
        },
        req.pagination,
      );
      return { services: items, pagination: { nextToken } };
    },

    async updateService(req, ctx) {
      await onItem(ctx, "service", "updateService", UpdateServiceRequestSchema, req, "environment:edit:ephemeral");
      return {};
    },

    async deleteService(req, ctx) {
      await onItem(ctx, "service", "deleteService", DeleteServiceRequestSchema, req, "environment:edit:ephemeral");
      return {};
    },

    async startService(req, ctx) {
      await onItem(ctx, "service", "startService", StartServiceRequestSchema, req, "environment:edit:ephemeral");
      return {};
    },

    async stopService(req, ctx) {
      await onItem(ctx, "service", "stopService", StopServiceRequestSchema, req, "environment:edit:ephemeral");
      return {};
    },

    async createTask(req, ctx) {
      const environmentId = checkUuid("environment_id", req.environmentId);
      const id = uuidv7();
      const request = toBinary(CreateTaskRequestSchema, { ...req, environmentId });
      const result = await write(ctx, environmentId, { method: "createTask", request, newIds: { new: id } }, [{ id, kind: "task" }]);
      return fromBinary(CreateTaskResponseSchema, result.response);
    },

    async getTask(req, ctx) {
      return fromBinary(GetTaskResponseSchema, (await onItem(ctx, "task", "getTask", GetTaskRequestSchema, req, "environment:view")).response);
    },

    async listTasks(req, ctx) {
      const f = req.filter;
      const environmentIds = checkFilter("filter.environment_ids", f?.environmentIds ?? [], true);
      const taskIds = checkFilter("filter.task_ids", f?.taskIds ?? [], true);
      checkFilter("filter.references", f?.references ?? [], false);
      const { items, nextToken } = await listAcross(
        ctx,
        {
          kind: "task",
          method: "listTasks",
          items: (r) => fromBinary(ListTasksResponseSchema, r).tasks,
          request: toBinary(ListTasksRequestSchema, req),
          environmentIds,
          ids: { kind: "task", ids: taskIds },
        },
        req.pagination,
      );
      return { tasks: items, pagination: { nextToken } };
    },

    async updateTask(req, ctx) {
      await onItem(ctx, "task", "updateTask", UpdateTaskRequestSchema, req, "environment:edit:ephemeral");
      return {};
    },

    async deleteTask(req, ctx) {
      await onItem(ctx, "task", "deleteTask", DeleteTaskRequestSchema, req, "environment:edit:ephemeral");
      return {};
    },

    async startTask(req, ctx) {
      const { id, environmentId } = await locate(ctx, "task", req.id, "environment:edit:ephemeral");
      const executionId = uuidv7();
      const request = toBinary(StartTaskRequestSchema, { ...req, id });
      const result = await write(ctx, environmentId, { method: "startTask", request, newIds: { new: executionId } }, [{ id: executionId, kind: "execution" }]);
      return fromBinary(StartTaskResponseSchema, result.response);
    },

    async listTaskExecutions(req, ctx) {
      const f = req.filter;
      const environmentIds = checkFilter("filter.environment_ids", f?.environmentIds ?? [], true);
      const taskIds = checkFilter("filter.task_ids", f?.taskIds ?? [], true);
      checkFilter("filter.task_references", f?.taskReferences ?? [], false);
      checkFilter("filter.phases", (f?.phases ?? []).map(String), false);
      const { items, nextToken } = await listAcross(
        ctx,
        {
          kind: "execution",
          method: "listTaskExecutions",
          items: (r) => fromBinary(ListTaskExecutionsResponseSchema, r).taskExecutions,
          request: toBinary(ListTaskExecutionsRequestSchema, req),
          environmentIds,
          ids: { kind: "task", ids: taskIds },
        },
        req.pagination,
      );
      return { taskExecutions: items, pagination: { nextToken } };
    },

    async getTaskExecution(req, ctx) {
      const result = await onItem(ctx, "execution", "getTaskExecution", GetTaskExecutionRequestSchema, req, "environment:view");
      return fromBinary(GetTaskExecutionResponseSchema, result.response);
    },

    async stopTaskExecution(req, ctx) {
      await onItem(ctx, "execution", "stopTaskExecution", StopTaskExecutionRequestSchema, req, "environment:edit:ephemeral");
      return {};
    },
  },
);
