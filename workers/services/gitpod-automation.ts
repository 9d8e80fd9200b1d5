/**
 * gitpod.v1.EnvironmentAutomationService: services, tasks and task executions of a
 * developer environment. Requests that name a service or task rather than the environment
 * have their environment resolved and checked by the handler.
 *
 * The environment's EnvironmentDO holds the automations: `stub.automations(caller)` is their
 * API, one typed method per RPC (durable-objects/environment/automations/api.ts).
 * D1's `automation_index` says which environment holds an id: a row is written before the
 * object creates the item and removed after it deleted it, so a stale row only ever leads to
 * the object's not_found.
 */
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { type AutomationsApi, held, type Page, type Written } from "../../durable-objects/contract";
import { type Outcome, unwrap } from "../core/outcome";
import { EnvironmentAutomationService } from "../../proto/gen/gitpod/v1/environment_automation_pb";
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

/** The environment's automations as the caller reaches them (durable-objects/environment/automations/api.ts). */
type Api = Rpc.Provider<AutomationsApi>;

/** One RPC on the environment's object: `call` gets its API for this caller; null when the environment does not exist. */
type Call<T> = (api: Api) => Promise<Outcome<T | null>>;

/**
 * Runs a call in the environment's object; a refusal is rethrown as the ConnectError it was.
 * A duplicate reference must not invite the SDK's automatic retry of 409s.
 */
async function run<T>(ctx: HandlerContext, environmentId: string, call: Call<T>): Promise<T | null> {
  const p = principalOf(ctx);
  const caller = {
    subject: { id: p.subjectId, principal: p.subjectType === "user" ? Principal.USER : Principal.SERVICE_ACCOUNT },
    mayEditPermanent: allows(p, "environment:edit", envScope(environmentId)),
    mayReportStatus: allows(p, "runner:connect", envScope(environmentId)),
  };
  try {
    // Pipelined: the API and the call on it are one round trip; the API's stub goes with the scope.
    using api = held(envOf(ctx).ENVIRONMENTS.getByName(environmentId).automations(caller));
    return unwrap(await call(api));
  } catch (err) {
    if (err instanceof ConnectError && err.code === Code.AlreadyExists) err.metadata.set("x-should-retry", "false");
    throw err;
  }
}

/** A call that may create (`fresh`, indexed first) and delete items; the index follows what it did. */
async function write<T>(ctx: HandlerContext, environmentId: string, call: Call<Written<T>>, fresh: { id: string; kind: Kind }[] = []): Promise<T> {
  const env = envOf(ctx);
  // Indexed before the object may create the items.
  await indexItems(env, environmentId, fresh);
  let result: Written<T> | null;
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
  return result.response;
}

/** The environment of an item named by id, once the caller may do `action` there. */
async function locate(ctx: HandlerContext, kind: Kind, rawId: string, action: Action): Promise<{ id: string; environmentId: string }> {
  const id = checkUuid("id", rawId);
  const environmentId = await environmentOfItem(envOf(ctx), id, kind);
  if (!environmentId) throw notFound(`${KIND_NAMES[kind]} ${bounded(id)}`);
  requireAction(ctx, action, environmentId);
  return { id, environmentId };
}

/** A read of one item named by id: `call` gets the request with its id checked. */
async function readItem<R extends { id: string }, T>(ctx: HandlerContext, kind: Kind, req: R, call: (api: Api, req: R) => Promise<Outcome<T | null>>): Promise<T> {
  const { id, environmentId } = await locate(ctx, kind, req.id, "environment:view");
  const result = await run(ctx, environmentId, (api) => call(api, { ...req, id }));
  if (!result) throw notFound(`${KIND_NAMES[kind]} ${bounded(id)}`);
  return result;
}

