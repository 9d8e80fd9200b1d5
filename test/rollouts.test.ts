import { Code } from "@connectrpc/connect";
import { env, evictDurableObject, runInDurableObject } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ChangeSchema } from "../proto/gen/api/v1/capsule/change_pb";
import { Result, State, StepState } from "../proto/gen/api/v1/capsule/rollout/status_pb";
import { Service as CapsuleService } from "../proto/gen/api/v1/capsule/service_pb";
import { Service as EnvironmentService } from "../proto/gen/api/v1/environment/service_pb";
import { Service as ImageService } from "../proto/gen/api/v1/image/service_pb";
import { Service as ProjectService } from "../proto/gen/api/v1/project/service_pb";
import { rolloutName } from "../durable-objects/contract";
import { READY_TIMEOUT } from "../durable-objects/rollout/rollout";
import { Timers } from "../durable-objects/lib/timers";
import { client } from "./helpers/client";
import { codeOf, errorOf } from "./helpers/errors";
import { fileAdmin } from "./helpers/identity";
import { runnerToken, TestRunner } from "./helpers/runner";

type Change = MessageInitShape<typeof ChangeSchema>;

let admin: Awaited<ReturnType<typeof fileAdmin>>;
const capsules = () => client(CapsuleService, admin.accessToken);
const IMAGE = "index.docker.io/library/nginx:1.25";
const image = (tag = "1.25"): Change => ({ field: { case: "addImage", value: { image: `nginx:${tag}` } } });
const replicas = (n: number): Change => ({ field: { case: "replicas", value: n } });

/** A fresh capsule in project `roll`, deployable to every environment made by `environment()`. */
let counter = 0;
async function capsule(): Promise<string> {
  const name = `c${++counter}`;
  await capsules().create({ projectId: "roll", name });
  return name;
}

async function environment(name: string) {
  await client(EnvironmentService, admin.accessToken).create({
    environmentId: name,
    initializers: [{ field: { case: "addProject", value: "roll" } }],
  });
}

const deploy = (capsuleId: string, changes: Change[], extra: { force?: boolean; dryRun?: boolean; currentRolloutId?: bigint; environmentId?: string } = {}) =>
  capsules().deploy({ projectId: "roll", capsuleId, environmentId: extra.environmentId ?? "quiet", changes, ...extra });

const rollout = async (capsuleId: string, rolloutId: bigint) =>
  (await capsules().getRollout({ projectId: "roll", capsuleId, rolloutId })).rollout!;

/** Polls a rollout until `ok` holds (runner reports arrive asynchronously). */
async function until(capsuleId: string, rolloutId: bigint, ok: (r: Awaited<ReturnType<typeof rollout>>) => boolean) {
  let r = await rollout(capsuleId, rolloutId);
  for (let i = 0; i < 200 && !ok(r); i++) {
    await new Promise((res) => setTimeout(res, 10));
    r = await rollout(capsuleId, rolloutId);
  }
  expect(ok(r), `rollout ${rolloutId}: ${State[r.status!.state]} ${Result[r.status!.result]}`).toBe(true);
  return r;
}

const runnerStep = (r: Awaited<ReturnType<typeof rollout>>) =>
  r.status!.stages!.resourceCreation!.steps.find((s) => s.step.case === "generic")!.step.value!.info!;

beforeAll(async () => {
  admin = await fileAdmin();
  await client(ProjectService, admin.accessToken).create({ projectId: "roll" });
  // "quiet" never has a runner; "busy" gets one per test that needs it.
  await environment("quiet");
});

