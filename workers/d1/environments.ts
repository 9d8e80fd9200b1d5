/** The `environments` table group: an environment and the rows that hang off it. */
import type { Env } from "../env";

/**
 * The D1 statements deleting environment `id`'s rows, the first one its `environments` row.
 * The object's own state goes with its `destroy()`, which callers run after the batch; the
 * automations' index goes here, in the same batch, so no row outlives the environment even if
 * `destroy()` fails.
 */
export function deleteStatements(env: Env, id: string): D1PreparedStatement[] {
  return [
    env.DB.prepare("DELETE FROM environments WHERE id = ?").bind(id),
    env.DB.prepare("DELETE FROM environment_projects WHERE environment_id = ?").bind(id),
    env.DB.prepare("DELETE FROM deployments WHERE environment_id = ?").bind(id),
    env.DB.prepare("DELETE FROM cron_schedules WHERE environment_id = ?").bind(id),
    env.DB.prepare("DELETE FROM dev_environments WHERE id = ?").bind(id),
    env.DB.prepare("DELETE FROM automation_index WHERE environment_id = ?").bind(id),
  ];
}
