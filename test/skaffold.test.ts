/**
 * proto.SkaffoldService of an environment, driven as its clients drive it: a Connect client
 * with the environment's base URL, and plain HTTP against Skaffold's JSON gateway.
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { evictDurableObject, env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { StatusCode } from "../proto/gen/skaffold/enums/enums_pb";
import { type EventSchema, type LogEntry, SkaffoldService, StateSchema } from "../proto/gen/skaffold/v1/skaffold_pb";
import { Service as AuthService } from "../proto/gen/api/v1/authentication/service_pb";
import { Service as CapsuleService } from "../proto/gen/api/v1/capsule/service_pb";
import { Service as EnvironmentService } from "../proto/gen/api/v1/environment/service_pb";
import { Service as ProjectService } from "../proto/gen/api/v1/project/service_pb";
import { Service as ServiceAccountService } from "../proto/gen/api/v1/service_account/service_pb";
import { initialState } from "../durable-objects/environment/skaffold/state";
import { baseUrl, client, workerFetch } from "./helpers/client";
import { codeOf, errorOf } from "./helpers/errors";
import { fileAdmin } from "./helpers/identity";
import { runnerToken, TestRunner } from "./helpers/runner";
import { sleep, within } from "./helpers/wait";

type EventInit = MessageInitShape<typeof EventSchema>;

const PROJECT = "sk";
let admin: Awaited<ReturnType<typeof fileAdmin>>;
/** A logged-in user without any role. */
let nobody: string;

beforeAll(async () => {
  admin = await fileAdmin();
  await client(ProjectService, admin.accessToken).create({ projectId: PROJECT });
  // A service account that holds no role.
  const { clientId, clientSecret } = await client(ServiceAccountService, admin.accessToken).create({ name: "skaffold-nobody" });
  const login = await client(AuthService).login({ method: { case: "clientCredentials", value: { clientId, clientSecret } } });
  nobody = login.token!.accessToken;
});

let counter = 0;
/** A new environment where project `sk` is active. */
async function environment(): Promise<string> {
  const environmentId = `sk-${++counter}`;
  await client(EnvironmentService, admin.accessToken).create({ environmentId, initializers: [{ field: { case: "addProject", value: PROJECT } }] });
  return environmentId;
}

/** A Connect client of the environment's Skaffold API, as a user builds one. */
function skaffold(environmentId: string, token = admin.accessToken) {
  const auth: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
  return createClient(
    SkaffoldService,
    createConnectTransport({ baseUrl: `${baseUrl}/environments/${environmentId}/skaffold`, fetch: workerFetch, interceptors: [auth] }),
  );
}

/** Plain HTTP to the environment's gateway. */
/** The gateway's JSON, walked freely in assertions. */
// biome-ignore lint/suspicious/noExplicitAny: parsed JSON is walked freely in assertions.
type GatewayJson = Record<string, any>;

function gateway(environmentId: string, path: string, init: RequestInit & { token?: string | null } = {}) {
  const { token = admin.accessToken, ...rest } = init;
  return workerFetch(`${baseUrl}/environments/${environmentId}/skaffold/v1/${path}`, {
    ...rest,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(rest.body ? { "content-type": "application/json" } : {}) },
  });
}

/** A Connect Events subscription that reads only when asked to. */
function subscribe(environmentId: string) {
  const abort = new AbortController();
  const it = skaffold(environmentId).events({}, { signal: abort.signal })[Symbol.asyncIterator]();
  return {
    async take(n: number): Promise<LogEntry[]> {
      const out: LogEntry[] = [];
      while (out.length < n) {
        const r = await within(it.next(), "Events");
        if (r.done) throw new Error("the Events stream ended");
        out.push(r.value);
      }
      return out;
    },
    close() {
      abort.abort();
      void it.return?.(undefined).catch(() => {});
    },
  };
}

