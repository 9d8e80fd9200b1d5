/**
 * gitpod.v1.EnvironmentService and EventService/WatchEvents, driven by Gitpod's own
 * TypeScript SDK (`@gitpod/sdk`) as a user would drive it, with its wait helpers; a test
 * runner (test/helpers/runner.ts) plays the machine. Raw fetches check the wire details the
 * SDK depends on.
 */
import Gitpod, { APIError, BadRequestError, NotFoundError } from "@gitpod/sdk";
import { EnvironmentState, findEnvironmentClassById, waitForEnvironmentRunning } from "@gitpod/sdk/lib/environment";
import type { Environment } from "@gitpod/sdk/resources/environments/environments";
import { Code } from "@connectrpc/connect";
import { env, runInDurableObject } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { Service as CapsuleService } from "../proto/gen/api/v1/capsule/service_pb";
import { Service as RigEnvironmentService } from "../proto/gen/api/v1/environment/service_pb";
import { Service as ProjectService } from "../proto/gen/api/v1/project/service_pb";
import { baseUrl, client, workerFetch } from "./helpers/client";
import { codeOf } from "./helpers/errors";
import { fileAdmin } from "./helpers/identity";
import { type Behavior, runnerToken, TestRunner } from "./helpers/runner";
import { sleep, within } from "./helpers/wait";

let admin: Awaited<ReturnType<typeof fileAdmin>>;
let gitpod: Gitpod;
/** One runner service account, allowed to connect to every environment. */
let runnerAll: string;

const sdk = (token: string) => new Gitpod({ bearerToken: token, baseURL: baseUrl, fetch: workerFetch });

const repo = { content: { initializer: { specs: [{ git: { remoteUri: "https://github.com/acme/app.git" } }] } } };

async function create(spec: Gitpod.EnvironmentCreateParams["spec"] = repo): Promise<string> {
  const { environment } = await gitpod.environments.create({ spec });
  return environment!.id!;
}

async function createIn(projectId: string): Promise<string> {
  const { environment } = await gitpod.environments.createFromProject({ projectId, spec: repo });
  return environment!.id!;
}

const get = async (environmentId: string): Promise<Environment> => (await gitpod.environments.retrieve({ environmentId })).environment!;

const connect = (environmentId: string, behavior: Partial<Behavior> = {}) => TestRunner.connect({ environmentId, token: runnerAll, behavior });

/** Polls the environment until `ok` holds (runner reports arrive asynchronously). */
async function until(environmentId: string, ok: (e: Environment) => boolean, what: string): Promise<Environment> {
  const deadline = Date.now() + 5000;
  let e = await get(environmentId);
  while (!ok(e) && Date.now() < deadline) {
    await sleep(10);
    e = await get(environmentId);
  }
  expect(ok(e), `${what}; last seen: ${JSON.stringify(e.status)}`).toBe(true);
  return e;
}

const phase = (p: string) => (e: Environment) => e.status?.phase === `ENVIRONMENT_PHASE_${p}`;

/** The error an SDK call fails with. */
async function failure(call: Promise<unknown>): Promise<APIError> {
  const err = await call.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err, "expected the call to fail").toBeInstanceOf(APIError);
  return err as APIError;
}

async function gone(environmentId: string): Promise<void> {
  const deadline = Date.now() + 5000;
  let err = await get(environmentId).then(() => null, (e: unknown) => e);
  while (!err && Date.now() < deadline) {
    await sleep(10);
    err = await get(environmentId).then(() => null, (e: unknown) => e);
  }
  expect(err).toBeInstanceOf(NotFoundError);
  expect((err as APIError).code).toBe("not_found");
}

const rigProject = (projectId: string) => client(ProjectService, admin.accessToken).create({ projectId });

const listIn = async (projectId: string, filter: Gitpod.EnvironmentListParams["filter"] = {}) =>
  (await gitpod.environments.list({ filter: { projectIds: [projectId], ...filter } })).environments.map((e) => e.id);

