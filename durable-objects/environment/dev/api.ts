/** What the Worker calls for gitpod.v1.EnvironmentService on an environment's object: `EnvironmentDO.dev()`. */
import { RpcTarget } from "cloudflare:workers";
import type { Environment, EnvironmentMetadata, EnvironmentSpec, UpdateEnvironmentRequest } from "../../../proto/gen/gitpod/v1/environment_pb";
import { attempt, type Outcome } from "../../../workers/core/outcome";
import type { DevEnvironment } from "./dev";

/** Messages cross as they are (structured clone); refusals as Outcomes, since a thrown ConnectError would lose its code. */
export class DevApi extends RpcTarget {
  constructor(private readonly dev: DevEnvironment) {
    super();
  }

  /** CreateEnvironment, once the Worker has made the environment's Rig side (`initialize`). */
  create(metadata: EnvironmentMetadata, spec: EnvironmentSpec): Promise<Outcome<Environment>> {
    return attempt(() => this.dev.create(metadata, spec));
  }

  /** GetEnvironment. */
  get(): Promise<Outcome<Environment>> {
    return attempt(() => this.dev.get());
  }

  /** StartEnvironment: failed_precondition when the phase forbids it, as for every change. */
  start(): Promise<Outcome<void>> {
    return attempt(() => this.dev.change({ op: "start" }));
  }

  /** StopEnvironment. */
  stop(): Promise<Outcome<void>> {
    return attempt(() => this.dev.change({ op: "stop" }));
  }

  /** UnarchiveEnvironment. */
  unarchive(): Promise<Outcome<void>> {
    return attempt(() => this.dev.change({ op: "unarchive" }));
  }

  /** UpdateEnvironment, checked by the Worker. */
  update(request: UpdateEnvironmentRequest): Promise<Outcome<void>> {
    return attempt(() => this.dev.change({ op: "update", request }));
  }

  /** MarkEnvironmentActive: the signal's source and time (ms). */
  markActive(source: string, at: number): Promise<Outcome<void>> {
    return attempt(() => this.dev.change({ op: "mark-active", source, at }));
  }

  /** DeleteEnvironment: through the runner when it may hold a machine, at once without one or with `force`. */
  delete(force: boolean): Promise<Outcome<void>> {
    return attempt(() => this.dev.delete(force));
  }

  /** WatchEvents: a ticket for the environment's event stream and the last event so far, to follow from. */
  watchFrom(subject: string): Promise<Outcome<{ ticket: string; after: number }>> {
    return attempt(() => this.dev.watchFrom(subject));
  }
}