/** A subscription to the gateway's NDJSON stream: each line parsed. */
async function subscribeGateway(environmentId: string, path = "events") {
  const abort = new AbortController();
  const res = await gateway(environmentId, path, { signal: abort.signal });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toBe("application/json");
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  return {
    async take(n: number): Promise<GatewayJson[]> {
      const out: GatewayJson[] = [];
      while (out.length < n) {
        const newline = buffer.indexOf("\n");
        if (newline >= 0) {
          out.push(JSON.parse(buffer.slice(0, newline)));
          buffer = buffer.slice(newline + 1);
          continue;
        }
        const r = await within(reader.read(), "gateway events");
        if (r.done) throw new Error("the gateway stream ended");
        buffer += r.value;
      }
      return out;
    },
    close() {
      abort.abort();
      void reader.cancel().catch(() => {});
    },
  };
}

const kindAndEntry = (e: LogEntry) => `${e.event?.eventType.case}: ${e.entry}`;

const build = (artifact: string, status: string): EventInit => ({ eventType: { case: "buildEvent", value: { artifact, status } } });
const deployEvent = (status: string): EventInit => ({ eventType: { case: "deployEvent", value: { status } } });

describe("Handle and GetState", () => {
  it("folds every kind of event into the State as Skaffold's handler does", async () => {
    const id = await environment();
    const api = skaffold(id);
    const events: EventInit[] = [
      { eventType: { case: "metaEvent", value: { entry: "Starting Skaffold: {Version:v2.13.0}" } } },
      { eventType: { case: "devLoopEvent", value: { iteration: 0, status: "In Progress" } } },
      build("web", "In Progress"),
      build("api", "In Progress"),
      build("web", "Complete"),
      build("api", "Failed"),
      { eventType: { case: "TestEvent", value: { status: "Complete" } } },
      deployEvent("In Progress"),
      deployEvent("Complete"),
      { eventType: { case: "statusCheckEvent", value: { status: "Started" } } },
      { eventType: { case: "resourceStatusCheckEvent", value: { resource: "deployment/web", status: "In Progress" } } },
      { eventType: { case: "resourceStatusCheckEvent", value: { resource: "deployment/web", status: "Succeeded" } } },
      { eventType: { case: "resourceStatusCheckEvent", value: { resource: "dev:deployment/api", status: "Failed", err: "crash loop" } } },
      { eventType: { case: "statusCheckEvent", value: { status: "Failed", errCode: StatusCode.STATUSCHECK_CONTAINER_TERMINATED } } },
      { eventType: { case: "fileSyncEvent", value: { fileCount: 2, image: "web", status: "Succeeded" } } },
      { eventType: { case: "portEvent", value: { localPort: 9000, podName: "web-1", containerName: "web", targetPort: { intVal: 8080 } } } },
      { eventType: { case: "portEvent", value: { localPort: 9000, podName: "web-2", containerName: "web", targetPort: { intVal: 8080 } } } },
      { eventType: { case: "debuggingContainerEvent", value: { status: "Started", podName: "web-2", containerName: "web", namespace: "dev", runtime: "go" } } },
      { eventType: { case: "debuggingContainerEvent", value: { status: "Started", podName: "api-1", containerName: "api", namespace: "dev" } } },
      { eventType: { case: "debuggingContainerEvent", value: { status: "Terminated", podName: "api-1", containerName: "api", namespace: "dev" } } },
      { eventType: { case: "devLoopEvent", value: { iteration: 0, status: "Failed", err: { errCode: StatusCode.STATUSCHECK_CONTAINER_TERMINATED } } } },
    ];
    for (const e of events) await api.handle(e);

    const expected = initialState({ build: true, sync: true, deploy: true });
    expected.buildState!.artifacts = { web: "Complete", api: "Failed" };
    expected.buildState!.statusCode = StatusCode.BUILD_UNKNOWN;
    expected.testState!.status = "Complete";
    expected.deployState = { ...expected.deployState!, status: "Complete", statusCode: StatusCode.DEPLOY_SUCCESS };
    expected.statusCheckState = {
      ...expected.statusCheckState!,
      status: "Failed",
      statusCode: StatusCode.STATUSCHECK_CONTAINER_TERMINATED,
      resources: { "deployment/web": "Succeeded", "dev:deployment/api": "Failed" },
    };
    expected.fileSyncState!.status = "Succeeded";
    expected.forwardedPorts = { 9000: create(StateSchema, { forwardedPorts: { 9000: events[16]!.eventType!.value as never } }).forwardedPorts[9000]! };
    expected.debuggingContainers = [create(StateSchema, { debuggingContainers: [events[17]!.eventType!.value as never] }).debuggingContainers[0]!];
    expect(await api.getState({})).toEqual(expected);

    // The server stamped each entry with its time and text.
    const sub = subscribe(id);
    const log = await sub.take(events.length);
    sub.close();
    expect(log.map((e) => e.entry)).toEqual([
      "",
      "Update initiated",
      "Build started for artifact web",
      "Build started for artifact api",
      "Build completed for artifact web",
      "Build failed for artifact api",
      "Test completed",
      "Deploy started",
      "Deploy completed",
      "Status check started",
      "Resource deployment/web status updated to In Progress",
      "Resource deployment/web status completed successfully",
      "Resource dev:deployment/api status failed with crash loop",
      "Status check failed",
      "File sync succeeded for 2 files for web",
      "Forwarding container web to local port 9000",
      "Forwarding container web to local port 9000",
      "Debuggable container started pod/web-2:web (dev)",
      "Debuggable container started pod/api-1:api (dev)",
      "Debuggable container terminated pod/api-1:api (dev)",
      "Update failed with error code STATUSCHECK_CONTAINER_TERMINATED",
    ]);
    const times = log.map((e) => Number(e.timestamp!.seconds) * 1000 + e.timestamp!.nanos / 1e6);
    expect(times.every((t, i) => i === 0 || t >= times[i - 1]!)).toBe(true);
    expect(Math.abs(times.at(-1)! - Date.now())).toBeLessThan(60_000);
  });

  it("refuses an event of no kind and a failed dev loop without its error, naming the field", async () => {
    const api = skaffold(await environment());
    const none = await errorOf(api.handle({}));
    expect(none.code).toBe(Code.InvalidArgument);
    expect(none.rawMessage).toMatch(/^event: set exactly one of metaEvent, buildEvent/);
    const devLoop = await errorOf(api.handle({ eventType: { case: "devLoopEvent", value: { status: "Failed" } } }));
    expect(devLoop.code).toBe(Code.InvalidArgument);
    expect(devLoop.rawMessage).toMatch(/^devLoopEvent.err/);
  });

  it("answers not_found for an environment that does not exist", async () => {
    expect(await codeOf(skaffold("no-such-env").getState({}))).toBe(Code.NotFound);
    expect(await codeOf(skaffold("no-such-env").handle(deployEvent("Complete")))).toBe(Code.NotFound);
    expect(await codeOf(subscribe("no-such-env").take(1))).toBe(Code.NotFound);
    expect(await codeOf(skaffold("Not_A_Name").getState({}))).toBe(Code.NotFound);
  });

  it("checks environment:view and environment:edit:ephemeral in the environment", async () => {
    const id = await environment();
    expect(await codeOf(skaffold(id, nobody).getState({}))).toBe(Code.PermissionDenied);
    expect(await codeOf(skaffold(id, nobody).handle(deployEvent("Complete")))).toBe(Code.PermissionDenied);
    expect(await codeOf(skaffold(id, "not-a-token").getState({}))).toBe(Code.Unauthenticated);
  });
});

