/**
 * Runner protocol v1: the one schema of every JSON frame exchanged over a runner's WebSocket
 * with its environment's Durable Object (docs/runner-protocol.md is the prose of this
 * contract). The server checks each frame a runner sends against `RunnerMessageSchema`, the
 * runner (runner/) checks each frame it receives against `ServerMessageSchema`: both import
 * this file, so the two sides cannot drift apart.
 */
import { z } from "zod";

export const RUNNER_PROTOCOL_VERSION = 1;

/** Rollout ids are positive integers on the wire (JSON numbers). */
const rolloutId = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);
const count = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
/** Resource measurements: any finite number (the server truncates and clamps them). */
const measure = z.number().finite();
/** RFC 3339 timestamps; the server falls back to its own time for one it cannot read. */
const time = z.string();
const id = z.string().min(1);
const stringMap = z.record(z.string(), z.string());

// ---- Runner → edgeplane: capsules ----------------------------------------------------------------

/** A Kubernetes-style object the runner created for a rollout. */
export const AppliedResourceSchema = z.object({ kind: z.string(), name: z.string(), namespace: z.string().optional() });
export type AppliedResource = z.infer<typeof AppliedResourceSchema>;

/** One instance as the runner sees it. `rolloutId` is the rollout whose configuration it runs. */
export const ReportedInstanceSchema = z.object({
  instanceId: id,
  rolloutId,
  ready: z.boolean(),
  state: z.enum(["pending", "running", "succeeded", "failed"]).optional(),
  restarts: count.optional(),
  message: z.string().optional(),
  node: z.string().optional(),
  startedAt: time.optional(),
});
export type ReportedInstance = z.infer<typeof ReportedInstanceSchema>;

export const LogLineSchema = z.object({
  /** RFC 3339; the server's time when absent. */
  time: time.optional(),
  stream: z.enum(["stdout", "stderr"]),
  text: z.string(),
});
export type LogLine = z.infer<typeof LogLineSchema>;

export const MetricSampleSchema = z.object({
  instanceId: id,
  time: time.optional(),
  cpuMs: measure,
  memoryBytes: measure,
  storageBytes: measure.optional(),
  /** The capsule's custom metrics (GetCustomInstanceMetrics), by name. */
  custom: z.record(z.string(), z.number()).optional(),
});
export type MetricSample = z.infer<typeof MetricSampleSchema>;

// ---- Automations and developer environments --------------------------------------------------------

/** A service's phase as its runner reports it. */
export const ServiceRunPhaseSchema = z.enum(["starting", "running", "stopping", "stopped", "failed"]);
export type ServiceRunPhase = z.infer<typeof ServiceRunPhaseSchema>;
/** A task step's phase as its runner reports it. */
export const StepRunPhaseSchema = z.enum(["running", "succeeded", "failed", "stopped"]);
export type StepRunPhase = z.infer<typeof StepRunPhaseSchema>;
/** The phases of a developer environment's machine, as the runner reports them (gitpod.v1.EnvironmentPhase). */
export const EnvironmentRunPhaseSchema = z.enum(["creating", "starting", "running", "updating", "stopping", "stopped", "deleting", "deleted"]);
export type EnvironmentRunPhase = z.infer<typeof EnvironmentRunPhaseSchema>;

/** Optional parts of service and step reports: `output` entries with an empty value are removed. */
const automationReport = {
  failureMessage: z.string().optional(),
  /** Where the logs of the service or step can be read. */
  logUrl: z.string().optional(),
  output: stringMap.optional(),
};

const capsule = { projectId: id, capsuleId: id };

