import { fromBinary, toBinary } from "@bufbuild/protobuf";
import type { Author, RolloutIdentity } from "../contract";
import { DurableObject } from "cloudflare:workers";
import { type RolloutConfig, RolloutConfigSchema } from "../../proto/gen/api/v1/capsule/rollout_pb";
import { Result, State, type Status, StatusSchema } from "../../proto/gen/api/v1/capsule/rollout/status_pb";
import { defaults } from "../../workers/core/config";
import type { Env } from "../../workers/env";
import { failedPrecondition, notFound } from "../../workers/core/errors";
import { EventLog } from "../lib/event-log";
import { EventStream } from "../lib/event-stream";
import { attempt, type Outcome } from "../../workers/core/outcome";
import * as machine from "./status";
import type { AppliedResource } from "../../proto/frames/runner";
import { answerClose, SOCKET_SWEEP, SocketLiveness } from "../lib/socket-liveness";
import { Tickets } from "../lib/tickets";
import { Timers } from "../lib/timers";
import { migrateStorage } from "../lib/storage-migrations";
import { rolloutMigrations } from "./schema";

/** The timer kind of the readiness timeout (key ""). */
export const READY_TIMEOUT = "ready-timeout";


/** Where a rollout stands, as its environment needs to know it. */
export interface RolloutSummary extends RolloutIdentity {
  state: string;
  result: string;
  /** Neither stopped nor healthy: another deploy must wait for it or abort it. */
  inProgress: boolean;
  stopped: boolean;
  /** What the last change was about. */
  message: string;
}

/** The kinds of rollout events, as api.v1.capsule.EventData names them. */
export type RolloutEventKind = "rollout" | "error" | "abort";

/** What a rollout's log records per event (the `data` of a logged event). */
export type RolloutEventData = {
  kind: RolloutEventKind;
  rolloutId: number;
  message: string;
  state: string;
  /** Whoever caused it; null for the system. */
  createdBy: Author | null;
};

/** A logged rollout event, as `events` returns it. */
export interface RolloutEvent {
  seq: number;
  /** Milliseconds since the epoch. */
  time: number;
  kind: RolloutEventKind;
  rolloutId: number;
  message: string;
  /** model.Author init shape, as JSON text ("null" for the system). */
  createdBy: string;
}

export interface RolloutStart extends RolloutIdentity {
  /** api.v1.capsule.RolloutConfig, binary. */
  config: Uint8Array;
  /** The configuration this rollout follows in its environment, if any. */
  previous: Uint8Array | null;
  /** The connected runner's name, or null when none is connected. */
  runner: string | null;
  createdBy: Author | null;
}

const waitingForRunner = (environmentId: string) =>
  `waiting for a runner: none is connected to environment ${environmentId}, so nothing is created until one connects`;
/** The step message while a connected runner creates the rollout's resources. */
export const applyingBy = (runner: string) => `sent to runner ${runner}; waiting for it to create the resources`;

type Row = {
  project_id: string;
  capsule_id: string;
  rollout_id: number;
  environment_id: string;
  config: ArrayBuffer;
  status: ArrayBuffer;
};

/**
 * One per rollout (named by `rolloutName`). Owns the rollout's status, moved through the
 * specification's state machine (rollout-status.ts) by its environment's object as the runner
 * reports, and its event log and stream. The readiness timeout and the sweep of silent
 * subscriber sockets are timers on the object's alarm. All
 * state is in SQLite storage and every method changes it in one synchronous transaction, so
 * an object evicted at any point carries on from the last completed change.
 */
