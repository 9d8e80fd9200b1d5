/**
 * api.v1.capsule.Service: instances, logs and metrics, as the environment's runner reports
 * them (docs/runner-protocol.md). Nothing here is invented: without a runner there are no
 * instances, and calls that need one say so.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { State as InstanceState } from "../../proto/gen/api/v1/capsule/instance_pb";
import { ReadyState, StageState, StatusSchema, StepState } from "../../proto/gen/api/v1/capsule/instance/status_pb";
import type { Service } from "../../proto/gen/api/v1/capsule/service_pb";
import { held, type InstanceRow } from "../../durable-objects/contract";
import { unwrap } from "../core/outcome";
import { namedCapsule, requireCapsule } from "../d1/capsules";
import { requireExisting } from "../d1/exists";
import { envOf } from "./context";
import { bounded, invalidArgument, notFound } from "../core/errors";
import { pageOf } from "../core/pagination";
import { environmentOf } from "./capsule-rollouts";

/** Logs with follow wait this long per round trip to the environment's object. */
const FOLLOW_POLL_MS = 20_000;

const STATES: Record<string, InstanceState> = {
  pending: InstanceState.PENDING,
  running: InstanceState.RUNNING,
  succeeded: InstanceState.SUCCEEDED,
  failed: InstanceState.FAILED,
};

const ts = (ms: number | null) => (ms === null ? undefined : timestampFromMs(ms));

type Row = InstanceRow & { image_id: string };

const instanceMessage = (r: Row) => ({
  instanceId: r.instance_id,
  imageId: r.image_id,
  state: STATES[r.state] ?? InstanceState.UNSPECIFIED,
  restartCount: r.restarts,
  createdAt: ts(r.created_at),
  startedAt: ts(r.started_at),
  finishedAt: ts(r.deleted_at),
  message: r.message,
  rolloutId: BigInt(r.rollout_id),
});

/** An instance's status as the specification's stage tree: scheduled, prepared, running (ready or not), deleted. */
function statusMessage(r: Row) {
  const at = timestampFromMs(r.updated_at);
  const info = (name: string, state: StageState) => ({ name, state, updatedAt: at });
  const stepInfo = (name: string, state: StepState, message = "") => ({ name, state, message, updatedAt: at });
  const ready = r.ready ? ReadyState.READY : r.restarts > 0 ? ReadyState.CRASH_LOOP_BACKOFF : ReadyState.NOT_READY;
  return create(StatusSchema, {
    instanceId: r.instance_id,
    rolloutId: BigInt(r.rollout_id),
    image: r.image_id,
    createdAt: timestampFromMs(r.created_at),
    stages: {
      schedule: {
        info: info("schedule", StageState.DONE),
        steps: [{ step: { case: "placement", value: { info: stepInfo("placement", StepState.DONE), node: r.node } } }],
      },
      preparing: { info: info("preparing", r.state === "pending" ? StageState.ONGOING : StageState.DONE) },
      running:
        r.state === "pending"
          ? undefined
          : {
              info: info("running", r.state === "failed" ? StageState.FAILED : StageState.RUNNING),
              restarts: r.restarts,
              steps: [
                {
                  step: {
                    case: "ready",
                    value: { info: stepInfo("ready", r.ready ? StepState.DONE : StepState.ONGOING, r.message), state: ready, failCount: r.ready ? 0 : r.restarts },
                  },
                },
              ],
            },
      deleted: r.deleted_at === null ? undefined : { info: { name: "deleted", state: StageState.DONE, updatedAt: timestampFromMs(r.deleted_at) } },
    },
  });
}

/** The capsule and environment a request names, both checked to exist, and the instances API of the environment's object. */
async function target(ctx: HandlerContext, req: { projectId: string; capsuleId: string; environmentId: string }) {
  const env = envOf(ctx);
  const { projectId, capsuleId } = namedCapsule(req);
  const environmentId = await environmentOf(env, req);
  await Promise.all([requireCapsule(env, projectId, capsuleId), requireExisting(env, "environment", environmentId)]);
  return { projectId, capsuleId, api: held(env.ENVIRONMENTS.getByName(environmentId).instances()) };
}

export const instanceHandlers: Pick<
  ServiceImpl<typeof Service>,
  "listInstances" | "getInstanceStatus" | "listInstanceStatuses" | "restartInstance" | "logs" | "capsuleMetrics" | "getCustomInstanceMetrics" | "execute"
