/** Registering an image to a capsule: Image.Add and a deploy's `add_image` write it the same way. */
import type { Env } from "../env";
import type { ImageRef } from "../core/image-reference";

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
export interface ImageRow {
  id: string;
  repository: string;
  tag: string;
  digest: string;
  origin: string;
  labels: string;
  created_by: string;
  created_at: number;
}
/** The columns of an `ImageRow`. */
export const IMAGE_COLUMNS = "id, repository, tag, digest, origin, labels, created_by, created_at";
