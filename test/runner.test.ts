/**
 * The runner protocol end to end (proto/frames/runner.ts): connections and
 * takeovers, rollouts that survive disconnects and evictions, instances, logs, metrics,
 * Execute over its WebSocket, and the event streams of a deploy. Each test that connects a
 * runner gets an environment of its own, so one test's runner never answers another's deploy.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { env, evictDurableObject, runInDurableObject } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { held, rolloutName } from "../durable-objects/contract";
import type { ServerMessage } from "../proto/frames/runner";
import type { ChangeSchema } from "../proto/gen/api/v1/capsule/change_pb";
import { State as InstanceState } from "../proto/gen/api/v1/capsule/instance_pb";
import { ReadyState } from "../proto/gen/api/v1/capsule/instance/status_pb";
import { Result, State, StepState } from "../proto/gen/api/v1/capsule/rollout/status_pb";
import { Service as CapsuleService } from "../proto/gen/api/v1/capsule/service_pb";
import { Service as EnvironmentService } from "../proto/gen/api/v1/environment/service_pb";
import { Service as ProjectService } from "../proto/gen/api/v1/project/service_pb";
import { Service as RoleService } from "../proto/gen/api/v1/role/service_pb";
import { Service as ServiceAccountService } from "../proto/gen/api/v1/service_account/service_pb";
import { Service as SettingsService } from "../proto/gen/api/v1/project/settings/service_pb";
import { Service as AuthService } from "../proto/gen/api/v1/authentication/service_pb";
import { b64 } from "../workers/core/encoding";
import { defaults } from "../workers/core/config";
import { baseUrl, client } from "./helpers/client";
import { codeOf, errorOf } from "./helpers/errors";
import { fileAdmin } from "./helpers/identity";
import { type Behavior, runnerToken, TestRunner } from "./helpers/runner";
import { isPong, keepAlive } from "./helpers/keep-alive";
import { eventually, sleep } from "./helpers/wait";

// ---- Fixtures ---------------------------------------------------------------------------------

type Change = MessageInitShape<typeof ChangeSchema>;

const PROJECT = "runs";
const IMAGE = "index.docker.io/library/nginx:1.25";
const image = (): Change => ({ field: { case: "addImage", value: { image: "nginx:1.25" } } });
const replicas = (n: number): Change => ({ field: { case: "replicas", value: n } });

let admin: Awaited<ReturnType<typeof fileAdmin>>;
const capsules = () => client(CapsuleService, admin.accessToken);
/** The environment's runner as its object last saw it. The API's stub goes at once: one still held keeps the object from being evicted. */
const runnerInfo = async (environmentId: string) => {
  using runner = held(env.ENVIRONMENTS.getByName(environmentId).runner());
  return await runner.info();
};

let counter = 0;
/** A fresh capsule in project `runs`. */
async function capsule(): Promise<string> {
  const name = `c${++counter}`;
  await capsules().create({ projectId: PROJECT, name });
  return name;
}

/** A new environment `r-<name>` where project `runs` is active. */
async function environment(name: string): Promise<string> {
  const environmentId = `r-${name}`;
  await client(EnvironmentService, admin.accessToken).create({
    environmentId,
    initializers: [{ field: { case: "addProject", value: PROJECT } }],
  });
  return environmentId;
}

/** One runner token per environment: making one takes a role, a service account and a login. */
const tokens = new Map<string, Promise<string>>();
const tokenFor = (environmentId: string) => {
  if (!tokens.has(environmentId)) tokens.set(environmentId, runnerToken(environmentId));
  return tokens.get(environmentId)!;
};

const connect = async (environmentId: string, behavior: Partial<Behavior> = {}, name = "test-runner") =>
  TestRunner.connect({ environmentId, token: await tokenFor(environmentId), name, behavior });

/** An environment with a runner connected to it. */
async function withRunner(name: string, behavior: Partial<Behavior> = {}) {
  // The token's role names the environment by id, so both can be made at once.
  const [environmentId] = await Promise.all([environment(name), tokenFor(`r-${name}`)]);
  return { environmentId, runner: await connect(environmentId, behavior, `${name}-runner`) };
}

const deploy = (environmentId: string, capsuleId: string, changes: Change[], force = false) =>
  capsules().deploy({ projectId: PROJECT, capsuleId, environmentId, changes, force });

type Rollout = NonNullable<Awaited<ReturnType<ReturnType<typeof capsules>["getRollout"]>>["rollout"]>;

const rollout = async (capsuleId: string, rolloutId: bigint): Promise<Rollout> =>
  (await capsules().getRollout({ projectId: PROJECT, capsuleId, rolloutId })).rollout!;

const runnerStep = (r: Rollout) => r.status!.stages!.resourceCreation!.steps.find((s) => s.step.case === "generic")!.step.value!.info!;

/** The running stage's instances step, when the rollout got that far. */
function instancesStep(r: Rollout) {
  const step = r.status?.stages?.running?.steps.find((s) => s.step.case === "instances")?.step;
  return step?.case === "instances" ? step.value : undefined;
}

/** RUNNING with every instance ready: the rollout is healthy. */
const settled = (r: Rollout) => r.status!.state === State.RUNNING && instancesStep(r)?.info?.state === StepState.DONE;

const until = (capsuleId: string, rolloutId: bigint, ok: (r: Rollout) => boolean, what = "rollout condition") =>
  eventually(() => rollout(capsuleId, rolloutId), ok, `rollout ${rolloutId} of ${capsuleId}: ${what}`);

const desiredFor = (capsuleId: string, rolloutId?: number) => (m: ServerMessage): m is Extract<ServerMessage, { type: "desired" }> =>
  m.type === "desired" && m.capsuleId === capsuleId && (rolloutId === undefined || m.rolloutId === rolloutId);

let syncs = 0;
/**
 * A round trip on the runner's socket: a frame of an unknown type is answered with an error,
 * so once that arrives, everything the server sent before it (hello's `desired`, say) has too.
 */
async function sync(runner: TestRunner): Promise<void> {
  const type = `sync-${++syncs}`;
  runner.sendRaw({ type });
  await runner.waitFor((m) => m.type === "error" && m.message.includes(type));
}

/** Whether `p` is still pending a moment from now. */
const pending = async (p: Promise<unknown>) => (await Promise.race([p.then(() => "settled"), sleep(50).then(() => "pending")])) === "pending";

/** An access token of a new service account holding only the predefined role `roleId`. */
async function tokenWithRole(roleId: string): Promise<string> {
  const name = `sa-${crypto.randomUUID().slice(0, 8)}`;
  const accounts = client(ServiceAccountService, admin.accessToken);
  const { clientId, clientSecret } = await accounts.create({ name });
  const account = (await accounts.list({})).serviceAccounts.find((s) => s.name === name)!;
  await client(RoleService, admin.accessToken).assign({ roleId, entityId: { kind: { case: "serviceAccountId", value: account.serviceAccountId } } });
  const session = await client(AuthService).login({ method: { case: "clientCredentials", value: { clientId, clientSecret } } });
  return session.token!.accessToken;
}

