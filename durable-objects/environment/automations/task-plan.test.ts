import { describe, expect, it } from "vitest";
import { CycleError, findCycle, planGroups } from "./task-plan";

const graph = (edges: Record<string, string[]>) => new Map(Object.entries(edges));

describe("planGroups", () => {
  it("puts a task without dependencies alone in one group", () => {
    expect(planGroups("a", graph({ a: [] }))).toEqual([["a"]]);
  });

  it("layers a diamond: shared dependency first, the two in between together, the root last", () => {
    const g = graph({ deploy: ["test", "lint"], test: ["build"], lint: ["build"], build: [] });
    expect(planGroups("deploy", g)).toEqual([["build"], ["test", "lint"], ["deploy"]]);
  });

  it("places an item one past its latest dependency, not its earliest", () => {
    // c needs a (group 0) and b (group 1): it must wait for b.
    const g = graph({ c: ["a", "b"], b: ["a"], a: [] });
    expect(planGroups("c", g)).toEqual([["a"], ["b"], ["c"]]);
  });

  it("leaves out what the root does not depend on, and treats unknown ids (services) as leaves", () => {
    const g = graph({ run: ["db"], other: ["run"] });
    expect(planGroups("run", g)).toEqual([["db"], ["run"]]);
  });

  it("throws a CycleError naming the cycle", () => {
    const g = graph({ a: ["b"], b: ["c"], c: ["a"] });
    expect(() => planGroups("a", g)).toThrow(CycleError);
    try {
      planGroups("a", g);
    } catch (err) {
      expect((err as CycleError).cycle).toEqual(["a", "b", "c", "a"]);
    }
  });
});

describe("findCycle", () => {
  it("finds none in a DAG", () => {
    expect(findCycle(graph({ a: ["b", "c"], b: ["c"], c: [] }))).toBeNull();
  });

  it("returns the closing path of a cycle, also a self-dependency", () => {
    expect(findCycle(graph({ x: [], a: ["b"], b: ["a"] }))).toEqual(["a", "b", "a"]);
    expect(findCycle(graph({ a: ["a"] }))).toEqual(["a", "a"]);
  });

  it("reports only the cycle, not the path leading into it", () => {
    expect(findCycle(graph({ start: ["a"], a: ["b"], b: ["a"] }))).toEqual(["a", "b", "a"]);
  });
});
