/**
 * Execution plans of tasks: pure functions over a dependency graph (an automation's id → the
 * ids it depends on). A task may depend on tasks and services; services depend on nothing.
 */

/** id → ids it depends on. Ids that are not keys (services) have no dependencies. */
export type DependencyGraph = ReadonlyMap<string, readonly string[]>;

const depsOf = (graph: DependencyGraph, id: string) => graph.get(id) ?? [];

/**
 * A dependency cycle, as the path that closes it (`[a, b, a]`: a depends on b, b on a), or
 * null when there is none. Searched from the keys in their order, so the answer is stable.
 */
export function findCycle(graph: DependencyGraph): string[] | null {
  const done = new Set<string>();
  const path: string[] = [];
  const onPath = new Set<string>();
  const visit = (id: string): string[] | null => {
    if (onPath.has(id)) return [...path.slice(path.indexOf(id)), id];
    if (done.has(id)) return null;
    path.push(id);
    onPath.add(id);
    for (const dep of depsOf(graph, id)) {
      const cycle = visit(dep);
      if (cycle) return cycle;
    }
    path.pop();
    onPath.delete(id);
    done.add(id);
    return null;
  };
  for (const id of graph.keys()) {
    const cycle = visit(id);
    if (cycle) return cycle;
  }
  return null;
}

/** Thrown by `planGroups` for a graph with a cycle; `cycle` is the path that closes it. */
export class CycleError extends Error {
  constructor(readonly cycle: string[]) {
    super(`dependency cycle: ${cycle.join(" -> ")}`);
  }
}

/**
 * The groups that run `root` after everything it depends on, directly or not. An item's
 * group is one past the latest group of its dependencies, so each group needs only earlier
 * ones and its items can run concurrently; `root` depends on all the others and so is alone
 * in the last group. Within a group, items keep the order in which they were first reached.
 */
export function planGroups(root: string, graph: DependencyGraph): string[][] {
  const level = new Map<string, number>();
  const order: string[] = [];
  const onPath = new Set<string>();
  const path: string[] = [];
  const visit = (id: string): number => {
    const known = level.get(id);
    if (known !== undefined) return known;
    if (onPath.has(id)) throw new CycleError([...path.slice(path.indexOf(id)), id]);
    onPath.add(id);
    path.push(id);
    let l = 0;
    for (const dep of depsOf(graph, id)) l = Math.max(l, visit(dep) + 1);
    path.pop();
    onPath.delete(id);
    level.set(id, l);
    order.push(id);
    return l;
  };
  const depth = visit(root);
  const groups: string[][] = Array.from({ length: depth + 1 }, () => []);
  for (const id of order) groups[level.get(id)!]!.push(id);
  return groups;
}