/** A change of one item named by id: `call` gets the request with its id checked. */
async function changeItem<R extends { id: string }, T>(ctx: HandlerContext, kind: Kind, req: R, call: (api: Api, req: R) => Promise<Outcome<Written<T> | null>>): Promise<T> {
  const { id, environmentId } = await locate(ctx, kind, req.id, "environment:edit:ephemeral");
  return write(ctx, environmentId, (api) => call(api, { ...req, id }));
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
    /** The page in one environment after the id `after`. */
    list: (api: Api, after: string, limit: number) => Promise<Outcome<Page<T> | null>>;
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
    const result = await run(ctx, environmentId, (api) => opts.list(api, after, size - items.length));
    if (!result) continue;
    items.push(...result.items);
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
      return write(ctx, environmentId, (api) => api.upsertAutomationsFile({ ...req, environmentId }, newIds), fresh);
    },

    async createService(req, ctx) {
      const environmentId = checkUuid("environment_id", req.environmentId);
      const id = uuidv7();
      return write(ctx, environmentId, (api) => api.createService({ ...req, environmentId }, id), [{ id, kind: "service" }]);
    },

    async getService(req, ctx) {
      return readItem(ctx, "service", req, (api, r) => api.getService(r));
    },

    async listServices(req, ctx) {
      const f = req.filter;
      const environmentIds = checkFilter("filter.environment_ids", f?.environmentIds ?? [], true);
      const serviceIds = checkFilter("filter.service_ids", f?.serviceIds ?? [], true);
      checkFilter("filter.references", f?.references ?? [], false);
      checkFilter("filter.roles", (f?.roles ?? []).map(String), false);
      const { items, nextToken } = await listAcross(
        ctx,
        { kind: "service", list: (api, after, limit) => api.listServices(req, after, limit), environmentIds, ids: { kind: "service", ids: serviceIds } },
        req.pagination,
      );
      return { services: items, pagination: { nextToken } };
    },

    async updateService(req, ctx) {
      await changeItem(ctx, "service", req, (api, r) => api.updateService(r));
      return {};
    },

    async deleteService(req, ctx) {
      await changeItem(ctx, "service", req, (api, r) => api.deleteService(r));
      return {};
    },

    async startService(req, ctx) {
      await changeItem(ctx, "service", req, (api, r) => api.startService(r));
      return {};
    },

    async stopService(req, ctx) {
      await changeItem(ctx, "service", req, (api, r) => api.stopService(r));
      return {};
    },

    async createTask(req, ctx) {
      const environmentId = checkUuid("environment_id", req.environmentId);
      const id = uuidv7();
      return write(ctx, environmentId, (api) => api.createTask({ ...req, environmentId }, id), [{ id, kind: "task" }]);
    },

    async getTask(req, ctx) {
      return readItem(ctx, "task", req, (api, r) => api.getTask(r));
    },

    async listTasks(req, ctx) {
      const f = req.filter;
      const environmentIds = checkFilter("filter.environment_ids", f?.environmentIds ?? [], true);
      const taskIds = checkFilter("filter.task_ids", f?.taskIds ?? [], true);
      checkFilter("filter.references", f?.references ?? [], false);
      const { items, nextToken } = await listAcross(
        ctx,
        { kind: "task", list: (api, after, limit) => api.listTasks(req, after, limit), environmentIds, ids: { kind: "task", ids: taskIds } },
        req.pagination,
      );
      return { tasks: items, pagination: { nextToken } };
    },

    async updateTask(req, ctx) {
      await changeItem(ctx, "task", req, (api, r) => api.updateTask(r));
      return {};
    },

    async deleteTask(req, ctx) {
      await changeItem(ctx, "task", req, (api, r) => api.deleteTask(r));
      return {};
    },

    async startTask(req, ctx) {
      const { id, environmentId } = await locate(ctx, "task", req.id, "environment:edit:ephemeral");
      const executionId = uuidv7();
      return write(ctx, environmentId, (api) => api.startTask({ ...req, id }, executionId), [{ id: executionId, kind: "execution" }]);
    },

    async listTaskExecutions(req, ctx) {
      const f = req.filter;
      const environmentIds = checkFilter("filter.environment_ids", f?.environmentIds ?? [], true);
      const taskIds = checkFilter("filter.task_ids", f?.taskIds ?? [], true);
      checkFilter("filter.task_references", f?.taskReferences ?? [], false);
      checkFilter("filter.phases", (f?.phases ?? []).map(String), false);
      const { items, nextToken } = await listAcross(
        ctx,
        { kind: "execution", list: (api, after, limit) => api.listTaskExecutions(req, after, limit), environmentIds, ids: { kind: "task", ids: taskIds } },
        req.pagination,
      );
      return { taskExecutions: items, pagination: { nextToken } };
    },

    async getTaskExecution(req, ctx) {
      return readItem(ctx, "execution", req, (api, r) => api.getTaskExecution(r));
    },

    async stopTaskExecution(req, ctx) {
      await changeItem(ctx, "execution", req, (api, r) => api.stopTaskExecution(r));
      return {};
    },
  },
);
