/**
 * What the concerns of an EnvironmentDO (rollouts, jobs, instances, Execute, the developer
 * environment, automations, Skaffold, the runner connection) need from the object itself.
 * The object hands each concern this, and the other concerns it calls, when it is built.
 */
import type { Env } from "../../workers/env";
import { failedPrecondition } from "../../workers/core/errors";
import type { CronJobs } from "./jobs/store";
import type { EventLog } from "../lib/event-log";
import type { EventStream } from "../lib/event-stream";
import type { RunnerReports } from "./instances/reports";
import type { ServerMessage } from "../../proto/frames/runner";
import type { Timers } from "../lib/timers";

/** Who an EnvironmentDO is, as recorded by `initialize`. */
export interface EnvironmentIdentity {
  environmentId: string;
  ephemeral: boolean;
  /** The environment's `created_at` in D1: tells this incarnation from an earlier one of the same name. */
  createdAt: number;
}

/** The object's storage, with its tables. */
export interface EnvironmentStores {
  sql: SqlStorage;
  log: EventLog;
  reports: RunnerReports;
  jobs: CronJobs;
  timers: Timers;
}

export interface EnvironmentHost {
  /** The object's state: storage, transactions and sockets. */
  readonly ctx: DurableObjectState;
  /** The Worker's bindings: D1, the rollout objects, settings. */
  readonly env: Env;
  /** The environment's event stream, which every concern publishes to. */
  readonly stream: EventStream;
  /** The object's storage, with its tables created on first use. */
  open(): EnvironmentStores;
  /** Runs `fn` after everything queued on `key` (a capsule: `capsuleKey`) before it. */
  serialize<T>(key: string, fn: () => Promise<T>): Promise<T>;
  /** The identity `initialize` recorded, or null. */
  identity(): EnvironmentIdentity | null;
  /** The identity, or not_found for an environment that does not exist (any more). */
  requireIdentity(): EnvironmentIdentity;
  /** The runner that said hello on an open socket, if any. */
  runner(): { name: string; version: string } | null;
  /** Sends the connected runner a message; false when none is connected or the send failed. */
  toRunner(msg: ServerMessage): boolean;
  /** Drops all of the object's state: the environment is gone (a developer environment's deletion). */
  destroy(): Promise<void>;
}

/** The per-capsule queue a capsule's deploys, aborts and runner reports run on, one at a time. */
export const capsuleKey = (projectId: string, capsuleId: string) => `${projectId}/${capsuleId}`;

/** The error for a call that needs the runner while none is connected. */
export function noRunner(host: Pick<EnvironmentHost, "requireIdentity">, what: string) {
  const { environmentId } = host.requireIdentity();
  return failedPrecondition(`no runner is connected to environment ${environmentId}, so nothing can ${what}`);
}
