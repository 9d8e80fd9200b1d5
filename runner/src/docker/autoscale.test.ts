import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { RolloutConfigSchema } from "../../../proto/gen/api/v1/capsule/rollout_pb";
import { createAutoscaler } from "./autoscale";

const config = (replicas: number, min: number, max: number, target: number) =>
  create(RolloutConfigSchema, { replicas, horizontalScale: { minReplicas: min, maxReplicas: max, cpuTarget: { averageUtilizationPercentage: target } } });

describe("horizontal scale on CPU", () => {
  it("is off without a CPU target or a maximum", () => {
    expect(createAutoscaler(create(RolloutConfigSchema, { replicas: 2 }))).toBeNull();
    expect(createAutoscaler(config(1, 1, 0, 50))).toBeNull();
  });

  it("scales up at once, down only after several low samples, within min and max", () => {
    const a = createAutoscaler(config(1, 1, 4, 50))!;
    expect(a.replicas()).toBe(1);
    expect(a.sample([150])).toBe(true);
    expect(a.replicas()).toBe(3);
    expect(a.sample([400, 400, 400])).toBe(true);
    expect(a.replicas()).toBe(4);
    // Within 10% of the target: nothing changes.
    expect(a.sample([52, 48, 50, 50])).toBe(false);
    expect(a.sample([5, 5, 5, 5])).toBe(false);
    expect(a.sample([5, 5, 5, 5])).toBe(false);
    expect(a.sample([5, 5, 5, 5])).toBe(true);
    expect(a.replicas()).toBe(1);
  });
});
