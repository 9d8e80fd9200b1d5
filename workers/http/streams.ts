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
import { fromJson, type JsonObject } from "@bufbuild/protobuf";
import { type Context, Hono } from "hono";
import { ExecuteRequest_StartSchema } from "../../proto/gen/api/v1/capsule/service_pb";
import { unwrap } from "../core/outcome";
import { type EnvironmentDO, held, rolloutName } from "../../durable-objects/contract";
import type { Action } from "../core/actions";
import type { Principal, Scope } from "../auth/principal";
import { namedCapsule } from "../d1/capsules";
import { requireExisting } from "../d1/exists";
import type { Env } from "../env";
import { bounded, invalidArgument, notFound, unauthenticated } from "../core/errors";
import { readJsonObject } from "./bodies";
import { guard, requireGrant } from "./guard";
import { connectErrorResponse } from "./responses";

export const streams = new Hono<{ Bindings: Env }>();

// Every refusal of these routes is a Connect error answer.
streams.onError((err) => connectErrorResponse(err));

/** The caller of a ticket route, who must hold `action` in `scope`. */
const ticketCaller = (c: Context<{ Bindings: Env }>, action: Action, scope: Scope) =>
  guard(c.env, c.req.raw.headers, `${c.req.method} ${c.req.path}`, { action, scope });

const subjectOf = (p: Principal) => `${p.subjectType}/${p.subjectId}`;
const ticketAnswer = (t: { ticket: string; expiresAt: number }, url: string) => ({
  ticket: t.ticket,
  expiresAt: new Date(t.expiresAt).toISOString(),
  url: `${url}?ticket=${t.ticket}`,
});

/** Hands a socket request to an environment's object, once the environment is known to exist. */
async function toEnvironment(c: Context<{ Bindings: Env }>, ticketHelp: string): Promise<Response> {
  const id = c.req.param("id")!;
  await requireExisting(c.env, "environment", id);
  if (!c.req.query("ticket")) throw unauthenticated(`ticket: get one from ${ticketHelp}`);
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
    const id = c.req.param("id");
    const principal = await ticketCaller(c, action, scopeOf(id));
    await requireExisting(c.env, "environment", id);
    return c.json(ticketAnswer(await issue(c.env.ENVIRONMENTS.getByName(id), subjectOf(principal)), `/environments/${id}/${kind}`));
  });
  streams.get(`/environments/:id/${kind}`, (c) => toEnvironment(c, `POST /environments/<id>/${kind}/tickets`));
}

// The event stream carries the events of every capsule in the environment.
environmentSocket("events", "capsule:view", (id) => ({ environment: id, resource: "capsule/*" }), (o, subject) => o.issueStreamTicket(subject));
environmentSocket("runner", "runner:connect", (id) => ({ environment: id, resource: `environment/${id}` }), async (o, subject) => {
  using runner = held(o.runner());
  return await runner.issueTicket(subject);
});

/** The body is an api.v1.capsule.ExecuteRequest.Start in protobuf JSON, plus projectId. */
streams.post("/environments/:id/exec/tickets", async (c) => {
  const id = c.req.param("id");
  const { projectId, ...startJson } = await readJsonObject(c.req.raw, "an api.v1.capsule.ExecuteRequest.Start with projectId");
  let start: ReturnType<typeof fromJson<typeof ExecuteRequest_StartSchema>>;
  try {
    // readJsonObject parsed the body as JSON, so its fields are JSON values.
    start = fromJson(ExecuteRequest_StartSchema, startJson as JsonObject);
  } catch (err) {
    throw invalidArgument("body", err instanceof Error ? err.message : String(err));
  }
  const { capsuleId } = namedCapsule({ projectId: typeof projectId === "string" ? projectId : "", capsuleId: start.capsuleId });
  if (!start.instanceId) throw invalidArgument("instance_id", "is required");
  if (!start.command) throw invalidArgument("command", "is required");
  const principal = await ticketCaller(c, "capsule:execute", { resource: `capsule/${capsuleId}`, project: projectId as string, environment: id });
  await requireExisting(c.env, "environment", id);
  using runner = held(c.env.ENVIRONMENTS.getByName(id).runner());
  const t = unwrap(
    await runner.issueExecTicket(subjectOf(principal), {
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
});

streams.get("/environments/:id/exec", (c) => toEnvironment(c, "POST /environments/<id>/exec/tickets"));

const rolloutPath = "/projects/:project/capsules/:capsule/rollouts/:rollout/events";

/** The rollout a path names, which must have been started. */
async function rolloutOf(c: Context<{ Bindings: Env }>) {
  const rolloutId = Number(c.req.param("rollout"));
  if (!Number.isSafeInteger(rolloutId) || rolloutId < 1) throw invalidArgument("rollout", "must be a rollout id (1, 2, ...)");
  const { projectId, capsuleId } = namedCapsule({ projectId: c.req.param("project")!, capsuleId: c.req.param("capsule")! });
  const stub = c.env.ROLLOUTS.getByName(rolloutName(projectId, capsuleId, rolloutId));
  const rollout = await stub.get();
  if (!rollout) throw notFound(`rollout ${bounded(rolloutId)} of capsule ${bounded(capsuleId)} in project ${bounded(projectId)}`);
  return { stub, identity: rollout.identity };
}

streams.post(`${rolloutPath}/tickets`, async (c) => {
  // The caller first, then the rollout, whose environment is the scope.
  const principal = await guard(c.env, c.req.raw.headers, `${c.req.method} ${c.req.path}`, { authenticated: true });
  const { stub, identity } = await rolloutOf(c);
  requireGrant(principal, "capsule:view", {
    resource: `capsule/${identity.capsuleId}`,
    project: identity.projectId,
    environment: identity.environmentId,
  });
  const t = await stub.issueStreamTicket(subjectOf(principal));
  return c.json(ticketAnswer(t, new URL(c.req.url).pathname.replace(/\/tickets$/, "")));
});

streams.get(rolloutPath, async (c) => {
  const { stub } = await rolloutOf(c);
  if (!c.req.query("ticket")) throw unauthenticated(`ticket: get one from POST ${new URL(c.req.url).pathname}/tickets`);
  return stub.fetch(c.req.raw);
});
