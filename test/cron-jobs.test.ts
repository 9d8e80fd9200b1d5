import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { createExecutionContext, createScheduledController, env, runDurableObjectAlarm, waitOnExecutionContext } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import type { ChangeSchema } from "../proto/gen/api/v1/capsule/change_pb";
import { JobState } from "../proto/gen/api/v1/capsule/job_pb";
import { Service as CapsuleService } from "../proto/gen/api/v1/capsule/service_pb";
import { Service as EnvironmentService } from "../proto/gen/api/v1/environment/service_pb";
import { Service as ProjectService } from "../proto/gen/api/v1/project/service_pb";
import worker from "../workers/index";
import { client } from "./helpers/client";
import { codeOf } from "./helpers/errors";
import { fileAdmin } from "./helpers/identity";
import { runnerToken, TestRunner } from "./helpers/runner";

type Change = MessageInitShape<typeof ChangeSchema>;

let admin: Awaited<ReturnType<typeof fileAdmin>>;
const capsules = () => client(CapsuleService, admin.accessToken);
const MINUTE = 60_000;

const network: Change = { field: { case: "network", value: { interfaces: [{ name: "http", port: 8080 }] } } };
const urlJob = (name: string, path: string, maxRetries = 0, timeoutSeconds = 0): Change => ({
  field: {
    case: "addCronJob",
    value: {
      jobName: name,
      schedule: "* * * * *",
      maxRetries,
      timeout: timeoutSeconds ? { seconds: BigInt(timeoutSeconds) } : undefined,
      jobType: { case: "url", value: { port: 8080n, path, queryParameters: { run: name } } },
    },
  },
});
const commandJob = (name: string): Change => ({
  field: { case: "addCronJob", value: { jobName: name, schedule: "*/5 * * * *", jobType: { case: "command", value: { command: "echo", args: ["hi"] } } } },
});

let counter = 0;
/** The environment of the current test: each has its own, so one test's timers never run another's jobs. */
let ENV = "";
let runner: TestRunner;

/** A capsule deployed with `changes` to a new environment whose runner reports jobs.test as its address. */
async function deployed(changes: Change[]): Promise<string> {
  const name = `job${++counter}`;
  ENV = `cron-${counter}`;
  await client(EnvironmentService, admin.accessToken).create({ environmentId: ENV, initializers: [{ field: { case: "addProject", value: "jobs" } }] });
  runner = await TestRunner.connect({ environmentId: ENV, token: await runnerToken(ENV), behavior: { endpoint: "http://jobs.test" } });
  await capsules().create({ projectId: "jobs", name });
  await capsules().deploy({ projectId: "jobs", capsuleId: name, environmentId: ENV, changes: [network, { field: { case: "replicas", value: 1 } }, ...changes] });
  return name;
}

/** The Cron Trigger firing for the minute after now, when every `* * * * *` job is due. */
async function trigger(at = Math.ceil((Date.now() + 1) / MINUTE) * MINUTE) {
  const ctx = createExecutionContext();
  await worker.scheduled!(createScheduledController({ cron: "* * * * *", scheduledTime: at }), env, ctx);
  await waitOnExecutionContext(ctx);
  return at;
}

/** Runs the environment object's alarm: the attempts and retries that are due (or next). */
const alarm = () => runDurableObjectAlarm(env.ENVIRONMENTS.getByName(ENV));

/**
 * Runs the alarm until the capsule's newest execution has ended. Attempts due now also run
 * on the real alarm, concurrently with the test's, so the test waits for the outcome rather
 * than counting alarm runs.
 */
async function settle(capsuleId: string) {
  for (let i = 0; i < 300; i++) {
    const [x] = (await executions(capsuleId)).jobExecutions;
    if (x && x.state !== JobState.ONGOING) return x;
    await alarm();
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`the execution of ${capsuleId} did not end`);
}

