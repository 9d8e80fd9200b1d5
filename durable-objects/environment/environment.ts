import { DurableObject } from "cloudflare:workers";
import type { Env } from "../../workers/env";
import { notFound } from "../../workers/core/errors";
import { type AutomationCaller, AutomationsApi } from "./automations/api";
import { CronJobs, type ExecutionQuery, type ExecutionRow } from "./jobs/store";
import { EnvironmentAutomations } from "./automations/automations";
import { DevEnvironment } from "./dev/dev";
import { EXEC, type ExecSession, ExecSessions } from "./runner/exec";
import type { EnvironmentHost, EnvironmentIdentity, EnvironmentStores } from "./host";
import { CapsuleInstances } from "./instances/instances";
import { JOB_ATTEMPT, JOB_DEADLINE, JobExecutions } from "./jobs/jobs";
import { CapsuleRollouts, type DeployedCapsule, type DeployInput, type DeployResult, START_ROLLOUT } from "./rollouts/rollouts";
import { RUNNER, RunnerConnection, type RunnerInfo } from "./runner/runner";
import { EnvironmentSkaffold } from "./skaffold/skaffold";
import type { Author } from "../contract";
import { EventLog, type LoggedEvent } from "../lib/event-log";
import { EventStream } from "../lib/event-stream";
import type { Outcome } from "../../workers/core/outcome";
import type { RolloutSummary } from "../rollout/rollout";
import { RunnerReports, type StoredLogLine, type StoredSample } from "./instances/reports";
import type { ServerMessage } from "../../proto/frames/runner";
import type { SkaffoldLogRow } from "./skaffold/session";
import { answerClose, SOCKET_SWEEP, SocketLiveness } from "../lib/socket-liveness";
import { requireUpgrade, Tickets } from "../lib/tickets";
import { Timers } from "../lib/timers";
import { migrateStorage } from "../lib/storage-migrations";
import { environmentMigrations } from "./schema";

export type { EnvironmentIdentity } from "./host";
export type { DeployedCapsule, DeployInput, DeployResult } from "./rollouts/rollouts";
export type { ExecSession } from "./runner/exec";
export { type RunnerInfo, SUPERSEDED } from "./runner/runner";

/**
 * One per environment (named by its id). Owns what must be ordered within an environment:
 * its lifecycle, per-capsule rollout sequencing, the runner connection and what it reports,
 * Execute sessions and the event stream. Its state is in SQLite storage, so eviction loses
 * nothing; the only memory-only state is the per-capsule queue, which orders requests the
 * object is handling right now and is empty whenever it could be evicted.
 *
 * The class holds the object's storage, queue and lifecycle, and takes the calls, sockets and
 * alarm; each concern's logic is a module of its own (environment-*.ts), built here with an
 * EnvironmentHost (host.ts) and the other concerns it calls.
 */
export class EnvironmentDO extends DurableObject<Env> {
  /** The event log, once the schema exists in storage; cleared by `destroy`, which drops every table. */
  private eventLog?: EventLog;
  private reportStore?: RunnerReports;
  private jobStore?: CronJobs;
  private timerStore?: Timers;
  private readonly stream: EventStream;
  private readonly liveness: SocketLiveness;
  /** Per capsule, the tail of the work queued on it: deploys, aborts and runner reports run one at a time. */
  private readonly queues = new Map<string, Promise<unknown>>();

