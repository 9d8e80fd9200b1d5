/** The capsule a request names, and its row in D1. */
import type { Env } from "../env";
import type { Columns } from "./row";
import type { capsules } from "./schema";
import { bounded, invalidArgument, notFound } from "../core/errors";

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

