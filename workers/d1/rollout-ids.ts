import type { Env } from "../env";
import type { Columns } from "./row";
import type { rolloutCounters } from "./schema";

/**
 * The statement that allocates a capsule's next rollout id (RETURNING `last_id`): 1, 2, 3 …
 * across all its environments, never reused, one upsert so that concurrent deploys in
 * different environments never collide. It can run in a batch with the writes that use it.
 */
export function rolloutIdStatement(env: Env, projectId: string, capsuleId: string): D1PreparedStatement {
  return env.DB.prepare(
    `INSERT INTO rollout_counters (project_id, capsule_id, last_id) VALUES (?, ?, 1)
     ON CONFLICT (project_id, capsule_id) DO UPDATE SET last_id = last_id + 1 RETURNING last_id`,
  ).bind(projectId, capsuleId);
}

type Allocated = Columns<typeof rolloutCounters, "last_id">;

/** The id `rolloutIdStatement` allocated, from its result in a batch. */
export const allocatedRolloutId = (result: D1Result): number => (result as D1Result<Allocated>).results[0]!.last_id;

/** The next rollout id of a capsule, allocated on its own. */
export async function nextRolloutId(env: Env, projectId: string, capsuleId: string): Promise<bigint> {
  const row = await rolloutIdStatement(env, projectId, capsuleId).first<Allocated>();
  return BigInt(row!.last_id);
}
