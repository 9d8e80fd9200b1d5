/** `role_assignments`: which roles each user, service account and group holds. */
import type { SubjectType } from "../core/tokens";
import type { Env } from "../env";
import { adminGuard } from "./admin-guard";
import { query } from "./batch";
import { type Entity, entityTable } from "./exists";
import type { Columns } from "./row";
import type { roles } from "./schema";

/** The kinds of entity a role is given to. */
export type Holder = Extract<Entity, "user" | "service_account" | "group">;

/** The permissions (each row a JSON array) of the roles a subject holds directly or through its groups. */
export const permissionsOfQuery = (env: Env, subjectType: SubjectType, subjectId: string) =>
  query<Columns<typeof roles, "permissions">>(
    env.DB.prepare(
      `SELECT r.permissions FROM role_assignments a JOIN roles r ON r.id = a.role_id
       WHERE (a.subject_type = ?1 AND a.subject_id = ?2)
          OR (a.subject_type = 'group' AND a.subject_id IN (SELECT group_id FROM group_members WHERE member_id = ?2))`,
    ).bind(subjectType, subjectId),
  );

/** The permissions (each row a JSON array) of the roles group `groupId` holds. */
export async function permissionsOfGroup(env: Env, groupId: string): Promise<Columns<typeof roles, "permissions">[]> {
  const { results } = await env.DB.prepare(
    "SELECT r.permissions FROM role_assignments a JOIN roles r ON r.id = a.role_id WHERE a.subject_type = 'group' AND a.subject_id = ?",
  )
    .bind(groupId)
    .all<Columns<typeof roles, "permissions">>();
  return results;
}

/** Gives the `admin` role to user `userId` if it is the only user: the first one to register. */
export const assignAdminToFirstUser = (env: Env, userId: string, now: number): D1PreparedStatement =>
  env.DB.prepare(
    `INSERT INTO role_assignments (role_id, subject_type, subject_id, created_at)
     SELECT 'admin', 'user', ?1, ?2 WHERE (SELECT COUNT(*) FROM users) = 1 AND EXISTS (SELECT 1 FROM users WHERE id = ?1)`,
  ).bind(userId, now);

/**
 * Assigns the role as it was read (`permissions`, what the granter was checked against), in
 * one statement that also requires the holder: false when the holder or the role with those
 * permissions is gone, or the assignment exists already.
 */
export async function insertRoleAssignment(
  env: Env,
  role: Columns<typeof roles, "id" | "permissions">,
  holder: { type: Holder; id: string },
  now: number,
): Promise<boolean> {
  const res = await env.DB.prepare(
    `INSERT OR IGNORE INTO role_assignments (role_id, subject_type, subject_id, created_at)
     SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM roles WHERE id = ?1 AND permissions = ?5)
       AND EXISTS (SELECT 1 FROM ${entityTable(holder.type)} WHERE id = ?3)`,
  )
    .bind(role.id, holder.type, holder.id, now, role.permissions)
    .run();
  return res.meta.changes === 1;
}

export async function hasRoleAssignment(env: Env, roleId: string, holder: { type: Holder; id: string }): Promise<boolean> {
  const row = await env.DB.prepare("SELECT 1 AS one FROM role_assignments WHERE role_id = ? AND subject_type = ? AND subject_id = ?")
    .bind(roleId, holder.type, holder.id)
    .first();
  return row !== null;
}

/** Takes role `roleId` from `holder` unless that leaves no admin; false when it was not assigned. */
export async function deleteRoleAssignment(env: Env, roleId: string, holder: { type: Holder; id: string }): Promise<boolean> {
  const [res] = await env.DB.batch([
    env.DB.prepare("DELETE FROM role_assignments WHERE role_id = ? AND subject_type = ? AND subject_id = ?").bind(roleId, holder.type, holder.id),
    adminGuard(env),
  ]);
  return res!.meta.changes !== 0;
}

export const deleteAssignmentsOfRole = (env: Env, roleId: string): D1PreparedStatement =>
  env.DB.prepare("DELETE FROM role_assignments WHERE role_id = ?").bind(roleId);

export const deleteAssignmentsOf = (env: Env, holder: { type: Holder; id: string }): D1PreparedStatement =>
  env.DB.prepare("DELETE FROM role_assignments WHERE subject_type = ? AND subject_id = ?").bind(holder.type, holder.id);

/** Moves group `from`'s assignments to its new id `to`. */
export const renameGroupAssignments = (env: Env, from: string, to: string): D1PreparedStatement =>
  env.DB.prepare("UPDATE role_assignments SET subject_id = ? WHERE subject_type = 'group' AND subject_id = ?").bind(to, from);
