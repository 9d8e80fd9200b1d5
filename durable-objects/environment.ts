import { create, fromBinary, toBinary, toJson } from "@bufbuild/protobuf";
import { DurableObject } from "cloudflare:workers";
import { CronJobSchema, JobState } from "../proto/gen/api/v1/capsule/job_pb";
import { type RolloutConfig, RolloutConfigSchema } from "../proto/gen/api/v1/capsule/rollout_pb";
import { DeployRequestSchema } from "../proto/gen/api/v1/capsule/service_pb";
import { defaults } from "../workers/config";
import type { Env } from "../workers/env";
import { aborted, alreadyExists, failedPrecondition, notFound, permissionDenied } from "../workers/http/errors";
import { parseReference } from "../workers/images/reference";
import { applyChanges } from "../workers/rollouts/changes";
import { rolloutIdStatement } from "../workers/rollouts/ids";
import { renderResources } from "../workers/rollouts/resources";
import { CronJobs, type ExecutionQuery, type ExecutionRow, type PlannedJob } from "./cron-jobs";
import { EventLog, type Json, type LoggedEvent } from "./event-log";
import { EventStream } from "./event-stream";
import { type AutomationCall, type AutomationCaller, type AutomationResult, Automations, isRead, Op } from "./automations";
import { attempt, type Outcome, unwrap } from "./outcome";
import { applyingBy, type RolloutSummary, rolloutName } from "./rollout";
import { type InstanceRow, RunnerReports, type StoredLogLine, type StoredSample } from "./runner-reports";
import { SkaffoldSession, type SkaffoldLogRow } from "./skaffold-session";
import { RUNNER_PROTOCOL_VERSION, type RunnerMessage, type ServerMessage } from "./runner-protocol";
import { badTicket, requireUpgrade, socketError, Tickets } from "./tickets";
import * as devEnv from "./dev-environment";
import { onReport, onUser, phaseByName, PHASE_NAMES, phaseName } from "./dev-environment-phases";
import { EnvironmentPhase } from "../proto/gen/gitpod/v1/environment_pb";
import { SubjectSchema } from "../proto/gen/gitpod/v1/identity_pb";
import { deleteStatements } from "../workers/services/environment";
import { verifyEnvironmentToken } from "../workers/gitpod/environments";
import { Timers } from "./timers";

/** Who an EnvironmentDO is, as recorded by `initialize`. */
export interface EnvironmentIdentity {
  environmentId: string;
  ephemeral: boolean;
  /** The environment's `created_at` in D1: tells this incarnation from an earlier one of the same name. */
  createdAt: number;
}

/** A capsule deployed in the environment, as the object holds it. */
export interface DeployedCapsule {
  projectId: string;
  capsuleId: string;
}

/** A Deploy as the Worker hands it over, authorized and checked against D1. */
export interface DeployInput {
  /** api.v1.capsule.DeployRequest, binary. */
  request: Uint8Array;
  /** model.Author init shape of the caller. */
  createdBy: Json;
  /** The capsule's registered image ids, for `image_id` changes. */
  imageIds: string[];
  /** The Kubernetes namespace of the capsule's project in this environment. */
  namespace: string;
}

export interface DeployResult {
  rolloutId: number;
  /** api.v1.capsule.RolloutConfig, binary. */
  config: Uint8Array;
  resources: Record<string, string>;
}

/** The session an Execute ticket opens, as the Worker authorized it: what `exec-start` tells the runner. */
export type ExecSession = Omit<Extract<ServerMessage, { type: "exec-start" }>, "type" | "sessionId">;

/** The runner of the environment, as last seen. Times are ms since the epoch. */
export interface RunnerInfo {
  connected: boolean;
  name: string;
  version: string;
  connectedAt: number | null;
  disconnectedAt: number | null;
}

type CapsuleState = {
  current_rollout_id: number | null;
  in_progress_rollout_id: number | null;
  desired_rollout_id: number | null;
};

interface RunnerAttachment {
  subject: string;
  /** Set by the runner's `hello`. */
  name?: string;
  version?: string;
}

/** Hibernation tags of the object's sockets. */
const RUNNER = "runner";
const EXEC = "exec";
const execTag = (sessionId: string) => `exec:${sessionId}`;
/** Close code for a runner replaced by a newer connection of the environment's runner. */
export const SUPERSEDED = 4001;
/** A committed rollout whose object could not be reached is handed over again this soon. */
const RETRY_START_MS = 5_000;
/** Timer kinds (timers.ts). */
const START_ROLLOUT = "start-rollout";
const JOB_ATTEMPT = "job-attempt";
const JOB_DEADLINE = "job-deadline";

const capsuleKey = (projectId: string, capsuleId: string) => `${projectId}/${capsuleId}`;

/**
 * One per environment (named by its id). Owns what must be ordered within an environment:
 * its lifecycle, per-capsule rollout sequencing, the runner connection and what it reports,
 * Execute sessions and the event stream. Its state is in SQLite storage, so eviction loses
 * nothing; the only memory-only state is the per-capsule queue, which orders requests the
 * object is handling right now and is empty whenever it could be evicted.
 */