export class RolloutDO extends DurableObject<Env> {
  private readonly log: EventLog;
  private readonly stream: EventStream;
  private readonly timers: Timers;
  private readonly liveness: SocketLiveness;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    // Synchronous, so it has run before the constructor returns and any request arrives.
    migrateStorage(ctx.storage, rolloutMigrations);
    const sql = ctx.storage.sql;
    this.log = new EventLog(sql);
    this.stream = new EventStream(ctx, () => this.log, new Tickets(() => ctx.storage.sql));
    this.timers = new Timers(ctx.storage);
    this.liveness = new SocketLiveness(ctx, env);
  }

  /** The readiness timeout: ROLLOUT_READY_TIMEOUT_MS when set (tests of clients make it short), else the default. */
  private get readyTimeoutMs(): number {
    return Number(this.env.ROLLOUT_READY_TIMEOUT_MS) || defaults.rollouts.readyTimeoutMs;
  }

  private row(): Row | undefined {
    return this.ctx.storage.sql.exec<Row>("SELECT * FROM rollout").toArray()[0];
  }

  private load(): { id: RolloutIdentity; config: RolloutConfig; status: Status } | null {
    const r = this.row();
    if (!r) return null;
    return {
      id: { projectId: r.project_id, capsuleId: r.capsule_id, rolloutId: r.rollout_id, environmentId: r.environment_id },
      config: fromBinary(RolloutConfigSchema, new Uint8Array(r.config)),
      status: fromBinary(StatusSchema, new Uint8Array(r.status)),
    };
  }

  private summary(id: RolloutIdentity, s: Status, message: string): RolloutSummary {
    return {
      ...id,
      state: State[s.state],
      result: Result[s.result],
      inProgress: machine.inProgress(s),
      stopped: machine.isStopped(s),
      message,
    };
  }

  /**
   * Loads the rollout, lets `change` move its status, and stores the status and the events
   * `change` returned in one transaction. `change` returns the message of each event.
   */
  private advance(
    change: (s: Status, config: RolloutConfig, now: number) => (string | undefined | [RolloutEventKind, string])[],
    createdBy: Author | null = null,
  ): RolloutSummary {
    const current = this.load();
    if (!current) throw notFound("rollout");
    const { id, config, status } = current;
    const now = Date.now();
    const events = change(status, config, now).filter((e) => e !== undefined);
    this.ctx.storage.transactionSync(() => {
      this.ctx.storage.sql.exec("UPDATE rollout SET status = ?", toBinary(StatusSchema, status));
      for (const e of events) {
        const [kind, message] = typeof e === "string" ? (["rollout", e] as const) : e;
        this.stream.publish(kind, { kind, rolloutId: id.rolloutId, message, state: State[status.state], createdBy } satisfies RolloutEventData);
      }
    });
    const last = events.at(-1);
    return this.summary(id, status, typeof last === "string" ? last : (last?.[1] ?? ""));
  }

  /** Creates the rollout and takes it as far as it can go without the runner. Idempotent. */
  async start(init: RolloutStart): Promise<RolloutSummary> {
    const existing = this.load();
    if (existing) return this.summary(existing.id, existing.status, "");
    const { config: configBytes, previous, runner, createdBy, ...id } = init;
    const now = Date.now();
    const config = fromBinary(RolloutConfigSchema, configBytes);
    const status = machine.preparing(BigInt(id.rolloutId), now);
    const events: [RolloutEventKind, string][] = [["rollout", `rollout ${id.rolloutId} initiated${config.message ? `: ${config.message}` : ""}`]];
    events.push(["rollout", machine.configure(status, now, previous ? fromBinary(RolloutConfigSchema, previous) : undefined, config)]);
    events.push(["rollout", machine.awaitResources(status, now, runner ? applyingBy(runner) : waitingForRunner(id.environmentId))]);
    this.ctx.storage.transactionSync(() => {
      this.ctx.storage.sql.exec(
        "INSERT INTO rollout (singleton, project_id, capsule_id, rollout_id, environment_id, config, status) VALUES (1, ?, ?, ?, ?, ?, ?)",
        id.projectId,
        id.capsuleId,
        id.rolloutId,
        id.environmentId,
        configBytes,
        toBinary(StatusSchema, status),
      );
      for (const [kind, message] of events) {
        this.stream.publish(kind, { kind, rolloutId: id.rolloutId, message, state: State[status.state], createdBy } satisfies RolloutEventData);
      }
    });
    return this.summary(id, status, events.at(-1)![1]);
  }

  /** The runner created the rollout's resources. */
  async applied(resources: AppliedResource[]): Promise<RolloutSummary> {
    let created: string | undefined;
    const summary = this.advance((s, config, now) => {
      const replicas = config.replicas;
      created = machine.resourcesCreated(s, now, resources, replicas);
      // Nothing to wait for: zero replicas are ready at once.
      const ready = created && replicas === 0 ? machine.countInstances(s, now, { updated: 0, ready: 0, stuck: 0, wrongVersion: 0 }, 0) : undefined;
      return [created, ready];
    });
    // The readiness deadline starts once, when the rollout enters RUNNING; a resent `applied` (a reconnect) does not move it.
    if (created && summary.inProgress) await this.timers.set(READY_TIMEOUT, "", Date.now() + this.readyTimeoutMs);
    return summary;
  }

  /** The runner could not create the rollout's resources. */
  async applyFailed(message: string): Promise<RolloutSummary> {
    const summary = this.advance((s, _c, now) => {
      const m = machine.resourcesFailed(s, now, message);
      return m ? [["error", m]] : [];
    });
    return summary;
  }

  /** New instance counts for this rollout. */
  async instances(counts: machine.InstanceCounts): Promise<RolloutSummary> {
    const summary = this.advance((s, config, now) => [machine.countInstances(s, now, counts, config.replicas)]);
    if (!summary.inProgress) await this.timers.cancel(READY_TIMEOUT, "");
    return summary;
  }

  /** News about the runner (connected, disconnected) for the step the rollout waits on. */
  async runnerNews(message: string, waitingOnly = false): Promise<RolloutSummary> {
    return this.advance((s, _c, now) => [waitingOnly && s.state !== State.RESOURCE_CREATION ? undefined : machine.runnerNews(s, now, message)]);
  }

  /** AbortRollout: a rollout in progress stops where it is, ABORTED. */
  async abort(createdBy: Author | null): Promise<Outcome<RolloutSummary>> {
    return attempt(async () => {
      const summary = this.advance((s, _c, now) => {
        if (machine.isStopped(s)) throw failedPrecondition(`rollout ${s.rolloutId} has already stopped (${Result[s.result] ?? "no result"})`);
        if (!machine.inProgress(s)) throw failedPrecondition(`rollout ${s.rolloutId} is not in progress: it is running; StopRollout removes it`);
        machine.end(s, now, Result.ABORTED);
        return [["abort", `rollout ${s.rolloutId} aborted`]];
      }, createdBy);
      await this.timers.cancel(READY_TIMEOUT, "");
      return summary;
    });
  }

  /** A newer rollout took over: this one stops, REPLACED (or ROLLBACK when the newer one rolled it back). */
  async replace(by: number, rollback: boolean, createdBy: Author | null): Promise<RolloutSummary> {
    const summary = this.advance((s, _c, now) => {
      if (machine.isStopped(s)) return [];
      machine.end(s, now, rollback ? Result.ROLLBACK : Result.REPLACED);
      return [`${rollback ? "rolled back" : "replaced"} by rollout ${by}`];
    }, createdBy);
    await this.timers.cancel(READY_TIMEOUT, "");
    return summary;
  }

  /** StopRollout: the rollout's resources are removed and it ends. */
  async stop(createdBy: Author | null): Promise<Outcome<RolloutSummary>> {
    return attempt(async () => {
      const summary = this.advance((s, _c, now) => {
        if (machine.isStopped(s)) throw failedPrecondition(`rollout ${s.rolloutId} has already stopped (${Result[s.result] ?? "no result"})`);
        const result = machine.inProgress(s) ? Result.ABORTED : Result.UNSPECIFIED;
        machine.end(s, now, result);
        return [`rollout ${s.rolloutId} stopped: its resources are being removed`];
      }, createdBy);
      await this.timers.cancel(READY_TIMEOUT, "");
      return summary;
    });
  }

  /** The timers that are due: the readiness timeout, the sweep of silent sockets. */
  async alarm(): Promise<void> {
    for (const t of this.timers.takeDue()) {
      if (t.kind === READY_TIMEOUT) await this.readyTimeout();
      else if (t.kind === SOCKET_SWEEP) await this.liveness.sweep(this.timers, async () => {});
    }
    await this.timers.rearm();
  }

  /** Instances that are still not ready make the rollout stuck. */
  private async readyTimeout(): Promise<void> {
    const current = this.load();
    if (!current || !machine.inProgress(current.status)) return;
    const summary = this.advance((s, config, now) => {
      const m = machine.markStuck(s, now, config.replicas, `${Math.round(this.readyTimeoutMs / 1000)}s`);
      return m ? [["error", m]] : [];
    });
    if (summary.message) await this.env.ENVIRONMENTS.getByName(summary.environmentId).rolloutChanged(summary);
  }

  /** The rollout, or null for an id that was never started. Messages cross RPC as they are (structured clone). */
  async get(): Promise<{ identity: RolloutIdentity; config: RolloutConfig; status: Status } | null> {
    const r = this.row();
    if (!r) return null;
    return {
      identity: { projectId: r.project_id, capsuleId: r.capsule_id, rolloutId: r.rollout_id, environmentId: r.environment_id },
      config: fromBinary(RolloutConfigSchema, new Uint8Array(r.config)),
      status: fromBinary(StatusSchema, new Uint8Array(r.status)),
    };
  }

  /** A page of the rollout's events, oldest first (or newest first), and how many there are. */
  async events(offset: number, limit: number, descending: boolean): Promise<{ events: RolloutEvent[]; total: number }> {
    const { events, total } = this.log.page(offset, limit, descending);
    return {
      events: events.map((e) => {
        const d = e.data as RolloutEventData;
        return { seq: e.seq, time: e.time, kind: d.kind, rolloutId: d.rolloutId, message: d.message, createdBy: JSON.stringify(d.createdBy) };
      }),
      total,
    };
  }

  /** A single-use ticket for a WebSocket subscription to the rollout's events. */
  async issueStreamTicket(subject: string): Promise<{ ticket: string; expiresAt: number }> {
    return this.stream.issueTicket(subject);
  }

  async fetch(request: Request): Promise<Response> {
    const res = this.stream.subscribe(request);
    if (res.status === 101) await this.liveness.watch(this.timers);
    return res;
  }

  async webSocketMessage(): Promise<void> {}

  async webSocketClose(ws: WebSocket, code: number): Promise<void> {
    answerClose(ws, code);
  }
}
