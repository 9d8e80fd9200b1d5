/** What the Worker calls for instances, logs and metrics (api.v1.capsule.Service) on an environment's object: `EnvironmentDO.instances()`. */
import { RpcTarget } from "cloudflare:workers";
import { attempt, type Outcome } from "../../../workers/core/outcome";
import type { CapsuleInstances, InstanceWithImage } from "./instances";
import type { StoredLogLine, StoredSample } from "./reports";

/** Refusals cross as Outcomes, since a thrown ConnectError would lose its code. */
export class InstancesApi extends RpcTarget {
  constructor(private readonly instances: CapsuleInstances) {
    super();
  }

  /** The capsule's instances here, each with its rollout's image. */
  list(projectId: string, capsuleId: string, opts: { includeDeleted?: boolean; excludeExisting?: boolean }): InstanceWithImage[] {
    return this.instances.list(projectId, capsuleId, opts);
  }

  /** One instance, or null. */
  get(projectId: string, capsuleId: string, instanceId: string): InstanceWithImage | null {
    return this.instances.get(projectId, capsuleId, instanceId);
  }

  /** RestartInstance: relayed to the runner, which reports the restart in its next instances. */
  restart(projectId: string, capsuleId: string, instanceId: string): Promise<Outcome<void>> {
    return attempt(() => this.instances.restart(projectId, capsuleId, instanceId));
  }

  /** Log lines after `after`; with `waitMs`, a long poll for new ones. */
  logs(projectId: string, capsuleId: string, q: { instanceId?: string; after: number; sinceMs?: number; waitMs?: number }): Promise<StoredLogLine[]> {
    return this.instances.logs(projectId, capsuleId, q);
  }

  /** Metric samples; failed_precondition while no runner has ever reported here. */
  metrics(projectId: string, capsuleId: string, q: { instanceId?: string; sinceMs?: number }): Promise<Outcome<StoredSample[]>> {
    return attempt(() => this.instances.metrics(projectId, capsuleId, q));
  }

  /** The latest value of each custom metric; failed_precondition while no runner has ever reported here. */
  customMetrics(projectId: string, capsuleId: string): Promise<Outcome<{ name: string; value: number; time: number }[]>> {
    return attempt(() => this.instances.customMetrics(projectId, capsuleId));
  }
}
