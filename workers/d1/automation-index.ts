/**
 * `automation_index`: which environment holds each automation (service, task, task execution),
 * for RPCs that name only an id and lists across environments. The Worker indexes ids before
 * the environment's object creates their items; the object indexes the executions its
 * triggers start, and unindexes services that finished deleting.
 */
import type { Env } from "../env";
import type { Columns } from "./row";
import type { automationIndex } from "./schema";

type EnvironmentOf = Columns<typeof automationIndex, "environment_id">;

/** What an indexed id names. */
export type AutomationKind = "service" | "task" | "execution";

/** Indexes `items` as living in `environmentId` (none: no statement). */
export function indexStatements(env: Env, environmentId: string, items: { id: string; kind: AutomationKind }[]): D1PreparedStatement[] {
  if (items.length === 0) return [];
  return [
    env.DB.prepare(
      `INSERT INTO automation_index (id, environment_id, kind, created_at)
       SELECT json_extract(value, '$.id'), ?1, json_extract(value, '$.kind'), ?2 FROM json_each(?3)`,
    ).bind(environmentId, Date.now(), JSON.stringify(items)),
  ];
}

/** Runs `indexStatements` on its own. */
export async function indexItems(env: Env, environmentId: string, items: { id: string; kind: AutomationKind }[]): Promise<void> {
  const statements = indexStatements(env, environmentId, items);
  if (statements.length) await env.DB.batch(statements);
}

/** Removes the rows of `ids`. */
export async function unindex(env: Env, ids: string[]): Promise<void> {
  if (ids.length === 0) return;
  await env.DB.prepare("DELETE FROM automation_index WHERE id IN (SELECT value FROM json_each(?))").bind(JSON.stringify(ids)).run();
}

/** The environment holding the `kind` item `id`, or null. */
export async function environmentOfItem(env: Env, id: string, kind: AutomationKind): Promise<string | null> {
  const row = await env.DB.prepare("SELECT environment_id FROM automation_index WHERE id = ? AND kind = ?").bind(id, kind).first<EnvironmentOf>();
  return row?.environment_id ?? null;
}

/** The environments holding `kind` items: those of `ids`, or with no ids, any. */
export async function environmentsWith(env: Env, kind: AutomationKind, ids: string[]): Promise<string[]> {
  const rows = ids.length
    ? await env.DB.prepare("SELECT DISTINCT environment_id FROM automation_index WHERE kind = ? AND id IN (SELECT value FROM json_each(?))")
        .bind(kind, JSON.stringify(ids))
        .all<EnvironmentOf>()
    : await env.DB.prepare("SELECT DISTINCT environment_id FROM automation_index WHERE kind = ?").bind(kind).all<EnvironmentOf>();
  return rows.results.map((r) => r.environment_id);
}

/** Unindexes every automation of environment `environmentId`. */
export const unindexEnvironment = (env: Env, environmentId: string) => env.DB.prepare("DELETE FROM automation_index WHERE environment_id = ?").bind(environmentId);
