/** The Op a call collects its effects in: events, runner messages, and the ids it created and deleted. */
import type { Json } from "../../lib/event-log";
import type { ServerMessage } from "../../../proto/frames/runner";

/** What a call does beyond storage: events for the environment's stream, messages for its runner. */
export class Op {
  readonly events: { type: string; data: Json }[] = [];
  readonly messages: ServerMessage[] = [];
  readonly created: string[] = [];
  readonly deleted: string[] = [];

  constructor(
    readonly environmentId: string,
    /** The name of the connected runner, or null. */
    readonly runner: string | null,
    readonly now = Date.now(),
  ) {}

  emit(type: string, data: Record<string, Json>): void {
    this.events.push({ type, data });
  }

  send(msg: ServerMessage): void {
    if (this.runner) this.messages.push(msg);
  }

  /** The status text of something that cannot move without a runner. */
  waiting(what: string): string {
    return `${WAITING}: none is connected to environment ${this.environmentId}, so nothing can ${what} until one connects`;
  }
}

/** How status texts of things waiting for a runner begin; they are cleared once one is there. */
export const WAITING = "waiting for a runner";
