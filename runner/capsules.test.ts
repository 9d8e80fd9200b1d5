/**
 * The runner end to end: the Worker, the runner as its own process and a real Docker engine,
 * with the busybox test image. Each test has an environment (and runner) of its own, and
 * leaves nothing behind on the Docker host.
 */
import { afterEach, describe, expect, it } from "vitest";
import { Result, State, StepState } from "../proto/gen/api/v1/capsule/rollout/status_pb";
import { eventually, sleep } from "../test/helpers/wait";
import { docker, leftovers } from "./test/docker";
import { execute, followLogs } from "./test/clients";
import { haveDocker, RunnerEnvironment, testImageName } from "./test/harness";
import { command, deploy, env, httpInterface, image, instances, instancesStep, newCapsule, replicas, rollout, serveHostname, settled, until } from "./test/rollouts";

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

/** The body of `GET /` on a host port, or the reason it failed. */
async function get(port: number): Promise<string> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(2000) });
    return res.ok ? (await res.text()).trim() : `HTTP ${res.status}`;
  } catch (e) {
    return `failed: ${e instanceof Error ? e.message : String(e)}`;
  }
}

/** The runner's containers of a capsule, by instance id. */
async function containersOf(e: RunnerEnvironment, capsuleId: string) {
  const list = await docker.listContainers({ all: true, filters: { label: [`dev.edgeplane.environment=${e.environmentId}`, `dev.edgeplane.capsule=${capsuleId}`] } });
  return new Map(list.map((c) => [c.Labels["dev.edgeplane.instance"]!, c]));
}

const hostnames = (bodies: string[]) => new Set(bodies.map((b) => b.split(" ")[0]));

