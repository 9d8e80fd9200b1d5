import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Behavior, connectRunner, type TestRunner } from "../../test/e2e/runner";
import { adminHome, cuttableProxy, edgeplane, type Home, inTerminal, start, unique } from "./run";

let home: Home;
const runners: TestRunner[] = [];
beforeAll(async () => {
  home = await adminHome();
});
afterAll(async () => {
  for (const r of runners) r.disconnect();
  await home.remove();
});

/** A project with an environment it is active in, a capsule `web`, and -P/-E flags for them. */
async function stage(behavior: Partial<Behavior> = {}) {
  const project = unique("shop");
  const env = unique("prod");
  for (const args of [["project", "create", project], ["environment", "create", env, "--add-project", project], ["-P", project, "capsule", "create", "web"]]) {
    const res = await edgeplane(home, args);
    expect(res.code, res.stderr).toBe(0);
  }
  const runner = await connectRunner(env, { behavior });
  runners.push(runner);
  return { project, env, runner, flags: ["-P", project, "-E", env] };
}

describe("edgeplane capsule deploy", () => {
  it("waits through the rollout the runner reports until it is running and ready (exit 0)", async () => {
    const { flags, runner } = await stage({ applyDelayMs: 300 });
    const res = await edgeplane(home, [...flags, "capsule", "deploy", "web", "-i", "nginx:1.27", "-r", "2", "-e", "MODE=prod", "-m", "first"]);
    expect(res.stderr).toBe("");
    expect(res.code).toBe(0);
    // Each stage's steps as they changed, the instance count, and the verdict, as plain lines (no TTY).
    expect(res.stdout).toMatch(/rollout 1$/m);
    expect(res.stdout).toMatch(/✔ configure: /);
    expect(res.stdout).toMatch(/resource creation: runner/);
    expect(res.stdout).toMatch(/instances: 2 of 2 ready/);
    expect(res.stdout).toMatch(/✔ rollout 1 is running: 2 of 2 instance\(s\) ready$/m);
    expect(res.stdout).not.toContain("\u001b[");
    const desired = await runner.waitFor("desired");
    expect(desired.rolloutId).toBe(1);

    const list = JSON.parse((await edgeplane(home, [...flags, "capsule", "rollout", "list", "web", "-o", "json"])).stdout);
    expect(list.rollouts[0]).toMatchObject({ rolloutId: "1", config: { replicas: 2, message: "first" } });
    const instances = JSON.parse((await edgeplane(home, [...flags, "capsule", "instance", "list", "web", "-o", "json"])).stdout);
    expect(instances.instances.map((i: { instanceId: string }) => i.instanceId).sort()).toEqual(["web-1-0", "web-1-1"]);
  });

  it("prints the API's DeployResponse with -o json and still waits: the exit code tells the outcome", async () => {
    const { flags } = await stage();
    const res = await edgeplane(home, [...flags, "capsule", "deploy", "web", "-i", "nginx:1.27", "-r", "1", "-o", "json"]);
    expect(res.code).toBe(0);
    expect(JSON.parse(res.stdout)).toMatchObject({ rolloutId: "1" });
  });

  it("--dry-run prints the resulting configuration and deploys nothing", async () => {
    const { flags } = await stage();
    const res = await edgeplane(home, [...flags, "capsule", "deploy", "web", "-i", "nginx:1.27", "-r", "3", "-e", "A=b", "--dry-run", "--", "/bin/app", "--port", "80"]);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/^replicas: 3$/m);
    expect(res.stdout).toMatch(/command: \/bin\/app/);
    const json = JSON.parse((await edgeplane(home, [...flags, "capsule", "deploy", "web", "-r", "3", "--dry-run", "-o", "json"])).stdout);
    expect(json.rolloutConfig.replicas).toBe(3);
    const list = JSON.parse((await edgeplane(home, [...flags, "capsule", "rollout", "list", "web", "-o", "json"])).stdout);
    expect(list.rollouts ?? []).toEqual([]);
  });

  it("exits 1 when a rollout it waits for is aborted by a forced deploy, and never asks with -I", async () => {
    const { flags } = await stage({ apply: "never" });
    const waiting = start(home, [...flags, "capsule", "deploy", "web", "-i", "nginx:1.27", "-r", "1"]);
    await waiting.waitFor(/resource creation: runner/);

    const refused = await edgeplane(home, [...flags, "-I", "capsule", "deploy", "web", "-r", "2"]);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/^error: failed_precondition: rollout 1 of capsule web is in progress/m);

    const forced = await edgeplane(home, [...flags, "capsule", "deploy", "web", "-r", "2", "--force", "--no-wait"]);
    expect(forced.code, forced.stderr).toBe(0);
    const first = await waiting.done;
    expect(first.code).toBe(1);
    expect(first.stderr).toMatch(/^error: rollout 1 was aborted/m);
  });

  it("-t/--timeout rolls back to the rollout before (exit 1), or leaves it with --no-rollback", async () => {
    const { flags, runner } = await stage();
    expect((await edgeplane(home, [...flags, "capsule", "deploy", "web", "-i", "nginx:1.27", "-r", "1"])).code).toBe(0);
    runner.behavior.apply = "never";
    const timedOut = await edgeplane(home, [...flags, "capsule", "deploy", "web", "-r", "2", "-t", "2s"]);
    expect(timedOut.code).toBe(1);
    expect(timedOut.stderr).toMatch(/^error: rollout 2 timed out after 2s; rolled back to rollout 1 \(rollout 3\)$/m);
    const list = JSON.parse((await edgeplane(home, [...flags, "capsule", "rollout", "list", "web", "-o", "json"])).stdout);
    expect(list.rollouts.map((r: { rolloutId: string; status: { state: string; result?: string } }) => [r.rolloutId, r.status.result ?? ""])).toEqual([
      ["3", ""],
      ["2", "RESULT_ABORTED"],
      ["1", "RESULT_REPLACED"],
    ]);
    expect(list.rollouts[0].config.replicas).toBe(1);

    const kept = await edgeplane(home, [...flags, "capsule", "deploy", "web", "-r", "4", "--force", "-t", "1s", "--no-rollback"]);
    expect(kept.code).toBe(1);
    expect(kept.stderr).toMatch(/rollout 4 timed out after 1s; it is left as it is/);
  });

  it("rollout get, abort and rollback", async () => {
    const { flags, runner } = await stage();
    expect((await edgeplane(home, [...flags, "capsule", "deploy", "web", "-i", "nginx:1.27", "-r", "1"])).code).toBe(0);
    expect((await edgeplane(home, [...flags, "capsule", "deploy", "web", "-r", "2"])).code).toBe(0);
    const back = await edgeplane(home, [...flags, "capsule", "rollout", "rollback", "web"]);
    expect(back.code, back.stderr).toBe(0);
    expect(back.stdout).toMatch(/Rolling web back to rollout 1: rollout 3/);
    expect(back.stdout).toMatch(/rollout 3 is running: 1 of 1 instance\(s\) ready/);

    runner.behavior.apply = "never";
    expect((await edgeplane(home, [...flags, "capsule", "deploy", "web", "-r", "5", "--no-wait"])).code).toBe(0);
    const got = JSON.parse((await edgeplane(home, [...flags, "capsule", "rollout", "get", "web", "4", "-o", "json"])).stdout);
    expect(got.rollout.status.state).toBe("STATE_RESOURCE_CREATION");
    const abort = await edgeplane(home, [...flags, "capsule", "rollout", "abort", "web", "4"]);
    expect(abort.code, abort.stderr).toBe(0);
    const again = await edgeplane(home, [...flags, "capsule", "rollout", "abort", "web", "4"]);
    expect(again.code).toBe(3);
    expect(again.stderr).toMatch(/failed_precondition: rollout 4 has already stopped/);
    const pretty = await edgeplane(home, [...flags, "capsule", "rollout", "get", "web", "4"]);
    expect(pretty.stdout).toMatch(/STOPPED \(ABORTED\)/);
  });

  it("on a terminal, shows colours and the instances as a progress bar", async () => {
    const { flags } = await stage({ applyDelayMs: 500 });
    const terminal = inTerminal(home, [...flags, "capsule", "deploy", "web", "-i", "nginx:1.27", "-r", "3"]);
    try {
      const screen = await terminal.waitFor(/exited \d+/);
      expect(screen).toMatch(/exited 0/);
      expect(screen).toMatch(/instances \[[█░]+\] 3\/3 ready/);
      expect(screen).toContain("\u001b[32m✔");
    } finally {
      terminal.close();
    }
  });

  it("on a terminal, asks whether to abort a rollout in progress, and deploys with force when told yes", async () => {
    const { flags } = await stage({ apply: "never" });
    expect((await edgeplane(home, [...flags, "capsule", "deploy", "web", "-i", "nginx:1.27", "-r", "1", "--no-wait"])).code).toBe(0);
    const terminal = inTerminal(home, [...flags, "capsule", "deploy", "web", "-r", "2", "--no-wait"]);
    try {
      await terminal.waitFor(/Rollout 1 of web is in progress\. Abort it and deploy\? \[y\/N\]/);
      terminal.type("y");
      terminal.enter();
      const screen = await terminal.waitFor(/exited \d+/);
      expect(screen).toMatch(/rollout 2\s/);
      expect(screen).toMatch(/exited 0/);
    } finally {
      terminal.close();
    }
    const got = JSON.parse((await edgeplane(home, [...flags, "capsule", "rollout", "get", "web", "1", "-o", "json"])).stdout);
    expect(got.rollout.status.result).toBe("RESULT_ABORTED");
  });

  it("says when the connection is lost, resumes where it was, and finishes the wait", async () => {
    const { project, env, runner } = await stage({ applyDelayMs: 2500 });
    const proxy = await cuttableProxy(new URL(inject("workerUrl")).port);
    try {
      const waiting = start(home, ["-H", proxy.url, "-P", project, "-E", env, "capsule", "deploy", "web", "-i", "nginx:1.27", "-r", "1"]);
      await waiting.waitFor(/resource creation: runner/);
      proxy.cut();
      const res = await waiting.done;
      expect(res.stderr).toMatch(/Connection lost, retrying…\nConnection restored/);
      expect(res.code).toBe(0);
      expect(res.stdout).toMatch(/rollout 1 is running/);
      // Resumed with after=<seq>: no change is shown twice.
      const lines = res.stdout.split("\n").filter(Boolean);
      expect(lines).toEqual([...new Set(lines)]);
      expect(runner.received.filter((m) => m.type === "desired")).toHaveLength(1);
    } finally {
      await proxy.close();
    }
  });
});
