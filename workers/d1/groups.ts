/** `groups`: a group's own row; its members are group-members.ts, its roles role-assignments.ts. */
import type { pageOf } from "../core/pagination";
import type { Env } from "../env";
import { adminGuard } from "./admin-guard";
import { count, query, readBatch, total } from "./batch";
import { deleteMembersOf, listMembershipsPage, membershipsCount, renameGroupMemberships } from "./group-members";
import { deleteAssignmentsOf, renameGroupAssignments } from "./role-assignments";
import type { Columns } from "./row";
import type { groups } from "./schema";
import { selectServiceAccounts, type ServiceAccountRow } from "./service-accounts";
import { selectUsers, type UserRow } from "./users";

/** A group with its member count, as `selectGroups` reads it. */
export type GroupRow = Columns<typeof groups, "id" | "metadata" | "created_at" | "updated_at"> & { num_members: number };

/** Groups with their member counts; `rest` is the WHERE/ORDER/LIMIT part. */
export const selectGroups = (rest: string) =>
  `SELECT g.id, g.metadata, g.created_at, g.updated_at,
     (SELECT COUNT(*) FROM group_members m WHERE m.group_id = g.id) AS num_members FROM groups g ${rest}`;

export const getGroup = (env: Env, id: string) => env.DB.prepare(selectGroups("WHERE g.id = ?")).bind(id).first<GroupRow>();

/** Creates the group; false when one with its id exists. */
export async function insertGroup(env: Env, g: Columns<typeof groups, "id" | "metadata" | "created_by">, now: number): Promise<boolean> {
  const res = await env.DB.prepare(
    "INSERT INTO groups (id, metadata, created_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
  )
    .bind(g.id, g.metadata, g.created_by, now, now)
    .run();
  return res.meta.changes !== 0;
}

/** Deletes the group in one transaction with its memberships and role assignments, unless that leaves no admin. */
export async function deleteGroup(env: Env, id: string): Promise<void> {
  await env.DB.batch([
    deleteAssignmentsOf(env, { type: "group", id }),
    deleteMembersOf(env, id),
    env.DB.prepare("DELETE FROM groups WHERE id = ?").bind(id),
    adminGuard(env),
  ]);
}

/** Writes the group's id and metadata; a rename carries the members and role assignments along in the same transaction. */
export async function updateGroup(env: Env, currentId: string, next: Columns<typeof groups, "id" | "metadata">, now: number): Promise<void> {
  const renamed = next.id !== currentId;
  await env.DB.batch([
    env.DB.prepare("UPDATE groups SET id = ?, metadata = ?, updated_at = ? WHERE id = ?").bind(next.id, next.metadata, now, currentId),
    ...(renamed ? [renameGroupMemberships(env, currentId, next.id), renameGroupAssignments(env, currentId, next.id)] : []),
  ]);
}

/** A page of the groups whose id matches the LIKE pattern `search`, and how many match in all. */
export async function listGroupsPage(env: Env, search: string, page: ReturnType<typeof pageOf>) {
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
  return { rows, total: total(n) };
}

/** A page of the groups `memberId` is in, and how many there are in all. */
export async function listGroupsOfMember(env: Env, memberId: string, page: ReturnType<typeof pageOf>) {
  const [rows, n] = await readBatch(
    env.DB,
    query<GroupRow>(
      env.DB.prepare(
        selectGroups(`WHERE g.id IN (SELECT group_id FROM group_members WHERE member_id = ?) ORDER BY g.id ${page.descending ? "DESC" : "ASC"} LIMIT ? OFFSET ?`),
      ).bind(memberId, page.limit, page.offset),
    ),
    membershipsCount(env, memberId),
  );
  return { rows, total: total(n) };
}

/** A page of the group's memberships, with the users and service accounts they name. */
export async function listGroupMembers(env: Env, groupId: string, page: ReturnType<typeof pageOf>) {
  const memberships = await listMembershipsPage(env, groupId, page);
  const ids = JSON.stringify(memberships.rows.map((m) => m.member_id));
  const [users, accounts] = await readBatch(
    env.DB,
    query<UserRow>(env.DB.prepare(selectUsers("WHERE u.id IN (SELECT value FROM json_each(?))")).bind(ids)),
    query<ServiceAccountRow>(env.DB.prepare(selectServiceAccounts("WHERE s.id IN (SELECT value FROM json_each(?))")).bind(ids)),
  );
  return { ...memberships, users, accounts };
}
