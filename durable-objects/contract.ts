/**
 * All the Worker may know of the Durable Objects (.dependency-cruiser.cjs enforces it): the
 * classes' types, for namespaces and stubs; the names objects are addressed by; and the types
 * their RPC methods take and return. Everything else under durable-objects/ is the objects' own.
 */
export type { AutomationsApi, Page, Written } from "./environment/automations/api";
export type { EnvironmentDO } from "./environment/environment";
export type { RolloutDO } from "./rollout/rollout";
export type { InstanceRow } from "./environment/instances/reports";
export type { SkaffoldLogRow } from "./environment/skaffold/session";
export type { Phase as SkaffoldPhase } from "./environment/skaffold/state";

/** Whoever made a change, as it crosses object RPC: model.Author's init shape, as plain data. */
export type Author = {
  identifier: string;
  printableName: string;
  account: { case: "userId" | "serviceAccountId"; value: string };
};

/** Which rollout an object is: it is named `rolloutName(...)` of these. */
export interface RolloutIdentity {
  projectId: string;
  capsuleId: string;
  rolloutId: number;
  environmentId: string;
}

/** The object's name for a rollout: ids are unique per project and capsule across environments. */
export const rolloutName = (projectId: string, capsuleId: string, rolloutId: number | bigint) => `${projectId}/${capsuleId}/${rolloutId}`;

/**
 * A concern's API of an object (`stub.dev()`), as the Disposable it is: workerd warns when a
 * stub it handed out is collected undisposed, and the types of a pipelined call leave its
 * disposer out. `using dev = held(stub.dev())`, then `await dev.get()`: one round trip, and
 * the stub is let go at the end of the scope.
 */
export function held<T extends object>(stub: T): T & Disposable {
  if (!isDisposable(stub)) throw new TypeError("not an RPC stub: only what an object's method returns over RPC can be held");
  return stub;
}

const isDisposable = (x: object): x is Disposable => Symbol.dispose in x && typeof x[Symbol.dispose] === "function";
