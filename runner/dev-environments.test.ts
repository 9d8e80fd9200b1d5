/**
 * Developer environments end to end through Gitpod's own SDK (`@gitpod/sdk`), as a user
 * drives them: the Worker, the runner as its own process and the machine as a container on a
 * real Docker engine, with a service and a task running in it and the task's log read from
 * the runner's log URL with a logs token.
 */
import Gitpod, { NotFoundError } from "@gitpod/sdk";
import { runCommand } from "@gitpod/sdk/lib/automation";
import { EnvironmentState } from "@gitpod/sdk/lib/environment";
import { afterEach, describe, expect, it } from "vitest";
import { adminToken, workerUrl } from "../test/e2e/clients";
import { eventually } from "../test/helpers/wait";
import { docker } from "./test/docker";
import { grantRunner, haveDocker, type RunnerProcess, spawnRunner, testImageName } from "./test/harness";

const started: { runner: RunnerProcess; environmentId: string; state: EnvironmentState }[] = [];

afterEach(async () => {
  for (const { runner, environmentId, state } of started.splice(0)) {
    await state.close();
    await runner.stop("SIGKILL");
    // What a failed test left: the machine and its volume, found by their labels.
    const filters = { label: [`dev.edgeplane.dev-environment=${environmentId}`] };
    for (const c of await docker.listContainers({ all: true, filters })) await docker.getContainer(c.Id).remove({ force: true });
    for (const v of (await docker.listVolumes({ filters })).Volumes ?? []) await docker.getVolume(v.Name).remove({ force: true });
  }
});

/** A developer environment created through the SDK, with a runner serving it. */
async function devEnvironment(spec: Gitpod.EnvironmentCreateParams["spec"]) {
  const token = await adminToken();
  const gitpod = new Gitpod({ baseURL: workerUrl(), bearerToken: token });
  const { environment } = await gitpod.environments.create({ spec });
  const environmentId = environment!.id!;
  const credentials = await grantRunner(token, environmentId);
  const args = [
    "--url", workerUrl(),
    "--environment", environmentId,
    "--client-id", credentials.clientId,
    "--client-secret", credentials.clientSecret,
    "--dev-image", testImageName(),
    "--logs-listen", "127.0.0.1:0",
  ];
  const entry = { runner: spawnRunner(args), environmentId, state: new EnvironmentState(gitpod, environmentId) };
  started.push(entry);
  await entry.runner.waitForLog(/connected to environment/);
  /** Kills the runner (as a crash) and starts another with the same options. */
  const restart = async () => {
    await entry.runner.stop("SIGKILL");
    entry.runner = spawnRunner(args);
    await entry.runner.waitForLog(/connected to environment/);
  };
  return { gitpod, environmentId, state: entry.state, restart };
}

const machineOf = async (environmentId: string) =>
  docker.listContainers({ all: true, filters: { label: [`dev.edgeplane.dev-environment=${environmentId}`] } });
const volumesOf = async (environmentId: string) =>
  (await docker.listVolumes({ filters: { label: [`dev.edgeplane.dev-environment=${environmentId}`] } })).Volumes ?? [];

