/**
 * What the protocol side of the runner needs from whatever runs the workloads. The Docker
 * driver (docker/driver.ts) is one; a Kubernetes driver (Deployments, Services, CronJobs)
 * would be another, behind the same interface, with no change to the protocol code.
 */
import type { RolloutConfig } from "../../proto/gen/api/v1/capsule/rollout_pb";
import type { AppliedResource, LogLine, MetricSample, RegistryAuth, ReportedInstance } from "../../proto/frames/runner";

/** A capsule of the environment. */
export interface CapsuleRef {
  projectId: string;
  capsuleId: string;
}


/** One rollout a capsule should run. */
export interface DesiredRollout {
  ref: CapsuleRef;
  rolloutId: number;
  config: RolloutConfig;
  registries: RegistryAuth[];
}

/** What the driver says back through the protocol. Calls may come at any time, connected or not. */
export interface Reporter {
  /** The capsule's full set of instances now (level-triggered). */
  instances(ref: CapsuleRef, instances: ReportedInstance[]): void;
  /** New log lines of one instance, in order. */
  log(ref: CapsuleRef, instanceId: string, lines: LogLine[]): void;
  metrics(ref: CapsuleRef, samples: MetricSample[]): void;
}

/** The resources a rollout got, and where each interface port can be reached. */
export interface Applied {
  resources: AppliedResource[];
  endpoints: { port: number; url: string }[];
}

/** The rollout's resources could not be made; `message` says why (the registry's reason for a pull). */
export class ApplyFailed extends Error {}

/** An Execute session's request. */
export interface ExecRequest {
  ref: CapsuleRef;
  instanceId: string;
  command: string;
  arguments: string[];
  interactive: boolean;
  tty?: { width: number; height: number };
}

/** Where an Execute session's output goes. */
export interface ExecOutput {
  output(stream: "stdout" | "stderr", data: Buffer): void;
  exit(exitCode: number, message?: string): void;
}

/** A running Execute session. */
export interface ExecSession {
  input(data: Buffer, closed: boolean): void;
  resize(width: number, height: number): void;
  close(): void;
}

export interface Driver {
  /** Finds what already runs (adopting it, restarting nothing) and starts reporting. */
  start(reporter: Reporter): Promise<void>;
  /** Makes `desired` what runs for its capsule; idempotent. Throws ApplyFailed. */
  apply(desired: DesiredRollout): Promise<Applied>;
  /** Removes the rollout's workloads (StopRollout). */
  stop(ref: CapsuleRef, rolloutId: number): Promise<void>;
  /** The complete desired set is known: anything of another capsule is removed. */
  retain(capsules: { ref: CapsuleRef; rolloutId: number }[]): Promise<void>;
  restartInstance(ref: CapsuleRef, instanceId: string): Promise<void>;
  /** Starts an Execute session; throws when the instance does not exist. */
  exec(request: ExecRequest, out: ExecOutput): Promise<ExecSession>;
  /** Every capsule's instances as last seen, to report again after a reconnect. */
  current(): { ref: CapsuleRef; instances: ReportedInstance[] }[];
  /** Stops watching; the workloads keep running. */
  close(): Promise<void>;
}