export class EnvironmentDO extends DurableObject<Env> {
  /** The event log, once the schema exists in storage; cleared by `destroy`, which drops every table. */
  private eventLog?: EventLog;
  private reportStore?: RunnerReports;
  private jobStore?: CronJobs;
  private timerStore?: Timers;
  private readonly tickets: Tickets;
  private readonly stream: EventStream;
  /** Per capsule, the tail of the work queued on it: deploys, aborts and runner reports run one at a time. */
  private readonly queues = new Map<string, Promise<unknown>>();
  /** Logs calls waiting for the next lines (long poll). */
  private logWaiters = new Set<() => void>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.tickets = new Tickets(ctx.storage);
    this.stream = new EventStream(ctx, () => this.open().log, this.tickets);
  }

  /**
   * The object's storage, with its tables. They are created on first use rather than in the
   * constructor, so that after `destroy` the same instance (or a later one of the same name)
   * starts from empty tables again.
   */
  private open(): { sql: SqlStorage; log: EventLog; reports: RunnerReports; jobs: CronJobs; timers: Timers } {
    const sql = this.ctx.storage.sql;
    if (!this.eventLog || !this.reportStore || !this.jobStore || !this.timerStore) {
      sql.exec(`CREATE TABLE IF NOT EXISTS identity (
        singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
        environment_id TEXT NOT NULL,
        ephemeral INTEGER NOT NULL,
        created_at INTEGER NOT NULL
      )`);
      // Per capsule: the rollout new deploys build on, the one in progress, the one the runner should run.
      sql.exec(`CREATE TABLE IF NOT EXISTS capsule_state (
        project_id TEXT NOT NULL,
        capsule_id TEXT NOT NULL,
        current_rollout_id INTEGER,
        in_progress_rollout_id INTEGER,
        desired_rollout_id INTEGER,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (project_id, capsule_id)
      )`);
      sql.exec(`CREATE TABLE IF NOT EXISTS rollouts (
        project_id TEXT NOT NULL,
        capsule_id TEXT NOT NULL,
        rollout_id INTEGER NOT NULL,
        config BLOB NOT NULL,
        previous_rollout_id INTEGER,
        created_by TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        started INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (project_id, capsule_id, rollout_id)
      )`);
      sql.exec(`CREATE TABLE IF NOT EXISTS runner (
        singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
        name TEXT NOT NULL, version TEXT NOT NULL, connected_at INTEGER, disconnected_at INTEGER
      )`);
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
    return this.open()
      .sql.exec<{ project_id: string; capsule_id: string }>(
        "SELECT project_id, capsule_id FROM capsule_state WHERE desired_rollout_id IS NOT NULL ORDER BY project_id, capsule_id",
      )
      .toArray()
      .map((r) => ({ projectId: r.project_id, capsuleId: r.capsule_id }));
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
    const live = this.identity()
      ? this.open()
          .sql.exec<{ project_id: string; capsule_id: string; current_rollout_id: number }>(
            "SELECT project_id, capsule_id, current_rollout_id FROM capsule_state WHERE current_rollout_id IS NOT NULL",
          )
          .toArray()
      : [];
    // Best effort: a rollout that cannot be told now still reads as it was, never as running somewhere.
    await Promise.allSettled(live.map((r) => this.rollout(r.project_id, r.capsule_id, r.current_rollout_id).stop(null)));
    this.toRunnerAll({ type: "error", code: "not_found", message: "the environment was deleted" });
    for (const ws of this.ctx.getWebSockets()) ws.close(1001, "environment deleted");
    await this.ctx.storage.deleteAlarm();
    await this.ctx.storage.deleteAll();
    this.eventLog = undefined;
    this.reportStore = undefined;
    this.jobStore = undefined;
    this.timerStore = undefined;
    this.skaffoldStore = undefined;
    this.automationStore = undefined;
    this.devStore = undefined;
  }

  // ---- Deploys and rollouts ---------------------------------------------------------------

  private capsuleState(projectId: string, capsuleId: string): CapsuleState {
    return (
      this.open()
        .sql.exec<CapsuleState>(
          "SELECT current_rollout_id, in_progress_rollout_id, desired_rollout_id FROM capsule_state WHERE project_id = ? AND capsule_id = ?",
          projectId,
          capsuleId,
        )
        .toArray()[0] ?? { current_rollout_id: null, in_progress_rollout_id: null, desired_rollout_id: null }
    );
  }

  private rolloutConfig(projectId: string, capsuleId: string, rolloutId: number): RolloutConfig | undefined {
    const row = this.open()
      .sql.exec<{ config: ArrayBuffer }>("SELECT config FROM rollouts WHERE project_id = ? AND capsule_id = ? AND rollout_id = ?", projectId, capsuleId, rolloutId)
      .toArray()[0];
    return row ? fromBinary(RolloutConfigSchema, new Uint8Array(row.config)) : undefined;
  }

  private rollout(projectId: string, capsuleId: string, rolloutId: number) {
    return this.env.ROLLOUTS.getByName(rolloutName(projectId, capsuleId, rolloutId));
  }

  /**
   * Deploy: the capsule's next rollout, from its current configuration and the request's
   * changes. Deploys of one capsule run one at a time, so of two racing ones exactly one
   * starts a rollout and the other finds it in progress.
   */
  async deploy(input: DeployInput): Promise<Outcome<DeployResult>> {
    const req = fromBinary(DeployRequestSchema, input.request);
    return attempt(() => this.serialize(capsuleKey(req.projectId, req.capsuleId), () => this.deployNow(req, input)));
  }

  private async deployNow(req: ReturnType<typeof fromBinary<typeof DeployRequestSchema>>, input: DeployInput): Promise<DeployResult> {
    const { environmentId } = this.requireIdentity();
    const { projectId, capsuleId } = req;
    const state = this.capsuleState(projectId, capsuleId);
    const current = state.current_rollout_id;
    if (req.currentRolloutId !== 0n && BigInt(current ?? 0) !== req.currentRolloutId) {
      throw aborted(`current_rollout_id: the current rollout is ${current ?? "none"}, not ${req.currentRolloutId}; someone deployed in between`);
    }
    const images = new Set(input.imageIds);
    const now = Date.now();
    const config = applyChanges(current ? this.rolloutConfig(projectId, capsuleId, current) : undefined, req.changes, {
      author: input.createdBy as never,
      now,
      environmentId,
      message: req.message,
      rollbackConfig: (id) => this.rolloutConfig(projectId, capsuleId, Number(id)),
      imageExists: (id) => images.has(id),
    });
    const resources = renderResources({ projectId, capsuleId, environmentId, namespace: input.namespace }, config);
    if (req.dryRun) return { rolloutId: 0, config: toBinary(RolloutConfigSchema, config), resources };

    const running = state.in_progress_rollout_id;
    if (running !== null && !req.force) {
      throw failedPrecondition(`rollout ${running} of capsule ${capsuleId} is in progress: wait for it, abort it, or deploy with force`);
    }
    const added = req.changes.find((c) => c.field.case === "addImage");
    const plan = this.open().jobs.plan(projectId, capsuleId, config.cronJobs, now);
    // One D1 transaction allocates the id and records the deployment. D1 before this object's
    // commit: an image marked in use a moment early is safe; one deployed but not marked is not.
    const allocated = "(SELECT last_id FROM rollout_counters WHERE project_id = ?1 AND capsule_id = ?2)";
    const [counter, deployment] = await this.env.DB.batch<{ last_id: number }>([
      rolloutIdStatement(this.env, projectId, capsuleId),
      this.env.DB.prepare(
        `INSERT INTO deployments (project_id, capsule_id, environment_id, rollout_id, image_id, updated_at)
         SELECT ?1, ?2, ?3, ${allocated}, ?4, ?5 WHERE EXISTS (SELECT 1 FROM capsules WHERE project_id = ?1 AND id = ?2)
         ON CONFLICT (project_id, capsule_id, environment_id) DO UPDATE SET rollout_id = ${allocated}, image_id = ?4, updated_at = ?5`,
      ).bind(projectId, capsuleId, environmentId, config.imageId, now),
      ...(added ? [registerImage(this.env, projectId, capsuleId, config.imageId, input.createdBy, now)] : []),
      ...this.scheduleStatements(environmentId, projectId, capsuleId, plan),
    ]);
    const rolloutId = counter!.results[0]!.last_id;
    if (deployment!.meta.changes === 0) throw notFound(`capsule ${capsuleId} in project ${projectId}`);

    const configBytes = toBinary(RolloutConfigSchema, config);
    const { sql } = this.open();
    this.ctx.storage.transactionSync(() => {
      sql.exec(
        "INSERT INTO rollouts (project_id, capsule_id, rollout_id, config, previous_rollout_id, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        projectId,
        capsuleId,
        rolloutId,
        configBytes,
        current,
        JSON.stringify(input.createdBy),
        now,
      );
      sql.exec(
        `INSERT INTO capsule_state (project_id, capsule_id, current_rollout_id, in_progress_rollout_id, desired_rollout_id, updated_at)
         VALUES (?1, ?2, ?3, ?3, ?3, ?4) ON CONFLICT DO UPDATE SET current_rollout_id = ?3, in_progress_rollout_id = ?3, desired_rollout_id = ?3, updated_at = ?4`,
        projectId,
        capsuleId,
        rolloutId,
        now,
      );
      this.open().jobs.setJobs(projectId, capsuleId, rolloutId, config.cronJobs, plan);
      this.stream.publish("rollout.created", { projectId, capsuleId, rolloutId, previousRolloutId: current, message: req.message });
    });
    await this.terminateExecutions(projectId, capsuleId, `rollout ${rolloutId} replaced rollout ${current}`, rolloutId);

    if (current !== null) {
      // The rollout this one follows ends: aborted if it was still in progress (force), else replaced.
      const previous = this.rollout(projectId, capsuleId, current);
      const abortedOutcome = running !== null ? await previous.abort(input.createdBy) : null;
      if (abortedOutcome?.ok) this.track(abortedOutcome.value);
      else this.track(await previous.replace(rolloutId, req.changes.some((c) => c.field.case === "rollback"), input.createdBy));
    }
    await this.startRollout(projectId, capsuleId, rolloutId);
    return { rolloutId, config: configBytes, resources };
  }

  /**
   * Hands a committed rollout to its object and the runner. If the object cannot be reached
   * the rollout stays unstarted and the alarm tries again: a committed rollout always starts.
   */
  private async startRollout(projectId: string, capsuleId: string, rolloutId: number): Promise<void> {
    const { environmentId } = this.requireIdentity();
    const { sql } = this.open();
    const row = sql
      .exec<{ config: ArrayBuffer; previous_rollout_id: number | null; created_by: string }>(
        "SELECT config, previous_rollout_id, created_by FROM rollouts WHERE project_id = ? AND capsule_id = ? AND rollout_id = ?",
        projectId,
        capsuleId,
        rolloutId,
      )
      .one();
    const previous = row.previous_rollout_id !== null ? this.rolloutConfig(projectId, capsuleId, row.previous_rollout_id) : undefined;
    const runner = this.runner();
    try {
      const summary = await this.rollout(projectId, capsuleId, rolloutId).start({
        projectId,
        capsuleId,
        rolloutId,
        environmentId,
        config: new Uint8Array(row.config),
        previous: previous ? toBinary(RolloutConfigSchema, previous) : null,
        runner: runner ? runner.name : null,
        createdBy: JSON.parse(row.created_by) as Json,
      });
      sql.exec("UPDATE rollouts SET started = 1 WHERE project_id = ? AND capsule_id = ? AND rollout_id = ?", projectId, capsuleId, rolloutId);
      this.track(summary);
    } catch (err) {
      console.error(`rollout ${rolloutName(projectId, capsuleId, rolloutId)} could not start; retrying`, err);
      await this.open().timers.set(START_ROLLOUT, rolloutName(projectId, capsuleId, rolloutId), Date.now() + RETRY_START_MS);
      return;
    }
    this.sendDesired(projectId, capsuleId);
  }

  /** Runs the timers that are due: rollouts to hand over again, job attempts and deadlines. */
  async alarm(): Promise<void> {
    if (!this.identity()) return;
    const { timers, sql } = this.open();
    for (const t of timers.takeDue()) {
      if (t.kind === START_ROLLOUT) {
        const r = sql
          .exec<{ project_id: string; capsule_id: string; rollout_id: number }>(
            "SELECT project_id, capsule_id, rollout_id FROM rollouts WHERE started = 0 AND project_id || '/' || capsule_id || '/' || rollout_id = ?",
            t.key,
          )
          .toArray()[0];
        if (r) await this.serialize(capsuleKey(r.project_id, r.capsule_id), () => this.startRollout(r.project_id, r.capsule_id, r.rollout_id));
      } else if (t.kind === JOB_ATTEMPT) {
        await this.attemptJob(t.key);
      } else if (t.kind === JOB_DEADLINE) {
        const x = this.open().jobs.execution(t.key);
        if (x) await this.endExecution(x, JobState.TERMINATED, "its timeout was reached");
      }
    }
    await timers.rearm();
  }

  /** Records what a rollout's object reported: a rollout that settled or stopped is no longer in progress. */
  private track(summary: RolloutSummary): void {
    const { projectId, capsuleId, rolloutId } = summary;
    if (!summary.inProgress) {
      this.open().sql.exec(
        "UPDATE capsule_state SET in_progress_rollout_id = NULL, updated_at = ? WHERE project_id = ? AND capsule_id = ? AND in_progress_rollout_id = ?",
        Date.now(),
        projectId,
        capsuleId,
        rolloutId,
      );
    }
    if (summary.message) {
      const { state, result, inProgress, message } = summary;
      this.stream.publish("rollout.updated", { projectId, capsuleId, rolloutId, state, result, inProgress, message });
    }
    this.skaffoldOnRollout(summary);
  }

  /** A rollout's object changed by itself (its readiness timeout). */
  async rolloutChanged(summary: RolloutSummary): Promise<void> {
    this.track(summary);
  }

  /** AbortRollout of a rollout of this environment. */
  async abortRollout(projectId: string, capsuleId: string, rolloutId: number, createdBy: Json): Promise<Outcome<void>> {
    return attempt(() =>
      this.serialize(capsuleKey(projectId, capsuleId), async () => {
        const outcome = await this.rollout(projectId, capsuleId, rolloutId).abort(createdBy);
        if (!outcome.ok) return outcome;
        this.track(outcome.value);
        return outcome;
      }).then(settle),
    );
  }

  /** StopRollout: the runner removes the rollout's resources, and the capsule no longer runs it. */
  async stopRollout(projectId: string, capsuleId: string, rolloutId: number, createdBy: Json): Promise<Outcome<void>> {
    return attempt(() =>
      this.serialize(capsuleKey(projectId, capsuleId), async () => {
        const outcome = await this.rollout(projectId, capsuleId, rolloutId).stop(createdBy);
        if (!outcome.ok) return outcome;
        const { environmentId } = this.requireIdentity();
        const state = this.capsuleState(projectId, capsuleId);
        if (state.desired_rollout_id === rolloutId) {
          await this.env.DB.batch([
            this.env.DB.prepare("DELETE FROM deployments WHERE project_id = ? AND capsule_id = ? AND environment_id = ? AND rollout_id = ?").bind(
              projectId,
              capsuleId,
              environmentId,
              rolloutId,
            ),
            ...this.scheduleStatements(environmentId, projectId, capsuleId, []),
          ]);
          this.ctx.storage.transactionSync(() => {
            this.open().sql.exec(
              "UPDATE capsule_state SET desired_rollout_id = NULL, updated_at = ? WHERE project_id = ? AND capsule_id = ?",
              Date.now(),
              projectId,
              capsuleId,
            );
            this.open().jobs.clearJobs(projectId, capsuleId);
          });
          await this.terminateExecutions(projectId, capsuleId, `rollout ${rolloutId} was stopped`);
        }
        this.track(outcome.value);
        this.toRunner({ type: "stop", projectId, capsuleId, rolloutId });
        return outcome;
      }).then(settle),
    );
  }

  /** A capsule's rollout ids in this environment, newest first unless `ascending`, and how many there are. */
  async listRollouts(projectId: string, capsuleId: string, offset: number, limit: number, ascending: boolean): Promise<{ ids: number[]; total: number }> {
    const { sql } = this.open();
    const total = sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM rollouts WHERE project_id = ? AND capsule_id = ?", projectId, capsuleId).one().n;
    const ids = sql
      .exec<{ rollout_id: number }>(
        `SELECT rollout_id FROM rollouts WHERE project_id = ? AND capsule_id = ? ORDER BY rollout_id ${ascending ? "ASC" : "DESC"} LIMIT ? OFFSET ?`,
        projectId,
        capsuleId,
        limit,
        offset,
      )
      .toArray()
      .map((r) => r.rollout_id);
    return { ids, total };
  }

  /** The capsule's current rollout here (what new deploys build on), or null before the first. */
  async currentRollout(projectId: string, capsuleId: string): Promise<number | null> {
    return this.capsuleState(projectId, capsuleId).current_rollout_id;
  }

  // ---- The runner -------------------------------------------------------------------------

  /** The runner that said hello on an open socket, if any. */
  private activeRunner(): { ws: WebSocket; name: string; version: string } | null {
    for (const ws of this.ctx.getWebSockets(RUNNER)) {
      const a = ws.deserializeAttachment() as RunnerAttachment | null;
      if (a?.name && ws.readyState === WebSocket.OPEN) return { ws, name: a.name, version: a.version ?? "" };
    }
    return null;
  }

  private runner(): { name: string; version: string } | null {
    const r = this.activeRunner();
    return r ? { name: r.name, version: r.version } : null;
  }

  /** The environment's runner as last seen. */
  async runnerInfo(): Promise<RunnerInfo> {
    const row = this.open()
      .sql.exec<{ name: string; version: string; connected_at: number | null; disconnected_at: number | null }>("SELECT * FROM runner")
      .toArray()[0];
    return {
      connected: this.activeRunner() !== null,
      name: row?.name ?? "",
      version: row?.version ?? "",
      connectedAt: row?.connected_at ?? null,
      disconnectedAt: row?.disconnected_at ?? null,
    };
  }

  private toRunner(msg: ServerMessage): boolean {
    const r = this.activeRunner();
    if (!r) return false;
    try {
      r.ws.send(JSON.stringify(msg));
      return true;
    } catch {
      return false;
    }
  }

  private toRunnerAll(msg: ServerMessage): void {
    for (const ws of this.ctx.getWebSockets(RUNNER)) {
      try {
        ws.send(JSON.stringify(msg));
      } catch {
        // Closing anyway.
      }
    }
  }

  /** Sends the capsule's desired rollout to the runner (level-triggered: the whole config). */
  private sendDesired(projectId: string, capsuleId: string): void {
    const { desired_rollout_id: id } = this.capsuleState(projectId, capsuleId);
    if (id === null) return;
    const config = this.rolloutConfig(projectId, capsuleId, id);
    if (!config) return;
    this.toRunner({ type: "desired", projectId, capsuleId, rolloutId: id, config: toJson(RolloutConfigSchema, config) });
  }

  /**
   * Tells every rollout in progress what the runner is up to; with `waitingOnly`, only those
   * still waiting for their resources (a reconnect changes nothing for a running rollout).
   */
  private async runnerNews(message: string, waitingOnly = false): Promise<void> {
    const rows = this.open()
      .sql.exec<{ project_id: string; capsule_id: string; in_progress_rollout_id: number }>(
        "SELECT project_id, capsule_id, in_progress_rollout_id FROM capsule_state WHERE in_progress_rollout_id IS NOT NULL",
      )
      .toArray();
    for (const r of rows) {
      await this.serialize(capsuleKey(r.project_id, r.capsule_id), async () => {
        this.track(await this.rollout(r.project_id, r.capsule_id, r.in_progress_rollout_id).runnerNews(message, waitingOnly));
      });
    }
  }

  /** A ticket for the runner's WebSocket; the Worker has checked `runner:connect`. */
  async issueRunnerTicket(subject: string): Promise<{ ticket: string; expiresAt: number }> {
    this.requireIdentity();
    return this.tickets.issue(RUNNER, subject);
  }

  private acceptRunner(request: Request): Response {
    const ticket = this.tickets.consume(RUNNER, request);
    if (!ticket) return badTicket();
    // One runner per environment: a new connection (a restarted runner) takes over.
    const old = this.ctx.getWebSockets(RUNNER);
    for (const ws of old) ws.close(SUPERSEDED, "superseded by a newer runner connection");
    // Sessions relayed through the old runner cannot continue on the new one.
    if (old.length > 0) for (const exec of this.ctx.getWebSockets(EXEC)) exec.close(1011, "the runner was replaced");
    const { 0: client, 1: server } = new WebSocketPair();
    this.ctx.acceptWebSocket(server, [RUNNER]);
    server.serializeAttachment({ subject: ticket.subject } satisfies RunnerAttachment);
    return new Response(null, { status: 101, webSocket: client });
  }

  private async onRunnerMessage(ws: WebSocket, text: string): Promise<void> {
    let msg: RunnerMessage;
    try {
      msg = JSON.parse(text) as RunnerMessage;
      if (typeof msg?.type !== "string") throw new Error("no type");
    } catch {
      ws.send(JSON.stringify({ type: "error", code: "invalid_argument", message: "each frame must be one JSON message with a type" } satisfies ServerMessage));
      return;
    }
    const attachment = ws.deserializeAttachment() as RunnerAttachment;
    if (msg.type !== "hello" && !attachment.name) {
      ws.send(JSON.stringify({ type: "error", code: "failed_precondition", message: "send hello first" } satisfies ServerMessage));
      return;
    }
    const { reports, sql } = this.open();
    const now = Date.now();
    switch (msg.type) {
      case "hello": {
        if (msg.version !== RUNNER_PROTOCOL_VERSION) {
          ws.close(4002, `protocol version ${msg.version} is not supported; this server speaks ${RUNNER_PROTOCOL_VERSION}`);
          return;
        }
        const name = String(msg.runner?.name || attachment.subject);
        ws.serializeAttachment({ ...attachment, name, version: String(msg.runner?.version ?? "") } satisfies RunnerAttachment);
        sql.exec(
          "INSERT INTO runner (singleton, name, version, connected_at, disconnected_at) VALUES (1, ?1, ?2, ?3, NULL) ON CONFLICT DO UPDATE SET name = ?1, version = ?2, connected_at = ?3, disconnected_at = NULL",
          name,
          String(msg.runner?.version ?? ""),
          now,
        );
        ws.send(JSON.stringify({ type: "welcome", environmentId: this.requireIdentity().environmentId, version: RUNNER_PROTOCOL_VERSION } satisfies ServerMessage));
        this.stream.publish("runner.connected", { name, version: String(msg.runner?.version ?? "") });
        for (const c of await this.deployedCapsules()) this.sendDesired(c.projectId, c.capsuleId);
        this.resendAutomations();
        // Level-triggered like the rest: the runner learns the auto triggers it may have missed.
        this.toRunner({ type: "skaffold-intent", auto: this.skaffold().autoTriggers() });
        await this.devEnvironmentHello();
        // The complete desired set: the runner removes whatever it runs that is not in it.
        ws.send(JSON.stringify({ type: "synced", capsules: (await this.deployedCapsules()).map((c) => ({ ...c, rolloutId: this.capsuleState(c.projectId, c.capsuleId).desired_rollout_id! })) } satisfies ServerMessage));
        await this.runnerNews(applyingBy(name), true);
        return;
      }
      case "applied":
      case "apply-failed":
        await this.serialize(capsuleKey(msg.projectId, msg.capsuleId), async () => {
          // Reports about a rollout that is no longer in progress (a stale runner) change nothing.
          if (this.capsuleState(msg.projectId, msg.capsuleId).in_progress_rollout_id !== msg.rolloutId) return;
          const rollout = this.rollout(msg.projectId, msg.capsuleId, msg.rolloutId);
          const summary =
            msg.type === "applied"
              ? await rollout.applied(Array.isArray(msg.resources) ? msg.resources : [])
              : await rollout.applyFailed(String(msg.message || "the runner gave no reason"));
          this.track(summary);
          if (msg.type === "applied") {
            if (Array.isArray(msg.endpoints)) this.open().jobs.setEndpoints(msg.projectId, msg.capsuleId, msg.endpoints);
            await this.countFor(msg.projectId, msg.capsuleId);
          }
        });
        return;
      case "job-result": {
        const x = this.open().jobs.execution(String(msg.executionId));
        if (!x || x.state !== JobState[JobState.ONGOING]) return;
        if (msg.exitCode === 0) await this.endExecution(x, JobState.COMPLETED, msg.message || "exit code 0");
        else await this.jobAttemptFailed(x, `exit code ${msg.exitCode}${msg.message ? `: ${msg.message}` : ""}`);
        return;
      }
      case "instances":
        await this.serialize(capsuleKey(msg.projectId, msg.capsuleId), async () => {
          reports.setInstances(msg.projectId, msg.capsuleId, Array.isArray(msg.instances) ? msg.instances : [], now);
          await this.countFor(msg.projectId, msg.capsuleId);
        });
        return;
      case "log":
        reports.appendLogs(msg.projectId, msg.capsuleId, msg.instanceId, Array.isArray(msg.lines) ? msg.lines : [], now);
        for (const wake of this.logWaiters) wake();
        return;
      case "metrics":
        reports.addMetrics(msg.projectId, msg.capsuleId, Array.isArray(msg.samples) ? msg.samples : [], now);
        return;
      case "exec-output":
        this.toExec(msg.sessionId, { [msg.stream === "stderr" ? "stderr" : "stdout"]: { data: msg.data } });
        return;
      case "exec-exit":
        this.toExec(msg.sessionId, { exitCode: msg.exitCode | 0 }, true);
        return;
      case "service-status":
        await this.onAutomationReport(msg);
        return;
      case "task-step-status":
        await this.onAutomationReport(msg);
        return;
      case "environment-status":
        await this.onEnvironmentStatus(ws, msg, attachment.subject);
        return;
      case "verify-token":
        await this.onVerifyToken(ws, msg);
        return;
      default:
        ws.send(
          JSON.stringify({ type: "error", code: "invalid_argument", message: `unknown message type ${(msg as { type: string }).type}` } satisfies ServerMessage),
        );
    }
  }

  /** Updates the counts of the capsule's rollout in progress from its stored instances. */
  private async countFor(projectId: string, capsuleId: string): Promise<void> {
    const id = this.capsuleState(projectId, capsuleId).in_progress_rollout_id;
    if (id === null) return;
    this.track(await this.rollout(projectId, capsuleId, id).instances(this.open().reports.counts(projectId, capsuleId, id)));
  }

  private async onRunnerGone(ws: WebSocket): Promise<void> {
    const a = ws.deserializeAttachment() as RunnerAttachment | null;
    // A superseded connection's successor is in charge (or about to say hello); only the last one leaving matters.
    if (!a?.name || this.ctx.getWebSockets(RUNNER).some((other) => other !== ws && other.readyState === WebSocket.OPEN)) return;
    const at = Date.now();
    this.open().sql.exec("UPDATE runner SET disconnected_at = ?", at);
    this.stream.publish("runner.disconnected", { name: a.name });
    for (const exec of this.ctx.getWebSockets(EXEC)) exec.close(1011, "the runner disconnected");
    await this.runnerNews(`runner ${a.name} disconnected at ${new Date(at).toISOString()}; waiting for it to reconnect`);
  }

  // ---- Instances, logs, metrics --------------------------------------------------------------

  /** Instances with the image of the rollout each runs. */
  private withImages(projectId: string, capsuleId: string, rows: InstanceRow[]): (InstanceRow & { image_id: string })[] {
    const images = new Map<number, string>();
    return rows.map((r) => {
      if (!images.has(r.rollout_id)) images.set(r.rollout_id, this.rolloutConfig(projectId, capsuleId, r.rollout_id)?.imageId ?? "");
      return { ...r, image_id: images.get(r.rollout_id)! };
    });
  }

  async listInstances(projectId: string, capsuleId: string, opts: { includeDeleted?: boolean; excludeExisting?: boolean }) {
    return this.withImages(projectId, capsuleId, this.open().reports.instances(projectId, capsuleId, opts));
  }

  async instance(projectId: string, capsuleId: string, instanceId: string) {
    const row = this.open().reports.instance(projectId, capsuleId, instanceId);
    return row ? this.withImages(projectId, capsuleId, [row])[0]! : null;
  }

  /** RestartInstance: relayed to the runner, which reports the restart in its next instances. */
  async restartInstance(projectId: string, capsuleId: string, instanceId: string): Promise<Outcome<void>> {
    return attempt(() => {
      const i = this.open().reports.instance(projectId, capsuleId, instanceId);
      if (!i || i.deleted_at !== null) throw notFound(`instance ${instanceId} of capsule ${capsuleId}`);
      if (!this.toRunner({ type: "restart-instance", projectId, capsuleId, instanceId })) throw this.noRunner("restart an instance");
    });
  }

  private noRunner(what: string) {
    const { environmentId } = this.requireIdentity();
    return failedPrecondition(`no runner is connected to environment ${environmentId}, so nothing can ${what}`);
  }

  /**
   * Log lines after `after`. With `waitMs`, waits up to that long for new lines when there
   * are none yet (a long poll: Logs with follow calls it in a loop).
   */
  async logs(projectId: string, capsuleId: string, q: { instanceId?: string; after: number; sinceMs?: number; waitMs?: number }): Promise<StoredLogLine[]> {
    const read = () => this.open().reports.logs(projectId, capsuleId, { instanceId: q.instanceId, after: q.after, sinceMs: q.sinceMs });
    const lines = read();
    if (lines.length > 0 || !q.waitMs) return lines;
    await new Promise<void>((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.logWaiters.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, q.waitMs);
      this.logWaiters.add(wake);
    });
    return read();
  }

  /** Metric samples; answers failed_precondition while no runner has ever reported here. */
  async metrics(projectId: string, capsuleId: string, q: { instanceId?: string; sinceMs?: number }): Promise<Outcome<StoredSample[]>> {
    return attempt(() => {
      if (!this.activeRunner() && (this.open().sql.exec("SELECT 1 FROM runner").toArray().length === 0)) throw this.noRunner("report metrics");
      return this.open().reports.metrics(projectId, capsuleId, q);
    });
  }

  async customMetrics(projectId: string, capsuleId: string): Promise<Outcome<{ name: string; value: number; time: number }[]>> {
    return attempt(() => {
      if (!this.activeRunner() && (this.open().sql.exec("SELECT 1 FROM runner").toArray().length === 0)) throw this.noRunner("report metrics");
      return this.open().reports.customMetrics(projectId, capsuleId);
    });
  }

  // ---- Cron jobs -------------------------------------------------------------------------------

  /** D1 statements that make the Cron Trigger's index of the capsule's jobs here match `plan`. */
  private scheduleStatements(environmentId: string, projectId: string, capsuleId: string, plan: PlannedJob[]): D1PreparedStatement[] {
    const db = this.env.DB;
    return [
      db.prepare("DELETE FROM cron_schedules WHERE environment_id = ? AND project_id = ? AND capsule_id = ?").bind(environmentId, projectId, capsuleId),
      ...plan.map((j) =>
        db
          .prepare(
            `INSERT INTO cron_schedules (environment_id, project_id, capsule_id, job_name, next_run_at)
             SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM capsules WHERE project_id = ?2 AND id = ?3)`,
          )
          .bind(environmentId, projectId, capsuleId, j.jobName, j.nextRunAt),
      ),
    ];
  }

  /**
   * Called by the Cron Trigger: starts an execution for every job due by `dueBy` (the
   * trigger's scheduled time). Each scheduled time gets one execution however many triggers
   * call this. Returns how many started.
   */
  async runDueJobs(dueBy = Date.now()): Promise<number> {
    const identity = this.identity();
    if (!identity) return 0;
    const { jobs, timers } = this.open();
    const now = Date.now();
    let started = 0;
    for (const job of jobs.due(dueBy)) {
      const fired = this.ctx.storage.transactionSync(() => jobs.fire(job, dueBy, now));
      const base = { projectId: job.project_id, capsuleId: job.capsule_id, jobName: job.job_name, rolloutId: job.rollout_id };
      if (fired.missed.length > 0) this.stream.publish("job.missed", { ...base, scheduledAt: fired.missed.map((t) => new Date(t).toISOString()) });
      for (const x of fired.started) {
        this.stream.publish("job.started", { ...base, executionId: x.execution_id, scheduledAt: new Date(x.scheduled_at).toISOString() });
        await timers.set(JOB_ATTEMPT, x.execution_id, now);
        if (x.deadline_at !== null) await timers.set(JOB_DEADLINE, x.execution_id, x.deadline_at);
        started++;
      }
      await this.env.DB.prepare("UPDATE cron_schedules SET next_run_at = ? WHERE environment_id = ? AND project_id = ? AND capsule_id = ? AND job_name = ?")
        .bind(fired.nextRunAt, identity.environmentId, job.project_id, job.capsule_id, job.job_name)
        .run();
    }
    return started;
  }

  /** One attempt of an execution: an HTTP request to the capsule, or a command sent to the runner. */
  private async attemptJob(executionId: string): Promise<void> {
    const x = this.open().jobs.execution(executionId);
    if (!x || x.state !== JobState[JobState.ONGOING]) return;
    const job = fromBinary(CronJobSchema, new Uint8Array(x.job));
    const budget = (x.deadline_at ?? Date.now() + defaults.jobs.defaultDeadlineMs) - Date.now();
    if (budget <= 0) return this.endExecution(x, JobState.TERMINATED, "its timeout was reached");
    if (job.jobType.case === "command") {
      const { command, args } = job.jobType.value;
      const sent = this.toRunner({ type: "job-run", executionId, projectId: x.project_id, capsuleId: x.capsule_id, jobName: x.job_name, command, args, timeoutMs: budget });
      // The runner answers with job-result; the deadline timer ends the execution if it never does.
      if (!sent) await this.jobAttemptFailed(x, `no runner is connected to environment ${this.requireIdentity().environmentId}, so the command cannot run`);
      return;
    }
    if (job.jobType.case !== "url") return this.endExecution(x, JobState.FAILED, "the job has neither a URL nor a command");
    const { port, path, queryParameters } = job.jobType.value;
    const base = this.open().jobs.endpoint(x.project_id, x.capsule_id, Number(port));
    if (!base) return this.jobAttemptFailed(x, `capsule ${x.capsule_id} has no address for port ${port}: the runner has not reported one`);
    const url = new URL(path, base);
    for (const k of Object.keys(queryParameters).sort()) url.searchParams.set(k, queryParameters[k]!);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(budget) });
      await res.body?.cancel();
      if (res.ok) await this.endExecution(x, JobState.COMPLETED, `${url} answered ${res.status}`);
      else await this.jobAttemptFailed(x, `${url} answered ${res.status}`);
    } catch (err) {
      if (x.deadline_at !== null && Date.now() >= x.deadline_at) await this.endExecution(x, JobState.TERMINATED, "its timeout was reached");
      else await this.jobAttemptFailed(x, `${url} could not be reached: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /** A failed attempt: retried after a backoff while retries remain, else the execution FAILED. */
  private async jobAttemptFailed(x: ExecutionRow, message: string): Promise<void> {
    const job = fromBinary(CronJobSchema, new Uint8Array(x.job));
    const current = this.open().jobs.execution(x.execution_id);
    if (!current || current.state !== JobState[JobState.ONGOING]) return;
    if (current.retries >= job.maxRetries) return this.endExecution(current, JobState.FAILED, message);
    const retries = this.open().jobs.countRetry(x.execution_id, message);
    const first = Number(this.env.JOB_RETRY_BACKOFF_MS) || defaults.jobs.retryBackoffMs;
    const backoff = Math.min(defaults.jobs.retryBackoffCapMs, first * 2 ** (retries - 1));
    this.stream.publish("job.retrying", { ...executionEvent(current), retries, message, retryAt: new Date(Date.now() + backoff).toISOString() });
    await this.open().timers.set(JOB_ATTEMPT, x.execution_id, Date.now() + backoff);
  }

  /** Ends an ongoing execution in `state`, once, and drops its timers. */
  private async endExecution(x: ExecutionRow, state: JobState, message: string): Promise<void> {
    const { jobs, timers } = this.open();
    if (!jobs.finish(x.execution_id, state, message, Date.now())) return;
    this.stream.publish(`job.${JobState[state].toLowerCase()}`, { ...executionEvent(x), retries: jobs.execution(x.execution_id)!.retries, message });
    await timers.cancel(JOB_ATTEMPT, x.execution_id);
    await timers.cancel(JOB_DEADLINE, x.execution_id);
  }

  /** Terminates a capsule's ongoing executions (of rollouts other than `keep`): their rollout ended. */
  private async terminateExecutions(projectId: string, capsuleId: string, why: string, keep?: number): Promise<void> {
    for (const x of this.open().jobs.ongoing(projectId, capsuleId, keep)) await this.endExecution(x, JobState.TERMINATED, why);
  }

  /** GetJobExecutions: a page of a capsule's executions here, with the total. */
  async jobExecutions(q: ExecutionQuery): Promise<{ rows: Omit<ExecutionRow, "job">[]; total: number }> {
    const { rows, total } = this.open().jobs.list(q);
    return { rows: rows.map(({ job: _, ...r }) => r), total };
  }

  // ---- Execute ---------------------------------------------------------------------------------

  /** A ticket for an Execute session; the Worker has checked `capsule:execute`. */
  async issueExecTicket(subject: string, session: ExecSession): Promise<Outcome<{ ticket: string; expiresAt: number }>> {
    return attempt(() => {
      const i = this.open().reports.instance(session.projectId, session.capsuleId, session.instanceId);
      if (!i || i.deleted_at !== null) throw notFound(`instance ${session.instanceId} of capsule ${session.capsuleId}`);
      if (!this.activeRunner()) throw this.noRunner("execute a command");
      return this.tickets.issue(EXEC, subject, session);
    });
  }

  private acceptExec(request: Request): Response {
    const ticket = this.tickets.consume(EXEC, request);
    if (!ticket) return badTicket();
    const session = ticket.payload as ExecSession;
    const sessionId = crypto.randomUUID();
    if (!this.toRunner({ type: "exec-start", sessionId, ...session })) {
      return socketError(400, "failed_precondition", "the runner disconnected: no command can be executed until it reconnects");
    }
    const { 0: client, 1: server } = new WebSocketPair();
    this.ctx.acceptWebSocket(server, [EXEC, execTag(sessionId)]);
    server.serializeAttachment({ sessionId });
    return new Response(null, { status: 101, webSocket: client });
  }

  /** Sends an api.v1.capsule.ExecuteResponse (protobuf JSON) to the session's client. */
  private toExec(sessionId: string, response: Json, last = false): void {
    for (const ws of this.ctx.getWebSockets(execTag(String(sessionId)))) {
      try {
        ws.send(JSON.stringify(response));
        if (last) ws.close(1000, "command finished");
      } catch {
        // The client left; the runner learns it from exec-close.
      }
    }
  }

  /** A client frame: an api.v1.capsule.ExecuteRequest in protobuf JSON (stdin or resize). */
  private onExecMessage(ws: WebSocket, text: string): void {
    const { sessionId } = ws.deserializeAttachment() as { sessionId: string };
    let req: { stdin?: { data?: string; closed?: boolean }; resize?: { height?: number; width?: number } };
    try {
      req = JSON.parse(text);
    } catch {
      ws.send(JSON.stringify({ error: { code: "invalid_argument", message: "frames are api.v1.capsule.ExecuteRequest in protobuf JSON" } }));
      return;
    }
    if (req.stdin) this.toRunner({ type: "exec-input", sessionId, data: req.stdin.data ?? "", closed: req.stdin.closed === true });
    else if (req.resize) this.toRunner({ type: "exec-resize", sessionId, width: req.resize.width ?? 0, height: req.resize.height ?? 0 });
  }

  // ---- Developer environment (gitpod.v1.EnvironmentService) ----------------------------------------

  /** The developer environment (dev-environment.ts), if the object holds one; `destroy` drops it. */
  private devStore?: devEnv.DevEnvironmentStore;

  private dev(): devEnv.DevEnvironmentStore {
    return (this.devStore ??= new devEnv.DevEnvironmentStore(this.ctx.storage.sql));
  }

  private requireDev(): { environmentId: string; state: devEnv.DevEnvironmentState } {
    const { environmentId } = this.requireIdentity();
    const state = this.dev().get();
    if (!state) throw notFound(`environment ${environmentId}`);
    return { environmentId, state };
  }

  /**
   * CreateEnvironment, once the Worker has made the environment's Rig side (`initialize`):
   * the environment is to run, which only a runner can make happen, so it starts CREATING.
   * Answers the gitpod.v1.Environment, binary.
   */
  async createDevEnvironment(metadata: Uint8Array, spec: Uint8Array): Promise<Outcome<Uint8Array>> {
    return attempt(() => {
      const { environmentId } = this.requireIdentity();
      if (this.dev().get()) throw alreadyExists(`environment ${environmentId}`);
      return this.saveDev(null, devEnv.newDevEnvironment(metadata, spec));
    });
  }

  /** GetEnvironment: the gitpod.v1.Environment, binary. */
  async devEnvironment(): Promise<Outcome<Uint8Array>> {
    return attempt(() => {
      const { environmentId, state } = this.requireDev();
      return devEnv.environmentBinary(environmentId, state);
    });
  }

  /** Start, Stop, Unarchive, Update (an UpdateEnvironmentRequest, binary) and MarkActive: failed_precondition when the phase forbids it. */
  async changeDevEnvironment(
    change: { op: "start" | "stop" | "unarchive" } | { op: "update"; request: Uint8Array } | { op: "mark-active"; source: string; at: number },
  ): Promise<Outcome<void>> {
    return attempt(async () => {
      const { environmentId, state } = this.requireDev();
      const t = onUser(change.op === "start" || change.op === "stop" ? change.op : "change", devEnv.phaseState(state));
      if (!t.ok) throw failedPrecondition(`environment ${environmentId} cannot ${change.op.replace("-", " ")}: ${t.reason}`);
      let next = devEnv.withPhase(state, t);
      const now = Date.now();
      if (change.op === "start") next = devEnv.started(next, now);
      if (change.op === "update") next = devEnv.updated(next, change.request);
      if (change.op === "mark-active") next = devEnv.withActivity(next, change.source, change.at);
      // Unarchiving restarts the archive clock; an environment that is not archived stays as it is.
      if (change.op === "unarchive" && (devEnv.archiveAt(state) ?? Infinity) <= now) next = { ...next, unarchivedAt: now };
      // Starting a stopped machine is a new request to the runner even when the spec reads the same.
      await this.saveDev(state, next, { touchSpec: change.op === "start" && t.phase !== state.phase });
    });
  }

  /**
   * DeleteEnvironment. A machine a runner may hold is stopped and deleted by it first; the
   * environment is gone once the runner reports it deleted. Without a machine, or with
   * `force`, it is removed at once (the runner is still told, so it can clean up).
   */
  async deleteDevEnvironment(force: boolean): Promise<Outcome<void>> {
    return attempt(async () => {
      const { environmentId, state } = this.requireDev();
      const t = onUser("delete", devEnv.phaseState(state));
      if (!t.ok) throw failedPrecondition(t.reason);
      const next = devEnv.withPhase(state, t);
      if (force || t.phase === EnvironmentPhase.DELETED) {
        if (state.ackedVersion !== null) this.toRunner(devEnv.desiredMessage(environmentId, next));
        return this.removeDev(environmentId);
      }
      await this.saveDev(state, next);
    });
  }

  /** WatchEvents: a ticket for the environment's event stream and the last event so far, to follow from. */
  async watchFrom(subject: string): Promise<Outcome<{ ticket: string; after: number }>> {
    return attempt(() => {
      this.requireIdentity();
      return { ticket: this.stream.issueTicket(subject).ticket, after: this.open().log.lastSeq() };
    });
  }

  /**
   * Commits a change: the store sets the versions, the stream gets its events, the runner the
   * new spec, and D1 the summary ListEnvironments reads. Answers the environment, binary.
   */
  private async saveDev(prev: devEnv.DevEnvironmentState | null, next: devEnv.DevEnvironmentState, opts: { touchSpec?: boolean } = {}): Promise<Uint8Array> {
    const { environmentId } = this.requireIdentity();
    const c = this.dev().commit(prev, next, (s) => this.devWaiting(environmentId, s), opts);
    if (c.changed) {
      const data = devEnv.eventData(environmentId, c.state);
      if (!prev) this.stream.publish("dev-environment.created", data);
      if (prev && (c.specChanged || c.metadataChanged)) this.stream.publish("dev-environment.updated", data);
      if (prev && c.statusChanged) this.stream.publish("dev-environment.status-updated", data);
      if (c.specChanged) this.toRunner(devEnv.desiredMessage(environmentId, c.state));
      const executions = prev ? this.automationsOnPhase(prev.phase, c.state) : [];
      await this.env.DB.batch([devEnv.summaryStatement(this.env.DB, environmentId, c), ...this.indexExecutions(environmentId, executions)]);
    }
    return devEnv.environmentBinary(environmentId, c.state);
  }

  /** Why the environment is not moving, for its status: never pretend that a runner is at work. */
  private devWaiting(environmentId: string, s: devEnv.DevEnvironmentState): string {
    const moving = [EnvironmentPhase.CREATING, EnvironmentPhase.STARTING, EnvironmentPhase.STOPPING, EnvironmentPhase.DELETING];
    if (!moving.includes(s.phase)) return "";
    const runner = this.runner();
    if (!runner) return `waiting for a runner: none is connected to environment ${environmentId}, so it stays ${phaseName(s.phase)} until one connects`;
    if (s.ackedVersion === null || s.ackedVersion < s.spec.specVersion) return `sent to runner ${runner.name}; waiting for it to report`;
    return "";
  }

  /** Deletes the environment for good: its D1 rows, then the object's whole state (`destroy`). */
  private async removeDev(environmentId: string): Promise<void> {
    // Gone without passing STOPPING (force, or no machine): what runs in it is stopped all the same.
    this.automationOp((store, op) => store.environmentStopped(op));
    this.stream.publish("dev-environment.deleted", { environmentId, phase: "DELETED" });
    await this.env.DB.batch(deleteStatements(this.env, environmentId));
    await this.destroy();
  }

  /** After `hello`: the runner gets the desired state again, and the status says it was sent. */
  private async devEnvironmentHello(): Promise<void> {
    const state = this.dev().get();
    if (!state) return;
    this.toRunner(devEnv.desiredMessage(this.requireIdentity().environmentId, state));
    await this.saveDev(state, state);
  }

  /** `environment-status`: what the machine is, for the spec version the runner acts on. */
  private async onEnvironmentStatus(ws: WebSocket, msg: Extract<RunnerMessage, { type: "environment-status" }>, runnerSubject: string): Promise<void> {
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
    const { environmentId } = this.requireIdentity();
    if (t.phase === EnvironmentPhase.DELETED) return this.removeDev(environmentId);
    await this.saveDev(state, devEnv.reported(state, msg, t.phase, runnerSubject));
  }

  /** `verify-token`: whether a token is a live access or logs token of this environment. */
  private async onVerifyToken(ws: WebSocket, msg: Extract<RunnerMessage, { type: "verify-token" }>): Promise<void> {
    const result = await verifyEnvironmentToken(this.env, String(msg.token ?? ""), this.requireIdentity().environmentId);
    ws.send(JSON.stringify({ type: "token-verified", requestId: String(msg.requestId ?? ""), ...result } satisfies ServerMessage));
  }

  // ---- Automations (gitpod.v1.EnvironmentAutomationService) ----------------------------------------

  /** Services, tasks and task executions (automations.ts), created on first use; `destroy` drops it. */
  private automationStore?: Automations;

  private automations(): Automations {
    return (this.automationStore ??= new Automations(this.open().sql));
  }

  /**
   * Runs `fn` as one transaction together with the events it collected, then sends the runner
   * what it must hear. Synchronous throughout, so calls and runner reports never interleave.
   */
  private automationOp<T>(fn: (store: Automations, op: Op) => T): T {
    const op = new Op(this.requireIdentity().environmentId, this.runner()?.name ?? null);
    // Outside the transaction: a refused call must not roll back the creation of the tables.
    const store = this.automations();
    const result = this.ctx.storage.transactionSync(() => {
      const value = fn(store, op);
      for (const e of op.events) this.stream.publish(e.type, e.data);
      return value;
    });
    for (const m of op.messages) this.toRunner(m);
    return result;
  }

  /**
   * One gitpod.v1.EnvironmentAutomationService call about this environment; null when the
   * environment does not exist. Changing the automations of a non-ephemeral environment runs
   * commands in it, so that needs `environment:edit` there.
   */
  async automation(call: AutomationCall, caller: AutomationCaller): Promise<Outcome<AutomationResult | null>> {
    return attempt(() => {
      const identity = this.identity();
      if (!identity) return null;
      if (!isRead(call.method) && !identity.ephemeral && !caller.mayEditPermanent) {
        throw permissionDenied(`environment ${identity.environmentId} is not ephemeral: changing its automations needs environment:edit there`);
      }
      return this.automationOp((store, op) => store.call(call, op, caller));
    });
  }

  /** A runner's report about a service or a task step. */
  private async onAutomationReport(msg: Extract<RunnerMessage, { type: "service-status" | "task-step-status" }>): Promise<void> {
    const deleted = this.automationOp((store, op) => {
      store.report(msg, op);
      return op.deleted;
    });
    // A deleted service that has now stopped is gone: the Worker indexed it, so it is unindexed here.
    if (deleted.length) await this.env.DB.prepare("DELETE FROM automation_index WHERE id IN (SELECT value FROM json_each(?))").bind(JSON.stringify(deleted)).run();
  }

  /** After hello: every service's desired state, and the task steps still to run or to stop. */
  private resendAutomations(): void {
    this.automationOp((store, op) => store.resync(op));
  }

  /**
   * The developer environment's phase moved from `from` to `s.phase`. Entering RUNNING from
   * anything but UPDATING is an environment start: services and tasks triggered by
   * postEnvironmentStart run, once per start (reports while RUNNING, and RUNNING <-> UPDATING,
   * are no start). postDevcontainerStart fires at the same moment: the runner reports no
   * devcontainer phase of its own, the devcontainer starts with the environment (a rebuild
   * while running is not told apart, so it fires no trigger). Entering STOPPING, STOPPED,
   * or DELETING stops what runs: services meant to run and ongoing executions (`removeDev`
   * does the same for an environment that goes at once).
   * Answers the executions it created, for the D1 index.
   */
  private automationsOnPhase(from: EnvironmentPhase, s: devEnv.DevEnvironmentState): string[] {
    const P = EnvironmentPhase;
    if (from === s.phase) return [];
    const started = s.phase === P.RUNNING && from !== P.UPDATING;
    const stopping = [P.STOPPING, P.STOPPED, P.DELETING].includes(s.phase);
    if (!started && !stopping) return [];
    return this.automationOp((store, op) => {
      if (started) store.environmentStarted(["postEnvironmentStart", "postDevcontainerStart"], op, s.metadata.creator ?? create(SubjectSchema));
      else store.environmentStopped(op);
      return op.created;
    });
  }

  /**
   * Index rows of executions the object created itself (triggers): written right after they
   * were, where the Worker writes its before (a Get in between finds no row, hence not_found).
   */
  private indexExecutions(environmentId: string, ids: string[]): D1PreparedStatement[] {
    if (!ids.length) return [];
    return [
      this.env.DB.prepare(
        `INSERT INTO automation_index (id, environment_id, kind, created_at)
         SELECT value, ?1, 'execution', ?2 FROM json_each(?3)`,
      ).bind(environmentId, Date.now(), JSON.stringify(ids)),
    ];
  }

  // ---- Skaffold (proto.SkaffoldService) ------------------------------------------------------------

  /** The environment's Skaffold session (skaffold-session.ts), created on first use; `destroy` drops it. */
  private skaffoldStore?: SkaffoldSession;
  /** Events calls waiting for the next Skaffold log entry (long poll). */
  private readonly skaffoldWaiters = new Set<() => void>();

  private skaffold(): SkaffoldSession {
    this.requireIdentity();
    return (this.skaffoldStore ??= new SkaffoldSession(this.ctx.storage));
  }

  private wakeSkaffold(): void {
    for (const wake of this.skaffoldWaiters) wake();
  }

  /** GetState: proto.State, binary. */
  async skaffoldState(): Promise<Outcome<Uint8Array>> {
    return attempt(() => this.skaffold().stateBinary());
  }

  /**
   * Events: the Skaffold log entries after `after`, oldest first. With `waitMs`, waits up to
   * that long for one when there are none yet: a long poll, which the Worker calls in a loop
   * per subscriber, so a slow subscriber holds up no one else.
   */
  async skaffoldEvents(after: number, waitMs = 0): Promise<Outcome<SkaffoldLogRow[]>> {
    return attempt(async () => {
      const rows = this.skaffold().after(after);
      if (rows.length > 0 || !waitMs) return rows;
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          this.skaffoldWaiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, waitMs);
        this.skaffoldWaiters.add(wake);
      });
      return this.skaffold().after(after);
    });
  }

  /** Handle: folds a proto.Event (binary) into the State and logs it. */
  async skaffoldHandle(event: Uint8Array): Promise<Outcome<void>> {
    return attempt(() => {
      this.skaffold().handle(event);
      this.wakeSkaffold();
    });
  }

  /** Execute: records a proto.Intent (binary) in the State and hands it to the runner, if one is connected. */
  async skaffoldExecute(intent: Uint8Array): Promise<Outcome<void>> {
    return attempt(() => {
      const { intent: asked, auto } = this.skaffold().execute(intent);
      if (asked) this.toRunner({ type: "skaffold-intent", intent: asked, auto });
    });
  }

  /** AutoBuild, AutoSync, AutoDeploy: already_exists when `enabled` is the trigger's value already. */
  async skaffoldAutoTrigger(phase: "build" | "sync" | "deploy", enabled: boolean): Promise<Outcome<void>> {
    return attempt(() => {
      this.toRunner({ type: "skaffold-intent", auto: this.skaffold().setAutoTrigger(phase, enabled) });
    });
  }

  /** A rollout here moved: its Skaffold deploy and status-check events. They never fail the rollout's own work. */
  private skaffoldOnRollout(summary: RolloutSummary): void {
    try {
      if (this.identity() && this.skaffold().onRollout(summary) > 0) this.wakeSkaffold();
    } catch (err) {
      console.error(`Skaffold events of rollout ${rolloutName(summary.projectId, summary.capsuleId, summary.rolloutId)} were not logged`, err);
    }
  }

  // ---- Sockets ---------------------------------------------------------------------------------

  /** WebSockets: `.../events` (subscribers), `.../runner` (the runner), `.../exec` (Execute sessions). */
  async fetch(request: Request): Promise<Response> {
    const notUpgrade = requireUpgrade(request);
    if (notUpgrade) return notUpgrade;
    const path = new URL(request.url).pathname;
    if (path.endsWith("/runner")) return this.acceptRunner(request);
    if (path.endsWith("/exec")) return this.acceptExec(request);
    return this.stream.subscribe(request);
  }

  async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    const tags = this.ctx.getTags(ws);
    const text = typeof message === "string" ? message : new TextDecoder().decode(message);
    try {
      if (tags.includes(RUNNER)) await this.onRunnerMessage(ws, text);
      else if (tags.includes(EXEC)) this.onExecMessage(ws, text);
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
    ws.close(code === 1005 ? 1000 : code, "closing");
    await this.onSocketGone(ws);
  }

  async webSocketError(ws: WebSocket): Promise<void> {
    await this.onSocketGone(ws);
  }

  private async onSocketGone(ws: WebSocket): Promise<void> {
    const tags = this.ctx.getTags(ws);
    if (tags.includes(RUNNER)) await this.onRunnerGone(ws);
    else if (tags.includes(EXEC)) this.toRunner({ type: "exec-close", sessionId: (ws.deserializeAttachment() as { sessionId: string }).sessionId });
  }
}

/** What every job event carries about its execution. */
const executionEvent = (x: ExecutionRow) => ({
  projectId: x.project_id,
  capsuleId: x.capsule_id,
  jobName: x.job_name,
  rolloutId: x.rollout_id,
  executionId: x.execution_id,
});

/** A rollout object's refusal, rethrown as its ConnectError so `attempt` reports it. */
function settle<T>(outcome: Outcome<T>): void {
  unwrap(outcome);
}

/** Registers the image an `add_image` change deployed, as Image.Add would without a registry check. */
function registerImage(env: Env, projectId: string, capsuleId: string, imageId: string, createdBy: Json, now: number): D1PreparedStatement {
  const ref = parseReference(imageId);
  return env.DB.prepare(
    `INSERT INTO images (project_id, capsule_id, id, repository, tag, digest, origin, labels, created_by, created_at)
     SELECT ?1, ?2, ?3, ?4, ?5, ?6, '{}', '{}', ?7, ?8 WHERE EXISTS (SELECT 1 FROM capsules WHERE project_id = ?1 AND id = ?2)
     ON CONFLICT DO NOTHING`,
  ).bind(projectId, capsuleId, imageId, `${ref.registry}/${ref.repository}`, ref.tag, ref.digest, JSON.stringify(createdBy), now);
}
