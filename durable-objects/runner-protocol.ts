/**
 * Runner protocol v1: the JSON messages exchanged over a runner's WebSocket with its
 * environment's Durable Object. docs/runner-protocol.md is the prose of this contract;
 * the test runner (test/helpers/runner.ts) is written against these types.
 */

export const RUNNER_PROTOCOL_VERSION = 1;

/** A Kubernetes-style object the runner created for a rollout. */
export interface AppliedResource {
  kind: string;
  name: string;
  namespace?: string;
}

/** One instance as the runner sees it. `rolloutId` is the rollout whose configuration it runs. */
export interface ReportedInstance {
  instanceId: string;
  rolloutId: number;
  ready: boolean;
  state?: "pending" | "running" | "succeeded" | "failed";
  restarts?: number;
  message?: string;
  node?: string;
  /** RFC 3339. */
  startedAt?: string;
}

export interface LogLine {
  /** RFC 3339; the server's time when absent. */
  time?: string;
  stream: "stdout" | "stderr";
  text: string;
}

export interface MetricSample {
  instanceId: string;
  time?: string;
  cpuMs: number;
  memoryBytes: number;
  storageBytes?: number;
  /** The capsule's custom metrics (GetCustomInstanceMetrics), by name. */
  custom?: Record<string, number>;
}

// Automations (gitpod.v1.EnvironmentAutomationService)

/** A service's phase as its runner reports it. */
export type ServiceRunPhase = "starting" | "running" | "stopping" | "stopped" | "failed";
/** A task step's phase as its runner reports it. */
export type StepRunPhase = "running" | "succeeded" | "failed" | "stopped";

/** Optional parts of service and step reports: `output` entries with an empty value are removed. */
interface AutomationReport {
  failureMessage?: string;
  /** Where the logs of the service or step can be read. */
  logUrl?: string;
  output?: Record<string, string>;
}

// Developer environments (gitpod.v1.EnvironmentService)

/** The phases of a developer environment's machine, as the runner reports them (gitpod.v1.EnvironmentPhase). */
export type EnvironmentRunPhase = "creating" | "starting" | "running" | "updating" | "stopping" | "stopped" | "deleting" | "deleted";

/** Runner → edgeplane. */
export type RunnerMessage =
  | { type: "hello"; version: number; runner: { name: string; version: string }; cluster?: { type: string } }
  /** The rollout's resources exist: resource creation is done. */
  | {
      type: "applied";
      projectId: string;
      capsuleId: string;
      rolloutId: number;
      resources: AppliedResource[];
      /** Where the capsule's ports can be reached from edgeplane (URL cron jobs call them). */
      endpoints?: { port: number; url: string }[];
    }
  /** The rollout's resources could not be created; the message says why. */
  | { type: "apply-failed"; projectId: string; capsuleId: string; rolloutId: number; message: string }
  /** The full set of the capsule's instances; any instance not listed is gone. */
  | { type: "instances"; projectId: string; capsuleId: string; instances: ReportedInstance[] }
  | { type: "log"; projectId: string; capsuleId: string; instanceId: string; lines: LogLine[] }
  | { type: "metrics"; projectId: string; capsuleId: string; samples: MetricSample[] }
  /** Output of an Execute session; `data` is base64. */
  | { type: "exec-output"; sessionId: string; stream: "stdout" | "stderr"; data: string }
  | { type: "exec-exit"; sessionId: string; exitCode: number; message?: string }
  /** How a `job-run` ended: exit code 0 is success. */
  | { type: "job-result"; executionId: string; exitCode: number; message?: string }
  // Automations
  /** What a service is doing now; `session` is the one of the `service-desired` it acts on. */
  | ({ type: "service-status"; serviceId: string; phase: ServiceRunPhase; session?: string } & AutomationReport)
  /** What a step of a task execution is doing now. */
  | ({ type: "task-step-status"; executionId: string; stepId: string; phase: StepRunPhase } & AutomationReport)
  // Developer environments
  /**
   * What the environment's machine is now, for the spec `specVersion` of the latest
   * `environment-desired` the runner acts on. `status` is a gitpod.v1.EnvironmentStatus in
   * protobuf JSON with what the machine knows (environmentUrls, machine, content,
   * devcontainer, secrets, sshPublicKeys, automationsFile); the server sets phase, versions,
   * runnerAck and activitySignal itself. A non-empty `failureMessage` means the machine failed.
   */
  | { type: "environment-status"; specVersion: number; phase: EnvironmentRunPhase; failureMessage?: string[]; warningMessage?: string[]; status?: unknown }
  /** Asks whether a token someone presented is a live access or logs token of this environment; answered by `token-verified`. */
  | { type: "verify-token"; requestId: string; token: string };

