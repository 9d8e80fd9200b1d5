import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { environmentMigrations } from "../environment/schema";
import type { EnvironmentDO } from "../environment/environment";
import type { RolloutDO } from "../rollout/rollout";
import { rolloutMigrations } from "../rollout/schema";
import { migrateStorage, type StorageMigration, storageVersion } from "./storage-migrations";

const recorded = (storage: DurableObjectStorage) =>
  storage.sql.exec<{ version: number; name: string }>("SELECT version, name FROM _migrations ORDER BY version").toArray().map((r) => ({ ...r }));

describe("storage migrations", () => {
  it("records each object's version once its storage is first used", async () => {
    const environment = env.ENVIRONMENTS.getByName(`unit-${crypto.randomUUID()}`);
    expect(await environment.identity()).toBeNull();
    await runInDurableObject(environment, (_obj: EnvironmentDO, state) => {
      expect(storageVersion(state.storage)).toBe(environmentMigrations.length);
      expect(recorded(state.storage)).toEqual([{ version: 1, name: "initial tables" }]);
    });
    const rollout = env.ROLLOUTS.getByName(`unit-${crypto.randomUUID()}`);
    await runInDurableObject(rollout, (_obj: RolloutDO, state) => {
      expect(storageVersion(state.storage)).toBe(rolloutMigrations.length);
    });
  });

  it("runs a migration once, and later ones in order on top", async () => {
    const stub = env.ENVIRONMENTS.getByName(`unit-${crypto.randomUUID()}`);
    await stub.identity();
    await runInDurableObject(stub, (_obj: EnvironmentDO, state) => {
      // Without IF NOT EXISTS: running a migration twice would throw.
      const first: StorageMigration = { version: 1, name: "t", statements: ["CREATE TABLE t (x INTEGER)"] };
      const second: StorageMigration = { version: 2, name: "t.y", statements: ["ALTER TABLE t ADD COLUMN y INTEGER"] };
      state.storage.sql.exec("DROP TABLE _migrations");
      expect(migrateStorage(state.storage, [first])).toBe(1);
      expect(migrateStorage(state.storage, [first])).toBe(1);
      expect(migrateStorage(state.storage, [first, second])).toBe(2);
      expect(migrateStorage(state.storage, [first, second])).toBe(2);
      expect(recorded(state.storage)).toEqual([
        { version: 1, name: "t" },
        { version: 2, name: "t.y" },
      ]);
      state.storage.sql.exec("INSERT INTO t (x, y) VALUES (1, 2)");
    });
  });

  it("migrates an object made before versions were recorded, keeping its rows", async () => {
    const stub = env.ENVIRONMENTS.getByName(`unit-${crypto.randomUUID()}`);
    await stub.initialize({ environmentId: "old", ephemeral: false, createdAt: 1 });
    await runInDurableObject(stub, (_obj: EnvironmentDO, state) => {
      state.storage.sql.exec("DROP TABLE _migrations");
      expect(migrateStorage(state.storage, environmentMigrations)).toBe(1);
    });
    expect(await stub.identity()).toEqual({ environmentId: "old", ephemeral: false, createdAt: 1 });
  });

  it("refuses a list with a gap", async () => {
    const stub = env.ENVIRONMENTS.getByName(`unit-${crypto.randomUUID()}`);
    await runInDurableObject(stub, (_obj: EnvironmentDO, state) => {
      expect(() => migrateStorage(state.storage, [{ version: 2, name: "late", statements: [] }])).toThrow(/expected 1/);
    });
  });

  it("leaves nothing after destroy, and migrates again when the same instance is used", async () => {
    const stub = env.ENVIRONMENTS.getByName(`unit-${crypto.randomUUID()}`);
    await stub.initialize({ environmentId: "gone", ephemeral: false, createdAt: 1 });
    await stub.destroy();
    const tables = (storage: DurableObjectStorage) => storage.sql.exec("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").toArray();
    await runInDurableObject(stub, (_obj: EnvironmentDO, state) => expect(tables(state.storage)).toEqual([]));
    expect(await stub.identity()).toBeNull();
    await runInDurableObject(stub, (_obj: EnvironmentDO, state) => {
      expect(storageVersion(state.storage)).toBe(environmentMigrations.length);
    });
  });
});
