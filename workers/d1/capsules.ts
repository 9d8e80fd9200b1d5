/** The capsule a request names, and its row in D1 (`capsules`). */
import type { Env } from "../env";
import type { pageOf } from "../core/pagination";
import { count, query, type Query, readBatch, total } from "./batch";
import type { Columns } from "./row";
import type { capsules } from "./schema";
import { bounded, invalidArgument, notFound } from "../core/errors";
import { existsQuery } from "./exists";

export type CapsuleRow = Columns<typeof capsules, "id" | "updated_by" | "updated_at">;

/** The project a request names; every capsule lives in one, so it is required. */
export function projectOf(req: { projectId: string }): string {
  if (!req.projectId) throw invalidArgument("project_id", "is required: name the project the capsule is in");
  return req.projectId;
}

/** The project and capsule a request names, both required. */
export function namedCapsule(req: { projectId: string; capsuleId: string }) {
  const projectId = projectOf(req);
  if (!req.capsuleId) throw invalidArgument("capsule_id", "is required");
  return { projectId, capsuleId: req.capsuleId };
}

/** A capsule's row; not_found if the project has no such capsule. */
export async function requireCapsule(env: Env, projectId: string, capsuleId: string): Promise<CapsuleRow> {
  const row = await env.DB.prepare("SELECT id, updated_by, updated_at FROM capsules WHERE project_id = ? AND id = ?")
    .bind(projectId, capsuleId)
    .first<CapsuleRow>();
  if (!row) throw notFound(`capsule ${bounded(capsuleId)} in project ${bounded(projectId)}`);
  return row;
}

/** Whether the capsule exists, for batches that check it with their own statements. */
export const capsuleExistsQuery = (env: Env, projectId: string, capsuleId: string): Query<{ one: number }> =>
  query(env.DB.prepare("SELECT 1 AS one FROM capsules WHERE project_id = ? AND id = ?").bind(projectId, capsuleId));

/**
 * Inserts a capsule, only into an existing project (one statement, so a concurrent project
 * delete cannot orphan it) and only once. Answers whether the project exists and whether the
 * capsule was inserted.
 */
export async function insertCapsule(
  env: Env,
  c: { projectId: string; id: string; updatedBy: string; now: number },
): Promise<{ projectFound: boolean; inserted: boolean }> {
  const project = existsQuery(env, "project", c.projectId);
  const [inserted, found] = await env.DB.batch([
    env.DB.prepare(
      `INSERT INTO capsules (project_id, id, updated_by, created_at, updated_at)
       SELECT ?1, ?2, ?3, ?4, ?4 WHERE EXISTS (SELECT 1 FROM projects WHERE id = ?1) ON CONFLICT DO NOTHING`,
    ).bind(c.projectId, c.id, c.updatedBy, c.now),
    project.statement,
  ]);
  return { projectFound: project.rows(found!).length > 0, inserted: inserted!.meta.changes > 0 };
}

/** How many capsules project `projectId` has. */
export const capsuleCountQuery = (env: Env, projectId: string) => count(env.DB.prepare("SELECT COUNT(*) AS n FROM capsules WHERE project_id = ?").bind(projectId));

/** Deletes the capsule unless it is deployed somewhere. */
export const deleteUndeployedCapsule = (env: Env, projectId: string, capsuleId: string) =>
  env.DB.prepare(
    "DELETE FROM capsules WHERE project_id = ?1 AND id = ?2 AND NOT EXISTS (SELECT 1 FROM deployments WHERE project_id = ?1 AND capsule_id = ?2)",
  ).bind(projectId, capsuleId);

/** Records who last touched the capsule and when; false if there is no such capsule. */
export async function touchCapsule(env: Env, projectId: string, capsuleId: string, updatedBy: string, now: number): Promise<boolean> {
  const res = await env.DB.prepare("UPDATE capsules SET updated_at = ?, updated_by = ? WHERE project_id = ? AND id = ?")
    .bind(now, updatedBy, projectId, capsuleId)
    .run();
  return res.meta.changes > 0;
}

/** A page of the project's capsules by id, their total, and whether the project exists, in one read. */
export async function listCapsulesPage(env: Env, projectId: string, page: ReturnType<typeof pageOf>) {
  const [project, rows, n] = await readBatch(
    env.DB,
    existsQuery(env, "project", projectId),
    query<CapsuleRow>(
      env.DB.prepare(`SELECT id, updated_by, updated_at FROM capsules WHERE project_id = ? ORDER BY id ${page.descending ? "DESC" : "ASC"} LIMIT ? OFFSET ?`).bind(
        projectId,
        page.limit,
        page.offset,
      ),
    ),
    count(env.DB.prepare("SELECT COUNT(*) AS n FROM capsules WHERE project_id = ?").bind(projectId)),
  );
  return { projectFound: project.length > 0, rows, total: total(n) };
}