beforeAll(async () => {
  admin = await fileAdmin();
  gitpod = sdk(admin.accessToken);
  runnerAll = await runnerToken("*");
});

describe("the lifecycle, driven by the SDK", () => {
  it("creates, runs through a runner, stops, starts and deletes an environment", async () => {
    const { environment: created } = await gitpod.environments.create({ spec: { ...repo, ports: [{ port: 3000, name: "web" }] } });
    const id = created!.id!;
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(created).toMatchObject({
      metadata: { name: "app", creator: { id: admin.userId, principal: "PRINCIPAL_USER" } },
      spec: { specVersion: "1", desiredPhase: "ENVIRONMENT_PHASE_RUNNING" },
      status: { statusVersion: "1", phase: "ENVIRONMENT_PHASE_CREATING" },
    });
    expect(created!.status).not.toHaveProperty("failureMessage");

    // A runner that connects later gets the environment and starts it.
    const runner = await connect(id);
    await within(waitForEnvironmentRunning(gitpod, id), "waitForEnvironmentRunning");
    const running = await get(id);
    expect(running.status).toMatchObject({ runnerAck: { specVersion: "1", statusCode: "STATUS_CODE_OK" }, environmentUrls: { ssh: { url: `ssh://${id}.ssh.test` } } });
    expect(running.status).not.toHaveProperty("warningMessage");
    expect(running.metadata?.runnerId).toMatch(/^[0-9a-f-]{36}$/);
    const state = new EnvironmentState(gitpod, id);
    expect(await within(state.waitForPortUrl(3000), "waitForPortUrl")).toBe(`https://3000-${id}.ports.test`);
    await state.close();

    await gitpod.environments.stop({ environmentId: id });
    const stopped = await until(id, phase("STOPPED"), "stopped by the runner");
    expect(stopped.spec).toMatchObject({ specVersion: "2", desiredPhase: "ENVIRONMENT_PHASE_STOPPED" });
    expect(stopped.status).not.toHaveProperty("environmentUrls");
    expect(BigInt(stopped.status!.statusVersion!)).toBeGreaterThan(BigInt(running.status!.statusVersion!));

    await gitpod.environments.start({ environmentId: id });
    // Never STOPPED right after Start: the SDK's helper would take that for a failure.
    expect(["ENVIRONMENT_PHASE_STARTING", "ENVIRONMENT_PHASE_RUNNING"]).toContain((await get(id)).status!.phase);
    await within(waitForEnvironmentRunning(gitpod, id), "running again");
    expect(Date.parse((await get(id)).metadata!.lastStartedAt!)).toBeGreaterThan(Date.parse(created!.metadata!.lastStartedAt!));

    await gitpod.environments.delete({ environmentId: id });
    await gone(id);
    const desired = runner.received.flatMap((m) => (m.type === "environment-desired" ? [m.desiredPhase] : []));
    expect(desired).toEqual(["running", "stopped", "running", "deleted"]);
    expect((await gitpod.environments.list({ filter: { archivalStatus: "ARCHIVAL_STATUS_ALL" } })).environments.map((e) => e.id)).not.toContain(id);
  });

  it("keeps its spec through updates: each bumps specVersion and reaches the runner", async () => {
    const id = await create();
    const runner = await connect(id);
    await within(waitForEnvironmentRunning(gitpod, id), "running");
    await gitpod.environments.update({
      environmentId: id,
      metadata: { name: "renamed" },
      spec: { sshPublicKeys: [{ id: "laptop", value: "ssh-ed25519 AAAA laptop" }], ports: [{ port: 8080, name: "api" }] },
    });
    const state = new EnvironmentState(gitpod, id);
    await within(state.waitForSshKeyApplied("laptop", "ssh-ed25519 AAAA laptop"), "waitForSshKeyApplied");
    expect(await within(state.waitForPortUrl(8080), "waitForPortUrl")).toBe(`https://8080-${id}.ports.test`);
    await state.close();
    const updated = await get(id);
    expect(updated.metadata?.name).toBe("renamed");
    expect(updated.spec).toMatchObject({ specVersion: "2", ports: [{ port: 8080, name: "api" }] });
    expect(updated.status?.runnerAck?.specVersion).toBe("2");
    expect(runner.received.filter((m) => m.type === "environment-desired").map((m) => m.type === "environment-desired" && m.specVersion)).toEqual([1, 2]);

    // A key named without a value is removed; a field left out is left as it is.
    await gitpod.environments.update({ environmentId: id, spec: { sshPublicKeys: [{ id: "laptop" }] } });
    const removed = await get(id);
    expect(removed.spec?.sshPublicKeys ?? []).toEqual([]);
    expect(removed.spec?.specVersion).toBe("3");
    expect(removed.spec?.ports).toEqual([{ port: 8080, name: "api" }]);

    expect((await failure(gitpod.environments.update({ environmentId: id, spec: { timeout: { disconnected: "60s" } } }))).code).toBe("invalid_argument");
  });

  it("records activity", async () => {
    const id = await create();
    await gitpod.environments.markActive({ environmentId: id, activitySignal: { source: "vscode", timestamp: "2026-01-02T03:04:05Z" } });
    expect((await get(id)).status?.activitySignal).toEqual({ source: "vscode", timestamp: "2026-01-02T03:04:05Z" });
    expect((await failure(gitpod.environments.markActive({ environmentId: id, activitySignal: { source: "x" } }))).code).toBe("invalid_argument");
  });
});

