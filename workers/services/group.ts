/** api.v1.group.Service: named sets of users and service accounts that roles are given to. */
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Service } from "../../proto/gen/api/v1/group/service_pb";
import type { MemberID, Update } from "../../proto/gen/api/v1/group/group_pb";
import { adminGuard } from "../auth/admins";
import { requireGrantable } from "../auth/grants";
import type { Permission } from "../auth/principal";
import { scoped } from "../auth/scopes";
import { entityTable, requireExisting } from "../d1/exists";
import { metadataMap, updateMetadata } from "../d1/metadata";
import { selectServiceAccounts, type ServiceAccountRow } from "../d1/service-accounts";
import { selectUsers, type UserRow } from "../d1/users";
import type { Env } from "../env";
import { envOf, principalOf } from "./context";
import { alreadyExists, bounded, invalidArgument, notFound } from "../core/errors";
import { checkDnsLabel } from "../core/names";
import { pageOf, searchPattern } from "../core/pagination";
import { defineService } from "./registry";
import { authorOf, serviceAccountEntry, userEntry } from "./user-messages";
import { count, query, readBatch, total } from "../d1/batch";
import { type GroupRow, selectGroups } from "../d1/groups";

const group = scoped<{ groupId?: string }>("group", "groupId");
const anyGroup = scoped("group");

const groupMessage = (g: GroupRow) => ({
  groupId: g.id,
  numMembers: BigInt(g.num_members),
  metadata: metadataMap(g.metadata),
  createdAt: timestampFromMs(g.created_at),
  updatedAt: timestampFromMs(g.updated_at),
});

async function getGroup(env: Env, id: string): Promise<GroupRow> {
  const g = await env.DB.prepare(selectGroups("WHERE g.id = ?")).bind(id).first<GroupRow>();
  if (!g) throw notFound(`group ${bounded(id)}`);
  return g;
}

