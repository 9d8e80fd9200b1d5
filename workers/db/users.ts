/** Users in D1: lookups by id and by identifier, and their group memberships. */
import type { Env } from "../env";

export interface UserRow {
  id: string;
  email: string | null;
  username: string | null;
  phone_number: string | null;
  password_hash: string | null;
  first_name: string;
  last_name: string;
  email_verified: number;
  phone_verified: number;
  register_method: "signup" | "system";
  register_login_type: number;
  created_by: string;
  metadata: string;
  created_at: number;
  updated_at: number;
  new_sessions_since: number;
}

/** One of the three ways to name a user, already validated and normalized. */
export type Identifier = { kind: "email" | "username" | "phone_number"; value: string };

export const getUser = (env: Env, id: string) =>
  env.DB.prepare("SELECT * FROM users WHERE id = ?").bind(id).first<UserRow>();

export const findUser = (env: Env, id: Identifier) =>
  env.DB.prepare(`SELECT * FROM users WHERE ${id.kind} = ?`).bind(id.value).first<UserRow>();

/** Group ids per member id, for a page of users or service accounts, in one query. */
export async function groupIdsOf(env: Env, memberIds: string[]): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>(memberIds.map((id) => [id, []]));
  if (memberIds.length === 0) return out;
  const { results } = await env.DB.prepare(
    `SELECT member_id, group_id FROM group_members WHERE member_id IN (SELECT value FROM json_each(?)) ORDER BY group_id`,
  )
    .bind(JSON.stringify(memberIds))
    .all<{ member_id: string; group_id: string }>();
  for (const r of results) out.get(r.member_id)?.push(r.group_id);
  return out;
}

/** Printable name: the first identifier a person would recognise. */
export const printableName = (u: Pick<UserRow, "email" | "username" | "phone_number" | "first_name" | "last_name">) =>
  [u.first_name, u.last_name].filter(Boolean).join(" ") || u.email || u.username || u.phone_number || "";