/** Runner → edgeplane. */
export const RunnerMessageSchema = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("hello"),
    version: z.number(),
    runner: z.object({ name: z.string(), version: z.string() }),
    cluster: z.object({ type: z.string() }).optional(),
  }),
  /** The rollout's resources exist: resource creation is done. */
  z.object({
    type: z.literal("applied"),
    ...capsule,
    rolloutId,
    resources: z.array(AppliedResourceSchema),
    /** Where the capsule's ports can be reached from edgeplane (URL cron jobs call them). */
    endpoints: z.array(z.object({ port: z.number().int().min(1).max(65535), url: z.string() })).optional(),
  }),
  /** The rollout's resources could not be created; the message says why. */
  z.object({ type: z.literal("apply-failed"), ...capsule, rolloutId, message: z.string() }),
  /** The full set of the capsule's instances; any instance not listed is gone. */
  z.object({ type: z.literal("instances"), ...capsule, instances: z.array(ReportedInstanceSchema) }),
  z.object({ type: z.literal("log"), ...capsule, instanceId: id, lines: z.array(LogLineSchema) }),
  z.object({ type: z.literal("metrics"), ...capsule, samples: z.array(MetricSampleSchema) }),
  /** Output of an Execute session; `data` is base64. */
  z.object({ type: z.literal("exec-output"), sessionId: id, stream: z.enum(["stdout", "stderr"]), data: z.string() }),
  z.object({ type: z.literal("exec-exit"), sessionId: id, exitCode: z.number().int(), message: z.string().optional() }),
  /** How a `job-run` ended: exit code 0 is success. */
  z.object({ type: z.literal("job-result"), executionId: id, exitCode: z.number().int(), message: z.string().optional() }),
  /** What a service is doing now; `session` is the one of the `service-desired` it acts on. */
  z.object({ type: z.literal("service-status"), serviceId: id, phase: ServiceRunPhaseSchema, session: z.string().optional(), ...automationReport }),
  /** What a step of a task execution is doing now. */
  z.object({ type: z.literal("task-step-status"), executionId: id, stepId: id, phase: StepRunPhaseSchema, ...automationReport }),
  /**
   * What the environment's machine is now, for the spec `specVersion` of the latest
   * `environment-desired` the runner acts on. `status` is a gitpod.v1.EnvironmentStatus in
   * protobuf JSON with what the machine knows (environmentUrls, machine, content,
   * devcontainer, secrets, sshPublicKeys, automationsFile); the server sets phase, versions,
   * runnerAck and activitySignal itself. A non-empty `failureMessage` means the machine failed.
   */
  z.object({
    type: z.literal("environment-status"),
    specVersion: z.number().int(),
    phase: EnvironmentRunPhaseSchema,
    failureMessage: z.array(z.string()).optional(),
    warningMessage: z.array(z.string()).optional(),
    status: z.unknown().optional(),
  }),
  /** Asks whether a token someone presented is a live access or logs token of this environment; answered by `token-verified`. */
  z.object({ type: z.literal("verify-token"), requestId: z.string(), token: z.string() }),
]);

/** Credentials for one registry: username and password, or Docker's base64 `auth` string. */
export const RegistryAuthSchema = z.object({ host: z.string(), username: z.string().optional(), password: z.string().optional(), auth: z.string().optional() });
export type RegistryAuth = z.infer<typeof RegistryAuthSchema>;

// ---- edgeplane → runner ------------------------------------------------------------------------------

/** edgeplane → runner. */
export const ServerMessageSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("welcome"), environmentId: z.string(), version: z.number() }),
  /** Make this rollout what runs for the capsule. Level-triggered: sent again in full after every reconnect. `config` is api.v1.capsule.RolloutConfig in protobuf JSON. */
  z.object({
    type: z.literal("desired"),
    ...capsule,
    rolloutId,
    config: z.json(),
    /** Pull credentials of the project's registries (project settings), for the registries the rollout's image is on. */
    registries: z.array(RegistryAuthSchema).optional(),
  }),
  /** Sent after the `desired` messages that follow `hello`: the complete set; anything else the runner runs is to be removed. */
  z.object({ type: z.literal("synced"), capsules: z.array(z.object({ ...capsule, rolloutId })) }),
  /** Remove the rollout's resources (StopRollout). */
  z.object({ type: z.literal("stop"), ...capsule, rolloutId }),
  z.object({ type: z.literal("restart-instance"), ...capsule, instanceId: id }),
  z.object({
    type: z.literal("exec-start"),
    sessionId: id,
    ...capsule,
    instanceId: id,
    command: z.string(),
    arguments: z.array(z.string()),
    interactive: z.boolean(),
    tty: z.object({ width: z.number().int(), height: z.number().int() }).optional(),
  }),
  z.object({ type: z.literal("exec-input"), sessionId: id, data: z.string(), closed: z.boolean().optional() }),
  z.object({ type: z.literal("exec-resize"), sessionId: id, width: z.number().int(), height: z.number().int() }),
  z.object({ type: z.literal("exec-close"), sessionId: id }),
  /** Run a command cron job once in an instance of the capsule, answered by `job-result`. */
  z.object({
    type: z.literal("job-run"),
    executionId: id,
    ...capsule,
    jobName: z.string(),
    command: z.string(),
    args: z.array(z.string()),
    timeoutMs: z.number().optional(),
  }),
  /** The execution ended on the server (its deadline, or its rollout was replaced or stopped): stop the attempt and remove what it left; no `job-result` is expected. */
  z.object({ type: z.literal("job-cancel"), executionId: id }),
  /**
   * The Skaffold control API was called (Execute, AutoBuild/AutoSync/AutoDeploy): `intent`
   * asks the dev loop for one pass of those phases (proto.Intent; with `devloop` a whole
   * iteration and the other flags are ignored), absent when only a trigger changed; `auto`
   * holds the auto triggers now in force. An intent sent while no runner is connected waits
   * and comes with the one after the next `hello`.
   */
  z.object({
    type: z.literal("skaffold-intent"),
    intent: z.object({ build: z.boolean(), sync: z.boolean(), deploy: z.boolean(), devloop: z.boolean() }).optional(),
    auto: z.object({ build: z.boolean(), sync: z.boolean(), deploy: z.boolean() }),
  }),
  /**
   * What a service should be doing. Level-triggered: sent on every change and again for every
   * service after `hello`. A new `session` means (re)start it; `deleted` means stop it and forget it.
   * `runsOn` and `env` are gitpod.v1.RunsOn and EnvironmentVariableItem in protobuf JSON.
   */
  z.object({
    type: z.literal("service-desired"),
    serviceId: id,
    reference: z.string(),
    desiredPhase: z.enum(["running", "stopped", "deleted"]),
    session: z.string(),
    commands: z.object({ start: z.string(), ready: z.string().optional(), stop: z.string().optional() }),
    runsOn: z.unknown().optional(),
    env: z.array(z.unknown()).optional(),
  }),
  /** Sent after the `service-desired` messages that follow `hello`: any other service the runner runs is to be stopped. */
  z.object({ type: z.literal("services-synced"), serviceIds: z.array(z.string()) }),
  /** Run one task step, answered with `task-step-status`; sent again after `hello` while the step has not ended. */
  z.object({
    type: z.literal("task-step-run"),
    executionId: id,
    stepId: id,
    taskId: z.string(),
    label: z.string(),
    command: z.string(),
    runsOn: z.unknown().optional(),
    env: z.array(z.unknown()).optional(),
  }),
  /** Stop a running task step (StopTaskExecution, or another step of its execution failed). */
  z.object({ type: z.literal("task-step-stop"), executionId: id, stepId: id }),
  /**
   * What the developer environment's machine should be: `desiredPhase` running, stopped or
   * deleted, with `spec` (gitpod.v1.EnvironmentSpec in protobuf JSON) at `specVersion`.
   * Level-triggered: sent on every change of the spec and again after `hello`.
   */
  z.object({
    type: z.literal("environment-desired"),
    environmentId: z.string(),
    specVersion: z.number().int(),
    desiredPhase: z.enum(["running", "stopped", "deleted"]),
    spec: z.unknown(),
  }),
  /** The answer to `verify-token`: `kind` says what a valid token allows (access: act as the environment; logs: read its logs). */
  z.object({
    type: z.literal("token-verified"),
    requestId: z.string(),
    valid: z.boolean(),
    kind: z.enum(["access", "logs"]).optional(),
    message: z.string().optional(),
  }),
  /** A message the server could not accept; the connection stays open. Codes are Connect code names. */
  z.object({ type: z.literal("error"), code: z.string(), message: z.string() }),
]);

