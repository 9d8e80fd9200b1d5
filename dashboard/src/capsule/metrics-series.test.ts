import { describe, expect, it } from "vitest";
import { alignSeries } from "./metrics-series";

describe("alignSeries", () => {
  it("aligns instances on shared times, sums them, and leaves gaps as null", () => {
    const s = alignSeries([
      { instanceId: "web-1", timeMs: 2_000, value: 5 },
      { instanceId: "web-0", timeMs: 1_000, value: 1 },
      { instanceId: "web-0", timeMs: 2_400, value: 2 },
    ]);
    expect(s.times).toEqual([1, 2]);
    expect(s.sum).toEqual([1, 7]);
    expect(s.instances).toEqual([
      { instanceId: "web-0", values: [1, 2] },
      { instanceId: "web-1", values: [null, 5] },
    ]);
  });

  it("is empty without samples", () => {
    expect(alignSeries([])).toEqual({ times: [], sum: [], instances: [] });
  });
});
