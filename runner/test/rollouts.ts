/** Deploying capsules and reading their rollouts and instances, for the runner's e2e tests. */
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ChangeSchema } from "../../proto/gen/api/v1/capsule/change_pb";
import { State, StepState } from "../../proto/gen/api/v1/capsule/rollout/status_pb";
import type { Rollout } from "../../proto/gen/api/v1/capsule/rollout_pb";
import { eventually } from "../../test/helpers/wait";
import type { RunnerEnvironment } from "./harness";

export type Change = MessageInitShape<typeof ChangeSchema>;

export const image = (name: string): Change => ({ field: { case: "addImage", value: { image: name } } });
export const replicas = (n: number): Change => ({ field: { case: "replicas", value: n } });
export const env = (name: string, value: string): Change => ({ field: { case: "setEnvironmentVariable", value: { name, value } } });
export const command = (cmd: string, ...args: string[]): Change => ({ field: { case: "commandArguments", value: { command: cmd, args } } });

/**
 * An HTTP interface on container port 8080, its readiness probe on `/`, public on host port
 * `hostPort` when given.
 */
export const httpInterface = (hostPort?: number): Change => ({
  field: {
    case: "setInterface",
    value: {
      name: "http",
      port: 8080,
      readiness: { kind: { case: "http", value: { path: "/" } } },
      ...(hostPort ? { public: { enabled: true, method: { kind: { case: "loadBalancer", value: { port: hostPort } } } } } : {}),
    },
  },
});

/** The busybox shell script that serves `/` with its host name (the instance id) and the GREETING variable. */
const SERVE = ["mkdir -p /tmp/www", 'echo "$(hostname) $' + '{GREETING:-hello}" > /tmp/www/index.html', "exec httpd -f -p 8080 -h /tmp/www"].join(" && ");
export const serveHostname = (): Change => command("sh", "-c", SERVE);

let capsules = 0;

/** A new capsule of the environment's project. */
export async function newCapsule(e: RunnerEnvironment): Promise<string> {
  const name = `c${++capsules}`;
  await e.capsules().create({ projectId: e.projectId, name });
  return name;
}

export async function deploy(e: RunnerEnvironment, capsuleId: string, changes: Change[], force = false): Promise<bigint> {
  const res = await e.capsules().deploy({ projectId: e.projectId, capsuleId, environmentId: e.environmentId, changes, force });
  return res.rolloutId;
}

export async function rollout(e: RunnerEnvironment, capsuleId: string, rolloutId: bigint): Promise<Rollout> {
  return (await e.capsules().getRollout({ projectId: e.projectId, capsuleId, rolloutId })).rollout!;
}

/** The running stage's instances step, once the rollout got that far. */
export function instancesStep(r: Rollout) {
  const step = r.status?.stages?.running?.steps.find((s) => s.step.case === "instances")?.step;
  return step?.case === "instances" ? step.value : undefined;
}

/** RUNNING with every instance ready: the rollout is healthy. */
export const settled = (r: Rollout) => r.status?.state === State.RUNNING && instancesStep(r)?.info?.state === StepState.DONE;

/** Waits for a rollout to satisfy `ok`. */
export const until = (e: RunnerEnvironment, capsuleId: string, rolloutId: bigint, ok: (r: Rollout) => boolean, what: string, timeoutMs = 30_000) =>
  eventually(() => rollout(e, capsuleId, rolloutId), ok, `rollout ${rolloutId} of ${capsuleId}: ${what}`, timeoutMs, 200);

export const instances = async (e: RunnerEnvironment, capsuleId: string) =>
  (await e.capsules().listInstances({ projectId: e.projectId, capsuleId, environmentId: e.environmentId })).instances;
