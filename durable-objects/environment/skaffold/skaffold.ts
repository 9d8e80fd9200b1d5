/** The environment's Skaffold API (proto.SkaffoldService): the session, its long poll, and the intents the runner gets. */
import type { EnvironmentHost } from "../host";
import type { Event, Intent, State } from "../../../proto/gen/skaffold/v1/skaffold_pb";
import { rolloutName } from "../../contract";
import type { RolloutSummary } from "../../rollout/rollout";
import { SkaffoldSession, type SkaffoldLogRow } from "./session";
import type { Phase } from "./state";

export class EnvironmentSkaffold {
  /** The environment's Skaffold session (skaffold/session.ts), created on first use; `destroy` drops it. */
  private store?: SkaffoldSession;
  /** Events calls waiting for the next Skaffold log entry (long poll). */
  private readonly waiters = new Set<() => void>();

  constructor(private readonly host: EnvironmentHost) {}

  /** Forgets the session: `destroy` deleted its tables. */
  reset(): void {
    this.store = undefined;
  }

  private session(): SkaffoldSession {
    // requireIdentity opens the storage, which migrates it: the session's tables exist.
    this.host.requireIdentity();
    return (this.store ??= new SkaffoldSession(this.host.ctx.storage));
  }

  private wake(): void {
    for (const wake of this.waiters) wake();
  }

  /** GetState. */
  state(): State {
    return this.session().state();
  }

  /**
   * Events: the Skaffold log entries after `after`, oldest first. With `waitMs`, waits up to
   * that long for one when there are none yet: a long poll, which the Worker calls in a loop
   * per subscriber, so a slow subscriber holds up no one else.
   */
  async events(after: number, waitMs = 0): Promise<SkaffoldLogRow[]> {
    const rows = this.session().after(after);
    if (rows.length > 0 || !waitMs) return rows;
    await new Promise<void>((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.waiters.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, waitMs);
      this.waiters.add(wake);
    });
    return this.session().after(after);
  }

  /** Handle: folds a proto.Event into the State and logs it. */
  handle(event: Event): void {
    this.session().handle(event);
    this.wake();
  }

  /**
   * Execute (a proto.Intent; none is a no-op). State changes only once a runner has the
   * intent; with none connected the intent waits for one, and State says so
   * (skaffold/session.ts `pend`).
   */
  execute(request: Intent | undefined): void {
    const session = this.session();
    const intent = session.intentOf(request);
    if (!intent) return;
    if (this.host.toRunner({ type: "skaffold-intent", intent, auto: session.autoTriggers() })) session.delivered(intent);
    else session.pend(intent, `no runner is connected to environment ${this.host.requireIdentity().environmentId}; it is sent when one connects`);
  }

  /**
   * AutoBuild, AutoSync, AutoDeploy: already_exists when `enabled` is the trigger's value
   * already. A trigger turned on resets its phase only if a runner is there to run it.
   */
  autoTrigger(phase: Phase, enabled: boolean): void {
    const session = this.session();
    if (this.host.toRunner({ type: "skaffold-intent", auto: session.setAutoTrigger(phase, enabled) }) && enabled) session.triggered(phase);
  }

  /**
   * After hello. Level-triggered like the rest: the runner learns the auto triggers it may
   * have missed, and gets the intent that waited for it.
   */
  onRunnerHello(): void {
    const session = this.session();
    const intent = session.pending();
    const sent = this.host.toRunner({ type: "skaffold-intent", auto: session.autoTriggers(), ...(intent && { intent }) });
    if (sent && intent) session.delivered(intent);
  }

  /** A rollout here moved: its Skaffold deploy and status-check events. They never fail the rollout's own work. */
  onRollout(summary: RolloutSummary): void {
    try {
      if (this.host.identity() && this.session().onRollout(summary) > 0) this.wake();
    } catch (err) {
      console.error(`Skaffold events of rollout ${rolloutName(summary.projectId, summary.capsuleId, summary.rolloutId)} were not logged`, err);
    }
  }
}