describe("Events", () => {
  it("replays the log, then streams live to concurrent subscribers in the same order, once each", async () => {
    const id = await environment();
    const api = skaffold(id);
    for (const a of ["a", "b", "c"]) await api.handle(build(a, "In Progress"));

    const fast = subscribe(id);
    const slow = subscribe(id);
    const http = await subscribeGateway(id);
    const replayed = await fast.take(3);
    expect(replayed.map(kindAndEntry)).toEqual(["a", "b", "c"].map((a) => `buildEvent: Build started for artifact ${a}`));

    // Live: concurrent handles, while `slow` reads nothing; `fast` gets them anyway.
    await Promise.all(["a", "b", "c", "d"].map((a) => api.handle(build(a, "Complete"))));
    const live = await fast.take(4);
    expect(live.map((e) => e.event?.eventType.value && (e.event.eventType.value as { artifact: string }).artifact).sort()).toEqual(["a", "b", "c", "d"]);

    // The slow one and the HTTP one get the same stream, in the same order, with no duplicate at the seam.
    const all = [...replayed, ...live];
    expect((await slow.take(7)).map(kindAndEntry)).toEqual(all.map(kindAndEntry));
    expect((await http.take(7)).map((l) => l.result.entry)).toEqual(all.map((e) => e.entry));

    await api.handle(deployEvent("In Progress"));
    const [f, s, h] = await Promise.all([fast.take(1), slow.take(1), http.take(1)]);
    expect([f[0]!.entry, s[0]!.entry, h[0]!.result.entry]).toEqual(["Deploy started", "Deploy started", "Deploy started"]);
    expect(f[0]!.timestamp).toEqual(s[0]!.timestamp);

    for (const sub of [fast, slow, http]) sub.close();
    // Wakes the server's long polls, so the abandoned calls end now.
    await api.handle(deployEvent("Complete"));
  });

  it("keeps the log and the State across a restart of the environment's object", async () => {
    const id = await environment();
    const api = skaffold(id);
    await api.handle(build("web", "Complete"));
    await api.autoSync({ state: { val: { case: "enabled", value: false } } });
    const before = await api.getState({});

    await evictDurableObject(env.ENVIRONMENTS.getByName(id));

    expect(await api.getState({})).toEqual(before);
    expect(before.fileSyncState!.autoTrigger).toBe(false);
    await api.handle(deployEvent("In Progress"));
    const sub = subscribe(id);
    expect((await sub.take(2)).map((e) => e.entry)).toEqual(["Build completed for artifact web", "Deploy started"]);
    sub.close();
    await api.handle(deployEvent("Complete"));
  });
});

