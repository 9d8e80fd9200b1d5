import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { nextRolloutId } from "./rollout-ids";

describe("rollout ids", () => {
  it("start at 1 and grow per capsule, across concurrent allocations", async () => {
    const ids = await Promise.all(Array.from({ length: 25 }, () => nextRolloutId(env, "shop", "web")));
    expect([...ids].sort((a, b) => Number(a - b))).toEqual(Array.from({ length: 25 }, (_, i) => BigInt(i + 1)));
    expect(await nextRolloutId(env, "shop", "web")).toBe(26n);
  });

  it("count each capsule of each project on its own", async () => {
    expect(await nextRolloutId(env, "shop", "api")).toBe(1n);
    expect(await nextRolloutId(env, "blog", "web")).toBe(1n);
    expect(await nextRolloutId(env, "shop", "api")).toBe(2n);
  });
});
