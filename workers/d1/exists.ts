/** Existence checks of the entities requests name by id. */
import type { Env } from "../env";
import { bounded, notFound } from "../core/errors";

const tables = {
  user: "users",
  service_account: "service_accounts",
  group: "groups",
  project: "projects",
  environment: "environments",
} as const;

export type Entity = keyof typeof tables;

/** The table of an entity's rows. */
export const entityTable = (entity: Entity) => tables[entity];

/** Throws not_found naming the entity unless a row with `id` exists. */
export async function requireExisting(env: Env, entity: Entity, id: string): Promise<void> {
  const row = await env.DB.prepare(`SELECT 1 AS one FROM ${tables[entity]} WHERE id = ?`).bind(id).first();
  if (!row) throw notFound(`${entity.replace("_", " ")} ${bounded(id)}`);
}
