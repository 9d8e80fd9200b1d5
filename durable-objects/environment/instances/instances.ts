/** The capsules' instances, logs and metrics, as the runner reports them, and RestartInstance. */
import { bounded, notFound } from "../../../workers/core/errors";
import { capsuleKey, type EnvironmentHost, noRunner } from "../host";
import type { CapsuleRollouts } from "../rollouts/rollouts";
import type { RunnerMessage } from "../../../proto/frames/runner";
import type { InstanceRow, StoredLogLine, StoredSample } from "./reports";

/** An instance as the Worker gets it: with the image of the rollout it runs. */
export type InstanceWithImage = InstanceRow & { image_id: string };

export class CapsuleInstances {
  /** Logs calls waiting for the next lines (long poll). */
  private readonly logWaiters = new Set<() => void>();

  constructor(
    private readonly host: EnvironmentHost,
    private readonly rollouts: CapsuleRollouts,
  ) {}

  /** Instances with the image of the rollout each runs. */
  private withImages(projectId: string, capsuleId: string, rows: InstanceRow[]): InstanceWithImage[] {
    const images = new Map<number, string>();
    return rows.map((r) => {
      if (!images.has(r.rollout_id)) images.set(r.rollout_id, this.rollouts.rolloutConfig(projectId, capsuleId, r.rollout_id)?.imageId ?? "");
      return { ...r, image_id: images.get(r.rollout_id)! };
    });
  }

  /** The capsule's instances here, each with its rollout's image. */
  list(projectId: string, capsuleId: string, opts: { includeDeleted?: boolean; excludeExisting?: boolean }): InstanceWithImage[] {
    return this.withImages(projectId, capsuleId, this.host.open().reports.instances(projectId, capsuleId, opts));
  }

  /** One instance, or null. */
  get(projectId: string, capsuleId: string, instanceId: string): InstanceWithImage | null {
    const row = this.host.open().reports.instance(projectId, capsuleId, instanceId);
    return row ? this.withImages(projectId, capsuleId, [row])[0]! : null;
  }

  /** RestartInstance: relayed to the runner, which reports the restart in its next instances. */
  restart(projectId: string, capsuleId: string, instanceId: string): void {
    const i = this.host.open().reports.instance(projectId, capsuleId, instanceId);
    if (!i || i.deleted_at !== null) throw notFound(`instance ${bounded(instanceId)} of capsule ${bounded(capsuleId)}`);
    if (!this.host.toRunner({ type: "restart-instance", projectId, capsuleId, instanceId })) throw noRunner(this.host, "restart an instance");
  }

  /**
   * Log lines after `after`. With `waitMs`, waits up to that long for new lines when there
   * are none yet (a long poll: Logs with follow calls it in a loop).
   */
  async logs(projectId: string, capsuleId: string, q: { instanceId?: string; after: number; sinceMs?: number; waitMs?: number }): Promise<StoredLogLine[]> {
    const read = () => this.host.open().reports.logs(projectId, capsuleId, { instanceId: q.instanceId, after: q.after, sinceMs: q.sinceMs });
    const lines = read();
    if (lines.length > 0 || !q.waitMs) return lines;
    await new Promise<void>((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.logWaiters.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, q.waitMs);
      this.logWaiters.add(wake);
    });
    return read();
  }

  /** Metric samples; answers failed_precondition while no runner has ever reported here. */
  metrics(projectId: string, capsuleId: string, q: { instanceId?: string; sinceMs?: number }): StoredSample[] {
    this.requireReporter();
    return this.host.open().reports.metrics(projectId, capsuleId, q);
  }

  /** The latest value of each custom metric; failed_precondition while no runner has ever reported here. */
  customMetrics(projectId: string, capsuleId: string): { name: string; value: number; time: number }[] {
    this.requireReporter();
    return this.host.open().reports.customMetrics(projectId, capsuleId);
  }

  /** failed_precondition while no runner is connected and none has ever been. */
  private requireReporter(): void {
    if (!this.host.runner() && this.host.open().sql.exec("SELECT 1 FROM runner").toArray().length === 0) throw noRunner(this.host, "report metrics");
  }

  /** `instances`: the capsule's instances now, which also count for its rollout in progress. */
  onInstances(msg: Extract<RunnerMessage, { type: "instances" }>, now: number): Promise<void> {
    return this.host.serialize(capsuleKey(msg.projectId, msg.capsuleId), async () => {
      this.host.open().reports.setInstances(msg.projectId, msg.capsuleId, msg.instances, now);
      await this.rollouts.countFor(msg.projectId, msg.capsuleId);
    });
  }

  /** `log`: new lines, which wake the waiting Logs calls. */
  onLog(msg: Extract<RunnerMessage, { type: "log" }>, now: number): void {
    this.host.open().reports.appendLogs(msg.projectId, msg.capsuleId, msg.instanceId, msg.lines, now);
    for (const wake of this.logWaiters) wake();
  }

  /** `metrics`: new samples. */
  onMetrics(msg: Extract<RunnerMessage, { type: "metrics" }>, now: number): void {
    this.host.open().reports.addMetrics(msg.projectId, msg.capsuleId, msg.samples, now);
  }
}
