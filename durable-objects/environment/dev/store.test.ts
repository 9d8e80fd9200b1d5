import { create, toJson } from "@bufbuild/protobuf";
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import {
  EnvironmentMetadataSchema,
  EnvironmentPhase as P,
  EnvironmentSchema,
  EnvironmentSpec_SSHPublicKeySchema,
  EnvironmentSpecSchema,
  EnvironmentStatus_EnvironmentURLsSchema,
  UpdateEnvironmentRequestSchema,
} from "../../../proto/gen/gitpod/v1/environment_pb";
import { defaults } from "../../../workers/core/config";
import { environmentMigrations } from "../schema";
import { migrateStorage } from "../../lib/storage-migrations";
import { applyUpdate, DevEnvironmentStore, type DevEnvironmentState, environmentOf, newDevEnvironment, withPhase } from "./store";

/** A store in the storage of a fresh object, for `fn`. */
const withStore = (fn: (store: DevEnvironmentStore) => void) =>
  runInDurableObject(env.ENVIRONMENTS.getByName(`unit-${crypto.randomUUID()}`), (_obj, state) => {
    migrateStorage(state.storage, environmentMigrations);
    fn(new DevEnvironmentStore(state.storage.sql));
  });

const fresh = () =>
  newDevEnvironment(create(EnvironmentMetadataSchema, { name: "a" }), create(EnvironmentSpecSchema));

const noWait = () => "";

describe("DevEnvironmentStore", () => {
  it("versions the spec and the status separately, and writes nothing when nothing changed", () =>
    withStore((store) => {
      const created = store.commit(null, fresh(), noWait);
      expect(created).toMatchObject({ changed: true, revision: 1 });
      expect(created.state.spec).toMatchObject({ specVersion: 1n, desiredPhase: P.RUNNING });
      expect(created.state.statusVersion).toBe(1n);

      expect(store.commit(created.state, created.state, noWait)).toMatchObject({ changed: false, revision: 1 });

      const reported = store.commit(created.state, { ...created.state, phase: P.STARTING, ackedVersion: 1n }, noWait);
      expect(reported).toMatchObject({ specChanged: false, statusChanged: true, revision: 2 });
      expect(reported.state.statusVersion).toBe(2n);

      const stopping = store.commit(reported.state, withPhase(reported.state, { ok: true, phase: P.STOPPING, desired: P.STOPPED }), noWait);
      expect(stopping).toMatchObject({ specChanged: true, statusChanged: true });
      expect([stopping.state.spec.specVersion, stopping.state.statusVersion]).toEqual([2n, 3n]);

      // The same spec, written again on purpose (a Start after a failure), is a new version.
      expect(store.commit(stopping.state, stopping.state, noWait, { touchSpec: true }).state.spec.specVersion).toBe(3n);
      expect(store.get()!.spec.specVersion).toBe(3n);
    }));

  it("puts the waiting note in the status, which a change of it versions", () =>
    withStore((store) => {
      const created = store.commit(null, fresh(), () => "waiting for a runner");
      expect(toJson(EnvironmentSchema, environmentOf("x", created.state))).toMatchObject({ status: { warningMessage: ["waiting for a runner"] } });
      const later = store.commit(created.state, created.state, () => "sent to runner r");
      expect(later).toMatchObject({ changed: true, statusChanged: true, specChanged: false });
    }));

  it("notes when it stopped, for archiving", () =>
    withStore((store) => {
      const created = store.commit(null, fresh(), noWait);
      const stopped = store.commit(created.state, { ...created.state, phase: P.STOPPED }, noWait);
      const at = stopped.state.stoppedAt!;
      expect(at).toBeGreaterThan(0);
      expect(environmentOf("x", stopped.state, at + defaults.gitpod.archiveAfterMs - 1).metadata?.archivedAt).toBeUndefined();
      expect(environmentOf("x", stopped.state, at + defaults.gitpod.archiveAfterMs).metadata?.archivedAt).toBeDefined();
      expect(store.commit(stopped.state, { ...stopped.state, phase: P.STARTING }, noWait).state.stoppedAt).toBeNull();
    }));
});

describe("environmentOf", () => {
  it("never sends an empty failureMessage, and shows URLs only while running", () => {
    const s: DevEnvironmentState = fresh();
    s.report.environmentUrls = create(EnvironmentStatus_EnvironmentURLsSchema, { logs: "https://logs" });
    const json = toJson(EnvironmentSchema, environmentOf("x", s)) as { status: Record<string, unknown> };
    expect(json.status).not.toHaveProperty("failureMessage");
    expect(json.status).not.toHaveProperty("environmentUrls");
    expect(toJson(EnvironmentSchema, environmentOf("x", { ...s, phase: P.RUNNING }))).toMatchObject({ status: { environmentUrls: { logs: "https://logs" } } });
  });
});

describe("applyUpdate", () => {
  it("changes what the request names and keeps the rest", () => {
    const s = fresh();
    s.spec.sshPublicKeys = [create(EnvironmentSpec_SSHPublicKeySchema, { id: "old", value: "k1" })];
    const req = create(UpdateEnvironmentRequestSchema, {
      metadata: { name: "b" },
      spec: { sshPublicKeys: [{ id: "old" }, { id: "new", value: "k2" }], content: { gitEmail: "a@b.c" } },
    });
    const next = applyUpdate(s, req);
    expect(next.metadata.name).toBe("b");
    expect(next.spec.sshPublicKeys.map((k) => [k.id, k.value])).toEqual([["new", "k2"]]);
    expect(next.spec.content?.gitEmail).toBe("a@b.c");
    expect(s.spec.sshPublicKeys).toHaveLength(1);
  });
});
