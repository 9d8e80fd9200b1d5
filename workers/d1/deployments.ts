/**
 * `deployments`: which rollout and image each capsule has in each environment (images in use
 * may not be deleted). Written by the environment's object as it deploys and rolls back.
 */
import type { Env } from "../env";
import { query, type Query, readBatch } from "./batch";
import { capsuleExistsQuery } from "./capsules";
import { deployEnvironmentQuery } from "./environments";
import { imageIdsQuery } from "./images";
import type { Columns } from "./row";
import type { deployments } from "./schema";

/** A deploy's row: the capsule's rollout id just allocated (d1/rollout-ids.ts) in the same batch. */
export function recordDeploymentStatement(
  env: Env,
  d: { projectId: string; capsuleId: string; environmentId: string; imageId: string; now: number },
): D1PreparedStatement {
  const allocated = "(SELECT last_id FROM rollout_counters WHERE project_id = ?1 AND capsule_id = ?2)";
  return env.DB.prepare(
    `INSERT INTO deployments (project_id, capsule_id, environment_id, rollout_id, image_id, updated_at)
     SELECT ?1, ?2, ?3, ${allocated}, ?4, ?5 WHERE EXISTS (SELECT 1 FROM capsules WHERE project_id = ?1 AND id = ?2)
     ON CONFLICT (project_id, capsule_id, environment_id) DO UPDATE SET rollout_id = ${allocated}, image_id = ?4, updated_at = ?5`,
  ).bind(d.projectId, d.capsuleId, d.environmentId, d.imageId, d.now);
}

/** Removes the row of rollout `rolloutId`, if it is still the capsule's one there. */
export function dropDeploymentStatement(
  env: Env,
  d: { projectId: string; capsuleId: string; environmentId: string; rolloutId: number },
): D1PreparedStatement {
  return env.DB.prepare("DELETE FROM deployments WHERE project_id = ? AND capsule_id = ? AND environment_id = ? AND rollout_id = ?").bind(
    d.projectId,
    d.capsuleId,
    d.environmentId,
    d.rolloutId,
  );
}

/** An environment the capsule's current rollout runs the image in (then it may not be deleted), or null. */
export async function imageInUse(env: Env, projectId: string, capsuleId: string, imageId: string): Promise<string | null> {
  const row = await env.DB.prepare("SELECT environment_id FROM deployments WHERE project_id = ? AND capsule_id = ? AND image_id = ? LIMIT 1")
    .bind(projectId, capsuleId, imageId)
    .first<Columns<typeof deployments, "environment_id">>();
  return row?.environment_id ?? null;
}

/**
 * What a deploy checks, read together: whether the capsule exists, its environment's row
 * (undefined: no such environment) and the capsule's image ids.
 */
export async function deployTarget(env: Env, projectId: string, capsuleId: string, environmentId: string) {
  const [capsule, environment, images] = await readBatch(
    env.DB,
    capsuleExistsQuery(env, projectId, capsuleId),
    deployEnvironmentQuery(env, environmentId, projectId),
    imageIdsQuery(env, projectId, capsuleId),
  );
  return { capsuleFound: capsule.length > 0, environment: environment[0], imageIds: images.map((r) => r.id) };
}

/** Forgets every deployment into environment `environmentId`. */
export const deleteDeploymentsIn = (env: Env, environmentId: string) => env.DB.prepare("DELETE FROM deployments WHERE environment_id = ?").bind(environmentId);

/** Where the capsule is deployed (comma-separated environment ids), or null. */
export const deployedInQuery = (env: Env, projectId: string, capsuleId: string): Query<{ envs: string | null }> =>
  query(env.DB.prepare("SELECT group_concat(environment_id, ', ') AS envs FROM deployments WHERE project_id = ?1 AND capsule_id = ?2").bind(projectId, capsuleId));
