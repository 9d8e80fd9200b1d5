import { DurableObject } from "cloudflare:workers";
import type { Env } from "../workers/env";
import { EventLog, type LoggedEvent } from "./event-log";

/**
 * One per rollout (named `<project>/<capsule>/<rollout id>`). Owns the rollout's state
 * machine and its event stream; timeouts run on the object's alarm.
 */
export class RolloutDO extends DurableObject<Env> {
  private readonly log: EventLog;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.log = new EventLog(ctx.storage.sql);
  }

  async events(after = 0, limit = 1000): Promise<LoggedEvent[]> {
    return this.log.after(after, limit);
  }
}