describe.skipIf(!haveDocker())("developer environments on Docker, through @gitpod/sdk", () => {
  it("runs: a port URL, a service answering on it, adopted by a restarted runner, a task; Stop stops the machine, Delete removes it and its volume", async () => {
    const { gitpod, environmentId, state, restart } = await devEnvironment({ desiredPhase: "ENVIRONMENT_PHASE_RUNNING", ports: [{ port: 8080, name: "web" }] });
    await state.waitUntilRunning();
    const url = await state.waitForPortUrl(8080);
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(await machineOf(environmentId)).toMatchObject([{ State: "running" }]);

    const automations = gitpod.environments.automations;
    const { service } = await automations.services.create({
      environmentId,
      metadata: { reference: "web", name: "Web" },
      spec: { commands: { start: "mkdir -p /tmp/www && echo served-from-the-machine > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www", ready: "echo | nc 127.0.0.1 8080" } },
    });
    await automations.services.start({ id: service!.id! });
    const running = await eventually(
      async () => (await automations.services.retrieve({ id: service!.id! })).service,
      (s) => s?.status?.phase === "SERVICE_PHASE_RUNNING",
      "the service is RUNNING",
      30_000,
      200,
    );
    expect(running?.status?.logUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/logs\//);
    expect(await (await fetch(url!)).text()).toBe("served-from-the-machine\n");

    // A runner that crashes and comes back adopts the machine and the service: nothing restarts.
    const startedAt = (await docker.getContainer((await machineOf(environmentId))[0]!.Id).inspect()).State.StartedAt;
    await restart();
    await new Promise((r) => setTimeout(r, 1500));
    expect((await docker.getContainer((await machineOf(environmentId))[0]!.Id).inspect()).State.StartedAt).toBe(startedAt);
    expect((await gitpod.environments.retrieve({ environmentId })).environment?.status?.phase).toBe("ENVIRONMENT_PHASE_RUNNING");
    expect((await automations.services.retrieve({ id: service!.id! })).service?.status?.phase).toBe("SERVICE_PHASE_RUNNING");
    expect(await (await fetch(url!)).text()).toBe("served-from-the-machine\n");

    // The SDK's runCommand: a task, its execution, and its output read from the runner's log URL.
    const lines: string[] = [];
    for await (const line of await runCommand(gitpod, environmentId, "echo task-output; pwd")) lines.push(line);
    expect(lines).toEqual(["task-output", "/workspace"]);
    const { taskExecutions } = await automations.tasks.executions.list({ filter: { environmentIds: [environmentId] } });
    expect(taskExecutions.map((x) => x.status?.phase)).toEqual(["TASK_EXECUTION_PHASE_SUCCEEDED"]);

    await gitpod.environments.stop({ environmentId });
    await eventually(() => gitpod.environments.retrieve({ environmentId }), (r) => r.environment?.status?.phase === "ENVIRONMENT_PHASE_STOPPED", "STOPPED", 30_000, 200);
    expect(await machineOf(environmentId)).toMatchObject([{ State: "exited" }]);
    // Services are stopped before the machine, within a grace: under load the last report may trail the machine's.
    await eventually(() => automations.services.retrieve({ id: service!.id! }), (r) => r.service?.status?.phase === "SERVICE_PHASE_STOPPED", "service STOPPED", 30_000, 200);

    await state.close();
    await gitpod.environments.delete({ environmentId });
    await eventually(
      () => gitpod.environments.retrieve({ environmentId }).then(() => null, (e: unknown) => e),
      (e) => e instanceof NotFoundError,
      "the environment is gone",
      30_000,
      200,
    );
    expect(await machineOf(environmentId)).toEqual([]);
    expect(await volumesOf(environmentId)).toEqual([]);
  });

  it("says so when the git content cannot be cloned: the busybox image has no git", async () => {
    const remoteUri = "https://github.com/acme/app.git";
    const { gitpod, environmentId, state } = await devEnvironment({ content: { initializer: { specs: [{ git: { remoteUri } }] } } });
    const failed = await eventually(
      async () => (await gitpod.environments.retrieve({ environmentId })).environment,
      (e) => (e?.status?.failureMessage?.length ?? 0) > 0,
      "a failure message",
      30_000,
      200,
    );
    expect(failed?.status?.phase).toBe("ENVIRONMENT_PHASE_STOPPED");
    expect(failed?.status?.failureMessage).toEqual([`content: cannot clone ${remoteUri}: the machine's image (${testImageName()}) has no git`]);
    expect(failed?.status?.content?.phase).toBe("CONTENT_PHASE_FAILED");
    await state.close();
    await gitpod.environments.delete({ environmentId });
    await eventually(() => volumesOf(environmentId), (v) => v.length === 0, "the volume is removed", 30_000, 200);
    expect(await machineOf(environmentId)).toEqual([]);
  });
});
