/**
 * api.v1.capsule.Service: Deploy and rollouts. The Worker authorizes and checks D1; the
 * environment's object sequences deploys and each rollout's object owns its status.
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { EventSchema } from "../../proto/gen/api/v1/capsule/event_pb";
import type { RolloutConfig } from "../../proto/gen/api/v1/capsule/rollout_pb";
import type { Status } from "../../proto/gen/api/v1/capsule/rollout/status_pb";
import type { AuthorSchema } from "../../proto/gen/model/author_pb";
import { DeployRequestSchema, type Service } from "../../proto/gen/api/v1/capsule/service_pb";
import { type Author, type EnvironmentDO, held, type RolloutIdentity, rolloutName } from "../../durable-objects/contract";
import { type Outcome, unwrap } from "../core/outcome";
import type { DeployAction } from "../core/actions";
import { allows, type Scope } from "../auth/principal";
import { capsuleScope } from "../auth/scopes";
import { namedCapsule } from "../d1/capsules";
import { deployTarget } from "../d1/deployments";
import { defaultEnvironmentId } from "../d1/environments";
import type { Env } from "../env";
import { envOf, principalOf } from "./context";
import { bounded, failedPrecondition, invalidArgument, notFound, permissionDenied } from "../core/errors";
import { pageOf } from "../core/pagination";
import { deployKindOf } from "../core/rollouts/changes";
import { parseNamespaceTemplate, renderNamespace } from "./environment";
import { authorOf } from "./user-messages";

/**
 * The environment a capsule request is about: the one it names, or the default environment
 * (as Rig's CLI does when none is given).
 */
export async function environmentOf(env: Env, req: { environmentId: string }): Promise<string> {
  if (req.environmentId) return req.environmentId;
  const id = await defaultEnvironmentId(env);
  if (id === null) throw invalidArgument("environment_id", "is required: there is no default environment");
  return id;
}

/** A rollout's object; not_found unless it was started. */
async function requireRollout(env: Env, req: { projectId: string; capsuleId: string; rolloutId: bigint }) {
  const { projectId, capsuleId } = namedCapsule(req);
  if (req.rolloutId === 0n) throw invalidArgument("rollout_id", "is required");
  const stub = env.ROLLOUTS.getByName(rolloutName(projectId, capsuleId, req.rolloutId));
  const rollout = await stub.get();
  if (!rollout) throw notFound(`rollout ${bounded(req.rolloutId)} of capsule ${bounded(capsuleId)} in project ${bounded(projectId)}`);
  return { stub, rollout };
}

/**
 * The access scope of a request that names a rollout: the capsule, in the rollout's own
 * environment, whatever the request says (GetRollout, AbortRollout and StopRollout name no
 * environment; ListEvents may name another one than the rollout's). A request naming no
 * rollout, or one never started, keeps the scope it names; its handler answers for it.
 */
export async function rolloutScope(m: { projectId: string; capsuleId: string; rolloutId: bigint; environmentId?: string }, _url: URL, env: Env): Promise<Scope> {
  const scope = capsuleScope(m);
  if (!m.projectId || !m.capsuleId || m.rolloutId === 0n) return scope;
  const rollout = await env.ROLLOUTS.getByName(rolloutName(m.projectId, m.capsuleId, m.rolloutId)).get();
  return rollout ? { ...scope, environment: rollout.identity.environmentId } : scope;
}

/** Asks the environment a rollout belongs to (requests name only the rollout) to act on it, as the caller. */
async function inRolloutEnvironment(
  ctx: HandlerContext,
  req: { projectId: string; capsuleId: string; rolloutId: bigint },
  act: (rollouts: ReturnType<DurableObjectStub<EnvironmentDO>["rollouts"]>, id: RolloutIdentity, by: Author) => Promise<Outcome<void>>,
): Promise<void> {
  const env = envOf(ctx);
  const { rollout } = await requireRollout(env, req);
  using rollouts = held(env.ENVIRONMENTS.getByName(rollout.identity.environmentId).rollouts());
  unwrap(await act(rollouts, rollout.identity, authorOf(principalOf(ctx))));
}

const rolloutMessage = (r: { config: RolloutConfig; status: Status; identity: { rolloutId: number } }) => ({
  rolloutId: BigInt(r.identity.rolloutId),
  config: r.config,
  status: r.status,
});

/** The checks of a deploy target in one D1 batch: capsule, environment, project active there, images. */
async function checkedDeployTarget(env: Env, projectId: string, capsuleId: string, environmentId: string) {
  const { capsuleFound, environment: e, imageIds } = await deployTarget(env, projectId, capsuleId, environmentId);
  if (!capsuleFound) throw notFound(`capsule ${bounded(capsuleId)} in project ${bounded(projectId)}`);
  if (!e) throw notFound(`environment ${bounded(environmentId)}`);
  if (!e.global && !e.active) {
    throw failedPrecondition(`project ${projectId} is not active in environment ${environmentId}: add it to the environment (add_project) first`);
  }
  return {
    namespace: renderNamespace(parseNamespaceTemplate(e.namespace_template), projectId, environmentId),
    imageIds,
  };
}