describe("without a runner", () => {
  it("stays in its pending phase and says why", async () => {
    const id = await create();
    await sleep(50);
    const e = await get(id);
    expect(e.status?.phase).toBe("ENVIRONMENT_PHASE_CREATING");
    expect(e.status?.warningMessage).toEqual([`waiting for a runner: none is connected to environment ${id}, so it stays creating until one connects`]);
    expect(e.status).not.toHaveProperty("runnerAck");
  });

  it("stops and deletes at once when no machine was ever made", async () => {
    const id = await create();
    await gitpod.environments.stop({ environmentId: id });
    expect((await get(id)).status?.phase).toBe("ENVIRONMENT_PHASE_STOPPED");
    await gitpod.environments.start({ environmentId: id });
    expect((await get(id)).status?.phase).toBe("ENVIRONMENT_PHASE_CREATING");
    await gitpod.environments.delete({ environmentId: id });
    await gone(id);
  });

  it("reports a machine that failed, which the SDK's helper raises; Start tries again", async () => {
    const id = await create();
    const runner = await connect(id, { environment: "fail" });
    const err = await within(waitForEnvironmentRunning(gitpod, id).then(() => null, (e: unknown) => e), "the helper to give up");
    expect(String(err)).toMatch(/failed: test runner was told to fail/);
    expect((await get(id)).status).toMatchObject({ phase: "ENVIRONMENT_PHASE_STOPPED", failureMessage: [expect.stringContaining("told to fail")] });

    runner.behavior.environment = "ok";
    await gitpod.environments.start({ environmentId: id });
    await within(waitForEnvironmentRunning(gitpod, id), "running after Start");
    expect((await get(id)).status).not.toHaveProperty("failureMessage");
  });
});

