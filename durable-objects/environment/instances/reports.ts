/**
 * What a runner reports about an environment's capsules, kept in the EnvironmentDO's SQLite
 * storage: instances (full sets per capsule), log lines and metric samples. Logs and metrics
 * are bounded ring buffers, so a chatty runner cannot grow the object without limit.
 */
import { defaults } from "../../../workers/core/config";
import { z } from "zod";
import type { InstanceCounts } from "../../rollout/status";
import type { LogLine, MetricSample, ReportedInstance } from "../../../proto/frames/runner";

/**
 * An instance as the environment stores it. Times are ms since the epoch. Rows are read
 * through this schema because rows stored before frames were validated may hold anything: a
 * row whose rollout cannot be told is skipped, other bad fields read as their defaults.
 */
const InstanceRowSchema = z.object({
  project_id: z.string(),
  capsule_id: z.string(),
  instance_id: z.string(),
  rollout_id: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
  state: z.string().catch("pending"),
  ready: z.number().catch(0),
  restarts: z.number().int().nonnegative().max(2 ** 31 - 1).catch(0),
  message: z.string().catch(""),
  node: z.string().catch(""),
  created_at: z.number(),
  started_at: z.number().nullable().catch(null),
  updated_at: z.number(),
  deleted_at: z.number().nullable(),
});
export type InstanceRow = z.infer<typeof InstanceRowSchema>;

/** The stored rows that can be read as instances. */
const readable = (rows: Record<string, SqlStorageValue>[]): InstanceRow[] =>
  rows.flatMap((r) => {
    const row = InstanceRowSchema.safeParse(r);
    return row.success ? [row.data] : [];
  });

export interface StoredLogLine {
  seq: number;
  instanceId: string;
  time: number;
  stream: "stdout" | "stderr";
  text: string;
}

export interface StoredSample extends Required<Omit<MetricSample, "time" | "custom">> {
  time: number;
}

const parseTime = (t: string | undefined, fallback: number) => {
  const ms = t ? Date.parse(t) : Number.NaN;
  return Number.isFinite(ms) ? ms : fallback;
};

export class RunnerReports {
  constructor(private readonly sql: SqlStorage) {}

  /**
   * Stores a capsule's full set of instances: listed ones are upserted, existing ones not
   * listed are marked deleted (kept for `include_deleted`).
   */
  setInstances(projectId: string, capsuleId: string, instances: ReportedInstance[], now = Date.now()): void {
    for (const i of instances) {
      this.sql.exec(
        `INSERT INTO instances (project_id, capsule_id, instance_id, rollout_id, state, ready, restarts, message, node, created_at, started_at, updated_at, deleted_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?10, NULL)
         ON CONFLICT (project_id, capsule_id, instance_id) DO UPDATE SET rollout_id = ?4, state = ?5, ready = ?6, restarts = ?7,
           message = ?8, node = ?9, started_at = COALESCE(?11, started_at), updated_at = ?10, deleted_at = NULL`,
        projectId,
        capsuleId,
        i.instanceId,
        i.rolloutId,
        i.state ?? (i.ready ? "running" : "pending"),
        i.ready ? 1 : 0,
        i.restarts ?? 0,
        i.message ?? "",
        i.node ?? "",
        now,
        i.startedAt ? parseTime(i.startedAt, now) : null,
      );
    }
    const listed = JSON.stringify(instances.map((i) => i.instanceId));
    this.sql.exec(
      `UPDATE instances SET deleted_at = ?, ready = 0, updated_at = ? WHERE project_id = ? AND capsule_id = ? AND deleted_at IS NULL
       AND instance_id NOT IN (SELECT value FROM json_each(?))`,
      now,
      now,
      projectId,
      capsuleId,
      listed,
    );
  }

  /** A capsule's instances, existing and/or deleted, by id. */
  instances(projectId: string, capsuleId: string, opts: { includeDeleted?: boolean; excludeExisting?: boolean } = {}): InstanceRow[] {
    const rows = readable(this.sql.exec("SELECT * FROM instances WHERE project_id = ? AND capsule_id = ? ORDER BY instance_id", projectId, capsuleId).toArray());
    return rows.filter((r) => (r.deleted_at === null ? !opts.excludeExisting : !!opts.includeDeleted));
  }

  instance(projectId: string, capsuleId: string, instanceId: string): InstanceRow | undefined {
    return readable(this.sql.exec("SELECT * FROM instances WHERE project_id = ? AND capsule_id = ? AND instance_id = ?", projectId, capsuleId, instanceId).toArray())[0];
  }

  /** How a capsule's existing instances stand against `rolloutId`. */
  counts(projectId: string, capsuleId: string, rolloutId: number): InstanceCounts {
    const c: InstanceCounts = { updated: 0, ready: 0, stuck: 0, wrongVersion: 0 };
    for (const i of this.instances(projectId, capsuleId)) {
      if (i.rollout_id !== rolloutId) {
        c.wrongVersion++;
        continue;
      }
      c.updated++;
      if (i.ready) c.ready++;
      else if (i.restarts > 0 || i.state === "failed") c.stuck++;
    }
    return c;
  }

  /** Forgets a capsule's instances: its rollout was stopped and the runner removed them. */
  dropInstances(projectId: string, capsuleId: string, now = Date.now()): void {
    this.sql.exec("UPDATE instances SET deleted_at = ?, ready = 0 WHERE project_id = ? AND capsule_id = ? AND deleted_at IS NULL", now, projectId, capsuleId);
  }

