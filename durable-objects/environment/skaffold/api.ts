/** What the Worker calls for proto.SkaffoldService on an environment's object: `EnvironmentDO.skaffold()`. */
import { RpcTarget } from "cloudflare:workers";
import type { Event, Intent, State } from "../../../proto/gen/skaffold/v1/skaffold_pb";
import { attempt, type Outcome } from "../../../workers/core/outcome";
import type { SkaffoldLogRow } from "./session";
import type { EnvironmentSkaffold } from "./skaffold";
import type { Phase } from "./state";

/** Messages cross as they are (structured clone); refusals as Outcomes, since a thrown ConnectError would lose its code. */
export class SkaffoldApi extends RpcTarget {
  constructor(private readonly skaffold: EnvironmentSkaffold) {
    super();
  }

  /** GetState. */
  state(): Promise<Outcome<State>> {
    return attempt(() => this.skaffold.state());
  }

  /** Events: the log entries after `after`, oldest first; with `waitMs`, a long poll. */
  events(after: number, waitMs = 0): Promise<Outcome<SkaffoldLogRow[]>> {
    return attempt(() => this.skaffold.events(after, waitMs));
  }

  /** Handle: folds a proto.Event into the State and logs it. */
  handle(event: Event): Promise<Outcome<void>> {
    return attempt(() => this.skaffold.handle(event));
  }

  /** Execute: hands a proto.Intent to the runner, or keeps it until one connects. */
  execute(intent: Intent | undefined): Promise<Outcome<void>> {
    return attempt(() => this.skaffold.execute(intent));
  }

  /** AutoBuild, AutoSync, AutoDeploy: already_exists when `enabled` is the trigger's value already. */
  autoTrigger(phase: Phase, enabled: boolean): Promise<Outcome<void>> {
    return attempt(() => this.skaffold.autoTrigger(phase, enabled));
  }
}
