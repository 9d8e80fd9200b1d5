/** api.v1.group.Service: named sets of users and service accounts that roles are given to. */
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Service } from "../../proto/gen/api/v1/group/service_pb";
import type { MemberID, Update } from "../../proto/gen/api/v1/group/group_pb";
import { requireGrantable } from "../auth/grants";
import type { Permission } from "../auth/principal";
import { scoped } from "../auth/scopes";
import { exists, requireExisting } from "../d1/exists";
import { deleteMembership, insertMemberships, type MemberType } from "../d1/group-members";
import {
  deleteGroup,
  getGroup,
  type GroupRow,
  insertGroup,
  listGroupMembers,
  listGroupsOfMember,
  listGroupsPage,
  updateGroup,
} from "../d1/groups";
import { metadataMap, updateMetadata } from "../d1/metadata";
import { permissionsOfGroup } from "../d1/role-assignments";
import type { Env } from "../env";
import { envOf, principalOf } from "./context";
import { alreadyExists, bounded, invalidArgument, notFound } from "../core/errors";
import { checkDnsLabel } from "../core/names";
import { pageOf, searchPattern } from "../core/pagination";
import { defineService } from "./registry";
import { authorOf, serviceAccountEntry, userEntry } from "./user-messages";

const group = scoped<{ groupId?: string }>("group", "groupId");
const anyGroup = scoped("group");

const groupMessage = (g: GroupRow) => ({
  groupId: g.id,
  numMembers: BigInt(g.num_members),
  metadata: metadataMap(g.metadata),
  createdAt: timestampFromMs(g.created_at),
  updatedAt: timestampFromMs(g.updated_at),
});

async function requireGroup(env: Env, id: string): Promise<GroupRow> {
  const g = await getGroup(env, id);
  if (!g) throw notFound(`group ${bounded(id)}`);
  return g;
}

/** The member as stored in group_members, after checking it exists. */
async function memberOf(env: Env, m: MemberID | undefined, field: string): Promise<{ type: MemberType; id: string }> {
  const k = m?.kind;
  if (!k?.case || !k.value) throw invalidArgument(field, "set user_id or service_account_id");
  const type = k.case === "userId" ? "user" : "service_account";
  await requireExisting(env, type, k.value);
  return { type, id: k.value };
}

/** Applies Updates to a group's id and metadata, validating each. */
function applyUpdates(updates: Update[], current: { id: string; metadata: string }) {
  const next = { ...current };
  for (const [i, u] of updates.entries()) {
    const f = u.field;
    if (f.case === "groupId") next.id = checkDnsLabel(`updates[${i}].group_id`, f.value);
    else if (f.case === "setMetadata" || f.case === "deleteMetadataKey") next.metadata = updateMetadata(next.metadata, f, `updates[${i}]`);
    else throw invalidArgument(`updates[${i}].field`, "set one change per update");
  }
  return next;
}

export const groups = defineService(
  Service,
  {
    create: { action: "group:edit", scope: anyGroup },
    delete: { action: "group:edit", scope: group },
    list: { action: "group:view", scope: anyGroup },
    update: { action: "group:edit", scope: group },
    get: { action: "group:view", scope: group },
    addMember: { action: "group:edit", scope: group },
    removeMember: { action: "group:edit", scope: group },
    listMembers: { action: "group:view", scope: group },
    listGroupsForMember: { action: "group:view", scope: anyGroup },
  },
  {
    async create(req, ctx) {
      const env = envOf(ctx);
      const g = applyUpdates(req.initializers, { id: "", metadata: "{}" });
      if (!g.id) throw invalidArgument("initializers", "set the group_id");
      const now = Date.now();
      const inserted = await insertGroup(env, { ...g, created_by: JSON.stringify(authorOf(principalOf(ctx))) }, now);
      if (!inserted) throw alreadyExists(`group ${bounded(g.id)}`);
      return { group: groupMessage(await requireGroup(env, g.id)) };
    },

    async delete(req, ctx) {
      const env = envOf(ctx);
      await requireGroup(env, req.groupId);
      // One transaction: no membership or role assignment outlives its group.
      await deleteGroup(env, req.groupId);
      return {};
    },

    async list(req, ctx) {
      const env = envOf(ctx);
      const page = pageOf(req.pagination);
      const search = searchPattern("search", req.search);
      const { rows, total } = await listGroupsPage(env, search, page);
      return { groups: rows.map(groupMessage), total };
    },

    async update(req, ctx) {
      const env = envOf(ctx);
      const current = await requireGroup(env, req.groupId);
      const next = applyUpdates(req.updates, current);
      const now = Date.now();
      const renamed = next.id !== current.id;
      if (renamed && (await exists(env, "group", next.id))) throw alreadyExists(`group ${bounded(next.id)}`);
      // A rename carries the members and role assignments along in the same transaction.
      await updateGroup(env, current.id, next, now);
      return {};
    },

    async get(req, ctx) {
      return { group: groupMessage(await requireGroup(envOf(ctx), req.groupId)) };
    },

    async addMember(req, ctx) {
      const env = envOf(ctx);
      await requireGroup(env, req.groupId);
      if (req.memberIds.length === 0) throw invalidArgument("member_ids", "name at least one member");
      const members = await Promise.all(req.memberIds.map((m, i) => memberOf(env, m, `member_ids[${i}]`)));
      // A member gets the group's roles: the caller may add one only if it holds them all.
      const roles = await permissionsOfGroup(env, req.groupId);
      requireGrantable(principalOf(ctx), roles.flatMap((r) => JSON.parse(r.permissions) as Permission[]), `group ${req.groupId} (through its roles)`);
      const now = Date.now();
      // Nothing inserted for a member: already one, or the group is gone (a Delete won the race).
      if (!(await insertMemberships(env, req.groupId, members, now))) await requireGroup(env, req.groupId);
      return {};
    },

    async removeMember(req, ctx) {
      const env = envOf(ctx);
      await requireGroup(env, req.groupId);
      const m = await memberOf(env, req.memberId, "member_id");
      if (!(await deleteMembership(env, req.groupId, m.id))) throw notFound(`${m.type.replace("_", " ")} ${bounded(m.id)} in group ${bounded(req.groupId)}`);
      return {};
    },

    async listMembers(req, ctx) {
      const env = envOf(ctx);
      await requireGroup(env, req.groupId);
      const page = pageOf(req.pagination);
      const { rows, users, accounts, total } = await listGroupMembers(env, req.groupId, page);
      const userById = new Map(users.map((u) => [u.id, u]));
      const accountById = new Map(accounts.map((s) => [s.id, s]));
      return {
        members: rows.map((m) => {
          const u = userById.get(m.member_id);
          const s = accountById.get(m.member_id);
          const entry = u
            ? { case: "user" as const, value: userEntry(u) }
            : s
              ? { case: "serviceAccount" as const, value: serviceAccountEntry(s) }
              : { case: undefined };
          return { entry, joinedAt: timestampFromMs(m.joined_at) };
        }),
        total,
      };
    },

    async listGroupsForMember(req, ctx) {
      const env = envOf(ctx);
      const m = await memberOf(env, req.memberId, "member_id");
      const page = pageOf(req.pagination);
      const { rows, total } = await listGroupsOfMember(env, m.id, page);
      return { groups: rows.map(groupMessage), total };
    },
  },
);