/** The member as stored in group_members, after checking it exists. */
async function memberOf(env: Env, m: MemberID | undefined, field: string): Promise<{ type: "user" | "service_account"; id: string }> {
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
      const res = await env.DB.prepare(
        "INSERT INTO groups (id, metadata, created_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
      )
        .bind(g.id, g.metadata, JSON.stringify(authorOf(principalOf(ctx))), now, now)
        .run();
      if (res.meta.changes === 0) throw alreadyExists(`group ${bounded(g.id)}`);
      return { group: groupMessage(await getGroup(env, g.id)) };
    },

    async delete(req, ctx) {
      const env = envOf(ctx);
      await getGroup(env, req.groupId);
      // One transaction: no membership or role assignment outlives its group.
      await env.DB.batch([
        env.DB.prepare("DELETE FROM role_assignments WHERE subject_type = 'group' AND subject_id = ?").bind(req.groupId),
        env.DB.prepare("DELETE FROM group_members WHERE group_id = ?").bind(req.groupId),
        env.DB.prepare("DELETE FROM groups WHERE id = ?").bind(req.groupId),
        adminGuard(env),
      ]);
      return {};
    },

    async list(req, ctx) {
      const env = envOf(ctx);
      const page = pageOf(req.pagination);
      const search = searchPattern("search", req.search);
      const [rows, n] = await readBatch(
        env.DB,
        query<GroupRow>(
          env.DB.prepare(selectGroups(`WHERE g.id LIKE ?1 ESCAPE '\\' ORDER BY g.id ${page.descending ? "DESC" : "ASC"} LIMIT ?2 OFFSET ?3`)).bind(
            search,
            page.limit,
            page.offset,
          ),
        ),
        count(env.DB.prepare("SELECT COUNT(*) AS n FROM groups WHERE id LIKE ?1 ESCAPE '\\'").bind(search)),
      );
      return { groups: rows.map(groupMessage), total: total(n) };
    },

    async update(req, ctx) {
      const env = envOf(ctx);
      const current = await getGroup(env, req.groupId);
      const next = applyUpdates(req.updates, current);
      const now = Date.now();
      const renamed = next.id !== current.id;
      if (renamed && (await env.DB.prepare("SELECT 1 AS one FROM groups WHERE id = ?").bind(next.id).first())) {
        throw alreadyExists(`group ${bounded(next.id)}`);
      }
      // A rename carries the members and role assignments along in the same transaction.
      await env.DB.batch([
        env.DB.prepare("UPDATE groups SET id = ?, metadata = ?, updated_at = ? WHERE id = ?").bind(next.id, next.metadata, now, current.id),
        ...(renamed
          ? [
              env.DB.prepare("UPDATE group_members SET group_id = ? WHERE group_id = ?").bind(next.id, current.id),
              env.DB.prepare("UPDATE role_assignments SET subject_id = ? WHERE subject_type = 'group' AND subject_id = ?").bind(next.id, current.id),
            ]
          : []),
      ]);
      return {};
    },

    async get(req, ctx) {
      return { group: groupMessage(await getGroup(envOf(ctx), req.groupId)) };
    },

    async addMember(req, ctx) {
      const env = envOf(ctx);
      await getGroup(env, req.groupId);
      if (req.memberIds.length === 0) throw invalidArgument("member_ids", "name at least one member");
      const members = await Promise.all(req.memberIds.map((m, i) => memberOf(env, m, `member_ids[${i}]`)));
      // A member gets the group's roles: the caller may add one only if it holds them all.
      const { results } = await env.DB.prepare(
        "SELECT r.permissions FROM role_assignments a JOIN roles r ON r.id = a.role_id WHERE a.subject_type = 'group' AND a.subject_id = ?",
      )
        .bind(req.groupId)
        .all<{ permissions: string }>();
      requireGrantable(principalOf(ctx), results.flatMap((r) => JSON.parse(r.permissions) as Permission[]), `group ${req.groupId} (through its roles)`);
      const now = Date.now();
      // Each insert requires the group and the member in the same statement, so a Delete of
      // either that commits first leaves no membership behind (nor one for a group created again later).
      const inserted = await env.DB.batch(
        members.map((m) =>
          env.DB.prepare(
            `INSERT OR IGNORE INTO group_members (group_id, member_id, member_type, joined_at)
             SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM groups WHERE id = ?1) AND EXISTS (SELECT 1 FROM ${entityTable(m.type)} WHERE id = ?2)`,
          ).bind(req.groupId, m.id, m.type, now),
        ),
      );
      // Nothing inserted for a member: already one, or the group is gone (a Delete won the race).
      if (inserted.some((r) => r.meta.changes === 0)) await getGroup(env, req.groupId);
      return {};
    },

    async removeMember(req, ctx) {
      const env = envOf(ctx);
      await getGroup(env, req.groupId);
      const m = await memberOf(env, req.memberId, "member_id");
      const [res] = await env.DB.batch([
        env.DB.prepare("DELETE FROM group_members WHERE group_id = ? AND member_id = ?").bind(req.groupId, m.id),
        adminGuard(env),
      ]);
      if (res!.meta.changes === 0) throw notFound(`${m.type.replace("_", " ")} ${bounded(m.id)} in group ${bounded(req.groupId)}`);
      return {};
    },

    async listMembers(req, ctx) {
      const env = envOf(ctx);
      await getGroup(env, req.groupId);
      const page = pageOf(req.pagination);
      const order = `ORDER BY joined_at ${page.descending ? "DESC" : "ASC"}, member_id`;
      const [page_, n] = await readBatch(
        env.DB,
        query<{ member_id: string; member_type: string; joined_at: number }>(
          env.DB.prepare(`SELECT member_id, member_type, joined_at FROM group_members WHERE group_id = ? ${order} LIMIT ? OFFSET ?`).bind(
            req.groupId,
            page.limit,
            page.offset,
          ),
        ),
        count(env.DB.prepare("SELECT COUNT(*) AS n FROM group_members WHERE group_id = ?").bind(req.groupId)),
      );
      const ids = JSON.stringify(page_.map((m) => m.member_id));
      const [users, accounts] = await readBatch(
        env.DB,
        query<UserRow>(env.DB.prepare(selectUsers("WHERE u.id IN (SELECT value FROM json_each(?))")).bind(ids)),
        query<ServiceAccountRow>(env.DB.prepare(selectServiceAccounts("WHERE s.id IN (SELECT value FROM json_each(?))")).bind(ids)),
      );
      const userById = new Map(users.map((u) => [u.id, u]));
      const accountById = new Map(accounts.map((s) => [s.id, s]));
      return {
        members: page_.map((m) => {
          const u = userById.get(m.member_id);
          const s = accountById.get(m.member_id);
          const entry = u
            ? { case: "user" as const, value: userEntry(u) }
            : s
              ? { case: "serviceAccount" as const, value: serviceAccountEntry(s) }
              : { case: undefined };
          return { entry, joinedAt: timestampFromMs(m.joined_at) };
        }),
        total: total(n),
      };
    },

    async listGroupsForMember(req, ctx) {
      const env = envOf(ctx);
      const m = await memberOf(env, req.memberId, "member_id");
      const page = pageOf(req.pagination);
      const [rows, n] = await readBatch(
        env.DB,
        query<GroupRow>(
          env.DB.prepare(
            selectGroups(`WHERE g.id IN (SELECT group_id FROM group_members WHERE member_id = ?) ORDER BY g.id ${page.descending ? "DESC" : "ASC"} LIMIT ? OFFSET ?`),
          ).bind(m.id, page.limit, page.offset),
        ),
        count(env.DB.prepare("SELECT COUNT(*) AS n FROM group_members WHERE member_id = ?").bind(m.id)),
      );
      return { groups: rows.map(groupMessage), total: total(n) };
    },
  },
);
