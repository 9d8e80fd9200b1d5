import type { Env } from "../env";

/**
 * The next rollout id of a capsule: 1, 2, 3 … across all its environments, never reused,
 * allocated by one upsert so concurrent deploys in different environments never collide.
 */
export async function nextRolloutId(env: Env, projectId: string, capsuleId: string): Promise<bigint> {
  const row = await env.DB.prepare(
    `INSERT INTO rollout_counters (project_id, capsule_id, last_id) VALUES (?, ?, 1)
     ON CONFLICT (project_id, capsule_id) DO UPDATE SET last_id = last_id + 1 RETURNING last_id`,
  )
    .bind(projectId, capsuleId)
    .first<{ last_id: number }>();
  return BigInt(row!.last_id);
}