/** Runner → edgeplane. */
export type RunnerMessage = z.infer<typeof RunnerMessageSchema>;
/** edgeplane → runner. */
export type ServerMessage = z.infer<typeof ServerMessageSchema>;

/** The outcome of reading one frame: the message, or why it was refused (a one-line reason). */
export type FrameResult<M> = { ok: true; message: M } | { ok: false; reason: string };

/** How much of an offending value a refusal quotes: enough to recognize it, bounded so a huge frame is not echoed back. */
const QUOTE_CHARS = 80;

function quote(value: unknown): string {
  let text: string;
  try {
    text = value === undefined ? "missing" : JSON.stringify(value);
  } catch {
    text = String(value);
  }
  return text.length > QUOTE_CHARS ? `${text.slice(0, QUOTE_CHARS)}…` : text;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = root;
  for (const key of path) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<PropertyKey, unknown>)[key];
  }
  return v;
}

const typesOf = (schema: { options: readonly { shape: { type: { value: string } } }[] }) => new Set(schema.options.map((o) => o.shape.type.value));
const runnerTypes = typesOf(RunnerMessageSchema);
const serverTypes = typesOf(ServerMessageSchema);

function parseFrame<M>(text: string, types: Set<string>, schema: z.ZodType<M>): FrameResult<M> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, reason: "each frame must be one JSON message with a type" };
  }
  const type = raw !== null && typeof raw === "object" && "type" in raw ? raw.type : undefined;
  if (typeof type !== "string") return { ok: false, reason: "each frame must be one JSON message with a type" };
  if (!types.has(type)) return { ok: false, reason: `unknown message type ${quote(type)}` };
  const parsed = schema.safeParse(raw);
  if (parsed.success) return { ok: true, message: parsed.data };
  const issues = parsed.error.issues.slice(0, 3).map((i) => `${i.path.join(".") || "frame"} ${quote(valueAt(raw, i.path))}: ${i.message}`);
  return { ok: false, reason: `invalid ${type} frame: ${issues.join("; ")}` };
}

/** Reads a frame a runner sent. */
export const parseRunnerFrame = (text: string): FrameResult<RunnerMessage> => parseFrame(text, runnerTypes, RunnerMessageSchema);
/** Reads a frame the server sent. */
export const parseServerFrame = (text: string): FrameResult<ServerMessage> => parseFrame(text, serverTypes, ServerMessageSchema);
