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
  | { type: "job-result"; executionId: string; exitCode: number; message?: string };

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
  /** A message the server could not accept; the connection stays open. */
  | { type: "error"; code: string; message: string };
