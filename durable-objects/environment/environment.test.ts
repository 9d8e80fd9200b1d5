import { env, evictDurableObject, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { EnvironmentDO } from "./environment";
import type { LoggedEvent } from "../lib/event-log";
import { held } from "../contract";

const stubOf = (name: string) => env.ENVIRONMENTS.getByName(name);
/** Read inside the object: RPC stub types of recursive JSON are too deep for tsc. */
const eventsOf = (stub: DurableObjectStub<EnvironmentDO>): Promise<LoggedEvent[]> => runInDurableObject(stub, (obj: EnvironmentDO) => obj.events(0));
const deployedOf = async (stub: DurableObjectStub<EnvironmentDO>) => {
  using rollouts = held(stub.rollouts());
  return await rollouts.deployed();
};

describe("EnvironmentDO lifecycle", () => {
  it("initializes once per incarnation, across eviction", async () => {
    const stub = stubOf("unit-once");
    expect(await stub.initialize({ environmentId: "unit-once", ephemeral: false, createdAt: 1 })).toBe(true);
    await evictDurableObject(stub);
    expect(await stub.initialize({ environmentId: "unit-once", ephemeral: false, createdAt: 1 })).toBe(false);
    const events = await eventsOf(stub);
    expect(events.map((e) => [e.seq, e.type])).toEqual([[1, "environment.created"]]);
    expect(await stub.identity()).toEqual({ environmentId: "unit-once", ephemeral: false, createdAt: 1 });
  });

  it("wipes what an earlier environment of the same name left behind", async () => {
    const stub = stubOf("unit-stale");
    await stub.initialize({ environmentId: "unit-stale", ephemeral: false, createdAt: 1 });
    await runInDurableObject(stub, (_obj: EnvironmentDO, state) => {
      state.storage.sql.exec("INSERT INTO capsule_state (project_id, capsule_id, desired_rollout_id, updated_at) VALUES ('p', 'old', 1, 1)");
    });
    expect(await deployedOf(stub)).toEqual([{ projectId: "p", capsuleId: "old" }]);
    // A new incarnation (its deletion never reached the object) starts over.
    expect(await stub.initialize({ environmentId: "unit-stale", ephemeral: true, createdAt: 2 })).toBe(true);
    expect(await deployedOf(stub)).toEqual([]);
    expect((await eventsOf(stub)).map((e) => e.data)).toEqual([{ environmentId: "unit-stale", ephemeral: true }]);
  });

  it("destroy drops all storage and the alarm; the object then starts empty", async () => {
    const stub = stubOf("unit-destroy");
    await stub.initialize({ environmentId: "unit-destroy", ephemeral: false, createdAt: 1 });
    await runInDurableObject(stub, async (_obj: EnvironmentDO, state) => {
      await state.storage.setAlarm(Date.now() + 60_000);
    });
    await stub.destroy();
    await runInDurableObject(stub, async (_obj: EnvironmentDO, state) => {
      expect(await state.storage.getAlarm()).toBeNull();
      const tables = state.storage.sql
        .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%'")
        .toArray();
      expect(tables).toEqual([]);
    });
    expect(await stub.identity()).toBeNull();
    expect(await eventsOf(stub)).toEqual([]);
  });
});
