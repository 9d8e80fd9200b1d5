/**
 * The runner end to end: the Worker, the runner as its own process and a real Docker engine,
 * with the busybox test image. Each test has an environment (and runner) of its own.
 */
import { afterEach, describe, expect, it } from "vitest";
import { leftovers } from "./test/docker";
import { haveDocker, RunnerEnvironment, testImageName } from "./test/harness";
import { deploy, image, instances, newCapsule, replicas, serveHostname, settled, until } from "./test/rollouts";

const made: RunnerEnvironment[] = [];
async function environment(name: string): Promise<RunnerEnvironment> {
  const e = await RunnerEnvironment.create(name);
  made.push(e);
  return e;
}

afterEach(async () => {
  for (const e of made.splice(0)) {
    await e.cleanup();
    expect(await leftovers(e.environmentId)).toEqual({ containers: [], networks: [], volumes: [] });
  }
});

describe.skipIf(!haveDocker())("capsules on Docker", () => {
  it("deploys one replica: the rollout is RUNNING and healthy, the instance runs", async () => {
    const e = await environment("one");
    await e.start();
    const c = await newCapsule(e);
    const id = await deploy(e, c, [image(testImageName()), replicas(1), serveHostname()]);
    const r = await until(e, c, id, settled, "healthy");
    expect(r.status!.stages!.resourceCreation!.steps.length).toBeGreaterThan(1);
    const [i] = await instances(e, c);
    expect(i).toMatchObject({ instanceId: `${c}-1-0`, rolloutId: 1n, restartCount: 0 });
    expect((await leftovers(e.environmentId)).containers).toHaveLength(1);
  });
});
