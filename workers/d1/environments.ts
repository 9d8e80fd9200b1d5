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

/** An environment with its project ids, as `SELECT_ENVIRONMENTS` reads it. */
export interface EnvironmentRow {
  id: string;
  cluster_id: string;
  namespace_template: string;
  is_default: number;
  ephemeral: number;
  global: number;
  /** JSON array of project ids, from environment_projects. */
  projects: string;
}

/** Environments with their projects; the caller adds WHERE and ORDER BY on `e`. */
export const SELECT_ENVIRONMENTS = `SELECT e.id, e.cluster_id, e.namespace_template, e.is_default, e.ephemeral, e.global,
  (SELECT json_group_array(project_id) FROM (SELECT project_id FROM environment_projects WHERE environment_id = e.id ORDER BY project_id)) AS projects
  FROM environments e`;