> = {
  async listInstances(req, ctx) {
    const { projectId, capsuleId, api } = await target(ctx, req);
    using instances = api;
    const rows = await instances.list(projectId, capsuleId, req);
    const page = pageOf(req.pagination);
    return { instances: page.slice(rows).map(instanceMessage), total: BigInt(rows.length) };
  },

  async listInstanceStatuses(req, ctx) {
    const { projectId, capsuleId, api } = await target(ctx, req);
    using instances = api;
    const rows = await instances.list(projectId, capsuleId, req);
    const page = pageOf(req.pagination);
    return { instances: page.slice(rows).map(statusMessage), total: BigInt(rows.length) };
  },

  async getInstanceStatus(req, ctx) {
    if (!req.instanceId) throw invalidArgument("instance_id", "is required");
    const { projectId, capsuleId, api } = await target(ctx, req);
    using instances = api;
    const row = await instances.get(projectId, capsuleId, req.instanceId);
    if (!row) throw notFound(`instance ${bounded(req.instanceId)} of capsule ${bounded(capsuleId)}`);
    return { status: statusMessage(row) };
  },

  async restartInstance(req, ctx) {
    if (!req.instanceId) throw invalidArgument("instance_id", "is required");
    const { projectId, capsuleId, api } = await target(ctx, req);
    using instances = api;
    unwrap(await instances.restart(projectId, capsuleId, req.instanceId));
    return {};
  },

  /** History first (from `since`), then, with `follow`, new lines as the runner sends them. */
  async *logs(req, ctx) {
    const { projectId, capsuleId, api } = await target(ctx, req);
    using instances = api;
    if (req.instanceId && !(await instances.get(projectId, capsuleId, req.instanceId))) {
      throw notFound(`instance ${bounded(req.instanceId)} of capsule ${bounded(capsuleId)}`);
    }
    const sinceMs = req.since ? Date.now() - (Number(req.since.seconds) * 1000 + Math.floor(req.since.nanos / 1e6)) : undefined;
    let after = 0;
    for (;;) {
      const waitMs = req.follow ? FOLLOW_POLL_MS : 0;
      const lines = await instances.logs(projectId, capsuleId, { instanceId: req.instanceId || undefined, after, sinceMs, waitMs });
      for (const l of lines) {
        const data = new TextEncoder().encode(l.text.endsWith("\n") ? l.text : `${l.text}\n`);
        yield {
          log: {
            timestamp: timestampFromMs(l.time),
            instanceId: l.instanceId,
            message: { message: { case: l.stream, value: data } },
          },
        };
        after = l.seq;
      }
      if (!req.follow && lines.length < 1000) return;
      if (ctx.signal.aborted) return;
    }
  },

  async capsuleMetrics(req, ctx) {
    const { projectId, capsuleId, api } = await target(ctx, req);
    using instances = api;
    const samples = unwrap(
      await instances.metrics(projectId, capsuleId, { instanceId: req.instanceId || undefined, sinceMs: req.since ? timestampMs(req.since) : undefined }),
    );
    return {
      instanceMetrics: samples.map((s) => ({
        capsuleId,
        instanceId: s.instanceId,
        mainContainer: { timestamp: timestampFromMs(s.time), cpuMs: BigInt(s.cpuMs), memoryBytes: BigInt(s.memoryBytes), storageBytes: BigInt(s.storageBytes) },
      })),
    };
  },

  async getCustomInstanceMetrics(req, ctx) {
    const { projectId, capsuleId, api } = await target(ctx, req);
    using instances = api;
    const metrics = unwrap(await instances.customMetrics(projectId, capsuleId));
    return { metrics: metrics.map((m) => ({ name: m.name, latestValue: m.value, latestTimestamp: timestampFromMs(m.time) })) };
  },

  // biome-ignore lint/correctness/useYield: refuses before reading the stream
  async *execute() {
    // Bidirectional streaming needs HTTP/2 end to end, which a Worker does not get from its
    // clients; the same session runs over a WebSocket instead (docs/execute.md).
    throw new ConnectError(
      "Execute is bidirectional streaming, which Workers cannot serve over HTTP/1.1: open the WebSocket session described in docs/execute.md (POST /environments/<id>/exec/tickets)",
      Code.Unimplemented,
    );
  },
};
