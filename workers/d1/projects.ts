/**
 * `projects`. A project's other rows go with it (cascades.ts).
 */
import type { Env } from "../env";
import { alreadyExists, bounded } from "../core/errors";
import { query, type Query } from "./batch";
import type { Columns, Row } from "./row";
import type { projects } from "./schema";

/** Columns a client may see: the key pair stays out of every read but PublicKey's. */
export type ProjectRow = Columns<typeof projects, "id" | "name" | "installation_id" | "created_at" | "updated_at">;
const COLUMNS = "id, name, installation_id, created_at, updated_at";

/** Those of `ids` that are projects. */
export const existingProjectsQuery = (env: Env, ids: string[]): Query<Columns<typeof projects, "id">> =>
  query(env.DB.prepare("SELECT id FROM projects WHERE id IN (SELECT value FROM json_each(?))").bind(JSON.stringify(ids)));

export async function existingProjects(env: Env, ids: string[]): Promise<Set<string>> {
  const q = existingProjectsQuery(env, ids);
  return new Set(q.rows(await q.statement.all()).map((r) => r.id));
}


/** Inserts a project; already_exists if another request created it first. */
export async function insertProject(env: Env, p: Row<typeof projects>): Promise<void> {
  await env.DB.prepare(
    "INSERT INTO projects (id, name, installation_id, public_key, private_key, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
  )
    .bind(p.id, p.name, p.installation_id, p.public_key, p.private_key, p.created_at, p.updated_at)
    .run()
    .catch((err: unknown) => {
      if (String(err).includes("UNIQUE constraint failed: projects.id")) throw alreadyExists(`project ${bounded(p.id)}`);
      throw err;
    });
}

/** Deletes project `id` unless it has capsules. */
export const deleteProjectRow = (env: Env, id: string) =>
  env.DB.prepare("DELETE FROM projects WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM capsules WHERE project_id = ?1)").bind(id);

export const getProject = (env: Env, id: string) => env.DB.prepare(`SELECT ${COLUMNS} FROM projects WHERE id = ?`).bind(id).first<ProjectRow>();

/** Every project, oldest first (or newest, `descending`); installations hold few projects. */
export async function listProjects(env: Env, descending: boolean): Promise<ProjectRow[]> {
  const rows = await env.DB.prepare(`SELECT ${COLUMNS} FROM projects ORDER BY created_at ${descending ? "DESC" : "ASC"}, id`).all<ProjectRow>();
  return rows.results;
}

/** Renames project `id`; false if there is none. */
export async function renameProject(env: Env, id: string, name: string, now: number): Promise<boolean> {
  const res = await env.DB.prepare("UPDATE projects SET name = ?, updated_at = ? WHERE id = ? RETURNING 1 AS one").bind(name, now, id).all();
  return res.results.length > 0;
}

export async function projectPublicKey(env: Env, id: string): Promise<string | null> {
  const row = await env.DB.prepare("SELECT public_key FROM projects WHERE id = ?").bind(id).first<Columns<typeof projects, "public_key">>();
  return row?.public_key ?? null;
}
