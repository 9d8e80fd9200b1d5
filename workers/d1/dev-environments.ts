/**
 * `dev_environments`: each developer environment's last snapshot, mirrored by its object so
 * that ListEnvironments is one query. Removed with the environment (d1/environments.ts).
 */
import type { Env } from "../env";
import { count, query } from "./batch";
import type { Columns } from "./row";
import type { devEnvironments } from "./schema";

/** The mirrored columns of one environment at `revision` (`environment` is the gitpod.v1.Environment as JSON). */
export type DevEnvironmentSummary = typeof devEnvironments.$inferSelect;

/** Writes the summary unless D1 already has a later revision (a slower write of an older state). */
export function mirrorStatement(env: Env, s: DevEnvironmentSummary): D1PreparedStatement {
  return env.DB
    .prepare(
      `INSERT INTO dev_environments (id, creator_id, project_id, runner_id, phase, archive_at, revision, environment)
       VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
       ON CONFLICT (id) DO UPDATE SET creator_id = ?2, project_id = ?3, runner_id = ?4, phase = ?5, archive_at = ?6, revision = ?7, environment = ?8
       WHERE excluded.revision > dev_environments.revision`,
    )
    .bind(s.id, s.creatorId, s.projectId, s.runnerId, s.phase, s.archiveAt, s.revision, s.environment);
}


/** ListEnvironments' filter, checked: each list the column must be one of (unset or empty: any). */
export interface DevEnvironmentFilter {
  phases?: string[];
  creatorIds?: string[];
  runnerIds?: string[];
  projectIds?: string[];
  sessionIds?: string[];
  /** Nothing matches: the filter asks for what edgeplane's environments never are. */
  none: boolean;
  /** Created before the time of this UUIDv7 prefix. */
  idBefore?: string;
  /** A lower-case LIKE pattern (ESCAPE '\\') over the id, name, context URL and git remote. */
  search?: string;
  /** Archived environments (archive_at passed at `now`) are listed only when asked for. */
  archival: "active" | "archived" | "all";
  now: number;
}

/** The filter as SQL over `dev_environments`, with its parameters. */
function filterSql(f: DevEnvironmentFilter): { where: string[]; params: unknown[] } {
  const where: string[] = [];
  const params: unknown[] = [];
  const anyOf = (column: string, values: readonly string[] | undefined) => {
    if (!values?.length) return;
    params.push(JSON.stringify(values));
    where.push(`${column} IN (SELECT value FROM json_each(?${params.length}))`);
  };
  anyOf("phase", f.phases);
  anyOf("creator_id", f.creatorIds);
  anyOf("runner_id", f.runnerIds);
  anyOf("project_id", f.projectIds);
  anyOf("json_extract(environment, '$.metadata.sessionId')", f.sessionIds);
  if (f.none) where.push("0");
  if (f.idBefore !== undefined) {
    // Ids are UUIDv7, whose first 48 bits are the creation time: "created before" is a range of ids.
    params.push(f.idBefore);
    where.push(`id < ?${params.length}`);
  }
  if (f.search !== undefined) {
    params.push(f.search);
    const like = (column: string) => `lower(${column}) LIKE ?${params.length} ESCAPE '\\'`;
    const fields = ["id", ...["name", "originalContextUrl"].map((k) => `json_extract(environment, '$.metadata.${k}')`), "json_extract(environment, '$.spec.content.initializer.specs[0].git.remoteUri')"];
    where.push(`(${fields.map((c) => `coalesce(${like(c)}, 0)`).join(" OR ")})`);
  }
  if (f.archival !== "all") params.push(f.now);
  if (f.archival === "active") where.push(`(archive_at IS NULL OR archive_at > ?${params.length})`);
  if (f.archival === "archived") where.push(`archive_at <= ?${params.length}`);
  return { where, params };
}

type Listed = Columns<typeof devEnvironments, "id" | "environment" | "archive_at">;

/**
 * Up to `size + 1` environments matching `f` by id, from after the id `after` (none: the
 * start), so the caller sees whether there is another page; with `counted`, all that match too.
 */
export async function listDevEnvironments(
  env: Env,
  f: DevEnvironmentFilter,
  page: { after: string; ascending: boolean; size: number; counted: boolean },
): Promise<{ rows: Listed[]; count: number | null }> {
  const { where, params } = filterSql(f);
  const { after, ascending } = page;
  const filtered = where.length ? `WHERE ${where.join(" AND ")}` : "";
  const cursor = after ? `${where.length ? "AND" : "WHERE"} id ${ascending ? ">" : "<"} ?${params.length + 1}` : "";
  const rows = query<Listed>(
    env.DB.prepare(`SELECT id, environment, archive_at FROM dev_environments ${filtered} ${cursor} ORDER BY id ${ascending ? "ASC" : "DESC"} LIMIT ${page.size + 1}`).bind(
      ...params,
      ...(after ? [after] : []),
    ),
  );
  const n = count(env.DB.prepare(`SELECT COUNT(*) AS n FROM dev_environments ${filtered}`).bind(...params));
  const [found, counted] = await env.DB.batch([rows.statement, ...(page.counted ? [n.statement] : [])]);
  return { rows: rows.rows(found!), count: counted ? n.rows(counted)[0]!.n : null };
}

/** Deletes the summary of developer environment `id`. */
export const deleteDevEnvironmentSummary = (env: Env, id: string) => env.DB.prepare("DELETE FROM dev_environments WHERE id = ?").bind(id);
