/**
 * Scopes of requests, for access rules: Rig scopes a permission by resource
 * (`type/id`), project and environment, and requests name them in their fields.
 */
import type { Scope } from "./principal";

/** A request message: any fields, of which these name the scope (the index signature lets every message through). */
type Named = { readonly [field: string]: unknown; projectId?: string; environmentId?: string };

/**
 * The scope of a request about a `type` resource whose id is in the field `idField`.
 * An empty or missing id, project or environment means all of them (see `Scope`).
 */
export const scoped =
  <M extends object = Named>(type: string, idField?: keyof M) =>
  (m: M & Named): Scope => {
    const id = idField ? m[idField] : undefined;
    return {
      resource: `${type}/${typeof id === "string" && id ? id : "*"}`,
      project: m.projectId || undefined,
      environment: m.environmentId || undefined,
    };
  };

/** The scope of a request about one capsule (`capsuleId`, in its project and environment). */
export const capsuleScope = scoped<{ capsuleId?: string }>("capsule", "capsuleId");
