/**
 * Automation triggers of developer environments (gitpod.v1): services and tasks triggered by
 * postEnvironmentStart / postDevcontainerStart run when the environment starts (once per
 * start), and what runs is stopped when it stops or is deleted; manual ones are left alone.
 * Driven by Gitpod's SDK, with a TestRunner playing the machine.
 */
import Gitpod from "@gitpod/sdk";
import { waitForEnvironmentRunning } from "@gitpod/sdk/lib/environment";
import type { TaskExecution } from "@gitpod/sdk/resources/shared";
import { exports } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import type { ServerMessage } from "../proto/frames/runner";
import { baseUrl, workerFetch } from "./helpers/client";
import { fileAdmin } from "./helpers/identity";
import { type Behavior, runnerToken, TestRunner } from "./helpers/runner";
import { isPong, keepAlive } from "./helpers/keep-alive";
import { eventually, sleep, within } from "./helpers/wait";

let admin: Awaited<ReturnType<typeof fileAdmin>>;
let gitpod: Gitpod;
let runnerAll: string;

beforeAll(async () => {
  admin = await fileAdmin();
  gitpod = new Gitpod({ bearerToken: admin.accessToken, baseURL: baseUrl, fetch: workerFetch, maxRetries: 0 });
  runnerAll = await runnerToken("*");
});

const repo = { content: { initializer: { specs: [{ git: { remoteUri: "https://github.com/acme/app.git" } }] } } };

const automations = () => gitpod.environments.automations;
const phaseOf = async (environmentId: string) => (await gitpod.environments.retrieve({ environmentId })).environment!.status!.phase;
const service = async (id: string) => (await automations().services.retrieve({ id })).service!;
const executions = async (environmentId: string): Promise<TaskExecution[]> =>
  (await automations().tasks.executions.list({ filter: { environmentIds: [environmentId] } })).taskExecutions;
const byReference = async (environmentId: string, kind: "services" | "tasks") => {
  const list = kind === "services" ? (await automations().services.list({ filter: { environmentIds: [environmentId] } })).services : (await automations().tasks.list({ filter: { environmentIds: [environmentId] } })).tasks;
  return Object.fromEntries(list.map((x) => [x.metadata!.reference!, x.id!]));
};

type ServiceDesired = Extract<ServerMessage, { type: "service-desired" }>;
const serviceDesired = (runner: TestRunner, id: string, phase: ServiceDesired["desiredPhase"]) =>
  runner.received.filter((m): m is ServiceDesired => m.type === "service-desired" && m.serviceId === id && m.desiredPhase === phase);

/** A triggered service, a triggered task, a task depending on the service (devcontainer trigger), and manual ones. */
const file = {
  services: {
    web: { name: "Web", commands: { start: "npm start" }, triggeredBy: ["postEnvironmentStart" as const] },
    docs: { name: "Docs", commands: { start: "mkdocs serve" }, triggeredBy: ["manual" as const] },
  },
  tasks: {
    setup: { name: "Setup", command: "npm ci", triggeredBy: ["postEnvironmentStart" as const, "manual" as const] },
    migrate: { name: "Migrate", command: "npm run migrate", dependsOn: ["web"], triggeredBy: ["postDevcontainerStart" as const] },
    deploy: { name: "Deploy", command: "npm run deploy", triggeredBy: ["manual" as const] },
  },
};

/** A developer environment with the file, its runner connected only once the file is there. */
async function environmentWithFile(behavior: Partial<Behavior> = {}) {
  const { environment } = await gitpod.environments.create({ spec: repo });
  const environmentId = environment!.id!;
  await automations().upsert({ environmentId, automationsFile: file });
  const services = await byReference(environmentId, "services");
  const tasks = await byReference(environmentId, "tasks");
  const runner = await TestRunner.connect({ environmentId, token: runnerAll, behavior });
  await within(waitForEnvironmentRunning(gitpod, environmentId), "running");
  return { environmentId, runner, services, tasks };
}

/** A subscriber of the environment's event stream from the start. */
async function subscribe(environmentId: string) {
  const ticket = await exports.default.fetch(`${baseUrl}/environments/${environmentId}/events/tickets`, {
    method: "POST",
    headers: { authorization: `Bearer ${admin.accessToken}` },
  });
  const { url } = (await ticket.json()) as { url: string };
  const res = await exports.default.fetch(`${baseUrl}${url}&after=0`, { headers: { upgrade: "websocket" } });
  expect(res.status).toBe(101);
  const ws = res.webSocket!;
  const frames: unknown[] = [];
  ws.addEventListener("message", (m) => {
    if (!isPong(m.data)) frames.push(JSON.parse(m.data as string));
  });
  ws.accept();
  keepAlive(ws);
  const events = () => frames.flat() as { type: string; data: Record<string, unknown> }[];
  return { ws, events };
}

