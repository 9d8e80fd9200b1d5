/** The `environments` table group: an environment and the rows that hang off it (`environment_projects`). */
import type { Env } from "../env";
import { query, readBatch } from "./batch";
import { existingProjectsQuery } from "./projects";
import type { Columns } from "./row";
import type { environmentProjects, environments } from "./schema";
import { existsQuery } from "./exists";

/** Deletes environment `id`'s row (first in `deleteEnvironmentStatements`, so its changes tell whether it existed). */
export const deleteEnvironmentRow = (env: Env, id: string) => env.DB.prepare("DELETE FROM environments WHERE id = ?").bind(id);

/** Deletes the environment's links to projects. */
export const unlinkEnvironment = (env: Env, id: string) => env.DB.prepare("DELETE FROM environment_projects WHERE environment_id = ?").bind(id);

/** Deletes the links of project `projectId`, once its row is gone (in the same batch). */
export const unlinkDeletedProject = (env: Env, projectId: string) =>
  env.DB.prepare("DELETE FROM environment_projects WHERE project_id = ?1 AND NOT EXISTS (SELECT 1 FROM projects WHERE id = ?1)").bind(projectId);

/** An environment with, from `environment_projects`, the JSON array of its project ids (sorted). */
export type EnvironmentRow = Columns<typeof environments, "id" | "cluster_id" | "namespace_template" | "is_default" | "ephemeral" | "global"> & {
  projects: string;
};

/** Environments with their projects; the caller adds WHERE and ORDER BY on `e`. */
const SELECT_ENVIRONMENTS = `SELECT e.id, e.cluster_id, e.namespace_template, e.is_default, e.ephemeral, e.global,
  (SELECT json_group_array(project_id) FROM (SELECT project_id FROM environment_projects WHERE environment_id = e.id ORDER BY project_id)) AS projects
  FROM environments e`;

/** Whether the project and the environment exist, read together. */
export async function projectAndEnvironmentExist(env: Env, projectId: string, environmentId: string): Promise<[boolean, boolean]> {
  const [p, e] = await readBatch(env.DB, existsQuery(env, "project", projectId), existsQuery(env, "environment", environmentId));
  return [p.length > 0, e.length > 0];
}

/** The flags and projects of an environment that its Update messages change. */
export interface EnvironmentWrite {
  isDefault: boolean;
  global: boolean;
  /** Global because no client scoped it yet (see `globalByDefault` in d1/schema.ts). */
  globalByDefault: boolean;
  /** Projects to link, and to unlink. */
  added: Set<string>;
  removed: Set<string>;
}

/**
 * Statements writing `s` to environment `id`, for one batch. Each is guarded by the
 * environment's existence, so a concurrent Delete leaves no orphan rows behind.
 */
function writeStatements(env: Env, id: string, s: EnvironmentWrite, now: number): D1PreparedStatement[] {
  const exists = "EXISTS (SELECT 1 FROM environments WHERE id = ?1)";
  return [
    env.DB.prepare("UPDATE environments SET is_default = ?2, global = ?3, global_by_default = ?4, updated_at = ?5 WHERE id = ?1").bind(
      id,
      s.isDefault ? 1 : 0,
      s.global ? 1 : 0,
      s.globalByDefault ? 1 : 0,
      now,
    ),
    // At most one default environment: setting one clears the others in the same batch.
    ...(s.isDefault
      ? [env.DB.prepare(`UPDATE environments SET is_default = 0, updated_at = ?2 WHERE is_default = 1 AND id != ?1 AND ${exists}`).bind(id, now)]
      : []),
    ...[...s.added].map((p) =>
      env.DB.prepare(`INSERT OR IGNORE INTO environment_projects (environment_id, project_id) SELECT ?1, id FROM projects WHERE id = ?2 AND ${exists}`).bind(id, p),
    ),
    ...[...s.removed].map((p) => env.DB.prepare("DELETE FROM environment_projects WHERE environment_id = ? AND project_id = ?").bind(id, p)),
  ];
}

/** Inserts a new environment with its flags and projects, in one batch, created at `now`. */
export async function insertEnvironmentRows(
  env: Env,
  e: { id: string; clusterId: string; namespaceTemplate: string; ephemeral: boolean },
  s: EnvironmentWrite,
  now: number,
): Promise<void> {
  await env.DB.batch([
    env.DB.prepare(
      "INSERT INTO environments (id, cluster_id, namespace_template, is_default, ephemeral, global, created_at, updated_at) VALUES (?, ?, ?, 0, ?, 0, ?, ?)",
    ).bind(e.id, e.clusterId, e.namespaceTemplate, e.ephemeral ? 1 : 0, now, now),
    ...writeStatements(env, e.id, s, now),
  ]);
}