describe("Execute and the auto triggers", () => {
  it("records the triggers in State: a change is applied, the same value again is already_exists, a missing one invalid_argument", async () => {
    const api = skaffold(await environment());
    const state = await api.getState({});
    // A new session starts like `skaffold dev`: every phase automatic.
    expect([state.buildState!.autoTrigger, state.fileSyncState!.autoTrigger, state.deployState!.autoTrigger]).toEqual([true, true, true]);

    await api.autoBuild({ state: { val: { case: "enabled", value: false } } });
    await api.autoDeploy({ state: { val: { case: "enabled", value: false } } });
    const manual = await api.getState({});
    expect([manual.buildState!.autoTrigger, manual.fileSyncState!.autoTrigger, manual.deployState!.autoTrigger]).toEqual([false, true, false]);

    const again = await errorOf(api.autoBuild({ state: { val: { case: "enabled", value: false } } }));
    expect(again.code).toBe(Code.AlreadyExists);
    expect(again.rawMessage).toBe("auto build is already set to false");
    const missing = await errorOf(api.autoSync({ state: {} }));
    expect(missing.code).toBe(Code.InvalidArgument);
    expect(missing.rawMessage).toBe("missing required boolean parameter 'enabled'");
    expect(await codeOf(api.autoDeploy({}))).toBe(Code.InvalidArgument);
  });

  it("resets the State as Skaffold does and hands the intent and the triggers to the runner", async () => {
    const id = await environment();
    const api = skaffold(id);
    const runner = await TestRunner.connect({ environmentId: id, token: await runnerToken(id) });
    await api.handle(build("web", "Complete"));
    await api.handle(deployEvent("Complete"));
    await api.handle({ eventType: { case: "portEvent", value: { localPort: 9000 } } });

    await api.execute({ intent: { deploy: true } });
    let state = await api.getState({});
    expect(state.deployState).toMatchObject({ status: "Not Started", statusCode: StatusCode.OK });
    expect(state.forwardedPorts).toEqual({});
    expect(state.buildState!.artifacts).toEqual({ web: "Complete" });
    // One came with hello (the triggers only); Execute's carries the intent.
    expect(await runner.waitFor((m) => m.type === "skaffold-intent" && !("intent" in m))).toEqual({ type: "skaffold-intent", auto: { build: true, sync: true, deploy: true } });
    expect(await runner.waitFor((m) => m.type === "skaffold-intent" && "intent" in m)).toEqual({
      type: "skaffold-intent",
      intent: { build: false, sync: false, deploy: true, devloop: false },
      auto: { build: true, sync: true, deploy: true },
    });

    await api.autoBuild({ state: { val: { case: "enabled", value: false } } });
    await api.execute({ intent: { build: true } });
    state = await api.getState({});
    expect(state.buildState!.artifacts).toEqual({ web: "Not Started" });
    const intents = () => runner.received.filter((m) => m.type === "skaffold-intent");
    await within(
      (async () => {
        while (intents().length < 4) await sleep(10);
      })(),
      "three intents at the runner",
    );
    expect(intents().slice(-2)).toEqual([
      { type: "skaffold-intent", auto: { build: false, sync: true, deploy: true } },
      { type: "skaffold-intent", intent: { build: true, sync: false, deploy: false, devloop: false }, auto: { build: false, sync: true, deploy: true } },
    ]);
    runner.disconnect();
  });

  it("changes nothing in State for an intent no runner took but says it waits, and hands it over when one connects", async () => {
    const id = await environment();
    const api = skaffold(id);
    await api.handle(build("web", "Complete"));
    await api.handle(deployEvent("Complete"));
    const before = await api.getState({});

    await api.execute({ intent: { build: true } });
    await api.execute({ intent: { deploy: true } });
    const waiting = await api.getState({});
    expect(waiting.buildState).toEqual(before.buildState);
    expect(waiting.deployState).toEqual(before.deployState);
    expect(waiting.metadata!.additional).toEqual({
      pendingIntent: `build, deploy asked for and waiting: no runner is connected to environment ${id}; it is sent when one connects`,
    });
    // An empty intent is a no-op, as in Skaffold.
    await api.execute({});

    const runner = await TestRunner.connect({ environmentId: id, token: await runnerToken(id) });
    expect(await runner.waitFor((m) => m.type === "skaffold-intent")).toEqual({
      type: "skaffold-intent",
      intent: { build: true, sync: false, deploy: true, devloop: false },
      auto: { build: true, sync: true, deploy: true },
    });
    const taken = await api.getState({});
    expect(taken.buildState!.artifacts).toEqual({ web: "Not Started" });
    expect(taken.deployState!.status).toBe("Not Started");
    expect(taken.metadata!.additional).toEqual({});
    runner.disconnect();
  });

  it("turning a trigger on with no runner connected records the trigger and resets nothing", async () => {
    const api = skaffold(await environment());
    await api.autoBuild({ state: { val: { case: "enabled", value: false } } });
    await api.handle(build("web", "Complete"));
    await api.autoBuild({ state: { val: { case: "enabled", value: true } } });
    expect((await api.getState({})).buildState).toMatchObject({ autoTrigger: true, artifacts: { web: "Complete" } });
  });
});

