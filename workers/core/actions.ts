/** Rig's action names: what a permission can grant. */

/** Kinds of change a deploy can carry; each has a sub-action `capsule:deploy:<kind>`. */
export const deployKinds = [
  "replica",
  "autoscale",
  "container",
  "configfiles",
  "network",
  "rollback",
  "image",
  "serviceaccount",
  "cronjob",
  "environmentvariables",
  "environmentsources",
  "annotations",
] as const;

/** `capsule:deploy:<kind>`: the sub-action a deploy needs for each kind of change it carries. */
export type DeployAction = `capsule:deploy:${(typeof deployKinds)[number]}`;

export const actions = [
  "settings:view",
  "settings:edit",
  "user:view",
  "user:edit",
  "group:view",
  "group:edit",
  "role:view",
  "role:edit",
  "role:assign",
  "role:retract",
  "serviceaccount:view",
  "serviceaccount:edit",
  "project:view",
  "project:edit",
  "clusterconfig:view",
  "environment:view",
  "environment:edit",
  "environment:edit:ephemeral",
  "image:view",
  "image:add",
  "image:delete",
  "capsule:view",
  "capsule:edit",
  "capsule:create",
  "capsule:delete",
  "capsule:execute",
  "capsule:restartinstance",
  "capsule:abortrollout",
  "capsule:stoprollout",
  "capsule:deploy",
  ...deployKinds.map((k): DeployAction => `capsule:deploy:${k}`),
  // edgeplane's own: what a runner's service account needs to serve an environment (docs/runner-protocol.md).
  "runner:connect",
] as const;

/** An action an RPC or handler checks: one of `actions` (a misspelt one does not compile). */
export type Action = (typeof actions)[number];

/** An action a permission may name: a known action, `*`, or a prefix wildcard such as `capsule:*`. */
export function isGrantableAction(action: string): boolean {
  if (action === "*" || (actions as readonly string[]).includes(action)) return true;
  return action.endsWith(":*") && actions.some((a) => a.startsWith(action.slice(0, -1)));
}
