/**
 * Horizontal scale on CPU from the runner's own samples, the rule of Kubernetes' HPA:
 * desired = ceil(current × average utilization / target), within min and max. Scaling down
 * waits until the lower count was asked for several samples in a row, so one quiet sample
 * does not remove a replica that a busy one would bring back.
 */
import type { RolloutConfig } from "../../../proto/gen/api/v1/capsule/rollout_pb";

/** Samples in a row that must ask for fewer replicas before the count goes down. */
const SCALE_DOWN_SAMPLES = 3;

export interface Autoscaler {
  replicas(): number;
  /** One CPU utilization sample (percent) per running replica; true when the count changed. */
  sample(utilization: number[]): boolean;
}

/** The autoscaler of a rollout, or null when it has no horizontal scale on CPU. */
export function createAutoscaler(config: RolloutConfig): Autoscaler | null {
  const hs = config.horizontalScale;
  const target = hs?.cpuTarget?.averageUtilizationPercentage ?? 0;
  if (!hs || hs.maxReplicas === 0 || target === 0) return null;
  const min = Math.max(1, hs.minReplicas);
  const max = Math.max(min, hs.maxReplicas);
  let current = Math.min(max, Math.max(min, config.replicas));
  let lowerInARow = 0;
  return {
    replicas: () => current,
    sample(utilization) {
      if (utilization.length === 0) return false;
      const average = utilization.reduce((a, b) => a + b, 0) / utilization.length;
      // Within 10% of the target, as the HPA's tolerance: no change.
      if (Math.abs(average / target - 1) <= 0.1) {
        lowerInARow = 0;
        return false;
      }
      const desired = Math.min(max, Math.max(min, Math.ceil((utilization.length * average) / target)));
      if (desired > current) {
        current = desired;
        lowerInARow = 0;
        return true;
      }
      if (desired < current && ++lowerInARow >= SCALE_DOWN_SAMPLES) {
        current = desired;
        lowerInARow = 0;
        return true;
      }
      if (desired >= current) lowerInARow = 0;
      return false;
    },
  };
}
