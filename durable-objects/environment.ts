import { DurableObject } from "cloudflare:workers";
import type { Env } from "../workers/env";
import { EventLog, type LoggedEvent } from "./event-log";

/**
 * One per environment (named by its id). Owns what must be ordered within an environment:
 * its lifecycle, per-capsule rollout sequencing, automations and the event stream.
 * Its state is in SQLite storage, so eviction loses nothing.
 */
export class EnvironmentDO extends DurableObject<Env> {
  private readonly log: EventLog;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.log = new EventLog(ctx.storage.sql);
  }

  /** Events after `after`, oldest first. */
  async events(after = 0, limit = 1000): Promise<LoggedEvent[]> {
    return this.log.after(after, limit);
  }
}
