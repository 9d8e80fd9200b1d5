import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { connectRunner, type TestRunner } from "../../test/e2e/runner";
import { adminHome, cuttableProxy, edgeplane, type Home, inTerminal, start, unique } from "./run";

let home: Home;
let runner: TestRunner;
let project: string;
let env: string;
let flags: string[];
beforeAll(async () => {
  home = await adminHome();
  project = unique("shop");
  env = unique("prod");
  flags = ["-P", project, "-E", env];
  for (const args of [["project", "create", project], ["environment", "create", env, "--add-project", project], ["-P", project, "capsule", "create", "web"]]) {
    const res = await edgeplane(home, args);
    expect(res.code, res.stderr).toBe(0);
  }
  runner = await connectRunner(env);
  const deploy = await edgeplane(home, [...flags, "capsule", "deploy", "web", "-i", "nginx:1.27", "-r", "2"]);
  expect(deploy.code, deploy.stderr).toBe(0);
});
afterAll(async () => {
  runner?.disconnect();
  await home?.remove();
});

describe("edgeplane capsule instance", () => {
  it("lists, gets and restarts instances", async () => {
    const list = await edgeplane(home, [...flags, "capsule", "instance", "list", "web"]);
    expect(list.stdout).toMatch(/^web-1-0\s+RUNNING\s+1\s+0\s/m);
    const got = JSON.parse((await edgeplane(home, [...flags, "capsule", "instance", "get", "web", "web-1-1", "-o", "json"])).stdout);
    expect(got.status).toMatchObject({ instanceId: "web-1-1", rolloutId: "1" });
    expect((await edgeplane(home, [...flags, "capsule", "instance", "restart", "web", "web-1-0"])).code).toBe(0);
    await runner.waitFor((m) => m.type === "restart-instance" && m.instanceId === "web-1-0");
    const missing = await edgeplane(home, [...flags, "capsule", "instance", "get", "web", "web-9-9"]);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toMatch(/^error: not_found: /m);
  });

  it("prints logs, and with -f follows new lines until interrupted", async () => {
    runner.log(project, "web", "web-1-0", [{ stream: "stdout", text: "booted" }, { stream: "stderr", text: "warming up" }]);
    runner.log(project, "web", "web-1-1", ["also booted"]);
    await new Promise((r) => setTimeout(r, 500));
    const all = await edgeplane(home, [...flags, "capsule", "instance", "logs", "web"]);
    expect(all.code, all.stderr).toBe(0);
    expect(all.stdout).toMatch(/^web-1-0 booted$/m);
    expect(all.stdout).toMatch(/^web-1-1 also booted$/m);
    expect(all.stderr).toMatch(/^web-1-0 warming up$/m);
    const one = await edgeplane(home, [...flags, "capsule", "instance", "logs", "web", "web-1-1"]);
    expect(one.stdout).toBe("also booted\n");

    const following = start(home, [...flags, "capsule", "instance", "logs", "web", "web-1-0", "-f"]);
    await following.waitFor(/booted/);
    runner.log(project, "web", "web-1-0", ["request 1"]);
    await following.waitFor(/request 1/);
    runner.log(project, "web", "web-1-0", ["request 2"]);
    await following.waitFor(/request 2/);
    following.process.kill("SIGINT");
    const res = await following.done;
    expect(res.code).toBe(0);
    expect(res.stdout).toBe("booted\nrequest 1\nrequest 2\n");
  });

  it("logs -f says when the connection is lost and resumes without repeating a line", async () => {
    const proxy = await cuttableProxy(new URL(inject("workerUrl")).port);
    try {
      const following = start(home, ["-H", proxy.url, ...flags, "capsule", "instance", "logs", "web", "web-1-1", "-f"]);
      await following.waitFor(/also booted/);
      proxy.cut();
      await following.waitFor(/Connection lost, retrying…/);
      runner.log(project, "web", "web-1-1", ["after the drop"]);
      await following.waitFor(/after the drop/);
      following.process.kill("SIGINT");
      const res = await following.done;
      expect(res.stdout).toBe("also booted\nafter the drop\n");
      expect(res.stderr).toMatch(/Connection restored/);
    } finally {
      await proxy.close();
    }
  });

  it("exec -i sends stdin to the command and exits with its exit code (the double's 0)", async () => {
    const res = await edgeplane(home, [...flags, "capsule", "instance", "exec", "web", "web-1-0", "-i", "--", "sh", "-c", "cat"], { input: "hello from stdin\n" });
    expect(res.stderr).toBe("");
    expect(res.code).toBe(0);
    expect(res.stdout).toBe("started sh -c cat\nhello from stdin\n");
    const missing = await edgeplane(home, [...flags, "capsule", "instance", "exec", "web", "web-7-7", "--", "sh"]);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toMatch(/^error: not_found: /m);
  });

  it("exec -it is a raw terminal: what is typed reaches the command once, and its output comes back", async () => {
    const terminal = inTerminal(home, [...flags, "capsule", "instance", "exec", "web", "web-1-1", "-it", "--", "sh"]);
    try {
      await terminal.waitFor(/started sh/);
      terminal.type("echo typed-in-tmux");
      const screen = await terminal.waitFor(/typed-in-tmux/);
      // In raw mode the local terminal does not echo: the only copy is the one the command sent back.
      expect(screen.match(/typed-in-tmux/g)).toHaveLength(1);
    } finally {
      terminal.close();
    }
  });
});
