import { describe, expect, it } from "vitest";
import { nanos } from "./logs";

describe("Docker log timestamps", () => {
  it("compare by their instant whatever the fraction's length", () => {
    const a = nanos("2026-12-02T04:00:00.1Z")!;
    const b = nanos("2026-12-02T04:00:00.100000001Z")!;
    expect(b - a).toBe(1n);
    expect(nanos("2026-12-02T04:00:01Z")! - a).toBe(900_000_000n);
    expect(nanos("not a time")).toBeNull();
  });
});