/** edgeplane → runner. */
export type ServerMessage =
  | { type: "welcome"; environmentId: string; version: number }
  /** Make this rollout what runs for the capsule. Level-triggered: sent again in full after every reconnect. */
  | { type: "desired"; projectId: string; capsuleId: string; rolloutId: number; config: unknown }
  /** Sent after the `desired` messages that follow `hello`: the complete set; anything else the runner runs is to be removed. */
  | { type: "synced"; capsules: { projectId: string; capsuleId: string; rolloutId: number }[] }
  /** Remove the rollout's resources (StopRollout). */
  | { type: "stop"; projectId: string; capsuleId: string; rolloutId: number }
  | { type: "restart-instance"; projectId: string; capsuleId: string; instanceId: string }
  | {
      type: "exec-start";
      sessionId: string;
      projectId: string;
      capsuleId: string;
      instanceId: string;
      command: string;
      arguments: string[];
      interactive: boolean;
      tty?: { width: number; height: number };
    }
  | { type: "exec-input"; sessionId: string; data: string; closed?: boolean }
  | { type: "exec-resize"; sessionId: string; width: number; height: number }
  | { type: "exec-close"; sessionId: string }
  /** Run a command cron job once in an instance of the capsule, answered by `job-result`. */
  | { type: "job-run"; executionId: string; projectId: string; capsuleId: string; jobName: string; command: string; args: string[]; timeoutMs?: number }
  // Skaffold
  /**
   * The Skaffold control API was called (Execute, AutoBuild/AutoSync/AutoDeploy): `intent`
   * asks the dev loop for one pass of those phases (proto.Intent; with `devloop` a whole
   * iteration and the other flags are ignored), absent when only a trigger changed; `auto`
   * holds the auto triggers now in force. An intent sent while no runner is connected waits
   * and comes with the one after the next `hello`.
   */
  | {
      type: "skaffold-intent";
      intent?: { build: boolean; sync: boolean; deploy: boolean; devloop: boolean };
      auto: { build: boolean; sync: boolean; deploy: boolean };
    }
  // Automations
  /**
   * What a service should be doing. Level-triggered: sent on every change and again for every
   * service after `hello`. A new `session` means (re)start it; `deleted` means stop it and forget it.
   * `runsOn` and `env` are gitpod.v1.RunsOn and EnvironmentVariableItem in protobuf JSON.
   */
  | {
      type: "service-desired";
      serviceId: string;
      reference: string;
      desiredPhase: "running" | "stopped" | "deleted";
      session: string;
      commands: { start: string; ready?: string; stop?: string };
      runsOn?: unknown;
      env?: unknown[];
    }
  /** Sent after the `service-desired` messages that follow `hello`: any other service the runner runs is to be stopped. */
  | { type: "services-synced"; serviceIds: string[] }
  /** Run one task step, answered with `task-step-status`; sent again after `hello` while the step has not ended. */
  | { type: "task-step-run"; executionId: string; stepId: string; taskId: string; label: string; command: string; runsOn?: unknown; env?: unknown[] }
  /** Stop a running task step (StopTaskExecution, or another step of its execution failed). */
  | { type: "task-step-stop"; executionId: string; stepId: string }
  // Developer environments
  /**
   * What the developer environment's machine should be: `desiredPhase` running, stopped or
   * deleted, with `spec` (gitpod.v1.EnvironmentSpec in protobuf JSON) at `specVersion`.
   * Level-triggered: sent on every change of the spec and again after `hello`.
   */
  | { type: "environment-desired"; environmentId: string; specVersion: number; desiredPhase: "running" | "stopped" | "deleted"; spec: unknown }
  /** The answer to `verify-token`: `kind` says what a valid token allows (access: act as the environment; logs: read its logs). */
  | { type: "token-verified"; requestId: string; valid: boolean; kind?: "access" | "logs"; message?: string }
  /** A message the server could not accept; the connection stays open. */
  | { type: "error"; code: string; message: string };
