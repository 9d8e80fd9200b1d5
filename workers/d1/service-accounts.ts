/** Service accounts in D1, with their group ids in the same query. */
import type { Env } from "../env";
import { adminGuard } from "./admin-guard";
import { deleteMembershipsOf, insertMembership } from "./group-members";
import { deleteAssignmentsOf } from "./role-assignments";
import type { Columns } from "./row";
import type { serviceAccounts } from "./schema";
import { revokeSessionsOfDeleted } from "./sessions";

/** What the API shows of a service account (never its secret's hash), plus the JSON array of its group ids (sorted). */
export type ServiceAccountRow = Columns<typeof serviceAccounts, "id" | "name" | "client_id" | "managed" | "created_by" | "created_at"> & {
  group_ids: string;
};

export const selectServiceAccounts = (rest: string) => `SELECT s.id, s.name, s.client_id, s.managed, s.created_by, s.created_at,
  (SELECT json_group_array(group_id) FROM (SELECT group_id FROM group_members WHERE member_id = s.id ORDER BY group_id)) AS group_ids
  FROM service_accounts s ${rest}`;

export const listServiceAccounts = async (env: Env) =>
  (await env.DB.prepare(selectServiceAccounts("ORDER BY s.name")).all<ServiceAccountRow>()).results;

/** The account a client id logs in as, with the hash its secret must match. */
export const findClientCredentials = (env: Env, clientId: string) =>
  env.DB.prepare("SELECT id, secret_hash FROM service_accounts WHERE client_id = ?")
    .bind(clientId)
    .first<Columns<typeof serviceAccounts, "id" | "secret_hash">>();

/** Creates an account that is not managed, and its membership of `initialGroupId` when given, in one batch. */
export async function insertServiceAccount(
  env: Env,
  a: Columns<typeof serviceAccounts, "id" | "name" | "client_id" | "secret_hash" | "created_by" | "created_at">,
  initialGroupId?: string,
): Promise<void> {
  await env.DB.batch([
    env.DB.prepare(
      "INSERT INTO service_accounts (id, name, client_id, secret_hash, managed, created_by, created_at) VALUES (?, ?, ?, ?, 0, ?, ?)",
    ).bind(a.id, a.name, a.client_id, a.secret_hash, a.created_by, a.created_at),
    ...(initialGroupId
      ? [insertMembership(env, { group_id: initialGroupId, member_id: a.id, member_type: "service_account", joined_at: a.created_at })]
      : []),
  ]);
}

/**
 * Deletes the account with its sessions, role assignments and memberships in one
 * transaction, unless that leaves no admin; false when there was no such account.
 */
export async function deleteServiceAccount(env: Env, id: string): Promise<boolean> {
  const [deleted] = await env.DB.batch([
    env.DB.prepare("DELETE FROM service_accounts WHERE id = ?").bind(id),
    revokeSessionsOfDeleted(env, id),
    deleteAssignmentsOf(env, { type: "service_account", id }),
    deleteMembershipsOf(env, id),
    adminGuard(env),
  ]);
  return deleted!.meta.changes !== 0;
}