describe("Deploy without a runner", () => {
  it("starts a rollout that waits in resource creation and says why", async () => {
    const c = await capsule();
    const res = await deploy(c, [image(), replicas(2)], {});
    expect(res.rolloutId).toBe(1n);
    expect(res.rolloutConfig?.imageId).toBe(IMAGE);
    expect(res.rolloutConfig?.replicas).toBe(2);
    expect(Object.keys(res.resourceYaml)).toContain(`Deployment/${c}`);

    const r = await rollout(c, 1n);
    expect(r.status!.state).toBe(State.RESOURCE_CREATION);
    expect(runnerStep(r).state).toBe(StepState.ONGOING);
    expect(runnerStep(r).message).toMatch(/no.*runner|none is connected/);
    // The image the deploy added is registered to the capsule.
    const images = await client(ImageService, admin.accessToken).list({ projectId: "roll", capsuleId: c });
    expect(images.images.map((i) => i.imageId)).toEqual([IMAGE]);
  });

  it("refuses a second deploy while one is in progress, unless forced; force aborts the running one", async () => {
    const c = await capsule();
    await deploy(c, [image()]);
    const err = await errorOf(deploy(c, [replicas(3)]));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toMatch(/rollout 1 .*in progress/);

    const forced = await deploy(c, [replicas(3)], { force: true });
    expect(forced.rolloutId).toBe(2n);
    expect(forced.rolloutConfig?.imageId).toBe(IMAGE);
    const first = await rollout(c, 1n);
    expect(first.status!.state).toBe(State.STOPPED);
    expect(first.status!.result).toBe(Result.ABORTED);
  });

  it("lets exactly one of several concurrent deploys win", async () => {
    const c = await capsule();
    const results = await Promise.allSettled(Array.from({ length: 6 }, (_, i) => deploy(c, [image(), replicas(i + 1)])));
    const won = results.filter((r) => r.status === "fulfilled");
    expect(won).toHaveLength(1);
    for (const r of results) {
      if (r.status === "rejected") expect(await codeOf(Promise.reject(r.reason))).toBe(Code.FailedPrecondition);
    }
    const list = await capsules().listRollouts({ projectId: "roll", capsuleId: c, environmentId: "quiet" });
    expect(list.total).toBe(1n);
  });

  it("compares current_rollout_id and answers aborted when it is stale", async () => {
    const c = await capsule();
    await deploy(c, [image()]);
    expect(await codeOf(deploy(c, [replicas(2)], { force: true, currentRolloutId: 7n }))).toBe(Code.Aborted);
    const ok = await deploy(c, [replicas(2)], { force: true, currentRolloutId: 1n });
    expect(ok.rolloutId).toBe(2n);
    expect(await codeOf(deploy(c, [replicas(3)], { force: true, currentRolloutId: 1n }))).toBe(Code.Aborted);
  });

  it("dry_run returns the config and resources and commits nothing", async () => {
    const c = await capsule();
    await deploy(c, [image()]);
    const dry = await deploy(c, [replicas(4)], { dryRun: true });
    expect(dry.rolloutId).toBe(0n);
    expect(dry.rolloutConfig?.replicas).toBe(4);
    expect(dry.resourceYaml[`Deployment/${c}`]).toMatch(/replicas: 4/);
    const list = await capsules().listRollouts({ projectId: "roll", capsuleId: c, environmentId: "quiet" });
    expect(list.total).toBe(1n);
    expect(list.rollouts[0]!.config!.replicas).toBe(0);
    // A dry run is not refused by the rollout in progress: it answers what a forced deploy would do.
    expect((await deploy(c, [replicas(5)], { dryRun: true })).rolloutConfig?.replicas).toBe(5);
  });

  it("rejects bad changes naming them, and commits nothing", async () => {
    const c = await capsule();
    const err = await errorOf(deploy(c, [replicas(1), { field: { case: "imageId", value: "never-added:1" } }]));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toMatch(/^changes\[1\]\.image_id/);
    expect(await codeOf(deploy(c, [{}]))).toBe(Code.InvalidArgument);
    expect((await capsules().listRollouts({ projectId: "roll", capsuleId: c, environmentId: "quiet" })).total).toBe(0n);
  });

  it("refuses unknown capsules, environments, rollouts and projects not active in the environment", async () => {
    expect(await codeOf(deploy("nope", [image()]))).toBe(Code.NotFound);
    const c = await capsule();
    expect(await codeOf(deploy(c, [image()], { environmentId: "nowhere" }))).toBe(Code.NotFound);
    await client(EnvironmentService, admin.accessToken).create({ environmentId: "elsewhere", initializers: [{ field: { case: "setGlobal", value: false } }] });
    expect(await codeOf(deploy(c, [image()], { environmentId: "elsewhere" }))).toBe(Code.FailedPrecondition);
    expect(await codeOf(capsules().getRollout({ projectId: "roll", capsuleId: c, rolloutId: 99n }))).toBe(Code.NotFound);
    expect(await codeOf(capsules().abortRollout({ projectId: "roll", capsuleId: c, rolloutId: 99n }))).toBe(Code.NotFound);
  });

  it("aborts a rollout in progress, once", async () => {
    const c = await capsule();
    await deploy(c, [image()]);
    await capsules().abortRollout({ projectId: "roll", capsuleId: c, rolloutId: 1n });
    const r = await rollout(c, 1n);
    expect(r.status!.state).toBe(State.STOPPED);
    expect(r.status!.result).toBe(Result.ABORTED);
    expect(await codeOf(capsules().abortRollout({ projectId: "roll", capsuleId: c, rolloutId: 1n }))).toBe(Code.FailedPrecondition);
    // No longer in progress: the next deploy needs no force.
    expect((await deploy(c, [replicas(1)])).rolloutId).toBe(2n);
    const events = await capsules().listEvents({ projectId: "roll", capsuleId: c, rolloutId: 1n });
    expect(events.events.map((e) => e.eventData?.kind.case)).toContain("abort");
    expect(events.total).toBe(BigInt(events.events.length));
  });

  it("keeps a rollout whose object is evicted mid-way, and carries on from storage", async () => {
    const c = await capsule();
    await deploy(c, [image(), replicas(1)]);
    await evictDurableObject(env.ROLLOUTS.getByName(rolloutName("roll", c, 1)));
    const r = await rollout(c, 1n);
    expect(r.status!.state).toBe(State.RESOURCE_CREATION);
    await capsules().abortRollout({ projectId: "roll", capsuleId: c, rolloutId: 1n });
    expect((await rollout(c, 1n)).status!.result).toBe(Result.ABORTED);
  });
});

