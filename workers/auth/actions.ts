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

export const actions: readonly string[] = [
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
  ...deployKinds.map((k) => `capsule:deploy:${k}`),
  // edgeplane's own: what a runner's service account needs to serve an environment (docs/runner-protocol.md).
  "runner:connect",
];

/** An action a permission may name: a known action, `*`, or a prefix wildcard such as `capsule:*`. */
export function isGrantableAction(action: string): boolean {
  if (action === "*" || actions.includes(action)) return true;
  return action.endsWith(":*") && actions.some((a) => a.startsWith(action.slice(0, -1)));
}
