/** What the Worker calls about an environment's runner and Execute sessions: `EnvironmentDO.runner()`. */
import { RpcTarget } from "cloudflare:workers";
import { attempt, type Outcome } from "../../../workers/core/outcome";
import type { ExecSession, ExecSessions } from "./exec";
import type { RunnerConnection, RunnerInfo } from "./runner";

/** Refusals cross as Outcomes, since a thrown ConnectError would lose its code. */
export class RunnerApi extends RpcTarget {
  constructor(
    private readonly link: RunnerConnection,
    private readonly exec: ExecSessions,
  ) {
    super();
  }

  /** The environment's runner as last seen. */
  info(): RunnerInfo {
    return this.link.info();
  }

  /** A ticket for the runner's WebSocket; the Worker has checked `runner:connect`. */
  issueTicket(subject: string): { ticket: string; expiresAt: number } {
    return this.link.issueTicket(subject);
  }

  /** A ticket for an Execute session; the Worker has checked `capsule:execute`. */
  issueExecTicket(subject: string, session: ExecSession): Promise<Outcome<{ ticket: string; expiresAt: number }>> {
    return attempt(() => this.exec.issueTicket(subject, session));
  }
}