describe("triggers of a developer environment", () => {
  it("start triggered services and tasks once per environment start, and stop them when it stops", async () => {
    const { environmentId, runner, services, tasks } = await environmentWithFile({ steps: "slow" });

    // Started: web runs, setup and migrate have an execution each; docs and deploy (manual) do not.
    await eventually(() => service(services.web!), (s) => s.status!.phase === "SERVICE_PHASE_RUNNING", "web running");
    const first = await eventually(() => executions(environmentId), (xs) => xs.length === 2, "two triggered executions");
    const of = (xs: TaskExecution[], id: string) => xs.filter((x) => x.metadata!.taskId === id);
    expect(of(first, tasks.setup!)).toHaveLength(1);
    expect(of(first, tasks.migrate!)).toHaveLength(1);
    expect(of(first, tasks.deploy!)).toHaveLength(0);
    expect(of(first, tasks.setup!)[0]!.metadata).toMatchObject({ startedBy: "postEnvironmentStart", creator: { id: admin.userId, principal: "PRINCIPAL_USER" } });
    expect(of(first, tasks.migrate!)[0]!.metadata!.startedBy).toBe("postDevcontainerStart");
    expect((await service(services.docs!)).spec!.desiredPhase).toBe("SERVICE_PHASE_STOPPED");
    expect(serviceDesired(runner, services.docs!, "running")).toHaveLength(0);
    // Migrate's plan waits for web, which the trigger started: one session, not a restart.
    expect(serviceDesired(runner, services.web!, "running")).toHaveLength(1);
    // The executions are indexed: they can be read by id.
    const setupRun = of(first, tasks.setup!)[0]!.id!;
    expect((await automations().tasks.executions.retrieve({ id: setupRun })).taskExecution!.id).toBe(setupRun);
    await eventually(async () => runner.steps.size, (n) => n === 2, "both triggered steps sent");

    // Reports while running are no new start.
    const specVersion = Number((await gitpod.environments.retrieve({ environmentId })).environment!.spec!.specVersion);
    runner.send({ type: "environment-status", specVersion, phase: "running" });
    await sleep(100);
    expect(await executions(environmentId)).toHaveLength(2);

    // Stopped: web is stopped, the ongoing executions too.
    await gitpod.environments.stop({ environmentId });
    await eventually(() => phaseOf(environmentId), (p) => p === "ENVIRONMENT_PHASE_STOPPED", "environment stopped");
    const web = await eventually(() => service(services.web!), (s) => s.status!.phase === "SERVICE_PHASE_STOPPED", "web stopped");
    expect(web.spec!.desiredPhase).toBe("SERVICE_PHASE_STOPPED");
    await eventually(() => executions(environmentId), (xs) => xs.every((x) => x.status!.phase === "TASK_EXECUTION_PHASE_STOPPED"), "executions stopped");
    expect(runner.received.some((m) => m.type === "task-step-stop" && m.executionId === setupRun)).toBe(true);

    // Started again: triggered again, once.
    await gitpod.environments.start({ environmentId });
    await within(waitForEnvironmentRunning(gitpod, environmentId), "running again");
    await eventually(() => service(services.web!), (s) => s.status!.phase === "SERVICE_PHASE_RUNNING", "web running again");
    const second = await eventually(() => executions(environmentId), (xs) => xs.length === 4, "triggered again");
    await sleep(100);
    const again = await executions(environmentId);
    expect(again).toHaveLength(4);
    expect(of(again, tasks.setup!)).toHaveLength(2);
    expect(of(again, tasks.migrate!)).toHaveLength(2);
    expect(of(again, tasks.deploy!)).toHaveLength(0);
    expect(second.filter((x) => x.status!.phase !== "TASK_EXECUTION_PHASE_STOPPED")).toHaveLength(2);
    const sessions = serviceDesired(runner, services.web!, "running").map((m) => m.session);
    expect(sessions).toHaveLength(2);
    expect(new Set(sessions).size).toBe(2);

    // A manual task still runs only when asked.
    const { taskExecution } = await automations().tasks.start({ id: tasks.deploy! });
    expect(taskExecution!.metadata!.startedBy).toBe("manual");
    runner.disconnect();
  });

  it("puts the triggered starts and the stops on the environment's event stream", async () => {
    const { environmentId, runner, services, tasks } = await environmentWithFile({ steps: "slow" });
    const stream = await subscribe(environmentId);
    await eventually(async () => stream.events().filter((e) => e.type === "task-execution.created").length, (n) => n === 2, "executions created");
    const events = stream.events();
    const running = events.findIndex((e) => e.type === "dev-environment.status-updated" && e.data.phase === "RUNNING");
    const started = events.findIndex((e) => e.type === "service.updated" && e.data.serviceId === services.web && e.data.desiredPhase === "RUNNING");
    expect(running).toBeGreaterThanOrEqual(0);
    expect(started).toBeGreaterThan(running);
    expect(events.filter((e) => e.type === "task-execution.created").map((e) => e.data.taskId).sort()).toEqual([tasks.setup, tasks.migrate].sort());

    await gitpod.environments.stop({ environmentId });
    await eventually(
      async () => stream.events(),
      (es) => es.some((e) => e.type === "service.updated" && e.data.serviceId === services.web && e.data.desiredPhase === "STOPPED"),
      "web stop on the stream",
    );
    await eventually(
      async () => stream.events().filter((e) => e.type === "task-execution.updated" && e.data.desiredPhase === "STOPPED").length,
      (n) => n === 2,
      "execution stops on the stream",
    );
    stream.ws.close();
    runner.disconnect();
  });

  it("stops what runs when the environment is deleted, also with force", async () => {
    for (const force of [false, true]) {
      const { environmentId, runner, services } = await environmentWithFile({ steps: "slow" });
      await eventually(() => service(services.web!), (s) => s.status!.phase === "SERVICE_PHASE_RUNNING", "web running");
      await eventually(async () => runner.steps.size, (n) => n === 2, "triggered steps sent");
      await gitpod.environments.delete({ environmentId, force });
      await runner.waitFor((m) => m.type === "service-desired" && m.serviceId === services.web && m.desiredPhase === "stopped");
      const stops = runner.received.filter((m) => m.type === "task-step-stop");
      expect(stops, `force: ${force}`).toHaveLength(2);
      await eventually(
        () => gitpod.environments.retrieve({ environmentId }).then(() => "there", (e: { status?: number }) => String(e.status)),
        (s) => s === "404",
        "environment gone",
      );
      runner.disconnect();
    }
  });
});