describe("illegal transitions", () => {
  it("refuses Start while stopping and all but Delete while deleting; force deletes at once", async () => {
    const id = await create();
    const runner = await connect(id);
    await within(waitForEnvironmentRunning(gitpod, id), "running");
    runner.behavior.environment = "never";
    await gitpod.environments.stop({ environmentId: id });
    expect((await get(id)).status?.phase).toBe("ENVIRONMENT_PHASE_STOPPING");
    const start = await failure(gitpod.environments.start({ environmentId: id }));
    expect(start).toBeInstanceOf(BadRequestError);
    expect(start.code).toBe("failed_precondition");
    expect(start.message).toMatch(/stopping: start it once it has stopped/);
    // Stop again is no error: it is what was asked already.
    await gitpod.environments.stop({ environmentId: id });

    await gitpod.environments.delete({ environmentId: id });
    expect((await get(id)).spec?.desiredPhase).toBe("ENVIRONMENT_PHASE_DELETED");
    // One call at a time: a refusal made before its turn to be awaited would go unhandled.
    for (const call of [
      () => gitpod.environments.start({ environmentId: id }),
      () => gitpod.environments.stop({ environmentId: id }),
      () => gitpod.environments.update({ environmentId: id, metadata: { name: "late" } }),
      () => gitpod.environments.unarchive({ environmentId: id }),
    ]) {
      const err = await failure(call());
      expect(err.code).toBe("failed_precondition");
      expect(err.message).toMatch(/being deleted/);
    }
    await gitpod.environments.delete({ environmentId: id, force: true });
    await gone(id);
  });

  it("refuses runner reports no machine can make, and ignores stale ones", async () => {
    const id = await create();
    const runner = await connect(id);
    await within(waitForEnvironmentRunning(gitpod, id), "running");
    const before = (await get(id)).status!.statusVersion;
    const refused = async (report: object, code: string, text: RegExp) => {
      runner.sendRaw({ type: "environment-status", ...report });
      const err = await runner.waitFor((m) => m.type === "error" && text.test(m.message));
      expect(err).toMatchObject({ code });
    };
    await refused({ specVersion: 1, phase: "creating" }, "failed_precondition", /creating is the first phase only/);
    await refused({ specVersion: 1, phase: "deleted" }, "failed_precondition", /only reported after the environment was deleted/);
    await refused({ specVersion: 7, phase: "running" }, "invalid_argument", /specVersion 7/);
    await refused({ specVersion: 1, phase: "sleeping" }, "invalid_argument", /phase "sleeping"/);
    expect((await get(id)).status).toMatchObject({ statusVersion: before, phase: "ENVIRONMENT_PHASE_RUNNING" });

    // A report on an older spec changes nothing: the runner acts on the newest.
    await gitpod.environments.update({ environmentId: id, metadata: { name: "n" }, spec: { ports: [{ port: 4000, name: "x" }] } });
    await until(id, (e) => e.status?.runnerAck?.specVersion === "2", "the runner on spec 2");
    const now = (await get(id)).status!.statusVersion;
    runner.send({ type: "environment-status", specVersion: 1, phase: "stopped" });
    await runner.verifyToken("round trip"); // everything sent before it has been handled
    expect((await get(id)).status).toMatchObject({ statusVersion: now, phase: "ENVIRONMENT_PHASE_RUNNING" });
  });

  it("answers bad ids with invalid_argument and unknown ones with not_found", async () => {
    expect((await failure(gitpod.environments.retrieve({ environmentId: "not-a-uuid" }))).code).toBe("invalid_argument");
    expect(await failure(gitpod.environments.retrieve({ environmentId: crypto.randomUUID() }))).toBeInstanceOf(NotFoundError);
    expect((await failure(gitpod.environments.start({ environmentId: crypto.randomUUID() }))).code).toBe("not_found");
    expect((await failure(gitpod.environments.create({ spec: { ...repo, machine: { class: crypto.randomUUID() } } }))).code).toBe("invalid_argument");
    expect((await failure(gitpod.environments.create({ spec: { ...repo, ports: [{ port: 80, name: "low" }] } }))).message).toMatch(/spec.ports\[0\].port/);
    expect((await failure(gitpod.environments.create({ spec: { content: { initializer: { specs: [{ contextUrl: { url: "not a url" } }] } } } }))).message).toMatch(
      /context_url.url: "not a url" is not a URL/,
    );
  });
});

