/** Service accounts in D1, with their group ids in the same query. */
import type { Env } from "../env";

export interface ServiceAccountRow {
  id: string;
  name: string;
  client_id: string;
  managed: number;
  /** model.Author as JSON. */
  created_by: string;
  created_at: number;
  /** JSON array of group ids, sorted. */
  group_ids: string;
}

export const selectServiceAccounts = (rest: string) => `SELECT s.id, s.name, s.client_id, s.managed, s.created_by, s.created_at,
  (SELECT json_group_array(group_id) FROM (SELECT group_id FROM group_members WHERE member_id = s.id ORDER BY group_id)) AS group_ids
  FROM service_accounts s ${rest}`;

export const getServiceAccount = (env: Env, id: string) =>
  env.DB.prepare(selectServiceAccounts("WHERE s.id = ?")).bind(id).first<ServiceAccountRow>();

export const listServiceAccounts = async (env: Env) =>
  (await env.DB.prepare(selectServiceAccounts("ORDER BY s.name")).all<ServiceAccountRow>()).results;
