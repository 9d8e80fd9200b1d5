import { env, evictDurableObject, runInDurableObject } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { Service as EnvironmentService } from "../proto/gen/api/v1/environment/service_pb";
import { Service as RoleService } from "../proto/gen/api/v1/role/service_pb";
import { Service as ServiceAccountService } from "../proto/gen/api/v1/service_account/service_pb";
import { Service as AuthService } from "../proto/gen/api/v1/authentication/service_pb";
import { EnvironmentService as DevEnvironmentService } from "../proto/gen/gitpod/v1/environment_pb";
import { Service as SettingsService } from "../proto/gen/api/v1/user/settings/service_pb";
import type { EnvironmentDO } from "../durable-objects/environment/environment";
import { client } from "./helpers/client";
import { streamTicket, subscribe as subscribeTo, type WireEvent } from "./helpers/streams";
import { fileAdmin, freshEmail, register } from "./helpers/identity";


let admin: Awaited<ReturnType<typeof fileAdmin>>;
const base = "http://edgeplane.test";

beforeAll(async () => {
  admin = await fileAdmin();
  await client(EnvironmentService, admin.accessToken).create({ environmentId: "live" });
});

const ticket = (environmentId = "live", token = admin.accessToken) => streamTicket(environmentId, token);
const subscribe = (after = 0) => subscribeTo("live", admin.accessToken, after);

const stub = () => env.ENVIRONMENTS.getByName("live");
const publish = (type: string, data: Record<string, string | number>) => stub().publish(type, data);