describe("the HTTP/JSON gateway", () => {
  it("writes State with proto names, every unpopulated field and enums by name", async () => {
    const id = await environment();
    const api = skaffold(id);
    await api.handle(build("web", "Complete"));
    await api.handle({ eventType: { case: "portEvent", value: { localPort: 9000, containerName: "web" } } });
    const res = await gateway(id, "state");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(await res.json()).toEqual({
      buildState: { artifacts: { web: "Complete" }, autoTrigger: true, statusCode: "OK" },
      deployState: { status: "Not Started", autoTrigger: true, statusCode: "OK" },
      forwardedPorts: {
        "9000": {
          localPort: 9000,
          remotePort: 0,
          podName: "",
          containerName: "web",
          namespace: "",
          portName: "",
          resourceType: "",
          resourceName: "",
          address: "",
          targetPort: null,
        },
      },
      statusCheckState: { status: "Not Started", resources: {}, statusCode: "OK" },
      fileSyncState: { status: "Not Started", autoTrigger: true },
      debuggingContainers: [],
      metadata: {
        build: { numberOfArtifacts: 0, builders: [], type: "UNKNOWN_BUILD_TYPE", additional: {} },
        deploy: { deployers: [], cluster: "UNKNOWN_CLUSTER_TYPE" },
        test: null,
        additional: {},
      },
      testState: { status: "Not Started", statusCode: "OK" },
    });
  });

  it("streams NDJSON lines of {result: LogEntry}, with the event's unset fields emitted", async () => {
    const id = await environment();
    const handled = await gateway(id, "events/handle", { method: "POST", body: JSON.stringify({ buildEvent: { artifact: "web", status: "In Progress" } }) });
    expect(handled.status).toBe(200);
    expect(await handled.json()).toEqual({});
    // Unknown fields are ignored; the capitalised TestEvent is the JSON key.
    await gateway(id, "events/handle", { method: "POST", body: JSON.stringify({ TestEvent: { status: "Failed" }, extra: 1 }) });

    for (const path of ["events", "event_log"]) {
      const sub = await subscribeGateway(id, path);
      const [first, second] = await sub.take(2);
      sub.close();
      expect(first).toEqual({
        result: {
          timestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6}|\.\d{9})?Z$/),
          event: {
            buildEvent: {
              artifact: "web",
              status: "In Progress",
              err: "",
              errCode: "OK",
              actionableErr: null,
              hostPlatform: "",
              targetPlatforms: "",
            },
          },
          entry: "Build started for artifact web",
        },
      });
      expect(second.result.event).toEqual({ TestEvent: { status: "Failed", actionableErr: null } });
      expect(second.result.entry).toBe("Test failed");
    }
    await skaffold(id).handle(deployEvent("Complete"));
  });

  it("takes the bare intent and the bare trigger state; answers 400 without enabled and 409 for no change", async () => {
    const id = await environment();
    const put = (phase: string, body: string) => gateway(id, `${phase}/auto_execute`, { method: "PUT", body });

    let res = await put("build", JSON.stringify({ enabled: false }));
    expect([res.status, await res.json()]).toEqual([200, {}]);
    res = await put("build", JSON.stringify({ enabled: false }));
    expect([res.status, await res.json()]).toEqual([409, { code: 6, message: "auto build is already set to false", details: [] }]);
    res = await put("sync", "{}");
    expect([res.status, await res.json()]).toEqual([400, { code: 3, message: "missing required boolean parameter 'enabled'", details: [] }]);
    res = await put("deploy", "");
    expect(res.status).toBe(400);
    res = await put("deploy", JSON.stringify({ enabled: true }));
    expect(res.status).toBe(409);
    res = await put("deploy", JSON.stringify({ enabled: false }));
    expect(res.status).toBe(200);

    await skaffold(id).handle(build("web", "Complete"));
    res = await gateway(id, "execute", { method: "POST", body: JSON.stringify({ build: true }) });
    expect([res.status, await res.json()]).toEqual([200, {}]);
    // No runner is connected: no build started, and State says the intent waits.
    const state = (await (await gateway(id, "state")).json()) as GatewayJson;
    expect(state.buildState).toEqual({ artifacts: { web: "Complete" }, autoTrigger: false, statusCode: "OK" });
    expect(state.metadata.additional.pendingIntent).toMatch(/^build asked for and waiting: no runner is connected/);
    expect(state.deployState.autoTrigger).toBe(false);
    // An empty intent is a no-op, as in Skaffold.
    expect((await gateway(id, "execute", { method: "POST" })).status).toBe(200);
  });

  it("answers errors as google.rpc.Status with grpc-gateway's HTTP statuses", async () => {
    const id = await environment();
    const status = async (res: Response) => [res.status, await res.json()];

    expect(await status(await gateway("no-such-env", "state"))).toEqual([404, { code: 5, message: "environment no-such-env not found", details: [] }]);
    expect((await gateway("no-such-env", "events/handle", { method: "POST", body: "{}" })).status).toBe(404);
    const missing = await gateway("no-such-env", "events");
    expect(missing.status).toBe(404);
    expect(JSON.parse(await missing.text())).toEqual({ error: { code: 5, message: "environment no-such-env not found", details: [] } });

    expect(await status(await gateway(id, "state", { token: null }))).toEqual([401, { code: 16, message: expect.stringContaining("access token"), details: [] }]);
    expect((await gateway(id, "events", { token: null })).status).toBe(401);
    expect(await status(await gateway(id, "state", { token: nobody }))).toEqual([403, { code: 7, message: expect.stringContaining("environment:view"), details: [] }]);
    expect((await gateway(id, "build/auto_execute", { method: "PUT", body: '{"enabled":false}', token: nobody })).status).toBe(403);

    const bad = await gateway(id, "events/handle", { method: "POST", body: "{not json" });
    expect(await status(bad)).toEqual([400, { code: 3, message: expect.stringMatching(/^body: is not JSON/), details: [] }]);
    expect((await gateway(id, "events/handle", { method: "POST", body: JSON.stringify({ buildEvent: { artifact: 7 } }) })).status).toBe(400);
    const empty = await gateway(id, "events/handle", { method: "POST", body: "{}" });
    expect(await status(empty)).toEqual([400, { code: 3, message: expect.stringMatching(/^event: set exactly one of/), details: [] }]);
  });
});

