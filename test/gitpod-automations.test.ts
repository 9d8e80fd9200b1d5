/**
 * gitpod.v1.EnvironmentAutomationService driven by the official Gitpod SDK (`@gitpod/sdk`), as a
 * user would, against environments whose runner is a TestRunner: automations files and their
 * atomic re-upserts, execution plans (order and concurrency), services with runner-reported
 * phases, executions listed and stopped, honesty without a runner, and the event stream.
 */
import { Gitpod } from "@gitpod/sdk";
import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import type { ServerMessage } from "../proto/frames/runner";
import { Service as AuthService } from "../proto/gen/api/v1/authentication/service_pb";
import { Service as EnvironmentService } from "../proto/gen/api/v1/environment/service_pb";
import { Service as RoleService } from "../proto/gen/api/v1/role/service_pb";
import { Service as ServiceAccountService } from "../proto/gen/api/v1/service_account/service_pb";
import { baseUrl, client, workerFetch } from "./helpers/client";
import { fileAdmin } from "./helpers/identity";
import { type Behavior, runnerToken, TestRunner } from "./helpers/runner";
import { subscribe as subscribeTo } from "./helpers/streams";
import { eventually, sleep } from "./helpers/wait";

// ---- Fixtures ---------------------------------------------------------------------------------

let admin: Awaited<ReturnType<typeof fileAdmin>>;

beforeAll(async () => {
  admin = await fileAdmin();
});

/** The SDK as a user configures it, talking to the Worker; no retries unless asked for. */
const sdk = (opts: { token?: string; maxRetries?: number; fetch?: typeof fetch } = {}) =>
  new Gitpod({ bearerToken: opts.token ?? admin.accessToken, baseURL: baseUrl, fetch: (opts.fetch ?? workerFetch) as never, maxRetries: opts.maxRetries ?? 0 });

const automations = () => sdk().environments.automations;

/** A new ephemeral environment, named by a UUID as Gitpod environments are. */
async function environment(ephemeral = true): Promise<string> {
  const environmentId = crypto.randomUUID();
  await client(EnvironmentService, admin.accessToken).create({ environmentId, ephemeral });
  return environmentId;
}

/** An access token of a new service account holding `actions` in one environment only. */
async function tokenIn(environmentId: string, actions: string[]): Promise<string> {
  const name = `sa-${crypto.randomUUID().slice(0, 8)}`;
  const roles = client(RoleService, admin.accessToken);
  await roles.create({ roleId: name, permissions: actions.map((action) => ({ action, scope: { environment: environmentId, project: "*", resource: "*" } })) });
  const accounts = client(ServiceAccountService, admin.accessToken);
  const { clientId, clientSecret } = await accounts.create({ name });
  const account = (await accounts.list({})).serviceAccounts.find((a) => a.name === name)!;
  await roles.assign({ roleId: name, entityId: { kind: { case: "serviceAccountId", value: account.serviceAccountId } } });
  const session = await client(AuthService).login({ method: { case: "clientCredentials", value: { clientId, clientSecret } } });
  return session.token!.accessToken;
}

async function withRunner(behavior: Partial<Behavior> = {}) {
  const environmentId = await environment();
  const runner = await TestRunner.connect({ environmentId, token: await runnerToken(environmentId), behavior });
  return { environmentId, runner };
}

/** The SDK's error of a failing call: `status`, and the Connect `code` from the body. */
async function sdkError(call: Promise<unknown>): Promise<{ status: number; code: string; message: string }> {
  try {
    await call;
  } catch (err) {
    const e = err as { status?: number; error?: { code?: string; message?: string }; message: string };
    return { status: e.status ?? 0, code: e.error?.code ?? "", message: e.error?.message ?? e.message };
  }
  throw new Error("expected the call to fail, but it succeeded");
}

/** Rows of the D1 index for an id. */
const indexed = async (id: string) => (await env.DB.prepare("SELECT COUNT(*) AS n FROM automation_index WHERE id = ?").bind(id).first<{ n: number }>())!.n;

const execution = async (id: string) => (await automations().tasks.executions.retrieve({ id })).taskExecution!;
const service = async (id: string) => (await automations().services.retrieve({ id })).service!;

