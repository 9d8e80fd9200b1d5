/**
 * `dev_environments`: each developer environment's last snapshot, mirrored by its object so
 * that ListEnvironments is one query. Removed with the environment (d1/environments.ts).
 */

/** The mirrored columns of one environment at `revision`. */
export interface DevEnvironmentSummary {
  id: string;
  creatorId: string;
  projectId: string;
  runnerId: string;
  phase: string;
  archiveAt: number | null;
  revision: number;
  /** The gitpod.v1.Environment, as JSON. */
  environment: string;
}

/** Writes the summary unless D1 already has a later revision (a slower write of an older state). */
export function mirrorStatement(db: D1Database, s: DevEnvironmentSummary): D1PreparedStatement {
  return db
    .prepare(
      `INSERT INTO dev_environments (id, creator_id, project_id, runner_id, phase, archive_at, revision, environment)
       VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
       ON CONFLICT (id) DO UPDATE SET creator_id = ?2, project_id = ?3, runner_id = ?4, phase = ?5, archive_at = ?6, revision = ?7, environment = ?8
       WHERE excluded.revision > dev_environments.revision`,
    )
    .bind(s.id, s.creatorId, s.projectId, s.runnerId, s.phase, s.archiveAt, s.revision, s.environment);
}