describe("environment event stream over WebSocket", () => {
  it("replays the log, then sends live events in order, each once", async () => {
    const s = await subscribe(0);
    const [created] = await s.count(1);
    expect(created).toMatchObject({ seq: 1, type: "environment.created", data: { environmentId: "live" } });
    expect(new Date(created!.time).getTime()).toBeGreaterThan(0);
    await publish("capsule.deployed", { capsule: "web" });
    await publish("capsule.deployed", { capsule: "api" });
    const all = await s.count(3);
    expect(all.map((e) => e.seq)).toEqual([1, 2, 3]);
    s.ws.close();
  });

  it("carries the environment's own changes", async () => {
    const start = await runInDurableObject(stub(), (o: EnvironmentDO) => o.publish("marker", {}));
    const s = await subscribe(start);
    await client(EnvironmentService, admin.accessToken).update({ environmentId: "live", updates: [{ field: { case: "setGlobal", value: true } }] });
    const [changed] = await s.count(1);
    expect(changed).toMatchObject({ seq: start + 1, type: "environment.updated", data: { global: true } });
    s.ws.close();
  });

  it("batches a burst into one frame", async () => {
    const s = await subscribe(await runInDurableObject(stub(), (o: EnvironmentDO) => o.publish("marker", {})));
    await runInDurableObject(stub(), async (o: EnvironmentDO) => {
      for (let i = 0; i < 5; i++) await o.publish("burst", { i });
    });
    await s.count(5);
    expect(s.frames).toHaveLength(1);
    expect(Array.isArray(s.frames[0])).toBe(true);
    expect((s.frames[0] as WireEvent[]).map((e) => e.data.i)).toEqual([0, 1, 2, 3, 4]);
    s.ws.close();
  });

  it("resumes after a dropped connection with ?after= and sees every event exactly once", async () => {
    const first = await subscribe(0);
    const before = await first.count(1);
    const lastSeen = before[before.length - 1]!.seq;
    first.ws.close();
    const missed = [await publish("while-away", { n: 1 }), await publish("while-away", { n: 2 })];
    const second = await subscribe(lastSeen);
    await publish("after-return", { n: 3 });
    const got = await second.count(3);
    expect(got.map((e) => e.seq)).toEqual([...missed, missed[1]! + 1]);
    expect(new Set(got.map((e) => e.seq)).size).toBe(got.length);
    second.ws.close();
  });

  it("keeps subscribers across eviction of the object, missing and repeating nothing", async () => {
    const start = await runInDurableObject(stub(), (o: EnvironmentDO) => o.publish("before-eviction", {}));
    const s = await subscribe(start);
    await evictDurableObject(stub());
    await publish("after-eviction", { n: 1 });
    await publish("after-eviction", { n: 2 });
    const got = await s.count(2);
    expect(got.map((e) => e.seq)).toEqual([start + 1, start + 2]);
    s.ws.close();
  });

  it("refuses a cursor beyond the last event rather than skip events", async () => {
    const { url } = (await (await ticket()).json()) as { url: string };
    const res = await exports.default.fetch(`${base}${url}&after=999999`, { headers: { upgrade: "websocket" } });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ code: "out_of_range" });
  });

  it("uses each ticket once and refuses expired, unknown or missing ones", async () => {
    const { url } = (await (await ticket()).json()) as { url: string };
    const ok = await exports.default.fetch(`${base}${url}`, { headers: { upgrade: "websocket" } });
    expect(ok.status).toBe(101);
    ok.webSocket!.accept();
    ok.webSocket!.close();
    const again = await exports.default.fetch(`${base}${url}`, { headers: { upgrade: "websocket" } });
    expect(again.status).toBe(401);
    const unknown = await exports.default.fetch(`${base}/environments/live/events?ticket=nope`, { headers: { upgrade: "websocket" } });
    expect(unknown.status).toBe(401);
    const none = await exports.default.fetch(`${base}/environments/live/events`, { headers: { upgrade: "websocket" } });
    expect(none.status).toBe(401);

    const { url: old } = (await (await ticket()).json()) as { url: string };
    await runInDurableObject(stub(), (_o, state) => state.storage.sql.exec("UPDATE tickets SET expires_at = 0"));
    expect((await exports.default.fetch(`${base}${old}`, { headers: { upgrade: "websocket" } })).status).toBe(401);
  });

  it("gives tickets only to callers who may view the environment's capsules", async () => {
    expect((await exports.default.fetch(`${base}/environments/live/events/tickets`, { method: "POST" })).status).toBe(401);
    const sa = await client(ServiceAccountService, admin.accessToken).create({ name: "stream-bot" });
    const saToken = (await client(AuthService).login({ method: { case: "clientCredentials", value: { clientId: sa.clientId, clientSecret: sa.clientSecret } } })).token!
      .accessToken;
    const refused = await ticket("live", saToken);
    expect(refused.status).toBe(403);
    expect(await refused.json()).toMatchObject({ code: "permission_denied" });

    await client(SettingsService, admin.accessToken).updateSettings({ settings: [{ field: { case: "allowRegister", value: true } }] });
    const viewer = await register(freshEmail("viewer"));
    await client(RoleService, admin.accessToken).assign({ roleId: "viewer", entityId: { kind: { case: "userId", value: viewer.userId } } });
    expect((await ticket("live", viewer.token!.accessToken)).status).toBe(200);
    expect((await ticket("nowhere")).status).toBe(404);
  });

  it("closes subscribers when the environment is deleted", async () => {
    await client(EnvironmentService, admin.accessToken).create({ environmentId: "short-lived" });
    const { url } = (await (await ticket("short-lived")).json()) as { url: string };
    const res = await exports.default.fetch(`${base}${url}`, { headers: { upgrade: "websocket" } });
    const ws = res.webSocket!;
    const closed = new Promise<number>((resolve) => ws.addEventListener("close", (e) => resolve(e.code)));
    ws.accept();
    await client(EnvironmentService, admin.accessToken).delete({ environmentId: "short-lived" });
    expect(await closed).toBe(1001);
  });

  it("sends a developer environment's last events before closing its subscribers", async () => {
    const { environment } = await client(DevEnvironmentService, admin.accessToken).createEnvironment({ spec: {} });
    const id = environment!.id;
    const s = await subscribeTo(id, admin.accessToken);
    await s.count(1);
    const closed = new Promise<number>((resolve) => s.ws.addEventListener("close", (e) => resolve(e.code)));
    // With no runner there is no machine to stop: force deletes at once, in the same turn as its events.
    await client(DevEnvironmentService, admin.accessToken).deleteEnvironment({ environmentId: id, force: true });
    expect(await closed).toBe(1001);
    expect(s.events().map((e) => e.type)).toContain("dev-environment.deleted");
  });
});
