/**
 * The EnvironmentDO's storage schema, every table of the object and its concerns in one
 * versioned list (lib/storage-migrations.ts). A schema change is a new migration at the end.
 */
import { libTables, type StorageMigration } from "../lib/storage-migrations";

export const environmentMigrations: readonly StorageMigration[] = [
  {
    version: 1,
    name: "initial tables",
    statements: [
      ...libTables,
      `CREATE TABLE IF NOT EXISTS identity (
        singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
        environment_id TEXT NOT NULL,
        ephemeral INTEGER NOT NULL,
        created_at INTEGER NOT NULL
      )`,
      // Per capsule: the rollout new deploys build on, the one in progress, the one the runner should run.
      `CREATE TABLE IF NOT EXISTS capsule_state (
        project_id TEXT NOT NULL,
        capsule_id TEXT NOT NULL,
        current_rollout_id INTEGER,
        in_progress_rollout_id INTEGER,
        desired_rollout_id INTEGER,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (project_id, capsule_id)
      )`,
      `CREATE TABLE IF NOT EXISTS rollouts (
        project_id TEXT NOT NULL,
        capsule_id TEXT NOT NULL,
        rollout_id INTEGER NOT NULL,
        config BLOB NOT NULL,
        previous_rollout_id INTEGER,
        created_by TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        started INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (project_id, capsule_id, rollout_id)
      )`,
      `CREATE TABLE IF NOT EXISTS runner (
        singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
        name TEXT NOT NULL, version TEXT NOT NULL, connected_at INTEGER, disconnected_at INTEGER
      )`,
      // Runner reports (instances/reports.ts).
      `CREATE TABLE IF NOT EXISTS instances (
        project_id TEXT NOT NULL, capsule_id TEXT NOT NULL, instance_id TEXT NOT NULL,
        rollout_id INTEGER NOT NULL, state TEXT NOT NULL, ready INTEGER NOT NULL, restarts INTEGER NOT NULL,
        message TEXT NOT NULL, node TEXT NOT NULL, created_at INTEGER NOT NULL, started_at INTEGER,
        updated_at INTEGER NOT NULL, deleted_at INTEGER,
        PRIMARY KEY (project_id, capsule_id, instance_id)
      )`,
      `CREATE TABLE IF NOT EXISTS logs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, project_id TEXT NOT NULL, capsule_id TEXT NOT NULL,
        instance_id TEXT NOT NULL, time INTEGER NOT NULL, stream TEXT NOT NULL, text TEXT NOT NULL
      )`,
      "CREATE INDEX IF NOT EXISTS logs_capsule ON logs (project_id, capsule_id, seq)",
      `CREATE TABLE IF NOT EXISTS metrics (
        project_id TEXT NOT NULL, capsule_id TEXT NOT NULL, instance_id TEXT NOT NULL, time INTEGER NOT NULL,
        cpu_ms INTEGER NOT NULL, memory_bytes INTEGER NOT NULL, storage_bytes INTEGER NOT NULL
      )`,
      "CREATE INDEX IF NOT EXISTS metrics_instance ON metrics (project_id, capsule_id, instance_id, time)",
      `CREATE TABLE IF NOT EXISTS custom_metrics (
        project_id TEXT NOT NULL, capsule_id TEXT NOT NULL, name TEXT NOT NULL, value REAL NOT NULL, time INTEGER NOT NULL,
        PRIMARY KEY (project_id, capsule_id, name)
      )`,
      // Cron jobs and their executions (jobs/store.ts).
      `CREATE TABLE IF NOT EXISTS cron_jobs (
        project_id TEXT NOT NULL, capsule_id TEXT NOT NULL, job_name TEXT NOT NULL, rollout_id INTEGER NOT NULL,
        schedule TEXT NOT NULL, job BLOB NOT NULL, next_run_at INTEGER,
        PRIMARY KEY (project_id, capsule_id, job_name)
      )`,
      `CREATE TABLE IF NOT EXISTS job_executions (
        execution_id TEXT PRIMARY KEY, project_id TEXT NOT NULL, capsule_id TEXT NOT NULL, job_name TEXT NOT NULL,
        rollout_id INTEGER NOT NULL, scheduled_at INTEGER NOT NULL, created_at INTEGER NOT NULL, finished_at INTEGER,
        state TEXT NOT NULL, retries INTEGER NOT NULL DEFAULT 0, deadline_at INTEGER, message TEXT NOT NULL DEFAULT '',
        job BLOB NOT NULL,
        UNIQUE (project_id, capsule_id, job_name, scheduled_at)
      )`,
      "CREATE INDEX IF NOT EXISTS job_executions_capsule ON job_executions (project_id, capsule_id, created_at)",
      // Where the runner says a capsule's ports are reachable from edgeplane (URL jobs call them).
      `CREATE TABLE IF NOT EXISTS capsule_endpoints (
        project_id TEXT NOT NULL, capsule_id TEXT NOT NULL, port INTEGER NOT NULL, url TEXT NOT NULL,
        PRIMARY KEY (project_id, capsule_id, port)
      )`,
      // Automations (automations/: services.ts, tasks.ts, executions.ts).
      `CREATE TABLE IF NOT EXISTS automation_services (
        id TEXT PRIMARY KEY, reference TEXT NOT NULL UNIQUE, from_file INTEGER NOT NULL, body BLOB NOT NULL
      )`,
      `CREATE TABLE IF NOT EXISTS automation_tasks (
        id TEXT PRIMARY KEY, reference TEXT NOT NULL UNIQUE, from_file INTEGER NOT NULL, body BLOB NOT NULL
      )`,
      // The task's reference is copied so that executions of a deleted task can still be filtered by it.
      `CREATE TABLE IF NOT EXISTS task_executions (
        id TEXT PRIMARY KEY, task_id TEXT NOT NULL, task_reference TEXT NOT NULL, phase INTEGER NOT NULL, body BLOB NOT NULL
      )`,
      "CREATE INDEX IF NOT EXISTS task_executions_phase ON task_executions (phase)",
      "CREATE TABLE IF NOT EXISTS automation_version (singleton INTEGER PRIMARY KEY CHECK (singleton = 1), value INTEGER NOT NULL)",
      // The developer environment (dev/store.ts).
      `CREATE TABLE IF NOT EXISTS dev_environment (
        singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
        metadata BLOB NOT NULL, spec BLOB NOT NULL, phase INTEGER NOT NULL, status_version INTEGER NOT NULL,
        acked_version INTEGER, report BLOB NOT NULL, waiting TEXT NOT NULL, activity BLOB,
        stopped_at INTEGER, unarchived_at INTEGER, revision INTEGER NOT NULL
      )`,
      // Skaffold's session (skaffold/session.ts).
      "CREATE TABLE IF NOT EXISTS skaffold_log (seq INTEGER PRIMARY KEY AUTOINCREMENT, entry BLOB NOT NULL)",
      "CREATE TABLE IF NOT EXISTS skaffold_state (singleton INTEGER PRIMARY KEY CHECK (singleton = 1), state BLOB NOT NULL)",
      `CREATE TABLE IF NOT EXISTS skaffold_rollouts (
        project_id TEXT NOT NULL, capsule_id TEXT NOT NULL, rollout_id INTEGER NOT NULL, phase TEXT NOT NULL,
        PRIMARY KEY (project_id, capsule_id, rollout_id)
      )`,
      "CREATE TABLE IF NOT EXISTS skaffold_pending_intent (singleton INTEGER PRIMARY KEY CHECK (singleton = 1), intent BLOB NOT NULL)",
    ],
  },
];