describe("deploys of capsules in the environment", () => {
  const capsules = () => client(CapsuleService, admin.accessToken);
  const addImage = { field: { case: "addImage", value: { image: "nginx:1.25" } } } as const;

  it("appear as a Skaffold deploy that waits, without a runner", async () => {
    const id = await environment();
    await capsules().create({ projectId: PROJECT, name: "waits" });
    await capsules().deploy({ projectId: PROJECT, capsuleId: "waits", environmentId: id, changes: [addImage] });
    const sub = subscribe(id);
    expect((await sub.take(1)).map((e) => e.entry)).toEqual(["Deploy started"]);
    sub.close();
    expect((await skaffold(id).getState({})).deployState).toMatchObject({ status: "In Progress", statusCode: StatusCode.OK });
    await skaffold(id).handle(deployEvent("In Progress"));
  });

  it("appear as deploy and status-check events up to a healthy capsule, then the deploy that replaces it", async () => {
    const id = await environment();
    const runner = await TestRunner.connect({ environmentId: id, token: await runnerToken(id) });
    await capsules().create({ projectId: PROJECT, name: "web" });
    const sub = subscribe(id);
    await capsules().deploy({ projectId: PROJECT, capsuleId: "web", environmentId: id, changes: [addImage] });

    const resource = `${PROJECT}:deployment/web`;
    const seen: LogEntry[] = [];
    while (!seen.some((e) => e.entry === "Status check succeeded")) seen.push(...(await sub.take(1)));
    const entries = seen.map((e) => e.entry);
    expect(entries.slice(0, 4)).toEqual(["Deploy started", "Deploy completed", "Status check started", `Resource ${resource} status updated to In Progress`]);
    expect(entries.slice(-2)).toEqual([`Resource ${resource} status completed successfully`, "Status check succeeded"]);

    const state = await skaffold(id).getState({});
    expect(state.deployState).toMatchObject({ status: "Complete", statusCode: StatusCode.DEPLOY_SUCCESS });
    expect(state.statusCheckState).toMatchObject({ status: "Succeeded", statusCode: StatusCode.STATUSCHECK_SUCCESS, resources: { [resource]: "Succeeded" } });

    // A new deploy replaces the healthy rollout: a second deploy of the same resource.
    await capsules().deploy({ projectId: PROJECT, capsuleId: "web", environmentId: id, changes: [{ field: { case: "replicas", value: 2 } }] });
    const next: LogEntry[] = [];
    while (!next.some((e) => e.entry === "Status check succeeded")) next.push(...(await sub.take(1)));
    expect(next[0]!.entry).toBe("Deploy started");
    sub.close();
    runner.disconnect();
  });
});
