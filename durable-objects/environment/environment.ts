import { DurableObject } from "cloudflare:workers";
import type { Env } from "../../workers/env";
import { notFound } from "../../workers/core/errors";
import { type AutomationCaller, AutomationsApi } from "./automations/api";
import { CronJobs } from "./jobs/store";
import { EnvironmentAutomations } from "./automations/automations";
import { DevApi } from "./dev/api";
import { DevEnvironment } from "./dev/dev";
import { EXEC, ExecSessions } from "./runner/exec";
import type { EnvironmentHost, EnvironmentIdentity, EnvironmentStores } from "./host";
import { InstancesApi } from "./instances/api";
import { CapsuleInstances } from "./instances/instances";
import { JobsApi } from "./jobs/api";
import { JOB_ATTEMPT, JOB_DEADLINE, JobExecutions } from "./jobs/jobs";
import { RolloutsApi } from "./rollouts/api";
import { CapsuleRollouts, START_ROLLOUT } from "./rollouts/rollouts";
import { RunnerApi } from "./runner/api";
import { RUNNER, RunnerConnection } from "./runner/runner";
import { SkaffoldApi } from "./skaffold/api";
import { EnvironmentSkaffold } from "./skaffold/skaffold";
import { EventLog, type LoggedEvent } from "../lib/event-log";
import { EventStream } from "../lib/event-stream";
import type { RolloutSummary } from "../rollout/rollout";
import { RunnerReports } from "./instances/reports";
import type { ServerMessage } from "../../proto/frames/runner";
import { answerClose, SOCKET_SWEEP, SocketLiveness } from "../lib/socket-liveness";
import { requireUpgrade, Tickets } from "../lib/tickets";
import { Timers } from "../lib/timers";
import { migrateStorage } from "../lib/storage-migrations";
import { environmentMigrations } from "./schema";

export type { EnvironmentIdentity } from "./host";
export { SUPERSEDED } from "./runner/runner";

/**
 * One per environment (named by its id). Owns what must be ordered within an environment:
 * its lifecycle, per-capsule rollout sequencing, the runner connection and what it reports,
 * Execute sessions and the event stream. Its state is in SQLite storage, so eviction loses
 * nothing; the only memory-only state is the per-capsule queue, which orders requests the
 * object is handling right now and is empty whenever it could be evicted.
 *
 * The class holds the object's storage, queue and lifecycle, and takes the calls, sockets and
 * alarm; each concern's logic is a folder of its own, built here with an EnvironmentHost
 * (host.ts) and the other concerns it calls. What the Worker calls of a concern is its
 * `api.ts`, an RpcTarget one method here returns (`stub.dev().get()`, one round trip).
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

  private readonly environmentSkaffold: EnvironmentSkaffold;
  private readonly environmentAutomations: EnvironmentAutomations;
  private readonly devEnvironment: DevEnvironment;
  private readonly jobExecutions: JobExecutions;
  private readonly capsuleRollouts: CapsuleRollouts;
  private readonly capsuleInstances: CapsuleInstances;
  private readonly execSessions: ExecSessions;
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
    const skaffold = (this.environmentSkaffold = new EnvironmentSkaffold(host));
    const automations = (this.environmentAutomations = new EnvironmentAutomations(host));
    const dev = (this.devEnvironment = new DevEnvironment(host, automations));
    const jobs = (this.jobExecutions = new JobExecutions(host));
    const rollouts = (this.capsuleRollouts = new CapsuleRollouts(host, jobs, skaffold));
    const instances = (this.capsuleInstances = new CapsuleInstances(host, rollouts));
    const exec = (this.execSessions = new ExecSessions(host, tickets));
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
    await this.capsuleRollouts.stopLive();
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
    this.environmentSkaffold.reset();
    this.environmentAutomations.reset();
    this.devEnvironment.reset();
  }

  /** Runs the timers that are due: rollouts to hand over again, job attempts and deadlines, the sweep of silent sockets. */
  async alarm(): Promise<void> {
    if (!this.identity()) return;
    const { timers } = this.open();
    for (const t of timers.takeDue()) {
      if (t.kind === START_ROLLOUT) await this.capsuleRollouts.retryStart(t.key);
      else if (t.kind === JOB_ATTEMPT) await this.jobExecutions.attempt(t.key);
      else if (t.kind === JOB_DEADLINE) await this.jobExecutions.deadlineReached(t.key);
      else if (t.kind === SOCKET_SWEEP) {
        await this.liveness.sweep(timers, (ws) => this.onSocketGone(ws));
        await this.runnerLink.reconcile();
      }
    }
    await timers.rearm();
  }

  /** A rollout's object changed by itself (its readiness timeout): the RolloutDO calls this. */
  async rolloutChanged(summary: RolloutSummary): Promise<void> {
    this.capsuleRollouts.track(summary);
  }

  // ---- The concerns' APIs: what the Worker calls, one RpcTarget each ------------------------

  /** Deploys and rollouts (rollouts/api.ts). */
  rollouts(): RolloutsApi {
    return new RolloutsApi(this.capsuleRollouts);
  }

  /** Instances, logs and metrics (instances/api.ts). */
  instances(): InstancesApi {
    return new InstancesApi(this.capsuleInstances);
  }

  /** Cron jobs (jobs/api.ts). */
  jobs(): JobsApi {
    return new JobsApi(this.jobExecutions);
  }

  /** The runner and Execute sessions (runner/api.ts). */
  runner(): RunnerApi {
    return new RunnerApi(this.runnerLink, this.execSessions);
  }

  /** The developer environment, gitpod.v1.EnvironmentService (dev/api.ts). */
  dev(): DevApi {
    return new DevApi(this.devEnvironment);
  }

  /** gitpod.v1.EnvironmentAutomationService for `caller`, as the Worker established it (automations/api.ts). */
  automations(caller: AutomationCaller): AutomationsApi {
    return new AutomationsApi(this.environmentAutomations, caller);
  }

  /** proto.SkaffoldService (skaffold/api.ts). */
  skaffold(): SkaffoldApi {
    return new SkaffoldApi(this.environmentSkaffold);
  }

  // ---- Sockets ---------------------------------------------------------------------------------

  /** WebSockets: `.../events` (subscribers), `.../runner` (the runner), `.../exec` (Execute sessions). */
  async fetch(request: Request): Promise<Response> {
    const notUpgrade = requireUpgrade(request);
    if (notUpgrade) return notUpgrade;
    const path = new URL(request.url).pathname;
    const res = path.endsWith("/runner") ? this.runnerLink.accept(request) : path.endsWith("/exec") ? this.execSessions.accept(request) : this.stream.subscribe(request);
    if (res.status === 101) await this.liveness.watch(this.open().timers);
    return res;
  }

  async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    const tags = this.ctx.getTags(ws);
    const text = typeof message === "string" ? message : new TextDecoder().decode(message);
    try {
      if (tags.includes(RUNNER)) await this.runnerLink.onMessage(ws, text);
      else if (tags.includes(EXEC)) this.execSessions.onMessage(ws, text);
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
    else if (tags.includes(EXEC)) this.execSessions.onGone(ws);
  }
}