  private readonly skaffold: EnvironmentSkaffold;
  private readonly environmentAutomations: EnvironmentAutomations;
  private readonly dev: DevEnvironment;
  private readonly jobs: JobExecutions;
  private readonly rollouts: CapsuleRollouts;
  private readonly instances: CapsuleInstances;
  private readonly exec: ExecSessions;
  private readonly runnerLink: RunnerConnection;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const tickets = new Tickets(() => this.open().sql);
    this.stream = new EventStream(ctx, () => this.open().log, tickets);
    this.liveness = new SocketLiveness(ctx, env);
    const host: EnvironmentHost = {
      ctx,
      env,
      stream: this.stream,
      open: () => this.open(),
      serialize: (key, fn) => this.serialize(key, fn),
      identity: () => this.identity(),
      requireIdentity: () => this.requireIdentity(),
      runner: () => this.runnerLink.runner(),
      toRunner: (msg: ServerMessage) => this.runnerLink.send(msg),
      destroy: () => this.destroy(),
    };
    this.skaffold = new EnvironmentSkaffold(host);
    const automations = (this.environmentAutomations = new EnvironmentAutomations(host));
    this.dev = new DevEnvironment(host, automations);
    this.jobs = new JobExecutions(host);
    this.rollouts = new CapsuleRollouts(host, this.jobs, this.skaffold);
    this.instances = new CapsuleInstances(host, this.rollouts);
    this.exec = new ExecSessions(host, tickets);
    const { skaffold, dev, jobs, rollouts, instances, exec } = this;
    this.runnerLink = new RunnerConnection(host, tickets, { rollouts, jobs, instances, exec, automations, skaffold, dev });
  }

  /**
   * The object's storage and its stores, migrated (schema.ts) on first use rather
   * than in the constructor: a destroyed object holds nothing, and after `destroy` the same
   * instance (or a later one of the same name) starts from empty tables again.
   */
  private open(): EnvironmentStores {
    const sql = this.ctx.storage.sql;
    if (!this.eventLog || !this.reportStore || !this.jobStore || !this.timerStore) {
      migrateStorage(this.ctx.storage, environmentMigrations);
      this.eventLog = new EventLog(sql);
      this.reportStore = new RunnerReports(sql);
      this.jobStore = new CronJobs(sql);
      this.timerStore = new Timers(this.ctx.storage);
    }
    return { sql, log: this.eventLog, reports: this.reportStore, jobs: this.jobStore, timers: this.timerStore };
  }

  /** Runs `fn` after everything queued on the capsule before it. */
  private serialize<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const run = (this.queues.get(key) ?? Promise.resolve()).then(fn, fn);
    const tail = run.catch(() => {});
    this.queues.set(key, tail);
    void tail.then(() => {
      if (this.queues.get(key) === tail) this.queues.delete(key);
    });
    return run;
  }

  // ---- Lifecycle ------------------------------------------------------------------------

  /**
   * Records the environment's identity and logs its creation. Idempotent for one
   * incarnation; state left by an earlier environment of the same name (whose deletion did
   * not reach this object) is wiped first, so it never comes back half-alive.
   * Returns true when this call initialized the object.
   */
  async initialize(identity: EnvironmentIdentity): Promise<boolean> {
    const current = this.identity();
    if (current?.createdAt === identity.createdAt && current.environmentId === identity.environmentId) return false;
    if (current) await this.destroy();
    const { environmentId, ephemeral, createdAt } = identity;
    const { sql } = this.open();
    this.ctx.storage.transactionSync(() => {
      sql.exec("INSERT INTO identity (singleton, environment_id, ephemeral, created_at) VALUES (1, ?, ?, ?)", environmentId, ephemeral ? 1 : 0, createdAt);
      this.stream.publish("environment.created", { environmentId, ephemeral });
    });
    return true;
  }

  /** The identity `initialize` recorded, or null for an object that was never created (or was deleted). */
  identity(): EnvironmentIdentity | null {
    const row = this.open()
      .sql.exec<{ environment_id: string; ephemeral: number; created_at: number }>("SELECT environment_id, ephemeral, created_at FROM identity")
      .toArray()[0];
    return row ? { environmentId: row.environment_id, ephemeral: row.ephemeral === 1, createdAt: row.created_at } : null;
  }

  private requireIdentity(): EnvironmentIdentity {
    const id = this.identity();
    if (!id) throw notFound("environment");
    return id;
  }

  /** Capsules with a rollout the runner should run here, by project then capsule. */
  async deployedCapsules(): Promise<DeployedCapsule[]> {
    return this.rollouts.deployed();
  }

  /** Appends an event to the environment's log and sends it to its subscribers. */
  async publish(type: string, data: LoggedEvent["data"]): Promise<number> {
    return this.stream.publish(type, data).seq;
  }

  /** A single-use ticket for a WebSocket subscription to the event stream; the Worker has authorized `subject`. */
  async issueStreamTicket(subject: string): Promise<{ ticket: string; expiresAt: number }> {
    return this.stream.issueTicket(subject);
  }

  /** Events after `after`, oldest first. */
  async events(after = 0, limit = 1000): Promise<LoggedEvent[]> {
    return this.open().log.after(after, limit);
  }

  /**
   * Drops all of the object's storage and its alarm: the environment was deleted. Its
   * rollouts outlive it (their ids are not reused), so the ones not yet ended are stopped.
   */
  async destroy(): Promise<void> {
    await this.rollouts.stopLive();
    this.runnerLink.sendAll({ type: "error", code: "not_found", message: "the environment was deleted" });
    // The deletion's own events (dev-environment.deleted) are still pending: subscribers get them before the close.
    this.stream.flush();
    for (const ws of this.ctx.getWebSockets()) ws.close(1001, "environment deleted");
    await this.ctx.storage.deleteAlarm();
    await this.ctx.storage.deleteAll();
    this.eventLog = undefined;
    this.reportStore = undefined;
    this.jobStore = undefined;
    this.timerStore = undefined;
    this.skaffold.reset();
    this.environmentAutomations.reset();
    this.dev.reset();
  }

  /** Runs the timers that are due: rollouts to hand over again, job attempts and deadlines, the sweep of silent sockets. */
  async alarm(): Promise<void> {
    if (!this.identity()) return;
    const { timers } = this.open();
    for (const t of timers.takeDue()) {
      if (t.kind === START_ROLLOUT) await this.rollouts.retryStart(t.key);
      else if (t.kind === JOB_ATTEMPT) await this.jobs.attempt(t.key);
      else if (t.kind === JOB_DEADLINE) await this.jobs.deadlineReached(t.key);
      else if (t.kind === SOCKET_SWEEP) {
        await this.liveness.sweep(timers, (ws) => this.onSocketGone(ws));
        await this.runnerLink.reconcile();
      }
    }
    await timers.rearm();
  }

  // ---- Deploys and rollouts (rollouts/rollouts.ts) ----------------------------------------

  /** Deploy: the capsule's next rollout, from its current configuration and the request's changes. */
  async deploy(input: DeployInput): Promise<Outcome<DeployResult>> {
    return this.rollouts.deploy(input);
  }

  /** A rollout's object changed by itself (its readiness timeout). */
  async rolloutChanged(summary: RolloutSummary): Promise<void> {
    this.rollouts.track(summary);
  }

  /** AbortRollout of a rollout of this environment. */
  async abortRollout(projectId: string, capsuleId: string, rolloutId: number, createdBy: Author): Promise<Outcome<void>> {
    return this.rollouts.abort(projectId, capsuleId, rolloutId, createdBy);
  }

  /** StopRollout: the runner removes the rollout's resources, and the capsule no longer runs it. */
  async stopRollout(projectId: string, capsuleId: string, rolloutId: number, createdBy: Author): Promise<Outcome<void>> {
    return this.rollouts.stop(projectId, capsuleId, rolloutId, createdBy);
  }

  /** A capsule's rollout ids in this environment, newest first unless `ascending`, and how many there are. */
  async listRollouts(projectId: string, capsuleId: string, offset: number, limit: number, ascending: boolean): Promise<{ ids: number[]; total: number }> {
    return this.rollouts.list(projectId, capsuleId, offset, limit, ascending);
  }

  /** The capsule's current rollout here (what new deploys build on), or null before the first. */
  async currentRollout(projectId: string, capsuleId: string): Promise<number | null> {
    return this.rollouts.capsuleState(projectId, capsuleId).current_rollout_id;
  }

  // ---- The runner (runner/runner.ts) -----------------------------------------------------

  /** The environment's runner as last seen. */
  async runnerInfo(): Promise<RunnerInfo> {
    return this.runnerLink.info();
  }

  /** A ticket for the runner's WebSocket; the Worker has checked `runner:connect`. */
  async issueRunnerTicket(subject: string): Promise<{ ticket: string; expiresAt: number }> {
    return this.runnerLink.issueTicket(subject);
  }

  // ---- Instances, logs, metrics (instances/instances.ts) ------------------------------------

  async listInstances(projectId: string, capsuleId: string, opts: { includeDeleted?: boolean; excludeExisting?: boolean }) {
    return this.instances.list(projectId, capsuleId, opts);
  }

  async instance(projectId: string, capsuleId: string, instanceId: string) {
    return this.instances.get(projectId, capsuleId, instanceId);
  }

  /** RestartInstance: relayed to the runner, which reports the restart in its next instances. */
  async restartInstance(projectId: string, capsuleId: string, instanceId: string): Promise<Outcome<void>> {
    return this.instances.restart(projectId, capsuleId, instanceId);
  }

  /** Log lines after `after`; with `waitMs`, a long poll for new ones. */
  async logs(projectId: string, capsuleId: string, q: { instanceId?: string; after: number; sinceMs?: number; waitMs?: number }): Promise<StoredLogLine[]> {
    return this.instances.logs(projectId, capsuleId, q);
  }

  /** Metric samples; answers failed_precondition while no runner has ever reported here. */
  async metrics(projectId: string, capsuleId: string, q: { instanceId?: string; sinceMs?: number }): Promise<Outcome<StoredSample[]>> {
    return this.instances.metrics(projectId, capsuleId, q);
  }

  async customMetrics(projectId: string, capsuleId: string): Promise<Outcome<{ name: string; value: number; time: number }[]>> {
    return this.instances.customMetrics(projectId, capsuleId);
  }

  // ---- Cron jobs (jobs/jobs.ts) ---------------------------------------------------------

  /** Called by the Cron Trigger: starts an execution for every job due by `dueBy`. Returns how many started. */
  async runDueJobs(dueBy = Date.now()): Promise<number> {
    return this.jobs.runDue(dueBy);
  }

  /** GetJobExecutions: a page of a capsule's executions here, with the total. */
  async jobExecutions(q: ExecutionQuery): Promise<{ rows: Omit<ExecutionRow, "job">[]; total: number }> {
    return this.jobs.list(q);
  }

  // ---- Execute (runner/exec.ts) -----------------------------------------------------------

  /** A ticket for an Execute session; the Worker has checked `capsule:execute`. */
  async issueExecTicket(subject: string, session: ExecSession): Promise<Outcome<{ ticket: string; expiresAt: number }>> {
    return this.exec.issueTicket(subject, session);
  }

  // ---- Developer environment (dev/dev.ts) ----------------------------------------------

  /** CreateEnvironment, once the Worker has made the environment's Rig side (`initialize`); the gitpod.v1.Environment, binary. */
  async createDevEnvironment(metadata: Uint8Array, spec: Uint8Array): Promise<Outcome<Uint8Array>> {
    return this.dev.create(metadata, spec);
  }

  /** GetEnvironment: the gitpod.v1.Environment, binary. */
  async devEnvironment(): Promise<Outcome<Uint8Array>> {
    return this.dev.get();
  }

  /** Start, Stop, Unarchive, Update (an UpdateEnvironmentRequest, binary) and MarkActive: failed_precondition when the phase forbids it. */
  async changeDevEnvironment(
    change: { op: "start" | "stop" | "unarchive" } | { op: "update"; request: Uint8Array } | { op: "mark-active"; source: string; at: number },
  ): Promise<Outcome<void>> {
    return this.dev.change(change);
  }

  /** DeleteEnvironment: through the runner when it may hold a machine, at once without one or with `force`. */
  async deleteDevEnvironment(force: boolean): Promise<Outcome<void>> {
    return this.dev.delete(force);
  }

  /** WatchEvents: a ticket for the environment's event stream and the last event so far, to follow from. */
  async watchFrom(subject: string): Promise<Outcome<{ ticket: string; after: number }>> {
    return this.dev.watchFrom(subject);
  }

  // ---- Automations (automations/api.ts) -------------------------------------------------------

  /** gitpod.v1.EnvironmentAutomationService for `caller`, as the Worker established it (automations/api.ts). */
  automations(caller: AutomationCaller): AutomationsApi {
    return new AutomationsApi(this.environmentAutomations, caller);
  }

  // ---- Skaffold (skaffold/skaffold.ts) ------------------------------------------------------

  /** GetState: proto.State, binary. */
  async skaffoldState(): Promise<Outcome<Uint8Array>> {
    return this.skaffold.state();
  }

  /** Events: the Skaffold log entries after `after`, oldest first; with `waitMs`, a long poll. */
  async skaffoldEvents(after: number, waitMs = 0): Promise<Outcome<SkaffoldLogRow[]>> {
    return this.skaffold.events(after, waitMs);
  }

  /** Handle: folds a proto.Event (binary) into the State and logs it. */
  async skaffoldHandle(event: Uint8Array): Promise<Outcome<void>> {
    return this.skaffold.handle(event);
  }

  /** Execute: hands a proto.Intent (binary) to the runner, or keeps it until one connects. */
  async skaffoldExecute(intent: Uint8Array): Promise<Outcome<void>> {
    return this.skaffold.execute(intent);
  }

  /** AutoBuild, AutoSync, AutoDeploy: already_exists when `enabled` is the trigger's value already. */
  async skaffoldAutoTrigger(phase: "build" | "sync" | "deploy", enabled: boolean): Promise<Outcome<void>> {
    return this.skaffold.autoTrigger(phase, enabled);
  }

  // ---- Sockets ---------------------------------------------------------------------------------

  /** WebSockets: `.../events` (subscribers), `.../runner` (the runner), `.../exec` (Execute sessions). */
  async fetch(request: Request): Promise<Response> {
    const notUpgrade = requireUpgrade(request);
    if (notUpgrade) return notUpgrade;
    const path = new URL(request.url).pathname;
    const res = path.endsWith("/runner") ? this.runnerLink.accept(request) : path.endsWith("/exec") ? this.exec.accept(request) : this.stream.subscribe(request);
    if (res.status === 101) await this.liveness.watch(this.open().timers);
    return res;
  }

  async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    const tags = this.ctx.getTags(ws);
    const text = typeof message === "string" ? message : new TextDecoder().decode(message);
    try {
      if (tags.includes(RUNNER)) await this.runnerLink.onMessage(ws, text);
      else if (tags.includes(EXEC)) this.exec.onMessage(ws, text);
    } catch (err) {
      // What a socket closed meanwhile still sent (the environment was deleted, the runner superseded) is moot.
      if (ws.readyState !== WebSocket.OPEN) return;
      // A malformed report (a missing field) is the sender's to fix; the connection stays.
      console.error("socket message refused", err);
      const message = `the message could not be applied: ${err instanceof Error ? err.message : String(err)}`;
      ws.send(JSON.stringify(tags.includes(RUNNER) ? ({ type: "error", code: "invalid_argument", message } satisfies ServerMessage) : { error: { code: "invalid_argument", message } }));
    }
    // Subscribers only listen; anything they send but the keep-alive ping is ignored.
  }

  async webSocketClose(ws: WebSocket, code: number): Promise<void> {
    answerClose(ws, code);
    await this.onSocketGone(ws);
  }

  async webSocketError(ws: WebSocket): Promise<void> {
    await this.onSocketGone(ws);
  }

  private async onSocketGone(ws: WebSocket): Promise<void> {
    const tags = this.ctx.getTags(ws);
    if (tags.includes(RUNNER)) await this.runnerLink.onGone(ws);
    else if (tags.includes(EXEC)) this.exec.onGone(ws);
  }
}
