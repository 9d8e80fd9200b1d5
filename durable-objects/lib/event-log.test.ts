import { env, evictDurableObject, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { EnvironmentDO } from "../environment/environment";
import { environmentMigrations } from "../environment/schema";
import { EventLog, type LoggedEvent } from "./event-log";
import { migrateStorage } from "./storage-migrations";

describe("EventLog in a Durable Object", () => {
  it("numbers events in order and keeps them across eviction", async () => {
    const stub = env.ENVIRONMENTS.getByName("event-log-test");
    await runInDurableObject(stub, (_obj: EnvironmentDO, state) => {
      migrateStorage(state.storage, environmentMigrations);
      const log = new EventLog(state.storage.sql);
      expect(log.append("created", { n: 1 }).seq).toBe(1);
      expect(log.append("started", { n: 2 }).seq).toBe(2);
    });
    await evictDurableObject(stub);
    // Read through the object's own method after eviction: storage, not memory, must answer.
    const events: LoggedEvent[] = await runInDurableObject(stub, (obj: EnvironmentDO) => obj.events(0));
    expect(events.map((e) => [e.seq, e.type, e.data])).toEqual([
      [1, "created", { n: 1 }],
      [2, "started", { n: 2 }],
    ]);
    const later: LoggedEvent[] = await runInDurableObject(stub, (obj: EnvironmentDO) => obj.events(1));
    expect(later.map((e) => e.seq)).toEqual([2]);
  });

  it("never reuses a sequence number after deletes", async () => {
    const stub = env.ROLLOUTS.getByName("p/c/1");
    await runInDurableObject(stub, (_obj, state) => {
      const log = new EventLog(state.storage.sql);
      log.append("a", {});
      log.append("b", {});
      state.storage.sql.exec("DELETE FROM events");
      expect(log.append("c", {}).seq).toBe(3);
      expect(log.lastSeq()).toBe(3);
    });
  });
});
