import { describe, expect, it } from "vitest";
import { parseFrame } from "./frames";

describe("parseFrame", () => {
  const event = { seq: 3, type: "rollout.created", time: "2026-12-02T00:00:00.000Z", data: { rolloutId: 1 } };

  it("reads one event or a batch", () => {
    expect(parseFrame(JSON.stringify(event))).toEqual([event]);
    expect(parseFrame(JSON.stringify([event, { ...event, seq: 4 }])).map((e) => e.seq)).toEqual([3, 4]);
  });

  it("drops what is not an event", () => {
    expect(parseFrame("pong")).toEqual([]);
    expect(parseFrame(JSON.stringify({ seq: "3", type: "x", time: "t", data: {} }))).toEqual([]);
    expect(parseFrame(JSON.stringify([event, { type: "no seq" }]))).toEqual([event]);
  });
});