describe("Deploy with a runner", () => {
  let runner: TestRunner;
  beforeAll(async () => {
    await environment("busy");
    runner = await TestRunner.connect({ environmentId: "busy", token: await runnerToken("busy"), name: "test-runner" });
  });
  const busy = (c: string, changes: Change[], extra: Parameters<typeof deploy>[2] = {}) => deploy(c, changes, { ...extra, environmentId: "busy" });

  it("takes a rollout to RUNNING as the runner reports, and the next deploy replaces it", async () => {
    const c = await capsule();
    const { rolloutId } = await busy(c, [image(), replicas(2)]);
    const desired = await runner.waitFor((m) => m.type === "desired" && m.capsuleId === c);
    expect(desired).toMatchObject({ projectId: "roll", rolloutId: 1, config: { replicas: 2, imageId: IMAGE } });
    const running = await until(c, rolloutId, (r) => r.status!.state === State.RUNNING && r.status!.stages!.running!.steps[0]!.step.value!.info!.state === StepState.DONE);
    const step = running.status!.stages!.running!.steps[0]!.step;
    expect(step.case).toBe("instances");
    expect(step.value).toMatchObject({ numUpdated: 2, numReady: 2, numStuck: 0, numWrongVersion: 0 });

    const instances = await capsules().listInstances({ projectId: "roll", capsuleId: c, environmentId: "busy" });
    expect(instances.total).toBe(2n);
    expect(instances.instances[0]).toMatchObject({ rolloutId: 1n, imageId: IMAGE });

    // Healthy, so not in progress: the next deploy needs no force and replaces it.
    const next = await busy(c, [replicas(1)]);
    expect(next.rolloutId).toBe(2n);
    const first = await rollout(c, 1n);
    expect(first.status!.state).toBe(State.STOPPED);
    expect(first.status!.result).toBe(Result.REPLACED);
    await until(c, 2n, (r) => r.status!.state === State.RUNNING);
  });

  it("rolls back to an earlier configuration, ending the current rollout with ROLLBACK", async () => {
    const c = await capsule();
    await busy(c, [image("1.25"), replicas(1)]);
    await until(c, 1n, (r) => r.status!.stages?.running?.steps[0]?.step.value?.info?.state === StepState.DONE);
    await busy(c, [image("1.26"), replicas(3)]);
    await until(c, 2n, (r) => r.status!.stages?.running?.steps[0]?.step.value?.info?.state === StepState.DONE);
    await busy(c, [{ field: { case: "rollback", value: { rollbackId: 1n } } }]);
    const third = await rollout(c, 3n);
    expect(third.config!.imageId).toBe(IMAGE);
    expect(third.config!.replicas).toBe(1);
    const second = await rollout(c, 2n);
    expect(second.status!.state).toBe(State.STOPPED);
    expect(second.status!.result).toBe(Result.ROLLBACK);
    expect((await rollout(c, 1n)).status!.result).toBe(Result.REPLACED);
    // Rolling back to a rollout that does not exist is a bad change.
    expect(await codeOf(busy(c, [{ field: { case: "rollback", value: { rollbackId: 42n } } }], { force: true }))).toBe(Code.InvalidArgument);
  });

  it("stops a running rollout: the runner is told and the capsule no longer runs", async () => {
    const c = await capsule();
    await busy(c, [image(), replicas(1)]);
    await until(c, 1n, (r) => r.status!.stages?.running?.steps[0]?.step.value?.info?.state === StepState.DONE);
    expect(await codeOf(capsules().abortRollout({ projectId: "roll", capsuleId: c, rolloutId: 1n }))).toBe(Code.FailedPrecondition);
    // The image runs, so it may not be deleted.
    expect(await codeOf(client(ImageService, admin.accessToken).delete({ projectId: "roll", capsuleId: c, imageId: IMAGE }))).toBe(Code.FailedPrecondition);
    await capsules().stopRollout({ projectId: "roll", capsuleId: c, rolloutId: 1n });
    await runner.waitFor((m) => m.type === "stop" && m.capsuleId === c);
    expect((await rollout(c, 1n)).status!.state).toBe(State.STOPPED);
    expect(await codeOf(capsules().stopRollout({ projectId: "roll", capsuleId: c, rolloutId: 1n }))).toBe(Code.FailedPrecondition);
    await client(ImageService, admin.accessToken).delete({ projectId: "roll", capsuleId: c, imageId: IMAGE });
    await capsules().delete({ projectId: "roll", capsuleId: c });
  });

  it("refuses to delete a capsule that is deployed", async () => {
    const c = await capsule();
    await busy(c, [image(), replicas(1)]);
    const err = await errorOf(capsules().delete({ projectId: "roll", capsuleId: c }));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toContain("busy");
  });

  it("marks a rollout stuck when its instances crash past the timeout", async () => {
    const c = await capsule();
    runner.behavior.instances = "crashing";
    try {
      await busy(c, [image(), replicas(2)]);
      const r = await until(c, 1n, (x) => (x.status!.stages?.running?.steps[0]?.step.value as { numStuck?: number } | undefined)?.numStuck === 2);
      expect(r.status!.state).toBe(State.RUNNING);
      // Ten minutes pass: the readiness timer is due now, and the object's alarm runs it.
      const stub = env.ROLLOUTS.getByName(rolloutName("roll", c, 1));
      await runInDurableObject(stub, (_o, state) => new Timers(state.storage).set(READY_TIMEOUT, "", Date.now()));
      const stuck = await until(c, 1n, (x) => x.status!.stages!.running!.steps[0]!.step.value!.info!.state === StepState.FAILED);
      const info = stuck.status!.stages!.running!.steps[0]!.step.value!.info!;
      expect(info.state).toBe(StepState.FAILED);
      expect(info.message).toMatch(/^stuck/);
      const events = await capsules().listEvents({ projectId: "roll", capsuleId: c, rolloutId: 1n });
      expect(events.events.some((e) => e.eventData?.kind.case === "error" && /stuck/.test(e.message))).toBe(true);
      // Still in progress: a fix needs force.
      expect(await codeOf(busy(c, [replicas(1)]))).toBe(Code.FailedPrecondition);
    } finally {
      runner.behavior.instances = "ready";
    }
  });
});
