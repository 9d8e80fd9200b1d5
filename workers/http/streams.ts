/**
 * WebSockets: live event streams, the runner connection and Execute sessions. A client asks
 * for a single-use ticket with its bearer token (the one place authorization runs), then
 * opens the socket with the ticket, since browsers cannot send headers on a WebSocket:
 *
 *   POST /environments/<id>/events/tickets   → { ticket, expiresAt, url }
 *   GET  /environments/<id>/events?ticket=…&after=<seq>   (WebSocket upgrade)
 *   POST /projects/<p>/capsules/<c>/rollouts/<n>/events/tickets, GET …/events   (one rollout)
 *   POST /environments/<id>/runner/tickets, GET /environments/<id>/runner   (docs/runner-protocol.md)
 *   POST /environments/<id>/exec/tickets, GET /environments/<id>/exec   (docs/execute.md)
 */
import { fromJson } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToHttpStatus, errorToJson } from "@connectrpc/connect/protocol-connect";
import { type Context, Hono } from "hono";
import { ExecuteRequest_StartSchema } from "../../proto/gen/api/v1/capsule/service_pb";
import { unwrap } from "../core/outcome";
import { type EnvironmentDO, rolloutName } from "../../durable-objects/contract";
import type { Action } from "../core/actions";
import { allows, authenticate, bearerToken, type Principal, type Scope } from "../auth/principal";
import { capsuleKey } from "../d1/capsules";
import { requireExisting } from "../d1/exists";
import type { Env } from "../env";
import { bounded, invalidArgument, notFound, permissionDenied, toConnectError, unauthenticated } from "../core/errors";
import { readJsonObject } from "./bodies";

export const streams = new Hono<{ Bindings: Env }>();

/** Connect's error JSON and HTTP status, so clients handle these answers like RPC errors. */
export function errorResponse(err: unknown): Response {
  const e = toConnectError(err);
  return Response.json(errorToJson(e, undefined), { status: codeToHttpStatus(e.code) });
}

/** The caller, from its bearer token. */
async function caller(c: Context<{ Bindings: Env }>): Promise<Principal> {
  const token = bearerToken(c.req.raw.headers);
  if (!token) throw unauthenticated("send `Authorization: Bearer <access token>` to get a ticket");
  return authenticate(c.env, token);
}

/** Refuses unless `principal` holds `action` in `scope`. */
function check(principal: Principal, action: Action, scope: Scope): void {
  if (!allows(principal, action, scope)) {
    const where = [scope.resource, scope.project && `project ${scope.project}`, scope.environment && `environment ${scope.environment}`].filter(Boolean).join(", ");
    throw permissionDenied(`${action} (${where}) is not granted to this ${principal.subjectType.replace("_", " ")}`);
  }
}

/** The caller, who must hold `action` in `scope`. */
async function authorize(c: Context<{ Bindings: Env }>, action: Action, scope: Scope): Promise<Principal> {
  const principal = await caller(c);
  check(principal, action, scope);
  return principal;
}

const subjectOf = (p: Principal) => `${p.subjectType}/${p.subjectId}`;
const ticketAnswer = (t: { ticket: string; expiresAt: number }, url: string) => ({
  ticket: t.ticket,
  expiresAt: new Date(t.expiresAt).toISOString(),
  url: `${url}?ticket=${t.ticket}`,
});

/** Hands a socket request to an environment's object, once the environment is known to exist. */
async function toEnvironment(c: Context<{ Bindings: Env }>, ticketHelp: string): Promise<Response> {
  const id = c.req.param("id")!;
  try {
    await requireExisting(c.env, "environment", id);
  } catch (err) {
    return errorResponse(err);
  }
  if (!c.req.query("ticket")) return errorResponse(new ConnectError(`ticket: get one from ${ticketHelp}`, Code.Unauthenticated));
  return c.env.ENVIRONMENTS.getByName(id).fetch(c.req.raw);
}

/**
 * An environment's socket kind: `POST /environments/<id>/<kind>/tickets` for a caller holding
 * `action` in the scope `scopeOf` gives, and the socket at `GET /environments/<id>/<kind>`.
 */