type StepRun = Extract<ServerMessage, { type: "task-step-run" }>;
const stepRuns = (runner: TestRunner) => runner.received.filter((m): m is StepRun => m.type === "task-step-run");
const stepRunFor = (label: string) => (m: ServerMessage): m is StepRun => m.type === "task-step-run" && m.label === label;


const subscribe = (environmentId: string, after = 0) => subscribeTo(environmentId, admin.accessToken, after);

/** A CI-like file: build, then lint and test (test also needs the database), then deploy. */
const ciFile = {
  services: {
    db: { name: "Database", commands: { start: "postgres", ready: "pg_isready" }, triggeredBy: ["postEnvironmentStart" as const] },
  },
  tasks: {
    build: { name: "Build", command: "make build" },
    lint: { name: "Lint", command: "make lint", dependsOn: ["build"] },
    test: { name: "Test", command: "make test", dependsOn: ["build", "db"] },
    deploy: { name: "Deploy", command: "make deploy", dependsOn: ["lint", "test"], triggeredBy: ["manual" as const] },
  },
};

async function taskIds(environmentId: string): Promise<Record<string, string>> {
  const { tasks } = await automations().tasks.list({ filter: { environmentIds: [environmentId] } });
  return Object.fromEntries(tasks.map((t) => [t.metadata!.reference!, t.id!]));
}

async function serviceIds(environmentId: string): Promise<Record<string, string>> {
  const { services } = await automations().services.list({ filter: { environmentIds: [environmentId] } });
  return Object.fromEntries(services.map((s) => [s.metadata!.reference!, s.id!]));
}

// ---- Tests ----------------------------------------------------------------------------------------

