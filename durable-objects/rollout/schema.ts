/** The RolloutDO's storage schema, one versioned list (lib/storage-migrations.ts). */
import { libTables, type StorageMigration } from "../lib/storage-migrations";

export const rolloutMigrations: readonly StorageMigration[] = [
  {
    version: 1,
    name: "initial tables",
    statements: [
      ...libTables,
      `CREATE TABLE IF NOT EXISTS rollout (
        singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
        project_id TEXT NOT NULL, capsule_id TEXT NOT NULL, rollout_id INTEGER NOT NULL, environment_id TEXT NOT NULL,
        config BLOB NOT NULL, status BLOB NOT NULL
      )`,
    ],
  },
];
