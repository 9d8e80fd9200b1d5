/**
 * `images`: the images registered to each capsule. Image.Add and a deploy's `add_image` write
 * them the same way (`insertImage`).
 */
import type { Env } from "../env";
import type { ImageRef } from "../core/image-reference";
import type { pageOf } from "../core/pagination";
import { count, query, readBatch, total } from "./batch";
import { capsuleExistsQuery } from "./capsules";
import type { Columns } from "./row";
import type { images } from "./schema";

export interface NewImage {
  projectId: string;
  capsuleId: string;
  /** The normalized reference (`formatReference(ref)`). */
  id: string;
  ref: ImageRef;
  /** api.v1.capsule.Origin as protobuf JSON. */
  origin?: string;
  labels?: Record<string, string>;
  /** model.Author of whoever added it. */
  createdBy: unknown;
  now: number;
}

/**
 * The insert of an image, only into a capsule that still exists and only once: a repeated add
 * changes nothing (its result's `meta.changes` is 0).
 */
export function insertImage(env: Env, i: NewImage): D1PreparedStatement {
  return env.DB.prepare(
    `INSERT INTO images (project_id, capsule_id, id, repository, tag, digest, origin, labels, created_by, created_at)
     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10 WHERE EXISTS (SELECT 1 FROM capsules WHERE project_id = ?1 AND id = ?2)
     ON CONFLICT DO NOTHING`,
  ).bind(
    i.projectId,
    i.capsuleId,
    i.id,
    // The Image message has no registry field, so its repository names the registry too.
    `${i.ref.registry}/${i.ref.repository}`,
    i.ref.tag,
    i.ref.digest,
    i.origin ?? "{}",
    JSON.stringify(i.labels ?? {}),
    JSON.stringify(i.createdBy),
    i.now,
  );
}

/** An image as the API shows it: the columns `IMAGE_COLUMNS` selects. */
export type ImageRow = Columns<typeof images, "id" | "repository" | "tag" | "digest" | "origin" | "labels" | "created_by" | "created_at">;
const IMAGE_COLUMNS = "id, repository, tag, digest, origin, labels, created_by, created_at";

/** Adds an image (`insertImage`), read with whether the capsule exists; `added` is false for a repeated add. */
export async function addImage(env: Env, i: NewImage): Promise<{ capsuleFound: boolean; added: boolean }> {
  const capsule = capsuleExistsQuery(env, i.projectId, i.capsuleId);
  const [inserted, found] = await env.DB.batch([insertImage(env, i), capsule.statement]);
  return { capsuleFound: capsule.rows(found!).length > 0, added: inserted!.meta.changes > 0 };
}

export const getImage = (env: Env, projectId: string, capsuleId: string, id: string) =>
  env.DB.prepare(`SELECT ${IMAGE_COLUMNS} FROM images WHERE project_id = ? AND capsule_id = ? AND id = ?`).bind(projectId, capsuleId, id).first<ImageRow>();

/**
 * A page of the capsule's images, newest first (the useful order for picking an image to
 * deploy; `descending` reverses it), their total, and whether the capsule exists, in one read.
 */
export async function listImagesPage(env: Env, projectId: string, capsuleId: string, page: ReturnType<typeof pageOf>) {
  const order = page.descending ? "ASC" : "DESC";
  const [capsule, rows, n] = await readBatch(
    env.DB,
    capsuleExistsQuery(env, projectId, capsuleId),
    query<ImageRow>(
      env.DB.prepare(
        `SELECT ${IMAGE_COLUMNS} FROM images WHERE project_id = ? AND capsule_id = ? ORDER BY created_at ${order}, rowid ${order} LIMIT ? OFFSET ?`,
      ).bind(projectId, capsuleId, page.limit, page.offset),
    ),
    count(env.DB.prepare("SELECT COUNT(*) AS n FROM images WHERE project_id = ? AND capsule_id = ?").bind(projectId, capsuleId)),
  );
  return { capsuleFound: capsule.length > 0, rows, total: total(n) };
}

/** The ids of the capsule's images, for batches that read them with their own statements. */
export const imageIdsQuery = (env: Env, projectId: string, capsuleId: string) =>
  query<Columns<typeof images, "id">>(env.DB.prepare("SELECT id FROM images WHERE project_id = ? AND capsule_id = ?").bind(projectId, capsuleId));

/** Deletes an image; false if the capsule has no such image. */
export async function deleteImage(env: Env, projectId: string, capsuleId: string, id: string): Promise<boolean> {
  const res = await env.DB.prepare("DELETE FROM images WHERE project_id = ? AND capsule_id = ? AND id = ?").bind(projectId, capsuleId, id).run();
  return res.meta.changes > 0;
}

/** Deletes the capsule's images unless it is deployed somewhere (with `deleteUndeployedCapsule`). */
export const deleteImagesOfUndeployedCapsule = (env: Env, projectId: string, capsuleId: string) =>
  env.DB.prepare(
    "DELETE FROM images WHERE project_id = ?1 AND capsule_id = ?2 AND NOT EXISTS (SELECT 1 FROM deployments WHERE project_id = ?1 AND capsule_id = ?2)",
  ).bind(projectId, capsuleId);