function environmentSocket(
  kind: "events" | "runner",
  action: Action,
  scopeOf: (id: string) => Scope,
  issue: (object: DurableObjectStub<EnvironmentDO>, subject: string) => Promise<{ ticket: string; expiresAt: number }>,
) {
  streams.post(`/environments/:id/${kind}/tickets`, async (c) => {
    try {
      const id = c.req.param("id");
      const principal = await authorize(c, action, scopeOf(id));
      await requireExisting(c.env, "environment", id);
      return c.json(ticketAnswer(await issue(c.env.ENVIRONMENTS.getByName(id), subjectOf(principal)), `/environments/${id}/${kind}`));
    } catch (err) {
      return errorResponse(err);
    }
  });
  streams.get(`/environments/:id/${kind}`, (c) => toEnvironment(c, `POST /environments/<id>/${kind}/tickets`));
}

// The event stream carries the events of every capsule in the environment.
environmentSocket("events", "capsule:view", (id) => ({ environment: id, resource: "capsule/*" }), (o, subject) => o.issueStreamTicket(subject));
environmentSocket("runner", "runner:connect", (id) => ({ environment: id, resource: `environment/${id}` }), (o, subject) => o.issueRunnerTicket(subject));

/** The body is an api.v1.capsule.ExecuteRequest.Start in protobuf JSON, plus projectId. */
streams.post("/environments/:id/exec/tickets", async (c) => {
  try {
    const id = c.req.param("id");
    const { projectId, ...startJson } = await readJsonObject(c.req.raw, "an api.v1.capsule.ExecuteRequest.Start with projectId");
    let start: ReturnType<typeof fromJson<typeof ExecuteRequest_StartSchema>>;
    try {
      start = fromJson(ExecuteRequest_StartSchema, startJson as never);
    } catch (err) {
      throw invalidArgument("body", err instanceof Error ? err.message : String(err));
    }
    const { capsuleId } = capsuleKey({ projectId: typeof projectId === "string" ? projectId : "", capsuleId: start.capsuleId });
    if (!start.instanceId) throw invalidArgument("instance_id", "is required");
    if (!start.command) throw invalidArgument("command", "is required");
    const principal = await authorize(c, "capsule:execute", { resource: `capsule/${capsuleId}`, project: projectId as string, environment: id });
    await requireExisting(c.env, "environment", id);
    const t = unwrap(
      await c.env.ENVIRONMENTS.getByName(id).issueExecTicket(subjectOf(principal), {
        projectId: projectId as string,
        capsuleId,
        instanceId: start.instanceId,
        command: start.command,
        arguments: start.arguments,
        interactive: start.interactive,
        tty: start.tty ? { width: start.tty.width, height: start.tty.height } : undefined,
      }),
    );
    return c.json(ticketAnswer(t, `/environments/${id}/exec`));
  } catch (err) {
    return errorResponse(err);
  }
});

streams.get("/environments/:id/exec", (c) => toEnvironment(c, "POST /environments/<id>/exec/tickets"));

const rolloutPath = "/projects/:project/capsules/:capsule/rollouts/:rollout/events";

/** The rollout a path names, which must have been started. */
async function rolloutOf(c: Context<{ Bindings: Env }>) {
  const rolloutId = Number(c.req.param("rollout"));
  if (!Number.isSafeInteger(rolloutId) || rolloutId < 1) throw invalidArgument("rollout", "must be a rollout id (1, 2, ...)");
  const { projectId, capsuleId } = capsuleKey({ projectId: c.req.param("project")!, capsuleId: c.req.param("capsule")! });
  const stub = c.env.ROLLOUTS.getByName(rolloutName(projectId, capsuleId, rolloutId));
  const rollout = await stub.get();
  if (!rollout) throw notFound(`rollout ${bounded(rolloutId)} of capsule ${bounded(capsuleId)} in project ${bounded(projectId)}`);
  return { stub, identity: rollout.identity };
}

streams.post(`${rolloutPath}/tickets`, async (c) => {
  try {
    const principal = await caller(c);
    const { stub, identity } = await rolloutOf(c);
    check(principal, "capsule:view", {
      resource: `capsule/${identity.capsuleId}`,
      project: identity.projectId,
      environment: identity.environmentId,
    });
    const t = await stub.issueStreamTicket(subjectOf(principal));
    return c.json(ticketAnswer(t, new URL(c.req.url).pathname.replace(/\/tickets$/, "")));
  } catch (err) {
    return errorResponse(err);
  }
});

streams.get(rolloutPath, async (c) => {
  try {
    const { stub } = await rolloutOf(c);
    if (!c.req.query("ticket")) throw new ConnectError(`ticket: get one from POST ${new URL(c.req.url).pathname}/tickets`, Code.Unauthenticated);
    return stub.fetch(c.req.raw);
  } catch (err) {
    return errorResponse(err);
  }
});
