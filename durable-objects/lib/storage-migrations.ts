/**
 * Versioned schema for a Durable Object's SQLite storage. Each object class keeps one ordered
 * list of numbered migrations; `_migrations` records which have run, so a migration runs once
 * per object and the next schema change (an ALTER TABLE) has a place to go.
 */

/** One step of an object's schema: its number (1, 2, … without gaps) and the statements it runs. */
export interface StorageMigration {
  version: number;
  name: string;
  statements: readonly string[];
}

/**
 * Runs the migrations above the recorded version, each in its own transaction with its record,
 * and returns the version the storage is at. Objects made before the runner existed already
 * hold the tables of migration 1, which is why its statements say IF NOT EXISTS.
 */
export function migrateStorage(storage: DurableObjectStorage, migrations: readonly StorageMigration[]): number {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`storage migration ${m.name} is numbered ${m.version}, expected ${i + 1}`);
  });
  const sql = storage.sql;
  sql.exec("CREATE TABLE IF NOT EXISTS _migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)");
  let current = storageVersion(storage);
  for (const m of migrations) {
    if (m.version <= current) continue;
    storage.transactionSync(() => {
      for (const statement of m.statements) sql.exec(statement);
      sql.exec("INSERT INTO _migrations (version, name, applied_at) VALUES (?, ?, ?)", m.version, m.name, Date.now());
    });
    current = m.version;
  }
  return current;
}

/** The highest migration recorded in `storage`, 0 before any. */
export function storageVersion(storage: DurableObjectStorage): number {
  const row = storage.sql.exec<{ version: number | null }>("SELECT MAX(version) AS version FROM _migrations").one();
  return row.version ?? 0;
}

/** The tables of `lib/` (event log, tickets, timers) that every object keeps; its migration 1 includes them. */
export const libTables: readonly string[] = [
  `CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    type TEXT NOT NULL,
    time INTEGER NOT NULL,
    data TEXT NOT NULL
  )`,
  `CREATE TABLE IF NOT EXISTS tickets (
    ticket TEXT PRIMARY KEY, purpose TEXT NOT NULL, subject TEXT NOT NULL, payload TEXT NOT NULL, expires_at INTEGER NOT NULL
  )`,
  "CREATE TABLE IF NOT EXISTS timers (kind TEXT NOT NULL, key TEXT NOT NULL, due_at INTEGER NOT NULL, PRIMARY KEY (kind, key))",
];