// ---- WebSockets --------------------------------------------------------------------------------

const post = (path: string, token: string, body?: unknown) =>
  exports.default.fetch(`${baseUrl}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });

/** POSTs for a ticket and answers the socket URL it gives. */
async function ticketUrl(path: string, body?: unknown): Promise<string> {
  const res = await post(path, admin.accessToken, body);
  expect(res.status, `${path}: ${res.status}`).toBe(200);
  return ((await res.json()) as { url: string }).url;
}

/** A client socket: every JSON frame it received, and its close. */
async function openSocket(url: string) {
  const res = await exports.default.fetch(`${baseUrl}${url}`, { headers: { upgrade: "websocket" } });
  expect(res.status, `${url}: ${res.status}`).toBe(101);
  const ws = res.webSocket!;
  const frames: unknown[] = [];
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.addEventListener("close", (e) => resolve({ code: e.code, reason: e.reason })));
  ws.addEventListener("message", (m) => {
    if (!isPong(m.data)) frames.push(JSON.parse(m.data as string));
  });
  ws.accept();
  keepAlive(ws);
  return { ws, frames, closed };
}

interface WireEvent {
  seq: number;
  type: string;
  data: Record<string, unknown>;
}

/** A subscription to an event stream: frames hold one event or an array of them. */
async function subscribe(url: string) {
  const socket = await openSocket(url);
  const events = () => socket.frames.flatMap((f) => (Array.isArray(f) ? f : [f])) as WireEvent[];
  const waitFor = (ok: (e: WireEvent[]) => boolean, what: string) => eventually(async () => events(), ok, what);
  return { ...socket, events, waitFor };
}

const utf8 = (text: string) => b64(new TextEncoder().encode(text));
const fromUtf8Base64 = (data: string) => new TextDecoder().decode(Uint8Array.from(atob(data), (c) => c.charCodeAt(0)));

beforeAll(async () => {
  admin = await fileAdmin();
  await client(ProjectService, admin.accessToken).create({ projectId: PROJECT });
});

// ---- Tests ---------------------------------------------------------------------------------------

describe("runner connection", () => {
  it("refuses a token without runner:connect for the environment", async () => {
    const environmentId = await environment("guarded");
    const elsewhere = await environment("elsewhere");
    const err = await errorOf(TestRunner.connect({ environmentId, token: await tokenFor(elsewhere) }));
    expect(err.code).toBe(Code.PermissionDenied);
    expect(err.rawMessage).toContain("runner:connect");
    // A viewer may look at everything but is no runner.
    expect(await codeOf(TestRunner.connect({ environmentId, token: await tokenWithRole("viewer") }))).toBe(Code.PermissionDenied);
  });

  it("lets a newer connection supersede the first, and resends it every deployed capsule's desired rollout", async () => {
    const { environmentId, runner: first } = await withRunner("takeover");
    const [a, b, gone] = [await capsule(), await capsule(), await capsule()];
    for (const c of [a, b, gone]) {
      await deploy(environmentId, c, [image(), replicas(1)]);
      await until(c, 1n, settled, "settled");
    }
    // A stopped capsule is no longer deployed: nothing of it is resent.
    await capsules().stopRollout({ projectId: PROJECT, capsuleId: gone, rolloutId: 1n });
    await first.waitFor((m) => m.type === "stop" && m.capsuleId === gone);

    const second = await connect(environmentId, {}, "second");
    expect(await first.closed).toMatchObject({ code: 4001 });
    await sync(second);
    const desired = second.received.filter((m) => m.type === "desired");
    expect(desired.map((m) => m.capsuleId).sort()).toEqual([a, b].sort());
    expect(desired.find(desiredFor(a))).toMatchObject({ projectId: PROJECT, rolloutId: 1, config: { replicas: 1, imageId: IMAGE } });

    // What happens next goes to the newer runner only.
    await deploy(environmentId, a, [replicas(2)]);
    await second.waitFor(desiredFor(a, 2));
    await until(a, 2n, settled, "settled by the second runner");
    expect(await runnerInfo(environmentId)).toMatchObject({ connected: true, name: "second" });
  });
});

describe("a runner that goes away mid-rollout", () => {
  it("leaves the rollout waiting, says so, and lets a new connection finish it", async () => {
    const { environmentId, runner } = await withRunner("drop", { apply: "never" });
    const c = await capsule();
    await deploy(environmentId, c, [image(), replicas(2)]);
    await runner.waitFor(desiredFor(c, 1));
    expect(runnerStep(await rollout(c, 1n)).message).toBe("sent to runner drop-runner; waiting for it to create the resources");

    runner.disconnect();
    await runner.closed;
    const waiting = await until(c, 1n, (r) => /disconnected/.test(runnerStep(r).message), "says the runner disconnected");
    expect(runnerStep(waiting).message).toMatch(/^runner drop-runner disconnected at \d{4}-\d\d-\d\dT[\d:.]+Z; waiting for it to reconnect$/);
    expect(waiting.status!.state).toBe(State.RESOURCE_CREATION);
    expect(runnerStep(waiting).state).toBe(StepState.ONGOING);

    const back = await connect(environmentId, {}, "back");
    expect(await back.waitFor(desiredFor(c, 1))).toMatchObject({ config: { replicas: 2 } });
    const done = await until(c, 1n, settled, "settled after the reconnect");
    expect(runnerStep(done).state).toBe(StepState.DONE);
    expect(instancesStep(done)).toMatchObject({ numUpdated: 2, numReady: 2, numStuck: 0, numWrongVersion: 0 });
  });

  /**
   * A rollout RUNNING with a crashing instance (so still in progress) whose runner drops and
   * comes back, reporting by hand what a real runner would: the resources exist, the
   * instance still crashes.
   */
  async function reconnectWhileRunning(name: string) {
    const { environmentId, runner } = await withRunner(name, { instances: "crashing" });
    const c = await capsule();
    await deploy(environmentId, c, [image(), replicas(1)]);
    await until(c, 1n, (r) => instancesStep(r)?.numStuck === 1, "1 stuck instance");
    const stub = env.ROLLOUTS.getByName(rolloutName(PROJECT, c, 1));
    const deadline = await runInDurableObject(stub, (_o, state) => state.storage.getAlarm());
    expect(deadline).not.toBeNull();
    runner.disconnect();
    await until(c, 1n, (r) => /disconnected/.test(instancesStep(r)?.info?.message ?? ""), "the instances step says the runner disconnected");

    const back = await connect(environmentId, { apply: "never" }, "back");
    await back.waitFor(desiredFor(c, 1));
    back.send({ type: "applied", projectId: PROJECT, capsuleId: c, rolloutId: 1, resources: [{ kind: "Deployment", name: c }] });
    back.reportInstances(PROJECT, c, [{ instanceId: `${c}-1-0`, rolloutId: 1, ready: false, state: "running", restarts: 5, message: "still crashing" }]);
    // A capsule's reports are handled in order: once these instances are in, so is everything before.
    await eventually(
      () => capsules().listInstances({ projectId: PROJECT, capsuleId: c, environmentId }),
      (l) => l.instances[0]?.message === "still crashing",
      "the reconnected runner's instances",
    );
    return { c, stub, deadline };
  }

  it("does not tell a RUNNING rollout that its resources are still to be created after a reconnect", async () => {
    const { c } = await reconnectWhileRunning("reconnect-message");
    const r = await rollout(c, 1n);
    expect(r.status!.state).toBe(State.RUNNING);
    expect(instancesStep(r)).toMatchObject({ numUpdated: 1, numStuck: 1 });
    // Whatever it says now, it is not that the runner is gone, nor that resources are still to come.
    expect(instancesStep(r)!.info!.message).not.toMatch(/disconnected|create the resources/);
  });

  it("keeps the readiness deadline when a reconnected runner reports the same rollout again", async () => {
    const { stub, deadline } = await reconnectWhileRunning("reconnect-deadline");
    // The timeout runs from when the resources were created, not from the runner's last reconnect.
    expect(await runInDurableObject(stub, (_o, state) => state.storage.getAlarm())).toBe(deadline);
  });
});

describe("objects evicted mid-rollout", () => {
  it("a RolloutDO evicted while waiting for the runner carries on from storage", async () => {
    const { environmentId, runner } = await withRunner("evict-rollout", { apply: "never" });
    const c = await capsule();
    await deploy(environmentId, c, [image(), replicas(2)]);
    const stub = () => env.ROLLOUTS.getByName(rolloutName(PROJECT, c, 1));
    await runner.waitFor(desiredFor(c, 1));
    await evictDurableObject(stub());

    runner.send({ type: "applied", projectId: PROJECT, capsuleId: c, rolloutId: 1, resources: [{ kind: "Deployment", name: c }] });
    const running = await until(c, 1n, (r) => r.status!.state === State.RUNNING, "RUNNING");
    expect(instancesStep(running)).toMatchObject({ numReady: 0, info: { state: StepState.ONGOING } });

    await evictDurableObject(stub());
    const started = new Date().toISOString();
    runner.reportInstances(PROJECT, c, [0, 1].map((i) => ({ instanceId: `${c}-${i}`, rolloutId: 1, ready: true, state: "running" as const, startedAt: started })));
    const done = await until(c, 1n, settled, "settled");
    expect(instancesStep(done)).toMatchObject({ numUpdated: 2, numReady: 2 });

    // Each step was logged exactly once across the evictions.
    const events = (await capsules().listEvents({ projectId: PROJECT, capsuleId: c, rolloutId: 1n })).events.map((e) => e.message);
    expect(events.filter((m) => m.startsWith("resources created"))).toHaveLength(1);
    expect(events.filter((m) => m.startsWith("rollout is running"))).toHaveLength(1);
    expect(new Set(events).size).toBe(events.length);
  });

  it("an EnvironmentDO evicted mid-rollout keeps its hibernated runner socket, and the rollout finishes", async () => {
    const { environmentId, runner } = await withRunner("evict-env", { apply: "never" });
    const c = await capsule();
    await deploy(environmentId, c, [image(), replicas(1)]);
    await runner.waitFor(desiredFor(c, 1));
    await evictDurableObject(env.ENVIRONMENTS.getByName(environmentId));
    // Hibernation, not a disconnect: the socket stays open and the object still knows its runner.
    expect(await pending(runner.closed)).toBe(true);
    expect(await runnerInfo(environmentId)).toMatchObject({ connected: true, name: "evict-env-runner" });

    runner.send({ type: "applied", projectId: PROJECT, capsuleId: c, rolloutId: 1, resources: [{ kind: "Deployment", name: c }] });
    runner.reportInstances(PROJECT, c, [{ instanceId: `${c}-0`, rolloutId: 1, ready: true, state: "running" }]);
    await until(c, 1n, settled, "settled");
    expect(runnerStep(await rollout(c, 1n)).message).toBe("resources created by the runner");

    // And the woken object still reaches the runner.
    await evictDurableObject(env.ENVIRONMENTS.getByName(environmentId));
    await capsules().restartInstance({ projectId: PROJECT, capsuleId: c, environmentId, instanceId: `${c}-0` });
    await runner.waitFor((m) => m.type === "restart-instance" && m.instanceId === `${c}-0`);
  });

  it("an EnvironmentDO evicted with its sockets closed loses the runner, which reconnects and is resent its work", async () => {
    const { environmentId, runner } = await withRunner("evict-close", { apply: "never" });
    const c = await capsule();
    await deploy(environmentId, c, [image(), replicas(1)]);
    await runner.waitFor(desiredFor(c, 1));
    await evictDurableObject(env.ENVIRONMENTS.getByName(environmentId), { webSockets: "close" });
    // The runtime drops the socket without a close frame, and the object gets no close event:
    // the sweep of silent sockets, still due on the object's alarm, records the disconnect.
    expect(await runner.closed).toMatchObject({ code: 1006 });
    expect(await runnerInfo(environmentId)).toMatchObject({ connected: false });
    await until(c, 1n, (r) => /disconnected/.test(runnerStep(r).message), "the step says the runner disconnected");
    expect((await rollout(c, 1n)).status!.state).toBe(State.RESOURCE_CREATION);
    const types = await runInDurableObject(env.ENVIRONMENTS.getByName(environmentId), async (o) => (await o.events()).map((e) => e.type));
    expect(types.filter((t) => t === "runner.disconnected")).toHaveLength(1);

    const back = await connect(environmentId, {}, "back");
    await back.waitFor(desiredFor(c, 1));
    await until(c, 1n, settled, "settled after the reconnect");
  });
});

describe("a runner that vanishes", () => {
  /** A settled capsule, an Execute session relayed through the runner, a subscriber of the environment's events, a rollout in progress. */
  async function busyRunner(name: string) {
    const { environmentId, runner } = await withRunner(name);
    const c = await capsule();
    await deploy(environmentId, c, [image(), replicas(1)]);
    await until(c, 1n, settled, "settled");
    const url = await ticketUrl(`/environments/${environmentId}/exec/tickets`, { projectId: PROJECT, capsuleId: c, instanceId: `${c}-1-0`, command: "sh", arguments: [] });
    const session = await openSocket(url);
    await runner.waitFor("exec-start");
    const events = await subscribe(`${await ticketUrl(`/environments/${environmentId}/events/tickets`)}&after=0`);
    // And a rollout in progress, waiting on the runner to create its resources.
    runner.behavior.apply = "never";
    const waiting = await capsule();
    await deploy(environmentId, waiting, [image(), replicas(1)]);
    await runner.waitFor(desiredFor(waiting, 1));
    return { environmentId, runner, session, events, waiting };
  }

  /** What a runner's disappearance must leave behind: recorded once, announced once, sessions closed, the rollout told. */
  async function expectNoticed(x: Awaited<ReturnType<typeof busyRunner>>) {
    expect(await x.session.closed).toMatchObject({ code: 1011, reason: "the runner disconnected" });
    const gone = await x.events.waitFor((e) => e.some((ev) => ev.type === "runner.disconnected"), "runner.disconnected");
    expect(gone.filter((e) => e.type === "runner.disconnected").map((e) => e.data)).toEqual([{ name: x.runner.name }]);
    const info = await runnerInfo(x.environmentId);
    expect(info).toMatchObject({ connected: false, name: x.runner.name });
    expect(info.disconnectedAt).toBeGreaterThan(0);
    await until(x.waiting, 1n, (r) => /disconnected/.test(runnerStep(r).message), "the waiting rollout says the runner disconnected");
  }

  it("notices a connection that dropped without a close frame (the runtime reports 1006)", async () => {
    const x = await busyRunner("vanish");
    // What the runtime does when the runner's TCP connection dies: it calls the object's close
    // handler with 1006, a code that must never be sent back.
    await runInDurableObject(env.ENVIRONMENTS.getByName(x.environmentId), async (object, state) => {
      for (const ws of state.getWebSockets("runner")) await object.webSocketClose(ws, 1006);
    });
    await expectNoticed(x);
    // The object answered the close with a code that may be sent.
    expect((await x.runner.closed).code).toBe(1000);
  });

  it("takes a runner silent past the deadline for gone: closed with 4008, and the same consequences", async () => {
    const x = await busyRunner("mute");
    x.runner.stopPinging();
    const closed = await x.runner.closed;
    expect(closed.code).toBe(4008);
    expect(closed.reason).toMatch(/no ping for 3s/);
    await expectNoticed(x);
    // The subscriber and the session kept pinging or were closed: nothing is left to sweep but the subscriber.
    expect(x.events.ws.readyState).toBe(WebSocket.OPEN);
  });

  it("closes a silent event subscriber with 4008, and keeps no sweep once no socket is left", async () => {
    const environmentId = await environment("mute-sub");
    const res = await exports.default.fetch(`${baseUrl}${await ticketUrl(`/environments/${environmentId}/events/tickets`)}&after=0`, { headers: { upgrade: "websocket" } });
    const ws = res.webSocket!;
    const closed = new Promise<number>((resolve) => ws.addEventListener("close", (e) => resolve(e.code)));
    ws.accept();
    expect(await closed).toBe(4008);
    const stub = env.ENVIRONMENTS.getByName(environmentId);
    await eventually(() => runInDurableObject(stub, (_o, state) => state.storage.getAlarm()), (a) => a === null, "no alarm left");
  });
});

describe("runner reports", () => {
  it("ends a rollout whose resources could not be created FAILED, with an error event; the next deploy needs no force", async () => {
    const { environmentId, runner } = await withRunner("fail", { apply: "fail" });
    const c = await capsule();
    await deploy(environmentId, c, [image(), replicas(1)]);
    const failed = await until(c, 1n, (r) => r.status!.state === State.STOPPED, "STOPPED");
    expect(failed.status!.result).toBe(Result.FAILED);
    expect(runnerStep(failed)).toMatchObject({ state: StepState.FAILED, message: "test runner was told to fail applying rollout 1" });
    const events = (await capsules().listEvents({ projectId: PROJECT, capsuleId: c, rolloutId: 1n })).events;
    const errors = events.filter((e) => e.eventData?.kind.case === "error");
    expect(errors.map((e) => e.message)).toEqual(["resource creation failed: test runner was told to fail applying rollout 1"]);

    runner.behavior.apply = "ok";
    const next = await deploy(environmentId, c, [replicas(2)]);
    expect(next.rolloutId).toBe(2n);
    await until(c, 2n, settled, "settled");
    // The failed rollout keeps its result.
    expect((await rollout(c, 1n)).status!.result).toBe(Result.FAILED);
  });

  it("sends the project settings' credentials of the image's registry, and only those, with desired", async () => {
    const { environmentId, runner } = await withRunner("registry");
    await client(SettingsService, admin.accessToken).updateSettings({
      updates: [
        { field: { case: "addDockerRegistry", value: { host: "registry.test", field: { case: "credentials", value: { username: "puller", password: "pull-secret-1" } } } } },
        { field: { case: "addDockerRegistry", value: { host: "ghcr.io", field: { case: "auth", value: btoa("robot:ghcr-token") } } } },
      ],
    });
    const [withAuth, without] = [await capsule(), await capsule()];
    await deploy(environmentId, withAuth, [{ field: { case: "addImage", value: { image: "registry.test/team/app:v1" } } }, replicas(1)]);
    expect((await runner.waitFor(desiredFor(withAuth, 1))).registries).toEqual([{ host: "registry.test", username: "puller", password: "pull-secret-1" }]);
    await deploy(environmentId, without, [image(), replicas(1)]);
    expect((await runner.waitFor(desiredFor(without, 1))).registries).toBeUndefined();
  });

  it("counts instances running another rollout as wrong version, and the rollout is not healthy", async () => {
    const { environmentId } = await withRunner("wrong", { instances: "wrong-version" });
    const c = await capsule();
    await deploy(environmentId, c, [image(), replicas(2)]);
    const r = await until(c, 1n, (x) => instancesStep(x)?.numWrongVersion === 2, "2 instances of the wrong version");
    expect(r.status!.state).toBe(State.RUNNING);
    expect(instancesStep(r)).toMatchObject({ numUpdated: 0, numReady: 0, numWrongVersion: 2 });
    expect(instancesStep(r)!.info).toMatchObject({ state: StepState.ONGOING, message: "0 of 2 instance(s) ready, 2 running another rollout" });
    // Still in progress: another deploy must wait or force.
    expect(await codeOf(deploy(environmentId, c, [replicas(1)]))).toBe(Code.FailedPrecondition);
  });
});

describe("frames the protocol's schema refuses", () => {
  const q = (environmentId: string, capsuleId: string) => ({ projectId: PROJECT, capsuleId, environmentId, includeDeleted: true });
  const refusal = (runner: TestRunner, text: RegExp) => runner.waitFor((m) => m.type === "error" && text.test(m.message));

  it("answers a frame that fails the schema with an error, stores nothing of it, and keeps the connection", async () => {
    const { environmentId, runner } = await withRunner("poison");
    const c = await capsule();
    runner.reportInstances(PROJECT, c, [{ instanceId: `${c}-1-0`, rolloutId: 1, ready: true }]);
    await eventually(() => capsules().listInstances(q(environmentId, c)), (l) => l.total === 1n, "the good report stored");

    const instance = { instanceId: `${c}-bad`, ready: true };
    const poisons: [object | string, RegExp][] = [
      [{ type: "instances", projectId: PROJECT, capsuleId: c, instances: [{ ...instance, rolloutId: "abc" }] }, /^invalid instances frame: instances\.0\.rolloutId "abc"/],
      [{ type: "instances", projectId: PROJECT, capsuleId: c, instances: [{ ...instance, rolloutId: 1.5 }] }, /instances\.0\.rolloutId 1\.5/],
      [{ type: "instances", projectId: PROJECT, capsuleId: c, instances: [{ ...instance, rolloutId: 1, restarts: "many" }] }, /instances\.0\.restarts "many"/],
      [{ type: "instances", projectId: PROJECT, capsuleId: c, instances: "all of them" }, /^invalid instances frame: instances "all of them"/],
      [{ type: "log", projectId: PROJECT, capsuleId: c, instanceId: `${c}-1-0`, lines: [{ stream: "stdout", text: 7 }] }, /lines\.0\.text 7/],
      [{ type: "metrics", projectId: PROJECT, capsuleId: c, samples: [{ instanceId: `${c}-1-0`, cpuMs: "lots", memoryBytes: 1 }] }, /samples\.0\.cpuMs "lots"/],
      [{ type: "applied", projectId: PROJECT, capsuleId: c, rolloutId: 1 }, /resources missing/],
      ["not json", /one JSON message with a type/],
      [{ no: "type" }, /one JSON message with a type/],
      [{ type: "x".repeat(10_000) }, /^unknown message type "x{79}…$/],
    ];
    for (const [frame, text] of poisons) {
      runner.sendRaw(frame);
      expect(await refusal(runner, text)).toMatchObject({ code: "invalid_argument" });
      runner.received.length = 0;
    }
    // Nothing of them was stored: the earlier report stands, no line, no sample.
    const listed = await capsules().listInstances(q(environmentId, c));
    expect(listed.instances.map((i) => [i.instanceId, i.rolloutId, i.restartCount])).toEqual([[`${c}-1-0`, 1n, 0]]);
    expect((await capsules().listInstanceStatuses(q(environmentId, c))).total).toBe(1n);
    expect((await capsules().capsuleMetrics({ projectId: PROJECT, capsuleId: c, environmentId })).instanceMetrics).toEqual([]);
    // The connection still serves: the next good report is taken.
    runner.reportInstances(PROJECT, c, [{ instanceId: `${c}-1-0`, rolloutId: 1, ready: true, restarts: 2 }]);
    await eventually(() => capsules().listInstances(q(environmentId, c)), (l) => l.instances[0]?.restartCount === 2, "the next report stored");
    expect(runner.invalid).toEqual([]);
  });

  it("reads instances stored before frames were checked: unreadable rollouts are skipped, bad fields read as defaults", async () => {
    const { environmentId, runner } = await withRunner("legacy");
    const c = await capsule();
    runner.reportInstances(PROJECT, c, [{ instanceId: `${c}-1-0`, rolloutId: 1, ready: true }]);
    await eventually(() => capsules().listInstances(q(environmentId, c)), (l) => l.total === 1n, "the good report stored");
    // What an unchecked runner could store before: text and fractions in integer columns, live and deleted.
    await runInDurableObject(env.ENVIRONMENTS.getByName(environmentId), (_o, state) => {
      const insert = (id: string, rolloutId: unknown, restarts: unknown, deletedAt: number | null) =>
        state.storage.sql.exec(
          `INSERT INTO instances (project_id, capsule_id, instance_id, rollout_id, state, ready, restarts, message, node, created_at, started_at, updated_at, deleted_at)
           VALUES (?, ?, ?, ?, 'running', 1, ?, '', '', 1, NULL, 1, ?)`,
          PROJECT, c, id, rolloutId, restarts, deletedAt,
        );
      insert(`${c}-abc`, "abc", 0, 5);
      insert(`${c}-half`, 1.5, 0, null);
      insert(`${c}-many`, 1, "many", 5);
    });
    const listed = await capsules().listInstances(q(environmentId, c));
    expect(listed.instances.map((i) => [i.instanceId, i.restartCount])).toEqual([[`${c}-1-0`, 0], [`${c}-many`, 0]]);
    const statuses = await capsules().listInstanceStatuses(q(environmentId, c));
    expect(statuses.instances.map((i) => i.instanceId)).toEqual([`${c}-1-0`, `${c}-many`]);
    expect(await codeOf(capsules().getInstanceStatus({ projectId: PROJECT, capsuleId: c, environmentId, instanceId: `${c}-abc` }))).toBe(Code.NotFound);
  });
});

describe("instances", () => {
  const ids = (list: { instanceId: string }[]) => list.map((i) => i.instanceId);

  it("lists existing and deleted instances and their statuses as the runner reports them", async () => {
    const { environmentId, runner } = await withRunner("instances");
    const c = await capsule();
    const q = { projectId: PROJECT, capsuleId: c, environmentId };
    await deploy(environmentId, c, [image(), replicas(2)]);
    await until(c, 1n, settled, "settled");
    const first = await capsules().listInstances(q);
    expect(first.total).toBe(2n);
    expect(first.instances[0]).toMatchObject({ instanceId: `${c}-1-0`, rolloutId: 1n, imageId: IMAGE, state: InstanceState.RUNNING, restartCount: 0 });
    expect(first.instances[0]!.finishedAt).toBeUndefined();

    // A smaller replica count: the runner replaces both instances with one of rollout 2.
    await deploy(environmentId, c, [replicas(1)]);
    await until(c, 2n, settled, "settled");
    expect(ids((await capsules().listInstances(q)).instances)).toEqual([`${c}-2-0`]);
    expect(ids((await capsules().listInstances({ ...q, includeDeleted: true })).instances)).toEqual([`${c}-1-0`, `${c}-1-1`, `${c}-2-0`]);
    const deleted = await capsules().listInstances({ ...q, includeDeleted: true, excludeExisting: true });
    expect(ids(deleted.instances)).toEqual([`${c}-1-0`, `${c}-1-1`]);
    expect(deleted.total).toBe(2n);
    expect(deleted.instances.every((i) => i.finishedAt !== undefined)).toBe(true);
    expect((await capsules().listInstances({ ...q, excludeExisting: true })).total).toBe(0n);

    const statuses = await capsules().listInstanceStatuses({ ...q, includeDeleted: true });
    expect(ids(statuses.instances)).toEqual([`${c}-1-0`, `${c}-1-1`, `${c}-2-0`]);
    const live = statuses.instances[2]!;
    expect(live).toMatchObject({ rolloutId: 2n, image: IMAGE });
    expect(live.stages!.deleted).toBeUndefined();
    expect(live.stages!.running!.steps[0]!.step).toMatchObject({ case: "ready", value: { state: ReadyState.READY } });
    expect(statuses.instances[0]!.stages!.deleted).toBeDefined();
    expect(ids((await capsules().listInstanceStatuses({ ...q, includeDeleted: true, excludeExisting: true })).instances)).toEqual([`${c}-1-0`, `${c}-1-1`]);

    const one = await capsules().getInstanceStatus({ ...q, instanceId: `${c}-1-1` });
    expect(one.status).toMatchObject({ instanceId: `${c}-1-1`, rolloutId: 1n });
    expect(one.status!.stages!.deleted).toBeDefined();
    expect(await codeOf(capsules().getInstanceStatus({ ...q, instanceId: "nope" }))).toBe(Code.NotFound);

    // Stopping the rollout removes its instances; they stay listed as deleted.
    await capsules().stopRollout({ projectId: PROJECT, capsuleId: c, rolloutId: 2n });
    await runner.waitFor((m) => m.type === "stop" && m.capsuleId === c && m.rolloutId === 2);
    await eventually(() => capsules().listInstances(q), (l) => l.total === 0n, "no instances after the stop");
    expect((await capsules().listInstances({ ...q, includeDeleted: true, excludeExisting: true })).total).toBe(3n);
  });

  it("relays RestartInstance to the runner, and refuses unknown instances and a missing runner", async () => {
    const { environmentId, runner } = await withRunner("restart");
    const c = await capsule();
    const q = { projectId: PROJECT, capsuleId: c, environmentId };
    await deploy(environmentId, c, [image(), replicas(1)]);
    await until(c, 1n, settled, "settled");

    await capsules().restartInstance({ ...q, instanceId: `${c}-1-0` });
    expect(await runner.waitFor((m) => m.type === "restart-instance")).toEqual({ type: "restart-instance", projectId: PROJECT, capsuleId: c, instanceId: `${c}-1-0` });
    await eventually(() => capsules().listInstances(q), (l) => l.instances[0]?.restartCount === 1, "the restart reported");

    expect(await codeOf(capsules().restartInstance({ ...q, instanceId: "nope" }))).toBe(Code.NotFound);
    expect(await codeOf(capsules().restartInstance({ ...q, instanceId: "" }))).toBe(Code.InvalidArgument);

    runner.disconnect();
    await runner.closed;
    const err = await eventually(
      () => capsules().restartInstance({ ...q, instanceId: `${c}-1-0` }).then(() => null, (e: unknown) => ConnectError.from(e)),
      (e) => e?.code === Code.FailedPrecondition,
      "refused without a runner",
    );
    expect(err!.rawMessage).toMatch(/no runner is connected to environment r-restart/);
  });
});

describe("logs and metrics", () => {
  /** Every message of a non-following Logs call. */
  async function logs(req: { capsuleId: string; environmentId: string; instanceId?: string; since?: { seconds: bigint } }) {
    const out: { instanceId: string; stream: string; text: string }[] = [];
    for await (const res of capsules().logs({ projectId: PROJECT, ...req })) {
      const m = res.log!.message!.message;
      out.push({ instanceId: res.log!.instanceId, stream: m.case!, text: new TextDecoder().decode(m.value as Uint8Array) });
    }
    return out;
  }

  it("cuts a line over 16 KiB and keeps at most 8 MiB of lines per environment, the newest", async () => {
    const { environmentId, runner } = await withRunner("log-caps");
    const c = await capsule();
    await deploy(environmentId, c, [image(), replicas(1)]);
    await until(c, 1n, settled, "settled");
    const instanceId = `${c}-1-0`;
    const { logLineBytes, logBytes } = defaults.runnerReports;
    // One line of 600 KB (of two-byte characters, so the cut must not split one).
    runner.log(PROJECT, c, instanceId, ["é".repeat(300_000)]);
    const [long] = await eventually(() => logs({ capsuleId: c, environmentId }), (l) => l.length === 1, "the long line");
    const bytes = new TextEncoder().encode(long!.text.trimEnd()).length;
    expect(bytes).toBeLessThanOrEqual(logLineBytes);
    expect(long!.text).toMatch(/^é+ …\[cut: the line had 600000 bytes\]\n$/);

    // 9 MiB more in lines of 16 KiB: only the newest 8 MiB stay.
    const line = (i: number) => `${String(i).padStart(6, "0")} ${"x".repeat(logLineBytes - 7)}`;
    const total = Math.ceil((9 * 1024 * 1024) / logLineBytes);
    for (let i = 0; i < total; i += 40) runner.log(PROJECT, c, instanceId, Array.from({ length: Math.min(40, total - i) }, (_, k) => line(i + k)));
    const kept = await eventually(
      () => runInDurableObject(env.ENVIRONMENTS.getByName(environmentId), (_o, state) =>
        state.storage.sql.exec<{ n: number; bytes: number; last: string }>("SELECT COUNT(*) AS n, SUM(length(CAST(text AS BLOB))) AS bytes, MAX(text) AS last FROM logs").one()),
      (k) => k.last.startsWith(String(total - 1).padStart(6, "0")),
      "the last line stored",
    );
    expect(kept.bytes).toBeLessThanOrEqual(logBytes);
    expect(kept.bytes).toBeGreaterThan(logBytes - logLineBytes);
    expect(kept.n).toBe(Math.floor(logBytes / logLineBytes));
  });

  it("answers the runner's log lines: history, per instance, since, and followed live", async () => {
    const { environmentId, runner } = await withRunner("logs");
    const c = await capsule();
    await deploy(environmentId, c, [image(), replicas(2)]);
    await until(c, 1n, settled, "settled");
    const [i0, i1] = [`${c}-1-0`, `${c}-1-1`];
    const anHourAgo = new Date(Date.now() - 3_600_000).toISOString();
    runner.log(PROJECT, c, i0, [{ stream: "stdout", text: "old line", time: anHourAgo }, { stream: "stdout", text: "hello from 0" }]);
    runner.log(PROJECT, c, i1, [{ stream: "stderr", text: "oops from 1\n" }]);

    const all = await eventually(() => logs({ capsuleId: c, environmentId }), (l) => l.length === 3, "3 lines");
    expect(all).toEqual([
      { instanceId: i0, stream: "stdout", text: "old line\n" },
      { instanceId: i0, stream: "stdout", text: "hello from 0\n" },
      { instanceId: i1, stream: "stderr", text: "oops from 1\n" },
    ]);
    expect(await logs({ capsuleId: c, environmentId, instanceId: i1 })).toEqual([all[2]]);
    expect(await logs({ capsuleId: c, environmentId, since: { seconds: 600n } })).toEqual(all.slice(1));
    expect(await codeOf(logs({ capsuleId: c, environmentId, instanceId: "nope" }))).toBe(Code.NotFound);

    // Follow: the history, then a line sent after the stream started.
    const abort = new AbortController();
    const stream = capsules().logs({ projectId: PROJECT, capsuleId: c, environmentId, follow: true }, { signal: abort.signal })[Symbol.asyncIterator]();
    const next = async () => {
      const r = await Promise.race([stream.next(), sleep(5000).then(() => null)]);
      if (!r || r.done) throw new Error("the followed stream gave no line within 5 s");
      return new TextDecoder().decode(r.value.log!.message!.message.value as Uint8Array);
    };
    expect([await next(), await next(), await next()]).toEqual(all.map((l) => l.text));
    runner.log(PROJECT, c, i1, ["live line"]);
    expect(await next()).toBe("live line\n");
    abort.abort();
    await stream.return?.(undefined).catch(() => {});
    // Wakes the server's long poll, so the abandoned call ends now rather than at its poll timeout.
    runner.log(PROJECT, c, i1, ["after the client left"]);
  });

  it("answers CapsuleMetrics and custom metrics from the runner's samples", async () => {
    const { environmentId, runner } = await withRunner("metrics");
    const c = await capsule();
    const q = { projectId: PROJECT, capsuleId: c, environmentId };
    const [i0, i1] = [`${c}-1-0`, `${c}-1-1`];
    const tenMinutesAgo = new Date(Date.now() - 600_000).toISOString();
    const now = new Date().toISOString();
    runner.metrics(PROJECT, c, [
      { instanceId: i0, time: tenMinutesAgo, cpuMs: 10, memoryBytes: 1000, custom: { requests: 1 } },
      { instanceId: i0, time: now, cpuMs: 20, memoryBytes: 2000, storageBytes: 5, custom: { requests: 3, queue: 4 } },
      { instanceId: i1, time: now, cpuMs: 30, memoryBytes: 3000 },
    ]);
    const all = await eventually(() => capsules().capsuleMetrics(q), (m) => m.instanceMetrics.length === 3, "3 samples");
    expect(all.instanceMetrics.map((m) => [m.instanceId, m.mainContainer?.cpuMs, m.mainContainer?.memoryBytes, m.mainContainer?.storageBytes])).toEqual([
      [i0, 10n, 1000n, 0n],
      [i0, 20n, 2000n, 5n],
      [i1, 30n, 3000n, 0n],
    ]);
    expect(all.instanceMetrics[0]).toMatchObject({ capsuleId: c });
    const one = await capsules().capsuleMetrics({ ...q, instanceId: i1 });
    expect(one.instanceMetrics.map((m) => m.instanceId)).toEqual([i1]);
    const recent = await capsules().capsuleMetrics({ ...q, since: { seconds: BigInt(Math.floor(Date.now() / 1000) - 300), nanos: 0 } });
    expect(recent.instanceMetrics.map((m) => m.mainContainer?.cpuMs)).toEqual([20n, 30n]);

    const custom = await capsules().getCustomInstanceMetrics(q);
    expect(custom.metrics.map((m) => [m.name, m.latestValue])).toEqual([
      ["queue", 4],
      ["requests", 3],
    ]);
    expect(Number(custom.metrics[0]!.latestTimestamp!.seconds)).toBe(Math.floor(Date.parse(now) / 1000));
  });

  it("answers failed_precondition for metrics where no runner ever connected", async () => {
    const environmentId = await environment("silent");
    const c = await capsule();
    const q = { projectId: PROJECT, capsuleId: c, environmentId };
    const err = await errorOf(capsules().capsuleMetrics(q));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toMatch(/no runner is connected to environment r-silent/);
    expect(await codeOf(capsules().getCustomInstanceMetrics(q))).toBe(Code.FailedPrecondition);
  });
});

describe("Execute", () => {
  /** A raw Connect streaming call (connect-web cannot make bidirectional calls): the end-of-stream message. */
  async function executeRpc() {
    const json = new TextEncoder().encode(JSON.stringify({ projectId: PROJECT, start: { capsuleId: "x", instanceId: "y", command: "sh" } }));
    const body = new Uint8Array(5 + json.length);
    new DataView(body.buffer).setUint32(1, json.length);
    body.set(json, 5);
    const res = await exports.default.fetch(`${baseUrl}/api.v1.capsule.Service/Execute`, {
      method: "POST",
      headers: { "content-type": "application/connect+json", authorization: `Bearer ${admin.accessToken}` },
      body,
    });
    const bytes = new Uint8Array(await res.arrayBuffer());
    // Envelopes: a flags byte, a 4-byte length, the JSON; the last one (flag 2) ends the stream.
    let end: { error?: { code: string; message: string } } | undefined;
    for (let at = 0; at + 5 <= bytes.length; ) {
      const len = new DataView(bytes.buffer, bytes.byteOffset + at + 1, 4).getUint32(0);
      if (bytes[at]! & 2) end = JSON.parse(new TextDecoder().decode(bytes.subarray(at + 5, at + 5 + len)));
      at += 5 + len;
    }
    return end;
  }

  it("answers the RPC unimplemented, pointing at the WebSocket session", async () => {
    const end = await executeRpc();
    expect(end?.error?.code).toBe("unimplemented");
    expect(end?.error?.message).toMatch(/WebSocket.*\/environments\/<id>\/exec\/tickets/);
  });

  it("relays a session between the client's WebSocket and the runner", async () => {
    const { environmentId, runner } = await withRunner("exec");
    const c = await capsule();
    await deploy(environmentId, c, [image(), replicas(1)]);
    await until(c, 1n, settled, "settled");
    const instanceId = `${c}-1-0`;

    const url = await ticketUrl(`/environments/${environmentId}/exec/tickets`, { projectId: PROJECT, capsuleId: c, instanceId, command: "cat", arguments: ["-n"] });
    const session = await openSocket(url);
    const start = await runner.waitFor("exec-start");
    expect(start).toMatchObject({ projectId: PROJECT, capsuleId: c, instanceId, command: "cat", arguments: ["-n"] });

    const stdout = () => (session.frames as { stdout?: { data: string } }[]).filter((f) => f.stdout).map((f) => fromUtf8Base64(f.stdout!.data)).join("");
    await eventually(async () => stdout(), (s) => s === "started cat -n\n", "the start banner");
    session.ws.send(JSON.stringify({ stdin: { data: utf8("ping\n") } }));
    await eventually(async () => stdout(), (s) => s.endsWith("ping\n"), "the echo");
    expect(await runner.waitFor("exec-input")).toMatchObject({ sessionId: start.sessionId, data: utf8("ping\n") });

    session.ws.send(JSON.stringify({ stdin: { closed: true } }));
    expect(await session.closed).toMatchObject({ code: 1000 });
    expect(session.frames.at(-1)).toEqual({ exitCode: 0 });
  });

  it("gives no ticket without a runner, nor to a caller without capsule:execute", async () => {
    const { environmentId, runner } = await withRunner("exec-refused");
    const c = await capsule();
    await deploy(environmentId, c, [image(), replicas(1)]);
    await until(c, 1n, settled, "settled");
    const body = { projectId: PROJECT, capsuleId: c, instanceId: `${c}-1-0`, command: "sh", arguments: [] };
    const path = `/environments/${environmentId}/exec/tickets`;

    const viewer = await post(path, await tokenWithRole("viewer"), body);
    expect(viewer.status).toBe(403);
    expect(await viewer.json()).toMatchObject({ code: "permission_denied" });
    const unknown = await post(path, admin.accessToken, { ...body, instanceId: "nope" });
    expect(await unknown.json()).toMatchObject({ code: "not_found" });

    runner.disconnect();
    await runner.closed;
    const res = await eventually(
      async () => {
        const r = await post(path, admin.accessToken, body);
        return { status: r.status, body: (await r.json()) as { code: string; message: string } };
      },
      (r) => r.status !== 200,
      "refused without a runner",
    );
    expect(res.body).toMatchObject({ code: "failed_precondition" });
    expect(res.body.message).toMatch(/no runner is connected/);
  });

  it("refuses the socket with 412 failed_precondition when the runner left after the ticket was issued", async () => {
    const { environmentId, runner } = await withRunner("exec-left");
    const c = await capsule();
    await deploy(environmentId, c, [image(), replicas(1)]);
    await until(c, 1n, settled, "settled");
    const body = { projectId: PROJECT, capsuleId: c, instanceId: `${c}-1-0`, command: "sh", arguments: [] };
    const url = await ticketUrl(`/environments/${environmentId}/exec/tickets`, body);

    runner.disconnect();
    await runner.closed;
    // Once a new ticket is refused, the environment knows the runner is gone.
    await eventually(async () => (await post(`/environments/${environmentId}/exec/tickets`, admin.accessToken, body)).status, (s) => s !== 200, "runner gone");
    const res = await exports.default.fetch(`${baseUrl}${url}`, { headers: { upgrade: "websocket" } });
    expect(res.status).toBe(412);
    expect(await res.json()).toMatchObject({ code: "failed_precondition", message: expect.stringMatching(/runner disconnected/) });
  });
});

describe("event streams of a deploy", () => {
  it("replays a rollout's events, then sends live ones; a resumed subscription sees each exactly once", async () => {
    const { environmentId, runner } = await withRunner("rollout-events", { apply: "never" });
    const c = await capsule();
    await deploy(environmentId, c, [image(), replicas(1)]);
    await runner.waitFor(desiredFor(c, 1));
    const path = `/projects/${PROJECT}/capsules/${c}/rollouts/1/events/tickets`;

    const first = await subscribe(`${await ticketUrl(path)}&after=0`);
    const replayed = await first.waitFor((e) => e.length >= 3, "the replay");
    expect(replayed.map((e) => e.data.message)).toEqual([
      "rollout 1 initiated",
      "configured: 1 step(s)",
      "sent to runner rollout-events-runner; waiting for it to create the resources",
    ]);
    expect(replayed.map((e) => e.seq)).toEqual([1, 2, 3]);

    runner.send({ type: "applied", projectId: PROJECT, capsuleId: c, rolloutId: 1, resources: [{ kind: "Deployment", name: c }] });
    const live = await first.waitFor((e) => e.length >= 4, "a live event");
    expect(live[3]).toMatchObject({ seq: 4, type: "rollout", data: { kind: "rollout", message: `resources created: Deployment/${c}`, state: "RUNNING" } });
    const lastSeen = live.at(-1)!.seq;
    first.ws.close();
    await first.closed;

    // While away: the instances make it healthy.
    runner.reportInstances(PROJECT, c, [{ instanceId: `${c}-0`, rolloutId: 1, ready: true, state: "running" }]);
    await until(c, 1n, settled, "settled");
    const second = await subscribe(`${await ticketUrl(path)}&after=${lastSeen}`);
    await capsules().stopRollout({ projectId: PROJECT, capsuleId: c, rolloutId: 1n });
    const rest = await second.waitFor((e) => e.length >= 2, "the missed and the live event");
    await sleep(50);
    expect(second.events().map((e) => [e.seq, e.data.message])).toEqual([
      [5, "rollout is running: 1 of 1 instance(s) ready"],
      [6, "rollout 1 stopped: its resources are being removed"],
    ]);
    expect(rest[0]!.seq).toBe(lastSeen + 1);
    second.ws.close();
  });

  it("carries rollout.created and rollout.updated on the environment's stream", async () => {
    const { environmentId } = await withRunner("env-events");
    const c = await capsule();
    const s = await subscribe(`${await ticketUrl(`/environments/${environmentId}/events/tickets`)}&after=0`);
    await deploy(environmentId, c, [image(), replicas(1)]);
    await until(c, 1n, settled, "settled");
    const mine = (e: WireEvent) => e.type.startsWith("rollout.") && e.data.capsuleId === c;
    const events = await s.waitFor((e) => e.filter(mine).some((x) => x.data.inProgress === false), "the rollout's events up to healthy");
    const rollouts = events.filter(mine);
    expect(rollouts[0]).toMatchObject({ type: "rollout.created", data: { projectId: PROJECT, capsuleId: c, rolloutId: 1, previousRolloutId: null } });
    const updates = rollouts.slice(1);
    expect(updates.every((e) => e.type === "rollout.updated" && e.data.rolloutId === 1)).toBe(true);
    expect(updates.map((e) => e.data.state)).toContain("RESOURCE_CREATION");
    expect(updates.at(-1)).toMatchObject({ data: { state: "RUNNING", inProgress: false, message: "rollout is running: 1 of 1 instance(s) ready" } });
    // The runner's own comings and goings are on the stream too.
    expect(events.some((e) => e.type === "runner.connected" && e.data.name === "env-events-runner")).toBe(true);
    s.ws.close();
  });
});