const executions = async (capsuleId: string, extra: Record<string, unknown> = {}) =>
  capsules().getJobExecutions({ projectId: "jobs", capsuleId, environmentId: ENV, ...extra });

const calls = async (path: string) => ((await (await fetch(`http://jobs.test/__calls?path=${encodeURIComponent(path)}`)).json()) as { calls: number }).calls;

beforeAll(async () => {
  admin = await fileAdmin();
  await client(ProjectService, admin.accessToken).create({ projectId: "jobs" });
});

describe("cron jobs", () => {
  it("runs a due URL job once, however often the trigger fires for that minute", async () => {
    const c = await deployed([urlJob("ping", "/ok/once")]);
    const at = await trigger();
    await trigger(at);
    await settle(c);
    const { jobExecutions, total } = await executions(c);
    expect(total).toBe(1n);
    expect(jobExecutions[0]).toMatchObject({ jobName: "ping", state: JobState.COMPLETED, retries: 0, rolloutId: 1n, capsuleId: c, environmentId: ENV });
    expect(await calls("/ok/once?run=ping")).toBe(1);
  });

  it("retries a failing URL job and completes it, counting the retries", async () => {
    const c = await deployed([urlJob("flaky", "/fail-twice/a", 5)]);
    await trigger();
    expect(await settle(c)).toMatchObject({ state: JobState.COMPLETED, retries: 2 });
    expect(await calls("/fail-twice/a?run=flaky")).toBe(3);
  });

  it("fails a job that keeps failing after max_retries retries", async () => {
    const c = await deployed([urlJob("broken", "/always-fail/b", 2)]);
    await trigger();
    const x = await settle(c);
    expect(x).toMatchObject({ state: JobState.FAILED, retries: 2 });
    expect(x!.finishedAt).toBeDefined();
    expect(await calls("/always-fail/b?run=broken")).toBe(3);
  });

  it("terminates a job that runs past its timeout", async () => {
    const c = await deployed([urlJob("sleepy", "/slow/c", 3, 1)]);
    await trigger();
    expect(await settle(c)).toMatchObject({ state: JobState.TERMINATED, retries: 0 });
  });

  it("runs command jobs through the runner, and stops running a job removed by a deploy", async () => {
    const c = await deployed([commandJob("report")]);
    const at = Math.ceil((Date.now() + 1) / (5 * MINUTE)) * 5 * MINUTE;
    await trigger(at);
    await runner.waitFor((m) => m.type === "job-run" && m.capsuleId === c);
    for (let i = 0; i < 20 && (await executions(c)).jobExecutions[0]?.state !== JobState.COMPLETED; i++) await new Promise((r) => setTimeout(r, 10));
    expect((await executions(c)).jobExecutions[0]).toMatchObject({ jobName: "report", state: JobState.COMPLETED });

    await capsules().deploy({ projectId: "jobs", capsuleId: c, environmentId: ENV, force: true, changes: [{ field: { case: "removeCronJob", value: { jobName: "report" } } }] });
    const rows = await env.DB.prepare("SELECT COUNT(*) AS n FROM cron_schedules WHERE capsule_id = ?").bind(c).first<{ n: number }>();
    expect(rows?.n).toBe(0);
    await trigger(at + 5 * MINUTE);
    expect((await executions(c)).total).toBe(1n);
  });

  it("cancels a command job the runner still runs when its execution is terminated", async () => {
    const c = await deployed([commandJob("forever")]);
    runner.behavior.jobExitCode = null;
    await trigger(Math.ceil((Date.now() + 1) / (5 * MINUTE)) * 5 * MINUTE);
    const run = await runner.waitFor((m) => m.type === "job-run" && m.capsuleId === c);
    await capsules().deploy({ projectId: "jobs", capsuleId: c, environmentId: ENV, force: true, changes: [{ field: { case: "replicas", value: 2 } }] });
    expect((await executions(c)).jobExecutions[0]).toMatchObject({ state: JobState.TERMINATED });
    expect(await runner.waitFor((m) => m.type === "job-cancel")).toEqual({ type: "job-cancel", executionId: run.type === "job-run" ? run.executionId : "" });
  });

  it("terminates an ongoing execution when a new rollout replaces the one it belongs to", async () => {
    const c = await deployed([urlJob("long", "/slow/d")]);
    await trigger();
    // The attempt is under way (the target answers after 3 s) when the next rollout comes.
    for (let i = 0; i < 200 && (await calls("/slow/d?run=long")) === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect((await executions(c)).jobExecutions[0]).toMatchObject({ state: JobState.ONGOING });
    await capsules().deploy({ projectId: "jobs", capsuleId: c, environmentId: ENV, force: true, changes: [{ field: { case: "replicas", value: 2 } }] });
    expect((await executions(c)).jobExecutions[0]).toMatchObject({ state: JobState.TERMINATED, rolloutId: 1n });
  });

  it("records runs missed while nothing triggered, instead of running them in a burst", async () => {
    const c = await deployed([urlJob("tick", "/ok/tick")]);
    const first = await trigger();
    await settle(c);
    // Nothing fires for an hour, then the trigger comes back.
    await trigger(first + 60 * MINUTE);
    await settle(c);
    const all = await executions(c, { pagination: { limit: 100 } });
    const missed = all.jobExecutions.filter((x) => x.state === JobState.TERMINATED);
    const completed = all.jobExecutions.filter((x) => x.state === JobState.COMPLETED);
    expect(missed.length).toBeGreaterThan(0);
    expect(missed.length).toBeLessThanOrEqual(10);
    // The minute that came back on time ran; so did the first one. Nothing else did.
    expect(completed).toHaveLength(2);
    expect(await calls("/ok/tick?run=tick")).toBe(2);
  });

  it("filters and pages GetJobExecutions, newest first by default", async () => {
    const c = await deployed([urlJob("a", "/ok/fa"), urlJob("b", "/always-fail/fb")]);
    const at = await trigger();
    await trigger(at + MINUTE);
    for (let i = 0; i < 300 && (await executions(c, { states: [JobState.ONGOING] })).total > 0n; i++) {
      await alarm();
      await new Promise((r) => setTimeout(r, 10));
    }
    const all = await executions(c);
    expect(all.total).toBe(4n);
    const created = all.jobExecutions.map((x) => Number(x.createdAt!.seconds) * 1000 + x.createdAt!.nanos / 1e6);
    expect([...created].sort((p, q) => q - p)).toEqual(created);
    expect((await executions(c, { jobName: "a" })).total).toBe(2n);
    const failed = await executions(c, { states: [JobState.FAILED] });
    expect(failed.total).toBe(2n);
    expect(failed.jobExecutions.every((x) => x.jobName === "b")).toBe(true);
    const page = await executions(c, { pagination: { offset: 1, limit: 2, descending: true } });
    expect(page.jobExecutions).toHaveLength(2);
    expect(page.total).toBe(4n);
    expect((await executions(c, { createdFrom: timestampFromMs(Date.now() + MINUTE * 10) })).total).toBe(0n);
    expect(await codeOf(executions(c, { states: [99] }))).toBe(Code.InvalidArgument);
    expect(await codeOf(executions("nope"))).toBe(Code.NotFound);
  });

  it("refuses an invalid schedule at deploy time and deploys nothing", async () => {
    await deployed([]);
    await capsules().create({ projectId: "jobs", name: "badcron" });
    const bad: Change = { field: { case: "addCronJob", value: { jobName: "x", schedule: "61 * * * *", jobType: { case: "url", value: { port: 80n, path: "/" } } } } };
    expect(await codeOf(capsules().deploy({ projectId: "jobs", capsuleId: "badcron", environmentId: ENV, changes: [bad] }))).toBe(Code.InvalidArgument);
    expect((await capsules().listRollouts({ projectId: "jobs", capsuleId: "badcron", environmentId: ENV })).total).toBe(0n);
  });
});