describe("ListEnvironments", () => {
  it("pages with the token the SDK sends as a query parameter, newest first", async () => {
    await rigProject("gp-pages");
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await createIn("gp-pages"));
    const first = await gitpod.environments.list({ pageSize: 2, filter: { projectIds: ["gp-pages"] } });
    expect(first.environments.map((e) => e.id)).toEqual([ids[4], ids[3]]);
    expect(first.pagination.nextToken).toBeTruthy();
    const all: string[] = [];
    for await (const e of gitpod.environments.list({ pageSize: 2, filter: { projectIds: ["gp-pages"] } })) all.push(e.id!);
    expect(all).toEqual([...ids].reverse());

    // The query wins over the body, as the SDK's auto-pagination needs.
    const res = await workerFetch(`${baseUrl}/gitpod.v1.EnvironmentService/ListEnvironments?pageSize=3`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${admin.accessToken}` },
      body: JSON.stringify({ pagination: { pageSize: 1 }, filter: { projectIds: ["gp-pages"] } }),
    });
    expect(((await res.json()) as { environments: unknown[] }).environments).toHaveLength(3);
    expect((await failure(gitpod.environments.list({ token: "garbage" }))).code).toBe("invalid_argument");
    // Ids are read in either case, as Gitpod's proto allows (a UUID), and answered lower-cased.
    expect((await gitpod.environments.retrieve({ environmentId: ids[0]!.toUpperCase() })).environment!.id).toBe(ids[0]);
    expect(await listIn("gp-pages", { creatorIds: [admin.userId.toUpperCase()] })).toHaveLength(5);
  });

  it("filters by phase, creator, project and runner kind", async () => {
    await rigProject("gp-filters");
    const [a, b, c] = [await createIn("gp-filters"), await createIn("gp-filters"), await createIn("gp-filters")];
    await gitpod.environments.stop({ environmentId: b! });
    expect(await listIn("gp-filters", { statusPhases: ["ENVIRONMENT_PHASE_STOPPED"] })).toEqual([b]);
    expect(await listIn("gp-filters", { statusPhases: ["ENVIRONMENT_PHASE_CREATING"] })).toEqual([c, a]);
    expect(await listIn("gp-filters", { creatorIds: [admin.userId] })).toEqual([c, b, a]);
    expect(await listIn("gp-filters", { creatorIds: [crypto.randomUUID()] })).toEqual([]);
    expect(await listIn("gp-filters", { runnerKinds: ["RUNNER_KIND_REMOTE"] })).toHaveLength(3);
    expect(await listIn("gp-filters", { runnerKinds: ["RUNNER_KIND_LOCAL"] })).toEqual([]);
    expect((await failure(gitpod.environments.list({ filter: { creatorIds: ["me"] } }))).code).toBe("invalid_argument");
  });

  it("lists the environment classes, one per cluster", async () => {
    const { environmentClasses } = await gitpod.environments.classes.list({});
    expect(environmentClasses).toHaveLength(1);
    expect(environmentClasses[0]).toMatchObject({ displayName: "local (docker)", enabled: true });
    const found = await findEnvironmentClassById(gitpod, environmentClasses[0]!.id!);
    expect(found?.id).toBe(environmentClasses[0]!.id);
    const id = await create({ ...repo, machine: { class: found!.id } });
    expect((await get(id)).spec?.machine?.class).toBe(found!.id);
  });
});

describe("archiving", () => {
  it("archives an environment stopped for 7 days; Unarchive brings it back", async () => {
    await rigProject("gp-archive");
    const id = await createIn("gp-archive");
    await gitpod.environments.stop({ environmentId: id });
    // Eight days pass: the object's clock of the stop is moved back, and a change writes the summary again.
    await runInDurableObject(env.ENVIRONMENTS.getByName(id), async (_obj, state) => {
      state.storage.sql.exec("UPDATE dev_environment SET stopped_at = stopped_at - ?", 8 * 24 * 60 * 60 * 1000);
    });
    await gitpod.environments.markActive({ environmentId: id, activitySignal: { source: "test" } });

    expect((await get(id)).metadata?.archivedAt).toBeTruthy();
    expect(await listIn("gp-archive")).toEqual([]);
    expect(await listIn("gp-archive", { archivalStatus: "ARCHIVAL_STATUS_ARCHIVED" })).toEqual([id]);
    expect(await listIn("gp-archive", { archivalStatus: "ARCHIVAL_STATUS_ALL" })).toEqual([id]);
    // A value the enum does not have (protobuf JSON takes numbers) is refused, not read as "all".
    const unknown = await workerFetch(`${baseUrl}/gitpod.v1.EnvironmentService/ListEnvironments`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${admin.accessToken}` },
      body: JSON.stringify({ filter: { projectIds: ["gp-archive"], archivalStatus: 9 } }),
    });
    expect(unknown.status).toBe(400);
    expect(((await unknown.json()) as { code: string; message: string })).toMatchObject({ code: "invalid_argument", message: expect.stringContaining("archival_status") });

    await gitpod.environments.unarchive({ environmentId: id });
    expect((await get(id)).metadata).not.toHaveProperty("archivedAt");
    expect(await listIn("gp-archive")).toEqual([id]);
    expect(await listIn("gp-archive", { archivalStatus: "ARCHIVAL_STATUS_ARCHIVED" })).toEqual([]);
  });
});

