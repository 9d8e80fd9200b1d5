/**
 * All the Worker may know of the Durable Objects (.dependency-cruiser.cjs enforces it): the
 * classes' types, for namespaces and stubs; the names objects are addressed by; and the types
 * their RPC methods take and return. Everything else under durable-objects/ is the objects' own.
 */
export type { AutomationCall, AutomationMethod, AutomationResult } from "./environment/automations/store";
export type { EnvironmentDO } from "./environment/environment";
export type { RolloutDO } from "./rollout/rollout";
export type { InstanceRow } from "./environment/instances/reports";
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
