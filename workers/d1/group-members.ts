/** `group_members`: which users and service accounts each group has. */
import type { pageOf } from "../core/pagination";
import type { Env } from "../env";
import { adminGuard } from "./admin-guard";
import { count, query, readBatch, total } from "./batch";
import { entityTable } from "./exists";
import type { Columns, Row } from "./row";
import type { groupMembers } from "./schema";

export type MemberType = "user" | "service_account";

/** The membership of a member just created (its group checked beforehand), for the batch that creates it. */
export const insertMembership = (env: Env, m: Row<typeof groupMembers> & { member_type: MemberType }): D1PreparedStatement =>
  env.DB.prepare("INSERT INTO group_members (group_id, member_id, member_type, joined_at) VALUES (?, ?, ?, ?)").bind(
    m.group_id,
    m.member_id,
    m.member_type,
    m.joined_at,
  );

/**
 * Adds the members to the group. Each insert requires the group and the member in the same
 * statement, so a Delete of either that commits first leaves no membership behind (nor one for
 * a group created again later). False when some member was not inserted: it is one already,
 * or the group is gone.
 */
export async function insertMemberships(
  env: Env,
  groupId: string,
  members: { type: MemberType; id: string }[],
  now: number,
): Promise<boolean> {
  const inserted = await env.DB.batch(
    members.map((m) =>
      env.DB.prepare(
        `INSERT OR IGNORE INTO group_members (group_id, member_id, member_type, joined_at)
         SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM groups WHERE id = ?1) AND EXISTS (SELECT 1 FROM ${entityTable(m.type)} WHERE id = ?2)`,
      ).bind(groupId, m.id, m.type, now),
    ),
  );
  return inserted.every((r) => r.meta.changes !== 0);
}

/** Takes the member out of the group unless that leaves no admin; false when it was not in it. */
export async function deleteMembership(env: Env, groupId: string, memberId: string): Promise<boolean> {
  const [res] = await env.DB.batch([
    env.DB.prepare("DELETE FROM group_members WHERE group_id = ? AND member_id = ?").bind(groupId, memberId),
    adminGuard(env),
  ]);
  return res!.meta.changes !== 0;
}

export const deleteMembershipsOf = (env: Env, memberId: string): D1PreparedStatement =>
  env.DB.prepare("DELETE FROM group_members WHERE member_id = ?").bind(memberId);

export const deleteMembersOf = (env: Env, groupId: string): D1PreparedStatement =>
  env.DB.prepare("DELETE FROM group_members WHERE group_id = ?").bind(groupId);

/** Moves group `from`'s members to its new id `to`. */
export const renameGroupMemberships = (env: Env, from: string, to: string): D1PreparedStatement =>
  env.DB.prepare("UPDATE group_members SET group_id = ? WHERE group_id = ?").bind(to, from);

/** A page of the group's memberships, by joining time, and how many it has in all. */
export async function listMembershipsPage(env: Env, groupId: string, page: ReturnType<typeof pageOf>) {
  const order = `ORDER BY joined_at ${page.descending ? "DESC" : "ASC"}, member_id`;
  const [rows, n] = await readBatch(
    env.DB,
    query<Columns<typeof groupMembers, "member_id" | "member_type" | "joined_at">>(
      env.DB.prepare(`SELECT member_id, member_type, joined_at FROM group_members WHERE group_id = ? ${order} LIMIT ? OFFSET ?`).bind(
        groupId,
        page.limit,
        page.offset,
      ),
    ),
    count(env.DB.prepare("SELECT COUNT(*) AS n FROM group_members WHERE group_id = ?").bind(groupId)),
  );
  return { rows, total: total(n) };
}

/** How many groups `memberId` is in, for the total of ListGroupsForMember. */
export const membershipsCount = (env: Env, memberId: string) =>
  count(env.DB.prepare("SELECT COUNT(*) AS n FROM group_members WHERE member_id = ?").bind(memberId));