describe("environment tokens", () => {
  it("are scoped to their environment, and the runner has them verified", async () => {
    const id = await create();
    const other = await create();
    const runner = await connect(id);
    const { accessToken } = await gitpod.environments.createEnvironmentToken({ environmentId: id });
    const { accessToken: logsToken } = await gitpod.environments.createLogsToken({ environmentId: id });
    const { accessToken: foreign } = await gitpod.environments.createLogsToken({ environmentId: other });
    expect(await runner.verifyToken(accessToken!)).toMatchObject({ valid: true, kind: "access" });
    expect(await runner.verifyToken(logsToken!)).toMatchObject({ valid: true, kind: "logs" });
    expect(await runner.verifyToken(foreign!)).toMatchObject({ valid: false, message: "the token is for another environment" });
    expect(await runner.verifyToken(admin.accessToken)).toMatchObject({ valid: false });
    expect(await runner.verifyToken(`${logsToken!.slice(0, -2)}xx`)).toMatchObject({ valid: false });
    // They are not API access tokens.
    expect(await failure(sdk(accessToken!).environments.retrieve({ environmentId: id }))).toMatchObject({ status: 401 });
  });
});

describe("the Rig side of a developer environment", () => {
  it("is an ephemeral environment of api.v1.environment that capsules deploy into, and goes with it", async () => {
    await rigProject("gp-rig");
    const capsules = client(CapsuleService, admin.accessToken);
    await capsules.create({ projectId: "gp-rig", name: "web" });
    const id = await createIn("gp-rig");
    const rig = client(RigEnvironmentService, admin.accessToken);
    expect((await rig.list({})).environments.find((e) => e.environmentId === id)).toMatchObject({ ephemeral: true, activeProjects: ["gp-rig"], global: false });

    const runner = await connect(id);
    await within(waitForEnvironmentRunning(gitpod, id), "running");
    const deployed = await capsules.deploy({
      projectId: "gp-rig",
      capsuleId: "web",
      environmentId: id,
      changes: [{ field: { case: "addImage", value: { image: "nginx:1.25" } } }, { field: { case: "replicas", value: 1 } }],
    });
    expect(deployed.rolloutId).toBe(1n);
    await runner.waitFor((m) => m.type === "desired" && m.capsuleId === "web");

    await gitpod.environments.delete({ environmentId: id });
    await gone(id);
    expect((await rig.list({})).environments.map((e) => e.environmentId)).not.toContain(id);
  });

  it("is gone from the Gitpod API when the Rig API deletes it", async () => {
    const id = await create();
    await client(RigEnvironmentService, admin.accessToken).delete({ environmentId: id });
    await gone(id);
  });

  it("is created without a project as active in every project", async () => {
    const id = await create();
    expect((await client(RigEnvironmentService, admin.accessToken).list({})).environments.find((e) => e.environmentId === id)).toMatchObject({ ephemeral: true, global: true });
    expect((await failure(gitpod.environments.createFromProject({ projectId: "no-such-project", spec: repo }))).code).toBe("not_found");
  });
});

