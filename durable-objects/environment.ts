import { DurableObject } from "cloudflare:workers";
import type { Env } from "../workers/env";
import { EventLog, type LoggedEvent } from "./event-log";
import { EventStream } from "./event-stream";

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

/**
 * One per environment (named by its id). Owns what must be ordered within an environment:
 * its lifecycle, per-capsule rollout sequencing, automations and the event stream.
 * Its state is in SQLite storage, so eviction loses nothing.
 */
export class EnvironmentDO extends DurableObject<Env> {
  /** The event log, once the schema exists in storage; cleared by `destroy`, which drops every table. */
  private eventLog?: EventLog;
  private readonly stream: EventStream;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.stream = new EventStream(ctx, () => this.open().log);
  }

  /**
   * The object's storage, with its tables. They are created on first use rather than in the
   * constructor, so that after `destroy` the same instance (or a later one of the same name)
   * starts from empty tables again.
   */
  private open(): { sql: SqlStorage; log: EventLog } {
    const sql = this.ctx.storage.sql;
    if (!this.eventLog) {
      sql.exec(`CREATE TABLE IF NOT EXISTS identity (
        singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
        environment_id TEXT NOT NULL,
        ephemeral INTEGER NOT NULL,
        created_at INTEGER NOT NULL
      )`);
      // Filled by the capsule milestone: what runs here, so Delete can refuse while it is not empty.
      sql.exec(`CREATE TABLE IF NOT EXISTS capsules (
        project_id TEXT NOT NULL,
        capsule_id TEXT NOT NULL,
        deployed_at INTEGER NOT NULL,
        PRIMARY KEY (project_id, capsule_id)
      )`);
      this.eventLog = new EventLog(sql);
    }
    return { sql, log: this.eventLog };
  }

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

  /** Capsules deployed in this environment, by project then capsule. */
  async deployedCapsules(): Promise<DeployedCapsule[]> {
    return this.open()
      .sql.exec<{ project_id: string; capsule_id: string }>("SELECT project_id, capsule_id FROM capsules ORDER BY project_id, capsule_id")
      .toArray()
      .map((r) => ({ projectId: r.project_id, capsuleId: r.capsule_id }));
  }

  /** Appends an event to the environment's log and sends it to its subscribers. */
  async publish(type: string, data: LoggedEvent["data"]): Promise<number> {
    return this.stream.publish(type, data).seq;
  }

  /** A single-use ticket for a WebSocket subscription; the Worker has authorized `subject`. */
  async issueStreamTicket(subject: string): Promise<{ ticket: string; expiresAt: number }> {
    return this.stream.issueTicket(subject);
  }

  /** WebSocket subscriptions to the event stream (`GET .../events?ticket=&after=`). */
  async fetch(request: Request): Promise<Response> {
    return this.stream.subscribe(request);
  }

  /** Subscribers only listen; anything they send but the keep-alive ping is ignored. */
  async webSocketMessage(): Promise<void> {}

  async webSocketClose(ws: WebSocket, code: number): Promise<void> {
    ws.close(code === 1005 ? 1000 : code, "closing");
  }

  /** Drops all of the object's storage and its alarm: the environment was deleted. */
  async destroy(): Promise<void> {
    for (const ws of this.ctx.getWebSockets()) ws.close(1001, "environment deleted");
    await this.ctx.storage.deleteAlarm();
    await this.ctx.storage.deleteAll();
    this.eventLog = undefined;
  }

  /** Events after `after`, oldest first. */
  async events(after = 0, limit = 1000): Promise<LoggedEvent[]> {
    return this.open().log.after(after, limit);
  }
}