/** Undoes `insertEnvironmentRows` of the environment created at `createdAt`, and of no later one of the same id. */
export async function undoInsertEnvironmentRows(env: Env, id: string, createdAt: number): Promise<void> {
  await env.DB.batch([
    env.DB.prepare("DELETE FROM environment_projects WHERE environment_id = ?1 AND EXISTS (SELECT 1 FROM environments WHERE id = ?1 AND created_at = ?2)").bind(
      id,
      createdAt,
    ),
    env.DB.prepare("DELETE FROM environments WHERE id = ? AND created_at = ?").bind(id, createdAt),
  ]);
}

/** Writes an existing environment's flags and projects in one batch; false if there is no such environment. */
export async function updateEnvironment(env: Env, id: string, s: EnvironmentWrite, now: number): Promise<boolean> {
  const [updated] = await env.DB.batch(writeStatements(env, id, s, now));
  return updated!.meta.changes > 0;
}

/** An environment's flags (undefined: no such environment) and its projects, read together. */
export async function environmentScope(env: Env, id: string) {
  const [flags, projects] = await readBatch(
    env.DB,
    query<Columns<typeof environments, "is_default" | "global" | "global_by_default">>(
      env.DB.prepare("SELECT is_default, global, global_by_default FROM environments WHERE id = ?").bind(id),
    ),
    query<Columns<typeof environmentProjects, "project_id">>(env.DB.prepare("SELECT project_id FROM environment_projects WHERE environment_id = ?").bind(id)),
  );
  return { flags: flags[0], projects: projects.map((r) => r.project_id) };
}

/**
 * Environments ordered by id, without the ephemeral ones if asked, and with a `projectId`
 * only those active in it; read with whether that project exists.
 */
export async function listEnvironments(
  env: Env,
  f: { excludeEphemeral: boolean; projectId: string; descending: boolean },
): Promise<{ rows: EnvironmentRow[]; projectFound: boolean }> {
  const [rows, project] = await readBatch(
    env.DB,
    query<EnvironmentRow>(
      env.DB.prepare(
        `${SELECT_ENVIRONMENTS}
           WHERE (?1 = 0 OR e.ephemeral = 0)
             AND (?2 = '' OR e.global = 1 OR EXISTS (SELECT 1 FROM environment_projects ep WHERE ep.environment_id = e.id AND ep.project_id = ?2))
           ORDER BY e.id ${f.descending ? "DESC" : "ASC"}`,
      ).bind(f.excludeEphemeral ? 1 : 0, f.projectId),
    ),
    existsQuery(env, "project", f.projectId),
  );
  return { rows, projectFound: project.length > 0 };
}

/** The namespace templates of those of `environmentIds` that exist, and those of `projectIds` that are projects, read together. */
export async function namespaceTemplates(env: Env, environmentIds: string[], projectIds: string[]) {
  const [envRows, projectRows] = await readBatch(
    env.DB,
    query<Columns<typeof environments, "id" | "namespace_template">>(
      env.DB.prepare("SELECT id, namespace_template FROM environments WHERE id IN (SELECT value FROM json_each(?))").bind(JSON.stringify(environmentIds)),
    ),
    existingProjectsQuery(env, projectIds),
  );
  return { templates: new Map(envRows.map((r) => [r.id, r.namespace_template])), projects: new Set(projectRows.map((r) => r.id)) };
}

/** The id of the default environment, if there is one. */
export async function defaultEnvironmentId(env: Env): Promise<string | null> {
  const row = await env.DB.prepare("SELECT id FROM environments WHERE is_default = 1").first<Columns<typeof environments, "id">>();
  return row?.id ?? null;
}

/** The cluster environment `id` runs on, or null if there is no such environment. */
export async function clusterOfEnvironment(env: Env, id: string): Promise<string | null> {
  const row = await env.DB.prepare("SELECT cluster_id FROM environments WHERE id = ?").bind(id).first<Columns<typeof environments, "cluster_id">>();
  return row?.cluster_id ?? null;
}

/** What a deploy needs of its environment: the namespace template and whether the project is active there (`global` or `active`). */
export const deployEnvironmentQuery = (env: Env, environmentId: string, projectId: string) =>
  query<Columns<typeof environments, "namespace_template" | "global"> & { active: number }>(
    env.DB.prepare(
      `SELECT namespace_template, global, EXISTS (SELECT 1 FROM environment_projects WHERE environment_id = ?1 AND project_id = ?2) AS active
       FROM environments WHERE id = ?1`,
    ).bind(environmentId, projectId),
  );