describe("WatchEvents", () => {
  it("streams the environment's changes as JSON lines, up to its deletion", async () => {
    const id = await create();
    const stream = await gitpod.events.watch({ environmentId: id });
    const seen: string[] = [];
    const reading = (async () => {
      for await (const e of stream) seen.push(`${e.resourceType} ${e.operation} ${e.resourceId === id}`);
    })();
    await gitpod.environments.stop({ environmentId: id });
    await gitpod.environments.delete({ environmentId: id });
    await within(reading, "the stream to end");
    expect(seen).toEqual([
      "RESOURCE_TYPE_ENVIRONMENT RESOURCE_OPERATION_UPDATE true",
      "RESOURCE_TYPE_ENVIRONMENT RESOURCE_OPERATION_UPDATE_STATUS true",
      "RESOURCE_TYPE_ENVIRONMENT RESOURCE_OPERATION_DELETE true",
    ]);
  });

  it("filters by resource type, and refuses unknown environments and the organization scope", async () => {
    const id = await create();
    const stream = await gitpod.events.watch({ environmentId: id, resourceTypeFilters: [{ resourceType: "RESOURCE_TYPE_SERVICE" }] } as never);
    const seen: unknown[] = [];
    const reading = (async () => {
      for await (const e of stream) seen.push(e);
    })();
    await gitpod.environments.stop({ environmentId: id });
    await gitpod.environments.delete({ environmentId: id });
    await within(reading, "the stream to end");
    expect(seen).toEqual([]);

    expect(await failure(gitpod.events.watch({ environmentId: crypto.randomUUID() }))).toBeInstanceOf(NotFoundError);
    expect((await failure(sdk("nonsense").events.watch({ environmentId: id }))).status).toBe(401);
    expect((await failure(gitpod.events.watch({ organization: true }, { maxRetries: 0 }))).code).toBe("unimplemented");
  });

  it("is served as Connect server streaming too", async () => {
    const id = await create();
    const answer = workerFetch(`${baseUrl}/gitpod.v1.EventService/WatchEvents`, {
      method: "POST",
      headers: { "content-type": "application/connect+json", authorization: `Bearer ${admin.accessToken}` },
      body: envelope({ environmentId: id }),
    });
    // connect-es answers a stream once its first message is there.
    await sleep(50);
    await gitpod.environments.stop({ environmentId: id });
    const res = await answer;
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    const { value } = await reader.read();
    expect(new TextDecoder().decode(value!.subarray(5))).toContain('"RESOURCE_OPERATION_UPDATE"');
    await reader.cancel();
  });
});

describe("the wire", () => {
  it("sends 64-bit versions as strings and never an empty failureMessage, without Connect-Protocol-Version", async () => {
    const id = await create();
    const res = await workerFetch(`${baseUrl}/gitpod.v1.EnvironmentService/GetEnvironment`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${admin.accessToken}` },
      body: JSON.stringify({ environmentId: id }),
    });
    const { environment } = (await res.json()) as { environment: { spec: Record<string, unknown>; status: Record<string, unknown> } };
    expect(typeof environment.spec.specVersion).toBe("string");
    expect(typeof environment.status.statusVersion).toBe("string");
    expect(environment.status).not.toHaveProperty("failureMessage");
  });

  it("tells clients not to retry a conflict", async () => {
    await rigProject("gp-twice");
    const res = await workerFetch(`${baseUrl}/api.v1.project.Service/Create`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${admin.accessToken}` },
      body: JSON.stringify({ projectId: "gp-twice" }),
    });
    expect(res.status).toBe(409);
    expect(res.headers.get("x-should-retry")).toBe("false");
    expect(await codeOf(rigProject("gp-twice"))).toBe(Code.AlreadyExists);
  });
});

/** One Connect streaming envelope: flags, length, JSON. */
function envelope(message: unknown): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(message));
  const out = new Uint8Array(5 + json.length);
  new DataView(out.buffer).setUint32(1, json.length);
  out.set(json, 5);
  return out;
}
