/** The developer environment (gitpod.v1.EnvironmentService) an EnvironmentDO may hold: user changes, runner reports, and its end. */
import {
  type Environment,
  type EnvironmentMetadata,
  EnvironmentPhase,
  type EnvironmentSpec,
  type UpdateEnvironmentRequest,
} from "../../../proto/gen/gitpod/v1/environment_pb";
import { verifyEnvironmentToken } from "../../../workers/core/environment-tokens";
import { installationHmacKey } from "../../../workers/d1/installation-keys";
import { alreadyExists, bounded, failedPrecondition, notFound } from "../../../workers/core/errors";
import { deleteEnvironmentStatements } from "../../../workers/d1/cascades";
import { writeBatch } from "../../../workers/d1/batch";
import * as devEnv from "./store";
import { onReport, onUser, phaseByName, PHASE_NAMES, phaseName } from "./phases";
import type { EnvironmentAutomations } from "../automations/automations";
import type { EnvironmentHost } from "../host";
import type { RunnerMessage, ServerMessage } from "../../../proto/frames/runner";

/** A user's change of the environment, other than its deletion. */
type DevChange =
  | { op: "start" | "stop" | "unarchive" }
  | { op: "update"; request: UpdateEnvironmentRequest }
  | { op: "mark-active"; source: string; at: number };

export class DevEnvironment {
  /** The developer environment (dev/store.ts), if the object holds one; `destroy` drops it. */
  private store?: devEnv.DevEnvironmentStore;

  constructor(
    private readonly host: EnvironmentHost,
    private readonly automations: EnvironmentAutomations,
  ) {}

  /** Forgets the store: `destroy` deleted its tables. */
  reset(): void {
    this.store = undefined;
  }

  private dev(): devEnv.DevEnvironmentStore {
    return (this.store ??= new devEnv.DevEnvironmentStore(this.host.open().sql));
  }

  private requireDev(): { environmentId: string; state: devEnv.DevEnvironmentState } {
    const { environmentId } = this.host.requireIdentity();
    const state = this.dev().get();
    if (!state) throw notFound(`environment ${bounded(environmentId)}`);
    return { environmentId, state };
  }

  /**
   * CreateEnvironment, once the Worker has made the environment's Rig side (`initialize`):
   * the environment is to run, which only a runner can make happen, so it starts CREATING.
   */
  create(metadata: EnvironmentMetadata, spec: EnvironmentSpec): Promise<Environment> {
    const { environmentId } = this.host.requireIdentity();
    if (this.dev().get()) throw alreadyExists(`environment ${bounded(environmentId)}`);
    return this.save(null, devEnv.newDevEnvironment(metadata, spec));
  }

  /** GetEnvironment. */
  get(): Environment {
    const { environmentId, state } = this.requireDev();
    return devEnv.environmentOf(environmentId, state);
  }

  /** Start, Stop, Unarchive, Update and MarkActive: failed_precondition when the phase forbids it. */
  async change(change: DevChange): Promise<void> {
    const { environmentId, state } = this.requireDev();
    const t = onUser(change.op === "start" || change.op === "stop" ? change.op : "change", devEnv.phaseState(state));
    if (!t.ok) throw failedPrecondition(`environment ${environmentId} cannot ${change.op.replace("-", " ")}: ${t.reason}`);
    let next = devEnv.withPhase(state, t);
    const now = Date.now();
    if (change.op === "start") next = devEnv.started(next, now);
    if (change.op === "update") next = devEnv.applyUpdate(next, change.request);
    if (change.op === "mark-active") next = devEnv.withActivity(next, change.source, change.at);
    // Unarchiving restarts the archive clock; an environment that is not archived stays as it is.
    if (change.op === "unarchive" && (devEnv.archiveAt(state) ?? Infinity) <= now) next = { ...next, unarchivedAt: now };
    // Starting a stopped machine is a new request to the runner even when the spec reads the same.
    await this.save(state, next, { touchSpec: change.op === "start" && t.phase !== state.phase });
  }

  /**
   * DeleteEnvironment. A machine a runner may hold is stopped and deleted by it first; the
   * environment is gone once the runner reports it deleted. Without a machine, or with
   * `force`, it is removed at once (the runner is still told, so it can clean up).
   */
  async delete(force: boolean): Promise<void> {
    const { environmentId, state } = this.requireDev();
    const t = onUser("delete", devEnv.phaseState(state));
    if (!t.ok) throw failedPrecondition(t.reason);
    const next = devEnv.withPhase(state, t);
    if (force || t.phase === EnvironmentPhase.DELETED) {
      if (state.ackedVersion !== null) this.host.toRunner(devEnv.desiredMessage(environmentId, next));
      return this.remove(environmentId);
    }
    await this.save(state, next);
  }

  /** WatchEvents: a ticket for the environment's event stream and the last event so far, to follow from. */
  watchFrom(subject: string): { ticket: string; after: number } {
    this.host.requireIdentity();
    return { ticket: this.host.stream.issueTicket(subject).ticket, after: this.host.open().log.lastSeq() };
  }