/** Each kind of change needs its own deploy sub-action (`capsule:deploy:image`, ...) in the capsule's scope. */
function checkDeployActions(ctx: HandlerContext, req: { changes: Parameters<typeof deployKindOf>[0][]; projectId: string; capsuleId: string }, environmentId: string) {
  const p = principalOf(ctx);
  const scope = { resource: `capsule/${req.capsuleId}`, project: req.projectId, environment: environmentId };
  req.changes.forEach((change, i) => {
    const action: DeployAction = `capsule:deploy:${deployKindOf(change, `changes[${i}]`)}`;
    if (!allows(p, action, scope)) throw permissionDenied(`changes[${i}]: ${action} is not granted for capsule ${req.capsuleId} in environment ${environmentId}`);
  });
}

export const rolloutHandlers: Pick<
  ServiceImpl<typeof Service>,
  "deploy" | "getRollout" | "listRollouts" | "abortRollout" | "stopRollout" | "listEvents"
> = {
  async deploy(req, ctx) {
    const env = envOf(ctx);
    const { projectId, capsuleId } = namedCapsule(req);
    const environmentId = await environmentOf(env, req);
    checkDeployActions(ctx, req, environmentId);
    const target = await checkedDeployTarget(env, projectId, capsuleId, environmentId);
    using rollouts = held(env.ENVIRONMENTS.getByName(environmentId).rollouts());
    const result = unwrap(
      await rollouts.deploy({
        request: create(DeployRequestSchema, { ...req, environmentId }),
        createdBy: authorOf(principalOf(ctx)),
        imageIds: target.imageIds,
        namespace: target.namespace,
      }),
    );
    return { rolloutId: BigInt(result.rolloutId), rolloutConfig: result.config, resourceYaml: result.resources };
  },

  async getRollout(req, ctx) {
    const { rollout } = await requireRollout(envOf(ctx), req);
    return { rollout: rolloutMessage(rollout) };
  },

  async listRollouts(req, ctx) {
    const env = envOf(ctx);
    const { projectId, capsuleId } = namedCapsule(req);
    const environmentId = await environmentOf(env, req);
    const page = pageOf(req.pagination);
    // Newest first, as Rig lists them; `descending` reverses it.
    using inEnvironment = held(env.ENVIRONMENTS.getByName(environmentId).rollouts());
    const { ids, total } = await inEnvironment.list(projectId, capsuleId, page.offset, page.limit, page.descending);
    const rollouts = await Promise.all(ids.map((id) => env.ROLLOUTS.getByName(rolloutName(projectId, capsuleId, id)).get()));
    return { rollouts: rollouts.filter((r) => r !== null).map(rolloutMessage), total: BigInt(total) };
  },

  async abortRollout(req, ctx) {
    await inRolloutEnvironment(ctx, req, (rollouts, id, by) => rollouts.abort(id.projectId, id.capsuleId, id.rolloutId, by));
    return {};
  },

  async stopRollout(req, ctx) {
    await inRolloutEnvironment(ctx, req, (rollouts, id, by) => rollouts.stop(id.projectId, id.capsuleId, id.rolloutId, by));
    return {};
  },

  async listEvents(req, ctx) {
    const env = envOf(ctx);
    const { projectId, capsuleId } = namedCapsule(req);
    let rolloutId = req.rolloutId;
    if (rolloutId === 0n) {
      // No rollout named: the capsule's current one in the environment.
      using rollouts = held(env.ENVIRONMENTS.getByName(await environmentOf(env, req)).rollouts());
      const current = await rollouts.current(projectId, capsuleId);
      if (current === null) return { events: [], total: 0n };
      rolloutId = BigInt(current);
    }
    const { stub } = await requireRollout(env, { projectId, capsuleId, rolloutId });
    const page = pageOf(req.pagination);
    const { events, total } = await stub.events(page.offset, page.limit, page.descending);
    return {
      events: events.map(
        (e): MessageInitShape<typeof EventSchema> => ({
          createdBy: (JSON.parse(e.createdBy) ?? undefined) as MessageInitShape<typeof AuthorSchema> | undefined,
          createdAt: timestampFromMs(e.time),
          rolloutId: BigInt(e.rolloutId),
          message: e.message,
          eventData: { kind: { case: e.kind, value: {} } },
        }),
      ),
      total: BigInt(total),
    };
  },
};
