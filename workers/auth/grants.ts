/**
 * No escalation: a caller may hand out (assign a role, add a member to a group that holds
 * roles, put a permission into a role) only permissions it holds itself. `role:assign`,
 * `group:edit` and `role:edit` say who may grant at all; this says how much.
 */
import { permissionDenied } from "../core/errors";
import { covers, type Permission, type Principal } from "./principal";

const where = (p: Permission) =>
  `resource ${p.scope?.resource || "*"}, project ${p.scope?.project || "*"}, environment ${p.scope?.environment || "*"}`;

/** Refuses unless `granter` holds every one of `permissions`; `what` names what would grant them ("role admin"). */
export function requireGrantable(granter: Principal, permissions: readonly Permission[], what: string): void {
  const beyond = permissions.find((p) => !covers(granter.permissions, p));
  if (beyond) {
    throw permissionDenied(`${what} grants ${beyond.action} (${where(beyond)}), which this ${granter.subjectType.replace("_", " ")} does not hold: only a holder may grant it`);
  }
}