  /**
   * Commits a change: the store sets the versions, the stream gets its events, the runner the
   * new spec, and D1 the summary ListEnvironments reads. Answers the environment.
   */
  private async save(prev: devEnv.DevEnvironmentState | null, next: devEnv.DevEnvironmentState, opts: { touchSpec?: boolean } = {}): Promise<Environment> {
    const { environmentId } = this.host.requireIdentity();
    const c = this.dev().commit(prev, next, (s) => this.waiting(environmentId, s), opts);
    if (c.changed) {
      const { stream, env } = this.host;
      const data = devEnv.eventData(environmentId, c.state);
      if (!prev) stream.publish("dev-environment.created", data);
      if (prev && (c.specChanged || c.metadataChanged)) stream.publish("dev-environment.updated", data);
      if (prev && c.statusChanged) stream.publish("dev-environment.status-updated", data);
      if (c.specChanged) this.host.toRunner(devEnv.desiredMessage(environmentId, c.state));
      const executions = prev ? this.automations.onPhase(prev.phase, c.state) : [];
      await writeBatch(env, [devEnv.summaryStatement(env, environmentId, c), ...this.automations.indexExecutions(environmentId, executions)]);
    }
    return devEnv.environmentOf(environmentId, c.state);
  }

  /** Why the environment is not moving, for its status: never pretend that a runner is at work. */
  private waiting(environmentId: string, s: devEnv.DevEnvironmentState): string {
    const moving = [EnvironmentPhase.CREATING, EnvironmentPhase.STARTING, EnvironmentPhase.STOPPING, EnvironmentPhase.DELETING];
    if (!moving.includes(s.phase)) return "";
    const runner = this.host.runner();
    if (!runner) return `waiting for a runner: none is connected to environment ${environmentId}, so it stays ${phaseName(s.phase)} until one connects`;
    if (s.ackedVersion === null || s.ackedVersion < s.spec.specVersion) return `sent to runner ${runner.name}; waiting for it to report`;
    return "";
  }

  /** Deletes the environment for good: its D1 rows, then the object's whole state (`destroy`). */
  private async remove(environmentId: string): Promise<void> {
    // Gone without passing STOPPING (force, or no machine): what runs in it is stopped all the same.
    this.automations.op((store, op) => store.environmentStopped(op));
    this.host.stream.publish("dev-environment.deleted", { environmentId, phase: "DELETED" });
    await writeBatch(this.host.env, deleteEnvironmentStatements(this.host.env, environmentId));
    await this.host.destroy();
  }

  /** After `hello`: the runner gets the desired state again, and the status says it was sent. */
  async onRunnerHello(): Promise<void> {
    const state = this.dev().get();
    if (!state) return;
    this.host.toRunner(devEnv.desiredMessage(this.host.requireIdentity().environmentId, state));
    await this.save(state, state);
  }

  /** `environment-status`: what the machine is, for the spec version the runner acts on. */
  async onStatus(ws: WebSocket, msg: Extract<RunnerMessage, { type: "environment-status" }>, runnerSubject: string): Promise<void> {
    const refuse = (code: string, message: string) => ws.send(JSON.stringify({ type: "error", code, message } satisfies ServerMessage));
    const state = this.dev().get();
    if (!state) return refuse("not_found", "environment-status: this environment is not a developer environment");
    const version = Number(msg.specVersion);
    if (!Number.isSafeInteger(version) || version < 1 || version > state.spec.specVersion) {
      return refuse("invalid_argument", `environment-status: specVersion ${msg.specVersion} is not a spec this environment had; the latest is ${state.spec.specVersion}`);
    }
    // A report on an older spec was sent before the runner got the newest: the next one counts.
    if (version < state.spec.specVersion) return;
    const phase = phaseByName(String(msg.phase));
    if (phase === undefined) return refuse("invalid_argument", `environment-status: phase "${msg.phase}" is not one of ${PHASE_NAMES.join(", ")}`);
    const t = onReport(devEnv.phaseState(state), phase);
    if (!t.ok) return refuse("failed_precondition", `environment-status: ${msg.phase} refused: ${t.reason}`);
    const { environmentId } = this.host.requireIdentity();
    if (t.phase === EnvironmentPhase.DELETED) return this.remove(environmentId);
    await this.save(state, devEnv.reported(state, msg, t.phase, runnerSubject));
  }

  /** `verify-token`: whether a token is a live access or logs token of this environment. */
  async onVerifyToken(ws: WebSocket, msg: Extract<RunnerMessage, { type: "verify-token" }>): Promise<void> {
    const result = await verifyEnvironmentToken(await installationHmacKey(this.host.env), String(msg.token ?? ""), this.host.requireIdentity().environmentId);
    ws.send(JSON.stringify({ type: "token-verified", requestId: String(msg.requestId ?? ""), ...result } satisfies ServerMessage));
  }
}
