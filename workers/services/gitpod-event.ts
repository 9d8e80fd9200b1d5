/**
 * gitpod.v1.EventService: the change feed the Gitpod SDK's wait helpers follow. A watch of an
 * environment follows that environment's event stream (the EnvironmentDO's log, over the same
 * WebSocket fan-out as `/environments/<id>/events`) from the moment it starts, and answers
 * each event about a Gitpod resource as a WatchEventsResponse; clients then read the resource
 * again. Served as Connect server streaming and, for Gitpod's SDK, as JSON lines (http/jsonl.ts).
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { unwrap } from "../core/outcome";
import { held } from "../../durable-objects/contract";
import {
  EventService,
  ResourceOperation,
  ResourceType,
  type WatchEventsRequest,
  type WatchEventsResponse,
  WatchEventsResponseSchema,
} from "../../proto/gen/gitpod/v1/event_pb";
import { allows, type Principal } from "../auth/principal";
import { requireExisting } from "../d1/exists";
import type { Env } from "../env";
import { checkUuid } from "../core/gitpod-ids";
import { envOf, principalOf } from "./context";
import { invalidArgument, permissionDenied, unavailable } from "../core/errors";
import { defineService } from "./registry";

/**
 * Which events are about Gitpod resources: `<resource>.<operation>` with the resource's id in
 * `data[<field>]`, as the developer environment (durable-objects/environment/dev/store.ts) and the
 * automations (durable-objects/environment/automations/) log them.
 */
const RESOURCES: Record<string, [ResourceType, string]> = {
  "dev-environment": [ResourceType.ENVIRONMENT, "environmentId"],
  service: [ResourceType.SERVICE, "serviceId"],
  task: [ResourceType.TASK, "taskId"],
  "task-execution": [ResourceType.TASK_EXECUTION, "taskExecutionId"],
};
const OPERATIONS: Record<string, ResourceOperation> = {
  created: ResourceOperation.CREATE,
  updated: ResourceOperation.UPDATE,
  "status-updated": ResourceOperation.UPDATE_STATUS,
  deleted: ResourceOperation.DELETE,
};

/** The WatchEventsResponse of a logged event, or null for events about anything else (rollouts, runners…). */
export function watchResponseOf(e: { type: string; data: unknown }): WatchEventsResponse | null {
  const dot = e.type.lastIndexOf(".");
  const resource = RESOURCES[e.type.slice(0, dot)];
  const operation = OPERATIONS[e.type.slice(dot + 1)];
  const id = (e.data as Record<string, unknown> | null)?.[resource?.[1] ?? ""];
  if (!resource || operation === undefined || typeof id !== "string") return null;
  return create(WatchEventsResponseSchema, { operation, resourceType: resource[0], resourceId: id });
}

/** Whether a response passes the request's resource type filters (none: everything does). */
function filterOf(req: WatchEventsRequest): (r: WatchEventsResponse) => boolean {
  const filters = req.resourceTypeFilters;
  if (filters.length > 50) throw invalidArgument("resource_type_filters", "may hold at most 50 filters");
  filters.forEach((f, i) => {
    if (f.resourceType === ResourceType.UNSPECIFIED || ResourceType[f.resourceType] === undefined) {
      throw invalidArgument(`resource_type_filters[${i}].resource_type`, "must be a resource type");
    }
    if (f.resourceIds.length > 25 || f.creatorIds.length > 25) throw invalidArgument(`resource_type_filters[${i}]`, "may list at most 25 ids of each kind");
  });
  if (filters.length === 0) return () => true;
  return (r) => filters.some((f) => f.resourceType === r.resourceType && (f.resourceIds.length === 0 || f.resourceIds.includes(r.resourceId)));
}

/**
 * Starts a watch: checks the request and the caller's access, subscribes to the
 * environment's stream, and answers its events until the environment is deleted or
 * `signal` aborts. Everything that can be refused is refused before this returns, so the
 * JSON lines form can still answer with an HTTP error.
 */
export async function openWatch(env: Env, principal: Principal, req: WatchEventsRequest, signal?: AbortSignal): Promise<AsyncIterable<WatchEventsResponse>> {
  if (req.scope.case !== "environmentId") {
    // Organization-wide events would need one feed across every environment's object; none exists yet.
    throw new ConnectError("only environment-scoped watches are served: set environment_id", Code.Unimplemented);
  }
  const environmentId = checkUuid("environment_id", req.scope.value);
  if (!allows(principal, "environment:view", { environment: environmentId, resource: `environment/${environmentId}` })) {
    throw permissionDenied(`environment:view on environment ${environmentId} is not granted to this ${principal.subjectType.replace("_", " ")}`);
  }
  const wanted = filterOf(req);
  await requireExisting(env, "environment", environmentId);
  const stub = env.ENVIRONMENTS.getByName(environmentId);
  using dev = held(stub.dev());
  const { ticket, after } = unwrap(await dev.watchFrom(`${principal.subjectType}/${principal.subjectId}`));
  const res = await stub.fetch(`https://environment/events?ticket=${ticket}&after=${after}`, { headers: { upgrade: "websocket" } });
  const ws = res.webSocket;
  if (!ws) throw unavailable(`the event stream of environment ${environmentId} could not be opened (${res.status}): try again`);
  return follow(ws, environmentId, wanted, signal);
}

/** The socket's events as responses, until it closes or `signal` aborts. */
function follow(ws: WebSocket, environmentId: string, wanted: (r: WatchEventsResponse) => boolean, signal?: AbortSignal): AsyncIterable<WatchEventsResponse> {
  const queue: WatchEventsResponse[] = [];
  let ended = false;
  let deleted = false;
  let wake: (() => void) | undefined;
  const notify = () => {
    wake?.();
    wake = undefined;
  };
  const push = (r: WatchEventsResponse | null) => {
    if (!r) return;
    if (r.resourceType === ResourceType.ENVIRONMENT && r.operation === ResourceOperation.DELETE) deleted = true;
    if (wanted(r)) queue.push(r);
  };
  ws.addEventListener("message", (m) => {
    const frame = JSON.parse(String(m.data)) as { type: string; data: unknown } | { type: string; data: unknown }[];
    for (const e of Array.isArray(frame) ? frame : [frame]) push(watchResponseOf(e));
    notify();
  });
  ws.addEventListener("close", (e) => {
    // The object closes its sockets with 1001 when the environment is deleted; say so if its event did not make it.
    if (e.code === 1001 && !deleted) push(create(WatchEventsResponseSchema, { operation: ResourceOperation.DELETE, resourceType: ResourceType.ENVIRONMENT, resourceId: environmentId }));
    ended = true;
    notify();
  });
  signal?.addEventListener("abort", () => {
    ended = true;
    notify();
  });
  ws.accept();
  return (async function* () {
    try {
      for (;;) {
        while (queue.length > 0) yield queue.shift()!;
        if (ended) return;
        await new Promise<void>((resolve) => (wake = resolve));
      }
    } finally {
      try {
        ws.close(1000, "the watch ended");
      } catch {
        // Closed already.
      }
    }
  })();
}

export const gitpodEvents = defineService(
  EventService,
  {
    // Server streaming; the handler checks the environment the request names.
    watchEvents: { action: "environment:view", scope: "any" },
  },
  {
    async *watchEvents(req, ctx) {
      yield* await openWatch(envOf(ctx), principalOf(ctx), req, ctx.signal);
    },
  },
);