  /**
   * Appends log lines, each cut to `logLineBytes`, and trims the oldest beyond the environment's
   * budget of lines and of bytes. Returns the last seq.
   */
  appendLogs(projectId: string, capsuleId: string, instanceId: string, lines: LogLine[], now = Date.now()): number {
    let last = 0;
    for (const l of lines) {
      last = this.sql
        .exec<{ seq: number }>(
          "INSERT INTO logs (project_id, capsule_id, instance_id, time, stream, text) VALUES (?, ?, ?, ?, ?, ?) RETURNING seq",
          projectId,
          capsuleId,
          instanceId,
          parseTime(l.time, now),
          l.stream === "stderr" ? "stderr" : "stdout",
          cutLine(String(l.text)),
        )
        .one().seq;
    }
    const { logLines, logBytes } = defaults.runnerReports;
    this.sql.exec("DELETE FROM logs WHERE seq <= ?", last - logLines);
    // The newest lines that fit in the byte budget stay; everything older goes.
    this.sql.exec(
      `DELETE FROM logs WHERE seq <= (SELECT MAX(seq) FROM (
         SELECT seq, SUM(length(CAST(text AS BLOB))) OVER (ORDER BY seq DESC) AS newer FROM logs) WHERE newer > ?)`,
      logBytes,
    );
    return last;
  }

  /** Log lines of a capsule (one instance, or all) after `after`, oldest first, from `sinceMs` on. */
  logs(projectId: string, capsuleId: string, opts: { instanceId?: string; after: number; sinceMs?: number; limit?: number }): StoredLogLine[] {
    return this.sql
      .exec<{ seq: number; instance_id: string; time: number; stream: "stdout" | "stderr"; text: string }>(
        `SELECT seq, instance_id, time, stream, text FROM logs WHERE project_id = ? AND capsule_id = ? AND seq > ?
         AND (?4 = '' OR instance_id = ?4) AND time >= ? ORDER BY seq LIMIT ?`,
        projectId,
        capsuleId,
        opts.after,
        opts.instanceId ?? "",
        opts.sinceMs ?? 0,
        opts.limit ?? 1000,
      )
      .toArray()
      .map((r) => ({ seq: r.seq, instanceId: r.instance_id, time: r.time, stream: r.stream, text: r.text }));
  }

  /** Stores samples, keeping the newest few per instance, and the latest value of each custom metric. */
  addMetrics(projectId: string, capsuleId: string, samples: MetricSample[], now = Date.now()): void {
    for (const s of samples) {
      const time = parseTime(s.time, now);
      this.sql.exec(
        "INSERT INTO metrics (project_id, capsule_id, instance_id, time, cpu_ms, memory_bytes, storage_bytes) VALUES (?, ?, ?, ?, ?, ?, ?)",
        projectId,
        capsuleId,
        s.instanceId,
        time,
        Math.max(0, Math.trunc(s.cpuMs)),
        Math.max(0, Math.trunc(s.memoryBytes)),
        Math.max(0, Math.trunc(s.storageBytes ?? 0)),
      );
      this.sql.exec(
        `DELETE FROM metrics WHERE project_id = ? AND capsule_id = ? AND instance_id = ? AND rowid NOT IN
         (SELECT rowid FROM metrics WHERE project_id = ?1 AND capsule_id = ?2 AND instance_id = ?3 ORDER BY time DESC LIMIT ?4)`,
        projectId,
        capsuleId,
        s.instanceId,
        defaults.runnerReports.metricSamples,
      );
      for (const [name, value] of Object.entries(s.custom ?? {})) {
        if (!Number.isFinite(value)) continue;
        this.sql.exec(
          "INSERT INTO custom_metrics (project_id, capsule_id, name, value, time) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET value = excluded.value, time = excluded.time",
          projectId,
          capsuleId,
          name,
          value,
          time,
        );
      }
    }
  }

  /** Samples of a capsule (one instance, or all) from `sinceMs` on, oldest first. */
  metrics(projectId: string, capsuleId: string, opts: { instanceId?: string; sinceMs?: number }): StoredSample[] {
    return this.sql
      .exec<{ instance_id: string; time: number; cpu_ms: number; memory_bytes: number; storage_bytes: number }>(
        `SELECT instance_id, time, cpu_ms, memory_bytes, storage_bytes FROM metrics WHERE project_id = ? AND capsule_id = ?
         AND (?3 = '' OR instance_id = ?3) AND time >= ? ORDER BY time, instance_id`,
        projectId,
        capsuleId,
        opts.instanceId ?? "",
        opts.sinceMs ?? 0,
      )
      .toArray()
      .map((r) => ({ instanceId: r.instance_id, time: r.time, cpuMs: r.cpu_ms, memoryBytes: r.memory_bytes, storageBytes: r.storage_bytes }));
  }

  customMetrics(projectId: string, capsuleId: string): { name: string; value: number; time: number }[] {
    return this.sql
      .exec<{ name: string; value: number; time: number }>("SELECT name, value, time FROM custom_metrics WHERE project_id = ? AND capsule_id = ? ORDER BY name", projectId, capsuleId)
      .toArray();
  }
}

/**
 * A log line as stored: whole when it fits in `logLineBytes` of UTF-8, else its first bytes
 * (never half a character) and a note of how long it was.
 */
function cutLine(text: string): string {
  const max = defaults.runnerReports.logLineBytes;
  // One UTF-16 code unit is at most 3 bytes of UTF-8: text this short always fits.
  if (text.length * 3 <= max) return text;
  const bytes = new TextEncoder().encode(text);
  if (bytes.length <= max) return text;
  const note = ` …[cut: the line had ${bytes.length} bytes]`;
  const kept = new TextDecoder().decode(bytes.subarray(0, max - new TextEncoder().encode(note).length)).replace(/\uFFFD$/, "");
  return kept + note;
}
