/**
 * The labels on everything the runner creates on the Docker host. The runner finds its own
 * containers and networks only by these labels (never by name: Docker's name filters match
 * substrings), so it touches nothing else, and after a restart it adopts what they describe.
 */
import { createHash } from "node:crypto";
import type { CapsuleRef } from "../driver";

export const PREFIX = "dev.edgeplane.";

export const LABEL = {
  /** Marks a container or network as the runner's. */
  managed: `${PREFIX}managed`,
  environment: `${PREFIX}environment`,
  project: `${PREFIX}project`,
  capsule: `${PREFIX}capsule`,
  rollout: `${PREFIX}rollout`,
  instance: `${PREFIX}instance`,
  /** Which replica slot of its rollout an instance fills. */
  slot: `${PREFIX}slot`,
  /** JSON `{"<container port>": <host port>}`: the stable host port of each interface, kept across rollouts and runner restarts. */
  ports: `${PREFIX}ports`,
} as const;

/** The label filter for everything of an environment (optionally one capsule). */
export function filterFor(environmentId: string, ref?: CapsuleRef): { label: string[] } {
  const label = [`${LABEL.managed}=true`, `${LABEL.environment}=${environmentId}`];
  if (ref) label.push(`${LABEL.project}=${ref.projectId}`, `${LABEL.capsule}=${ref.capsuleId}`);
  return { label };
}

/** A short stable hash that keeps names of different environments and projects apart. */
export const shortHash = (...parts: string[]) => createHash("sha256").update(parts.join("\0")).digest("hex").slice(0, 6);

/** Docker names allow [a-zA-Z0-9][a-zA-Z0-9_.-]*. */
const safe = (s: string) => s.replace(/[^a-zA-Z0-9_.-]/g, "-");

/** The container name of an instance: readable, unique per environment, project and capsule. */
export const containerName = (environmentId: string, ref: CapsuleRef, instanceId: string) =>
  `ep-${shortHash(environmentId, ref.projectId, ref.capsuleId)}-${safe(instanceId)}`;

/** The bridge network of an environment. */
export const networkName = (environmentId: string) => `ep-${safe(environmentId)}-${shortHash(environmentId)}`;