describe("automations file and execution plans", () => {
  it("runs a task's dependencies first: groups one after another, the steps of a group concurrently", async () => {
    const { environmentId, runner } = await withRunner({ steps: "slow" });
    const upserted = await automations().upsert({ environmentId, automationsFile: ciFile });
    expect(upserted.updatedServiceIds).toHaveLength(1);
    expect(upserted.updatedTaskIds).toHaveLength(4);
    const tasks = await taskIds(environmentId);
    const services = await serviceIds(environmentId);
    const deploy = await automations().tasks.retrieve({ id: tasks.deploy! });
    // dependsOn references become ids; the file's strings become trigger objects.
    expect(new Set(deploy.task!.dependsOn)).toEqual(new Set([tasks.lint, tasks.test]));
    expect((await automations().tasks.retrieve({ id: tasks.test! })).task!.dependsOn!.sort()).toEqual([tasks.build, services.db].sort());
    expect(deploy.task!.metadata!.triggeredBy).toEqual([{ manual: true }]);

    const { taskExecution } = await automations().tasks.start({ id: tasks.deploy! });
    const plan = taskExecution!.spec!.plan!;
    const labels = plan.map((g) => g.steps!.map((s) => s.label).sort());
    expect(labels).toEqual([["Build", "Database"], ["Lint", "Test"], ["Deploy"]]);
    const step = (label: string) => plan.flatMap((g) => g.steps!).find((s) => s.label === label)!;
    expect(step("Database").serviceId).toBe(services.db);
    expect(step("Build").task).toMatchObject({ id: tasks.build, spec: { command: "make build" } });
    expect(new Set(step("Test").dependsOn)).toEqual(new Set([step("Build").id, step("Database").id]));
    expect(taskExecution!.status!.phase).toBe("TASK_EXECUTION_PHASE_PENDING");
    const id = taskExecution!.id!;

    // Group 1: the build runs and the database starts; nothing of group 2 yet.
    const build = await runner.waitFor(stepRunFor("Build"));
    await runner.waitFor((m) => m.type === "service-desired" && m.serviceId === services.db && m.desiredPhase === "running");
    await eventually(() => execution(id), (x) => x.status!.phase === "TASK_EXECUTION_PHASE_RUNNING", "execution running");
    await sleep(50);
    expect(stepRuns(runner).map((m) => m.label)).toEqual(["Build"]);

    // Build done (the database runs already): lint and test are sent together.
    runner.finishStep(build.stepId, "succeeded");
    const [lint, test] = await Promise.all([runner.waitFor(stepRunFor("Lint")), runner.waitFor(stepRunFor("Test"))]);
    await sleep(50);
    expect(stepRuns(runner)).toHaveLength(3);
    expect(new Set(stepRuns(runner).slice(1).map((m) => m.label))).toEqual(new Set(["Lint", "Test"]));
    // Both run at the same time.
    const x = await eventually(() => execution(id), (v) => v.status!.steps!.filter((s) => s.phase === "TASK_EXECUTION_PHASE_RUNNING").length === 2, "lint and test running");
    expect(x.status!.steps!.find((s) => s.id === step("Database").id)!.phase).toBe("TASK_EXECUTION_PHASE_SUCCEEDED");

    runner.finishStep(lint.stepId, "succeeded");
    await sleep(50);
    expect(stepRuns(runner).some((m) => m.label === "Deploy")).toBe(false);
    runner.finishStep(test.stepId, "succeeded");
    const deployRun = await runner.waitFor(stepRunFor("Deploy"));
    expect(deployRun).toMatchObject({ executionId: id, taskId: tasks.deploy, command: "make deploy" });
    runner.finishStep(deployRun.stepId, "succeeded");

    const done = await eventually(() => execution(id), (v) => v.status!.phase === "TASK_EXECUTION_PHASE_SUCCEEDED", "execution succeeded");
    expect(done.status!.steps!.every((s) => s.phase === "TASK_EXECUTION_PHASE_SUCCEEDED")).toBe(true);
    expect(done.status!.steps).toHaveLength(5);
    expect(done.status!.logUrl).toMatch(/^https:\/\/logs\.test\//);
    expect(done.metadata!.startedAt).toBeTruthy();
    expect(done.metadata!.completedAt).toBeTruthy();
    expect(done.status!.failureMessage).toBeFalsy();
  });

  it("fails an execution when a step fails, and never runs the later groups", async () => {
    const { environmentId, runner } = await withRunner({ steps: "fail" });
    await automations().upsert({ environmentId, automationsFile: { tasks: { a: { name: "A", command: "false" }, b: { name: "B", command: "true", dependsOn: ["a"] } } } });
    const { taskExecution } = await automations().tasks.start({ id: (await taskIds(environmentId)).b! });
    const x = await eventually(() => execution(taskExecution!.id!), (v) => v.status!.phase === "TASK_EXECUTION_PHASE_FAILED", "execution failed");
    expect(x.status!.steps).toEqual([expect.objectContaining({ phase: "TASK_EXECUTION_PHASE_FAILED", failureMessage: "test runner was told to fail A" })]);
    expect(stepRuns(runner).map((m) => m.label)).toEqual(["A"]);
  });

  it("re-upserting updates in place, creates and deletes, as one change", async () => {
    const environmentId = await environment();
    await automations().upsert({
      environmentId,
      automationsFile: {
        services: { web: { name: "Web", commands: { start: "npm start" } } },
        tasks: { a: { name: "A", command: "echo a" }, b: { name: "B", command: "echo b", dependsOn: ["a"] } },
      },
    });
    const before = { tasks: await taskIds(environmentId), services: await serviceIds(environmentId) };
    const events = await subscribe(environmentId);
    await events.waitFor((e) => e.some((x) => x.type === "task.created"), "creation events");
    const seen = events.events().length;

    const res = await automations().upsert({
      environmentId,
      automationsFile: {
        services: { web: { name: "Web", commands: { start: "npm run serve" } } },
        tasks: { b: { name: "B", command: "echo b" }, c: { name: "C", command: "echo c", dependsOn: ["b"] } },
      },
    });
    const after = { tasks: await taskIds(environmentId), services: await serviceIds(environmentId) };
    expect(after.services.web).toBe(before.services.web);
    expect(after.tasks.b).toBe(before.tasks.b);
    expect(Object.keys(after.tasks).sort()).toEqual(["b", "c"]);
    expect(res.updatedServiceIds).toEqual([before.services.web]);
    expect(new Set(res.updatedTaskIds)).toEqual(new Set([after.tasks.b, after.tasks.c]));
    expect((await service(after.services.web!)).spec!.commands!.start).toBe("npm run serve");
    expect((await automations().tasks.retrieve({ id: after.tasks.b! })).task!.dependsOn ?? []).toEqual([]);
    expect((await sdkError(automations().tasks.retrieve({ id: before.tasks.a! }))).code).toBe("not_found");

    // The whole change is one burst on the stream.
    const burst = await events.waitFor((e) => e.length >= seen + 4, "the upsert's events");
    expect(burst.slice(seen).map((e) => e.type).sort()).toEqual(["service.updated", "task.created", "task.deleted", "task.updated"]);
    expect(burst.slice(seen).find((e) => e.type === "task.deleted")!.data).toEqual({ taskId: before.tasks.a, reference: "a" });

    // The same file again changes nothing.
    const again = await automations().upsert({
      environmentId,
      automationsFile: {
        services: { web: { name: "Web", commands: { start: "npm run serve" } } },
        tasks: { b: { name: "B", command: "echo b" }, c: { name: "C", command: "echo c", dependsOn: ["b"] } },
      },
    });
    expect(again.updatedServiceIds ?? []).toEqual([]);
    expect(again.updatedTaskIds ?? []).toEqual([]);
    events.ws.close();
  });

  it("leaves tasks made with CreateTask alone, and refuses a file that would orphan one", async () => {
    const environmentId = await environment();
    await automations().upsert({ environmentId, automationsFile: { tasks: { setup: { name: "Setup", command: "make setup" } } } });
    const setup = (await taskIds(environmentId)).setup!;
    const { task } = await automations().tasks.create({
      environmentId,
      metadata: { reference: "mine", name: "Mine" },
      spec: { command: "echo mine" },
      dependsOn: [setup],
    });
    const err = await sdkError(automations().upsert({ environmentId, automationsFile: { tasks: {} } }));
    expect(err.code).toBe("failed_precondition");
    expect(err.message).toContain("task mine (not from the file) depends on setup");
    expect(Object.keys(await taskIds(environmentId)).sort()).toEqual(["mine", "setup"]);

    await automations().tasks.update({ id: task!.id!, spec: { command: "echo still mine" } });
    await automations().tasks.delete({ id: task!.id! });
    await automations().upsert({ environmentId, automationsFile: { tasks: {} } });
    expect(await taskIds(environmentId)).toEqual({});
  });

  it("refuses an invalid file naming the entry, and applies nothing of it", async () => {
    const environmentId = await environment();
    await automations().upsert({ environmentId, automationsFile: { tasks: { a: { name: "A", command: "echo a" } } } });
    const before = await taskIds(environmentId);
    const bad: [object, string][] = [
      [{ tasks: { a: { name: "A", command: "echo a2" }, b: { name: "B" } } }, "automations_file.tasks.b.command: is required"],
      [{ tasks: { b: { name: "B", command: "x", dependsOn: ["nope"] } } }, 'automations_file.tasks.b.depends_on[0]: "nope" is not a task or service'],
      [{ services: { web: { name: "Web", commands: {} } } }, "automations_file.services.web.commands.start: is required"],
      [{ services: { web: { name: "Web", commands: { start: "x" }, triggeredBy: ["sometimes"] } } }, 'automations_file.services.web.triggered_by[0]: "sometimes" is not a trigger'],
      [{ tasks: { "bad ref": { name: "B", command: "x" } } }, 'automations_file.tasks.bad ref: "bad ref" must be 1-128 letters'],
    ];
    for (const [automationsFile, message] of bad) {
      const err = await sdkError(automations().upsert({ environmentId, automationsFile: automationsFile as never }));
      expect(err.status).toBe(400);
      expect(err.code).toBe("invalid_argument");
      expect(err.message).toContain(message);
    }
    // Unknown fields are typos, not ignored.
    const typo = await sdkError(automations().upsert({ environmentId, automationsFile: { tasks: { a: { name: "A", comand: "x" } } } as never }));
    expect(typo.code).toBe("invalid_argument");
    expect(await taskIds(environmentId)).toEqual(before);
    expect((await automations().tasks.retrieve({ id: before.a! })).task!.spec!.command).toBe("echo a");
  });

  it("rejects a dependency cycle at write time, naming it", async () => {
    const environmentId = await environment();
    const err = await sdkError(
      automations().upsert({
        environmentId,
        automationsFile: { tasks: { a: { name: "A", command: "a", dependsOn: ["b"] }, b: { name: "B", command: "b", dependsOn: ["c"] }, c: { name: "C", command: "c", dependsOn: ["a"] } } },
      }),
    );
    expect(err.code).toBe("invalid_argument");
    expect(err.message).toContain("dependency cycle a -> b -> c -> a");
    expect(await taskIds(environmentId)).toEqual({});

    // Through UpdateTask too.
    await automations().upsert({ environmentId, automationsFile: { tasks: { a: { name: "A", command: "a" }, b: { name: "B", command: "b", dependsOn: ["a"] } } } });
    const ids = await taskIds(environmentId);
    const update = await sdkError(automations().tasks.update({ id: ids.a!, dependsOn: [ids.b!] }));
    expect(update.code).toBe("invalid_argument");
    expect(update.message).toContain("dependency cycle");
    expect((await automations().tasks.retrieve({ id: ids.a! })).task!.dependsOn ?? []).toEqual([]);
  });
});

describe("services", () => {
  it("start and stop with the phases the runner reports; Start and Stop are idempotent", async () => {
    const { environmentId, runner } = await withRunner();
    const { service: created } = await automations().services.create({
      environmentId,
      metadata: { reference: "web", name: "Web" },
      spec: { commands: { start: "npm start", ready: "curl -f localhost:3000" } },
    });
    const id = created!.id!;
    expect(created!.status!.phase).toBe("SERVICE_PHASE_STOPPED");
    expect(created!.spec!.desiredPhase).toBe("SERVICE_PHASE_STOPPED");

    await automations().services.start({ id });
    const desired = await runner.waitFor((m) => m.type === "service-desired" && m.serviceId === id);
    expect(desired).toMatchObject({ desiredPhase: "running", reference: "web", commands: { start: "npm start", ready: "curl -f localhost:3000" } });
    const running = await eventually(() => service(id), (s) => s.status!.phase === "SERVICE_PHASE_RUNNING", "service running");
    expect(running.status!.logUrl).toBe(`https://logs.test/${id}`);
    expect(running.status!.session).toBe(running.spec!.session);
    expect(BigInt(running.status!.statusVersion!)).toBeGreaterThan(BigInt(created!.status!.statusVersion!));

    // Already running: no error, no restart.
    await automations().services.start({ id });
    await sleep(50);
    expect(runner.received.filter((m) => m.type === "service-desired" && m.serviceId === id)).toHaveLength(1);

    await automations().services.stop({ id });
    await eventually(() => service(id), (s) => s.status!.phase === "SERVICE_PHASE_STOPPED", "service stopped");
    await automations().services.stop({ id });

    // Spec changes only while stopped; then a start runs the new command in a new session.
    await automations().services.update({ id, spec: { commands: { start: "npm run serve" } } });
    await automations().services.start({ id });
    await eventually(() => service(id), (s) => s.status!.phase === "SERVICE_PHASE_RUNNING", "service running again");
    const sessions = runner.received.filter((m) => m.type === "service-desired" && m.serviceId === id && m.desiredPhase === "running");
    expect(sessions.at(-1)).toMatchObject({ commands: { start: "npm run serve" } });
    const refused = await sdkError(automations().services.update({ id, spec: { commands: { start: "x" } } }));
    expect(refused.code).toBe("failed_precondition");

    // Delete stops it first, then it is gone.
    await automations().services.delete({ id });
    await runner.waitFor((m) => m.type === "service-desired" && m.serviceId === id && m.desiredPhase === "deleted");
    await eventually(() => sdkError(service(id)), (e) => e.code === "not_found", "service deleted");
    await eventually(() => indexed(id), (n) => n === 0, "service unindexed");
  });

  it("shows a service that failed to start as FAILED with the runner's message", async () => {
    const { environmentId } = await withRunner({ services: "fail" });
    const { service: s } = await automations().services.create({ environmentId, metadata: { reference: "bad", name: "Bad" }, spec: { commands: { start: "exit 1" } } });
    await automations().services.start({ id: s!.id! });
    const failed = await eventually(() => service(s!.id!), (v) => v.status!.phase === "SERVICE_PHASE_FAILED", "service failed");
    expect(failed.status!.failureMessage).toBe("exit 1: exit code 1");
  });

  it("refuses a duplicate reference without inviting the SDK to retry", async () => {
    const environmentId = await environment();
    await automations().services.create({ environmentId, metadata: { reference: "web", name: "Web" }, spec: { commands: { start: "a" } } });
    let calls = 0;
    const counting: typeof fetch = (input, init) => {
      calls++;
      return workerFetch(input, init);
    };
    const retrying = sdk({ maxRetries: 2, fetch: counting }).environments.automations;
    const err = await sdkError(retrying.services.create({ environmentId, metadata: { reference: "web", name: "Web 2" }, spec: { commands: { start: "b" } } }));
    expect(err).toMatchObject({ status: 409, code: "already_exists" });
    expect(calls).toBe(1);
  });
});

describe("task executions", () => {
  it("are listed with filters and pages, and stopped", async () => {
    const { environmentId, runner } = await withRunner({ steps: "slow" });
    await automations().upsert({ environmentId, automationsFile: { tasks: { long: { name: "Long", command: "sleep 1000" }, after: { name: "After", command: "echo", dependsOn: ["long"] } } } });
    const ids = await taskIds(environmentId);
    const first = (await automations().tasks.start({ id: ids.after! })).taskExecution!.id!;
    const second = (await automations().tasks.start({ id: ids.long! })).taskExecution!.id!;
    await eventually(async () => stepRuns(runner).length, (n) => n === 2, "both executions' first steps sent");

    const byTask = await automations().tasks.executions.list({ filter: { taskIds: [ids.after!] } });
    expect(byTask.taskExecutions.map((x) => x.id)).toEqual([first]);
    const byReference = await automations().tasks.executions.list({ filter: { taskReferences: ["long"], environmentIds: [environmentId] } });
    expect(byReference.taskExecutions.map((x) => x.id)).toEqual([second]);

    // Pages of one, as the SDK's auto-pagination walks them (token in the query string).
    const pages = await automations().tasks.executions.list({ filter: { environmentIds: [environmentId] }, pagination: { pageSize: 1 } });
    expect(pages.taskExecutions).toHaveLength(1);
    expect(pages.pagination?.nextToken).toBeTruthy();
    const all: string[] = [];
    for await (const x of automations().tasks.executions.list({ filter: { environmentIds: [environmentId] }, pagination: { pageSize: 1 } })) all.push(x.id!);
    expect(all).toEqual([first, second]);

    await automations().tasks.executions.stop({ id: first });
    const stopMsg = await runner.waitFor((m) => m.type === "task-step-stop" && m.executionId === first);
    const stopped = await eventually(() => execution(first), (x) => x.status!.phase === "TASK_EXECUTION_PHASE_STOPPED", "execution stopped");
    expect(stopped.spec!.desiredPhase).toBe("TASK_EXECUTION_PHASE_STOPPED");
    expect(stopped.status!.steps).toEqual([expect.objectContaining({ id: (stopMsg as { stepId: string }).stepId, phase: "TASK_EXECUTION_PHASE_STOPPED" })]);
    await sleep(50);
    expect(stepRuns(runner).filter((m) => m.executionId === first).map((m) => m.label)).toEqual(["Long"]);
    // Stopping again, or stopping an ended execution, is no error.
    await automations().tasks.executions.stop({ id: first });

    const running = await automations().tasks.executions.list({ filter: { environmentIds: [environmentId], phases: ["TASK_EXECUTION_PHASE_RUNNING"] } });
    expect(running.taskExecutions.map((x) => x.id)).toEqual([second]);
  });

  it("refuses unknown and malformed ids with the codes the SDK knows", async () => {
    expect(await sdkError(automations().tasks.executions.retrieve({ id: crypto.randomUUID() }))).toMatchObject({ status: 404, code: "not_found" });
    expect(await sdkError(automations().services.start({ id: "not-a-uuid" }))).toMatchObject({ status: 400, code: "invalid_argument" });
    const err = await sdkError(automations().services.list({ filter: { environmentIds: ["x"] } }));
    expect(err.message).toContain("filter.environment_ids[0]");
  });
});

describe("access", () => {
  it("checks each item's environment: a role for one environment reaches only its automations", async () => {
    const [mine, other] = await Promise.all([environment(), environment()]);
    const token = await tokenIn(mine, ["environment:view", "environment:edit:ephemeral"]);
    const scoped = sdk({ token }).environments.automations;
    await scoped.upsert({ environmentId: mine, automationsFile: { tasks: { t: { name: "T", command: "x" } } } });
    const { task } = await automations().tasks.create({ environmentId: other, metadata: { reference: "t", name: "T" }, spec: { command: "x" } });
    expect((await scoped.tasks.retrieve({ id: (await taskIds(mine)).t! })).task!.metadata!.reference).toBe("t");
    expect(await sdkError(scoped.tasks.retrieve({ id: task!.id! }))).toMatchObject({ status: 403, code: "permission_denied" });
    expect(await sdkError(scoped.tasks.start({ id: task!.id! }))).toMatchObject({ code: "permission_denied" });
    // A list without an environment filter shows what the caller may see.
    const listed = await scoped.tasks.list({});
    expect(listed.tasks.map((t) => t.environmentId)).toEqual([mine]);
    expect(await sdkError(scoped.tasks.list({ filter: { environmentIds: [other] } }))).toMatchObject({ code: "permission_denied" });

    const viewer = sdk({ token: await tokenIn(mine, ["environment:view"]) }).environments.automations;
    expect(await sdkError(viewer.tasks.start({ id: (await taskIds(mine)).t! }))).toMatchObject({ code: "permission_denied" });

    // A service's status is the runner's to write: UpdateService.status also needs runner:connect.
    const { service: s } = await scoped.services.create({ environmentId: mine, metadata: { reference: "web", name: "Web" }, spec: { commands: { start: "x" } } });
    const err = await sdkError(scoped.services.update({ id: s!.id!, status: { phase: "SERVICE_PHASE_RUNNING" } }));
    expect(err.code).toBe("permission_denied");
    expect(err.message).toContain("runner:connect");
    const runnerApi = sdk({ token: await tokenIn(mine, ["environment:edit:ephemeral", "runner:connect"]) }).environments.automations;
    await runnerApi.services.update({ id: s!.id!, status: { phase: "SERVICE_PHASE_RUNNING", logUrl: "https://logs.test/web" } });
    expect((await service(s!.id!)).status).toMatchObject({ phase: "SERVICE_PHASE_RUNNING", logUrl: "https://logs.test/web" });
  });

  it("goes with its environment: deleting the environment removes its automations and their index", async () => {
    const environmentId = await environment();
    await automations().upsert({ environmentId, automationsFile: { services: { s: { name: "S", commands: { start: "x" } } }, tasks: { t: { name: "T", command: "x" } } } });
    const id = (await taskIds(environmentId)).t!;
    await automations().tasks.start({ id });
    const rows = () => env.DB.prepare("SELECT COUNT(*) AS n FROM automation_index WHERE environment_id = ?").bind(environmentId).first<number>("n");
    expect(await rows()).toBe(3);
    await client(EnvironmentService, admin.accessToken).delete({ environmentId });
    // Gone with the environment's D1 rows (deleteStatements), service, task and execution alike.
    expect(await rows()).toBe(0);
    expect(await indexed(id)).toBe(0);
    expect((await sdkError(automations().tasks.retrieve({ id }))).code).toBe("not_found");
    expect((await automations().tasks.list({ filter: { environmentIds: [environmentId] } })).tasks).toEqual([]);
  });

  it("needs environment:edit to change the automations of an environment that is not ephemeral", async () => {
    const environmentId = await environment(false);
    const developer = sdk({ token: await tokenIn(environmentId, ["environment:view", "environment:edit:ephemeral"]) }).environments.automations;
    const err = await sdkError(developer.upsert({ environmentId, automationsFile: { tasks: { t: { name: "T", command: "rm -rf /" } } } }));
    expect(err.code).toBe("permission_denied");
    expect(err.message).toContain("not ephemeral");
    await automations().upsert({ environmentId, automationsFile: { tasks: { t: { name: "T", command: "make" } } } });
  });
});

describe("without a runner", () => {
  it("nothing pretends to run: services and executions wait and say why, then go once a runner connects", async () => {
    const environmentId = await environment();
    await automations().upsert({ environmentId, automationsFile: ciFile });
    const services = await serviceIds(environmentId);
    const tasks = await taskIds(environmentId);

    await automations().services.start({ id: services.db! });
    const waitingService = await service(services.db!);
    expect(waitingService.spec!.desiredPhase).toBe("SERVICE_PHASE_RUNNING");
    expect(waitingService.status!.phase).toBe("SERVICE_PHASE_STOPPED");
    expect(waitingService.status!.failureMessage).toMatch(/^waiting for a runner: none is connected to environment .*, so nothing can start the service/);

    const { taskExecution } = await automations().tasks.start({ id: tasks.build! });
    const id = taskExecution!.id!;
    expect(taskExecution!.status!.phase).toBe("TASK_EXECUTION_PHASE_PENDING");
    expect(taskExecution!.status!.failureMessage).toContain("waiting for a runner");
    expect(taskExecution!.status!.steps ?? []).toEqual([]);
    await sleep(50);
    expect((await execution(id)).status!.phase).toBe("TASK_EXECUTION_PHASE_PENDING");

    const runner = await TestRunner.connect({ environmentId, token: await runnerToken(environmentId) });
    await runner.waitFor((m) => m.type === "services-synced");
    const done = await eventually(() => execution(id), (x) => x.status!.phase === "TASK_EXECUTION_PHASE_SUCCEEDED", "execution ran once a runner came");
    expect(done.status!.failureMessage).toBeFalsy();
    const running = await eventually(() => service(services.db!), (s) => s.status!.phase === "SERVICE_PHASE_RUNNING", "service started once a runner came");
    expect(running.status!.failureMessage).toBeFalsy();
  });

  it("an execution stopped while waiting is STOPPED at once", async () => {
    const environmentId = await environment();
    await automations().upsert({ environmentId, automationsFile: { tasks: { t: { name: "T", command: "x" } } } });
    const { taskExecution } = await automations().tasks.start({ id: (await taskIds(environmentId)).t! });
    await automations().tasks.executions.stop({ id: taskExecution!.id! });
    const x = await execution(taskExecution!.id!);
    expect(x.status!.phase).toBe("TASK_EXECUTION_PHASE_STOPPED");
    expect(x.status!.failureMessage).toBeFalsy();
  });
});

describe("event stream", () => {
  it("carries every change, and a resumed subscription gets only what came after", async () => {
    const { environmentId, runner } = await withRunner();
    const first = await subscribe(environmentId);
    const { service: s } = await automations().services.create({ environmentId, metadata: { reference: "web", name: "Web" }, spec: { commands: { start: "x" } } });
    await first.waitFor((e) => e.some((x) => x.type === "service.created"), "service.created");
    const seq = first.events().at(-1)!.seq;
    first.ws.close();

    await automations().services.start({ id: s!.id! });
    await eventually(() => service(s!.id!), (v) => v.status!.phase === "SERVICE_PHASE_RUNNING", "service running");
    await automations().upsert({ environmentId, automationsFile: { tasks: { t: { name: "T", command: "x" } } } });
    const { taskExecution } = await automations().tasks.start({ id: (await taskIds(environmentId)).t! });
    await eventually(() => execution(taskExecution!.id!), (x) => x.status!.phase === "TASK_EXECUTION_PHASE_SUCCEEDED", "execution done");

    const resumed = await subscribe(environmentId, seq);
    const events = await resumed.waitFor((e) => e.some((x) => x.type === "task-execution.status-updated" && x.data.phase === "SUCCEEDED"), "execution events");
    expect(events[0]!.seq).toBe(seq + 1);
    const types = events.map((e) => e.type);
    expect(types).not.toContain("service.created");
    for (const t of ["service.updated", "service.status-updated", "task.created", "task-execution.created", "task-execution.status-updated"]) expect(types).toContain(t);
    const phases = events.filter((e) => e.type === "service.status-updated").map((e) => e.data.phase);
    expect(phases).toEqual(["STARTING", "RUNNING"]);
    expect(events.find((e) => e.type === "task-execution.created")!.data).toMatchObject({ taskExecutionId: taskExecution!.id, reference: "t" });
    resumed.ws.close();
    runner.disconnect();
  });
});
