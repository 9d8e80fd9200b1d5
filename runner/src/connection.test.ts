import { describe, expect, it } from "vitest";
import { backoff } from "./connection";

describe("reconnect backoff", () => {
  it("doubles up to the cap, with jitter in the upper half", () => {
    expect([0, 1, 2, 3].map((n) => backoff(n, 500, 30_000, () => 1))).toEqual([500, 1000, 2000, 4000]);
    expect(backoff(30, 500, 30_000, () => 1)).toBe(30_000);
    expect(backoff(3, 500, 30_000, () => 0)).toBe(2000);
  });
});
