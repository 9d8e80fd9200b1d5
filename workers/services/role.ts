/** api.v1.role.Service: roles, their permissions, and who holds them. */
import { Service } from "../../proto/gen/api/v1/role/service_pb";
import { scoped } from "../auth/scopes";
import { notYetImplemented } from "./registry";

const role = scoped<{ roleId?: string }>("role", "roleId");
const anyRole = scoped("role");

export const roles = notYetImplemented(Service, {
  create: { action: "role:edit", scope: anyRole },
  delete: { action: "role:edit", scope: role },
  list: { action: "role:view", scope: anyRole },
  update: { action: "role:edit", scope: role },
  get: { action: "role:view", scope: role },
  assign: { action: "role:assign", scope: role },
  revoke: { action: "role:retract", scope: role },
});
