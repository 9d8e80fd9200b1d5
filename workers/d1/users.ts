/** Users in D1: lookups by id and by identifier, with their group ids in the same query. */
import type { Env } from "../env";
import type { Row } from "./row";
import type { users } from "./schema";

/** A user's columns plus, from `selectUsers`, the JSON array of its group ids (sorted). */
export type UserRow = Row<typeof users> & { group_ids: string };

/** One of the three ways to name a user, already validated and normalized. */
export type Identifier = { kind: "email" | "username" | "phone_number"; value: string };

/** Every user column plus its group ids, so one query answers what the API shows of a user. */
export const selectUsers = (rest: string) => `SELECT u.*, (SELECT json_group_array(group_id) FROM
  (SELECT group_id FROM group_members WHERE member_id = u.id ORDER BY group_id)) AS group_ids FROM users u ${rest}`;

export const groupsOf = (row: { group_ids: string }): string[] => JSON.parse(row.group_ids) as string[];

export const getUser = (env: Env, id: string) => env.DB.prepare(selectUsers("WHERE id = ?")).bind(id).first<UserRow>();

export const findUser = (env: Env, id: Identifier) =>
  env.DB.prepare(selectUsers(`WHERE ${id.kind} = ?`)).bind(id.value).first<UserRow>();

/** Printable name: the first identifier a person would recognise. */
export const printableName = (u: Pick<UserRow, "email" | "username" | "phone_number" | "first_name" | "last_name">) =>
  [u.first_name, u.last_name].filter(Boolean).join(" ") || u.email || u.username || u.phone_number || "";
