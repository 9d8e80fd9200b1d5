/** Existence checks of the entities requests name by id. */
import type { Env } from "../env";
import { bounded, notFound } from "../core/errors";
import { query, type Query } from "./batch";

const tables = {
  user: "users",
  service_account: "service_accounts",
  group: "groups",
  project: "projects",
  environment: "environments",
  dev_environment: "dev_environments",
} as const;

export type Entity = keyof typeof tables;

/** The table of an entity's rows. */
export const entityTable = (entity: Entity) => tables[entity];

/** Whether a row with `id` exists, as a query for batches that check it with their own statements. */
export const existsQuery = (env: Env, entity: Entity, id: string): Query<{ one: number }> =>
  query(env.DB.prepare(`SELECT 1 AS one FROM ${tables[entity]} WHERE id = ?`).bind(id));

/** Whether a row with `id` exists. */
export const exists = async (env: Env, entity: Entity, id: string): Promise<boolean> => (await existsQuery(env, entity, id).statement.first()) !== null;

/** Throws not_found naming the entity unless a row with `id` exists. */
export async function requireExisting(env: Env, entity: Entity, id: string): Promise<void> {
  if (!(await exists(env, entity, id))) throw notFound(`${entity.replace("_", " ")} ${bounded(id)}`);
}
