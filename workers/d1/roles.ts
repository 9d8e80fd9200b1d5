/** `roles`: named sets of permissions; what holds them is role-assignments.ts. */
import type { pageOf } from "../core/pagination";
import type { Env } from "../env";
import { deleteAssignmentsOfRole } from "./role-assignments";
import type { Columns, Row } from "./row";
import type { roles } from "./schema";

export type RoleRow = Row<typeof roles>;

export const getRole = (env: Env, id: string) => env.DB.prepare("SELECT * FROM roles WHERE id = ?").bind(id).first<RoleRow>();

export const getRolePermissions = (env: Env, id: string) =>
  env.DB.prepare("SELECT permissions FROM roles WHERE id = ?").bind(id).first<Columns<typeof roles, "permissions">>();

/** Creates a role that is not predefined; false when one with its id exists. */
export async function insertRole(env: Env, role: Columns<typeof roles, "id" | "permissions">, now: number): Promise<boolean> {
  const res = await env.DB.prepare(
    "INSERT INTO roles (id, permissions, predefined, created_at, updated_at) VALUES (?, ?, 0, ?, ?) ON CONFLICT (id) DO NOTHING",
  )
    .bind(role.id, role.permissions, now, now)
    .run();
  return res.meta.changes !== 0;
}

/** Deletes the role and its assignments in one transaction, so nobody keeps a role that no longer exists. */
export async function deleteRole(env: Env, id: string): Promise<void> {
  await env.DB.batch([deleteAssignmentsOfRole(env, id), env.DB.prepare("DELETE FROM roles WHERE id = ?").bind(id)]);
}

export async function listRolesPage(env: Env, page: ReturnType<typeof pageOf>): Promise<RoleRow[]> {
  const { results } = await env.DB.prepare(`SELECT * FROM roles ORDER BY id ${page.descending ? "DESC" : "ASC"} LIMIT ? OFFSET ?`)
    .bind(page.limit, page.offset)
    .all<RoleRow>();
  return results;
}

/**
 * Writes `next` over the role as it was `read`, a compare-and-swap: false when a concurrent
 * Update or Delete got there first.
 */
export async function updateRoleIfUnchanged(
  env: Env,
  read: Columns<typeof roles, "id" | "permissions" | "metadata">,
  next: Columns<typeof roles, "permissions" | "metadata">,
  now: number,
): Promise<boolean> {
  const res = await env.DB.prepare("UPDATE roles SET permissions = ?, metadata = ?, updated_at = ? WHERE id = ? AND permissions = ? AND metadata = ?")
    .bind(next.permissions, next.metadata, now, read.id, read.permissions, read.metadata)
    .run();
  return res.meta.changes !== 0;
}
