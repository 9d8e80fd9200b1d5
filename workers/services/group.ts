/** api.v1.group.Service: named sets of users and service accounts that roles are given to. */
import { Service } from "../../proto/gen/api/v1/group/service_pb";
import { scoped } from "../auth/scopes";
import { notYetImplemented } from "./registry";

const group = scoped<{ groupId?: string }>("group", "groupId");
const anyGroup = scoped("group");

export const groups = notYetImplemented(Service, {
  create: { action: "group:edit", scope: anyGroup },
  delete: { action: "group:edit", scope: group },
  list: { action: "group:view", scope: anyGroup },
  update: { action: "group:edit", scope: group },
  get: { action: "group:view", scope: group },
  addMember: { action: "group:edit", scope: group },
  removeMember: { action: "group:edit", scope: group },
  listMembers: { action: "group:view", scope: group },
  listGroupsForMember: { action: "group:view", scope: anyGroup },
});