describe.skipIf(!haveDocker())("capsules on Docker", () => {
  it("runs 2 replicas behind a public HTTP interface: RUNNING 2/2, and both answer on the host port in turn", async () => {
    const e = await environment("lb");
    await e.start();
    const c = await newCapsule(e);
    const id = await deploy(e, c, [image(testImageName()), replicas(2), serveHostname(), env("GREETING", "v1"), httpInterface(18840)]);
    const r = await until(e, c, id, settled, "healthy");
    expect(instancesStep(r)).toMatchObject({ numUpdated: 2, numReady: 2, numStuck: 0, numWrongVersion: 0 });
    const bodies = await Promise.all([1, 2, 3, 4].map(async () => get(18840)));
    const serial: string[] = [];
    for (let n = 0; n < 4; n++) serial.push(await get(18840));
    expect(serial.every((b) => b.endsWith(" v1")), serial.join(" | ")).toBe(true);
    // Round robin: consecutive requests alternate between the two replicas.
    expect(hostnames(serial)).toEqual(new Set([`${c}-1-0`, `${c}-1-1`]));
    expect(serial[0]).not.toBe(serial[1]);
    expect(bodies.every((b) => b.endsWith(" v1"))).toBe(true);
    // The endpoint is reported where edgeplane can use it (URL cron jobs).
    const listed = await instances(e, c);
    expect(listed.map((i) => [i.instanceId, i.state])).toEqual([
      [`${c}-1-0`, 2],
      [`${c}-1-1`, 2],
    ]);
  });

  it("replaces a rollout rolling when an environment variable changes: no failed request, old REPLACED, new value served", async () => {
    const e = await environment("roll");
    await e.start();
    const c = await newCapsule(e);
    const first = await deploy(e, c, [image(testImageName()), replicas(2), serveHostname(), env("GREETING", "old"), httpInterface(18841)]);
    await until(e, c, first, settled, "first healthy");
    expect(await get(18841)).toMatch(/ old$/);

    const answers: string[] = [];
    let polling = true;
    const poller = (async () => {
      while (polling) {
        answers.push(await get(18841));
        await sleep(50);
      }
    })();
    const second = await deploy(e, c, [env("GREETING", "new")]);
    await until(e, c, second, settled, "second healthy");
    // The old replicas are gone once the new ones serve.
    await eventually(() => containersOf(e, c), (m) => [...m.keys()].every((k) => k.startsWith(`${c}-2-`)), "only rollout 2's containers", 15_000, 200);
    await sleep(300);
    polling = false;
    await poller;
    expect(answers.filter((a) => !/ (old|new)$/.test(a)), "requests that failed during the rollout").toEqual([]);
    expect(answers.at(-1)).toMatch(/ new$/);
    expect(answers.some((a) => a.endsWith(" old"))).toBe(true);
    const old = await rollout(e, c, first);
    expect(old.status!.state).toBe(State.STOPPED);
    expect(old.status!.result).toBe(Result.REPLACED);
  });

  it("leaves the old rollout serving when the new one never gets ready", async () => {
    const e = await environment("never");
    await e.start();
    const c = await newCapsule(e);
    const first = await deploy(e, c, [image(testImageName()), replicas(1), serveHostname(), env("GREETING", "stays"), httpInterface(18842)]);
    await until(e, c, first, settled, "first healthy");
    // Rollout 2 listens nowhere: its readiness probe never passes.
    const second = await deploy(e, c, [command("sleep", "3600")]);
    await until(e, c, second, (r) => instancesStep(r)?.numUpdated === 1 && instancesStep(r)?.numWrongVersion === 1, "new replica beside the old");
    await sleep(1500);
    expect(await get(18842)).toMatch(/ stays$/);
    const r = await rollout(e, c, second);
    expect(instancesStep(r)).toMatchObject({ numReady: 0, numWrongVersion: 1 });
    expect((await containersOf(e, c)).size).toBe(2);
  });

  it("counts a killed container's restart in the instance status", async () => {
    const e = await environment("kill");
    await e.start();
    const c = await newCapsule(e);
    const id = await deploy(e, c, [image(testImageName()), replicas(1), command("sh", "-c", "echo up; exec sleep 3600")]);
    await until(e, c, id, settled, "healthy");
    const container = (await containersOf(e, c)).get(`${c}-1-0`)!;
    await docker.getContainer(container.Id).kill({ signal: "SIGKILL" });
    const [i] = await eventually(() => instances(e, c), (l) => l[0]?.restartCount === 1 && l[0]?.state === 2, "the restart counted and running again", 20_000, 200);
    expect(i!.instanceId).toBe(`${c}-1-0`);
    const statuses = await e.capsules().listInstanceStatuses({ projectId: e.projectId, capsuleId: c, environmentId: e.environmentId });
    expect(statuses.instances[0]!.stages!.running!.restarts).toBe(1);
  });

  it("reports a command that exits at once as stuck", async () => {
    const e = await environment("stuck");
    await e.start();
    const c = await newCapsule(e);
    const id = await deploy(e, c, [image(testImageName()), replicas(1), command("sh", "-c", "echo bye; exit 3")]);
    const r = await until(e, c, id, (x) => (instancesStep(x)?.numStuck ?? 0) === 1, "1 stuck instance");
    expect(r.status!.state).toBe(State.RUNNING);
    expect(instancesStep(r)!.info!.message).toMatch(/0 of 1 instance\(s\) ready, 1 stuck/);
    const [i] = await instances(e, c);
    expect(i!.restartCount).toBeGreaterThan(0);
    expect(i!.message).toMatch(/exited with code 3/);
  });

  it("follows an instance's logs live, across a restart, without losing or doubling a line", async () => {
    const e = await environment("logs");
    await e.start();
    const c = await newCapsule(e);
    const id = await deploy(e, c, [image(testImageName()), replicas(1), command("sh", "-c", 'i=0; while true; do i=$((i+1)); echo "line $i"; echo "err $i" >&2; sleep 0.2; done')]);
    await until(e, c, id, settled, "healthy");
    const follow = followLogs(e, c);
    try {
      await follow.until((lines) => lines.filter((l) => l.text.startsWith("line ")).length >= 3, "3 live lines");
      expect(follow.lines.some((l) => l.text.startsWith("err "))).toBe(true);
      const container = (await containersOf(e, c)).get(`${c}-1-0`)!;
      await docker.getContainer(container.Id).restart({ t: 0 });
      // After the restart the counter starts again at 1: the second "line 1" shows the follower re-attached.
      await follow.until((lines) => lines.filter((l) => l.text === "line 2").length >= 2, "lines after the restart", 20_000);
      const out = follow.lines.filter((l) => l.text.startsWith("line ")).map((l) => Number(l.text.slice(5)));
      const restartAt = out.findIndex((n, k) => k > 0 && n < out[k - 1]!);
      expect(restartAt).toBeGreaterThan(0);
      // Each run's lines in order, none missing, none twice.
      const before = out.slice(0, restartAt);
      const after = out.slice(restartAt);
      expect(before).toEqual(before.map((_, k) => before[0]! + k));
      expect(after).toEqual(after.map((_, k) => 1 + k));
    } finally {
      follow.stop();
    }
  });

  it("runs Execute in an instance: output, stdin and the exit code", async () => {
    const e = await environment("exec");
    await e.start();
    const c = await newCapsule(e);
    const id = await deploy(e, c, [image(testImageName()), replicas(1), command("sleep", "3600")]);
    await until(e, c, id, settled, "healthy");
    const plain = await execute(e, { capsuleId: c, instanceId: `${c}-1-0`, command: "sh", arguments: ["-c", "echo out; echo err >&2; exit 7"] });
    expect(plain).toMatchObject({ stdout: "out\n", stderr: "err\n", exitCode: 7 });
    const interactive = await execute(e, { capsuleId: c, instanceId: `${c}-1-0`, command: "sh", interactive: true, stdin: "echo $((6*7))\nexit 0\n" });
    expect(interactive).toMatchObject({ stdout: "42\n", exitCode: 0 });
    const tty = await execute(e, { capsuleId: c, instanceId: `${c}-1-0`, command: "sh", arguments: ["-c", "stty size"], tty: { width: 100, height: 30 } });
    expect(tty.stdout.trim()).toBe("30 100");
  });

  it("restarts an instance on RestartInstance, and StopRollout removes the containers", async () => {
    const e = await environment("restart");
    await e.start();
    const c = await newCapsule(e);
    const id = await deploy(e, c, [image(testImageName()), replicas(1), command("sleep", "3600")]);
    await until(e, c, id, settled, "healthy");
    const [before] = await instances(e, c);
    const q = { projectId: e.projectId, capsuleId: c, environmentId: e.environmentId };
    await e.capsules().restartInstance({ ...q, instanceId: `${c}-1-0` });
    await eventually(() => instances(e, c), (l) => !!l[0]?.startedAt && l[0].startedAt.seconds * 1000n + BigInt(l[0].startedAt.nanos / 1e6) > before!.startedAt!.seconds * 1000n + BigInt(before!.startedAt!.nanos / 1e6), "started again", 20_000, 200);

    await e.capsules().stopRollout({ projectId: e.projectId, capsuleId: c, rolloutId: id });
    await eventually(() => containersOf(e, c), (m) => m.size === 0, "the containers removed", 15_000, 200);
    await eventually(() => instances(e, c), (l) => l.length === 0, "no instances listed", 10_000, 200);
  });

  it("adopts the containers after the runner is killed and restarted: none restarted, state consistent", async () => {
    const e = await environment("adopt");
    const runner = await e.start();
    const c = await newCapsule(e);
    const id = await deploy(e, c, [image(testImageName()), replicas(2), serveHostname(), httpInterface(18843)]);
    await until(e, c, id, settled, "healthy");
    const before = await containersOf(e, c);
    await runner.stop("SIGKILL");
    const back = await e.start();
    await back.waitForLog(/adopted 2 container\(s\) of 1 capsule/);
    await eventually(async () => hostnames([await get(18843), await get(18843)]).size, (n) => n === 2, "both replicas answer again", 15_000, 200);
    const after = await containersOf(e, c);
    expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
    for (const [k, x] of after) {
      const [a, b] = await Promise.all([docker.getContainer(x.Id).inspect(), docker.getContainer(before.get(k)!.Id).inspect()]);
      expect(a.Id).toBe(b.Id);
      expect(a.State.StartedAt).toBe(b.State.StartedAt);
    }
    const listed = await instances(e, c);
    expect(listed.map((i) => [i.instanceId, i.restartCount])).toEqual([
      [`${c}-1-0`, 0],
      [`${c}-1-1`, 0],
    ]);
    expect(settled(await rollout(e, c, id))).toBe(true);
  });

  it("applies the container settings: command, environment, read-only config files, CPU and memory limits; samples metrics", async () => {
    const e = await environment("settings");
    await e.start();
    const c = await newCapsule(e);
    const id = await deploy(e, c, [
      image(testImageName()),
      replicas(1),
      { field: { case: "setConfigFile", value: { path: "/etc/app/app.conf", content: new TextEncoder().encode("mode=fast\n") } } },
      {
        field: {
          case: "containerSettings",
          value: { command: "sleep", args: ["3600"], environmentVariables: { FOO: "bar" }, resources: { limits: { cpuMillis: 500, memoryBytes: 64n * 1024n * 1024n } } },
        },
      },
    ]);
    await until(e, c, id, settled, "healthy");
    const container = (await containersOf(e, c)).get(`${c}-1-0`)!;
    const info = await docker.getContainer(container.Id).inspect();
    expect(info.HostConfig).toMatchObject({ NanoCpus: 500_000_000, Memory: 64 * 1024 * 1024 });
    expect(info.Config.Entrypoint).toEqual(["sleep"]);
    expect(info.Config.Cmd).toEqual(["3600"]);
    const run = await execute(e, { capsuleId: c, instanceId: `${c}-1-0`, command: "sh", arguments: ["-c", 'cat /etc/app/app.conf; echo "$FOO"; echo x > /etc/app/app.conf'] });
    expect(run.stdout).toBe("mode=fast\nbar\n");
    expect(run.stderr).toMatch(/Read-only file system/);
    expect(run.exitCode).not.toBe(0);
    const metrics = await eventually(
      () => e.capsules().capsuleMetrics({ projectId: e.projectId, capsuleId: c, environmentId: e.environmentId }),
      (m) => m.instanceMetrics.length > 0,
      "a metrics sample",
      15_000,
      250,
    );
    expect(metrics.instanceMetrics[0]).toMatchObject({ instanceId: `${c}-1-0` });
    expect(metrics.instanceMetrics[0]!.mainContainer!.memoryBytes).toBeGreaterThan(0n);
  });

  it("scales out on CPU from its own samples", async () => {
    const e = await environment("scale");
    await e.start();
    const c = await newCapsule(e);
    await deploy(e, c, [
      image(testImageName()),
      replicas(1),
      { field: { case: "containerSettings", value: { command: "sh", args: ["-c", "while :; do :; done"], resources: { limits: { cpuMillis: 100 } } } } },
      { field: { case: "horizontalScale", value: { minReplicas: 1, maxReplicas: 2, cpuTarget: { averageUtilizationPercentage: 20 } } } },
    ]);
    const listed = await eventually(() => instances(e, c), (l) => l.length === 2, "a second replica", 30_000, 250);
    expect(listed.map((i) => i.instanceId)).toEqual([`${c}-1-0`, `${c}-1-1`]);
  });

  it("removes, on reconnect, a capsule stopped while the runner was away", async () => {
    const e = await environment("synced");
    const runner = await e.start();
    const c = await newCapsule(e);
    const id = await deploy(e, c, [image(testImageName()), replicas(1), command("sleep", "3600")]);
    await until(e, c, id, settled, "healthy");
    await runner.stop("SIGKILL");
    await e.capsules().stopRollout({ projectId: e.projectId, capsuleId: c, rolloutId: id });
    expect((await containersOf(e, c)).size).toBe(1);
    await e.start();
    await eventually(() => containersOf(e, c), (m) => m.size === 0, "the stopped capsule's container removed", 15_000, 200);
  });

  it("fails a rollout whose image cannot be pulled, with the registry's reason", async () => {
    const e = await environment("pull");
    await e.start();
    const c = await newCapsule(e);
    const id = await deploy(e, c, [image("registry.invalid/nobody/nothing:v1"), replicas(1)]);
    const r = await until(e, c, id, (x) => x.status?.state === State.STOPPED, "STOPPED");
    expect(r.status!.result).toBe(Result.FAILED);
    const step = r.status!.stages!.resourceCreation!.steps.find((s) => s.step.case === "generic")!.step.value!.info!;
    expect(step.state).toBe(StepState.FAILED);
    expect(step.message).toMatch(/^pulling image registry\.invalid\/nobody\/nothing:v1 failed: .*registry\.invalid/);
  });
});
