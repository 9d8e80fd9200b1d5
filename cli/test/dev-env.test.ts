import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectRunner, type TestRunner } from "../../test/e2e/runner";
import { adminHome, edgeplane, type Home } from "./run";

let home: Home;
let runner: TestRunner | undefined;
beforeAll(async () => {
  home = await adminHome();
});
afterAll(async () => {
  runner?.disconnect();
  await home?.remove();
});

const ok = async (args: string[]) => {
  const res = await edgeplane(home, args);
  expect(res.code, `edgeplane ${args.join(" ")}: ${res.stderr}`).toBe(0);
  return res.stdout;
};

describe("edgeplane dev-env, automations and task run", () => {
  it("starts an environment once a runner serves it, runs a task to its outcome and stops it", async () => {
    const created = JSON.parse(await ok(["dev-env", "create", "--name", "cli-dev", "--no-wait", "-o", "json"]));
    const id: string = created.environment.id;
    runner = await connectRunner(id);
    expect(await ok(["dev-env", "start", id])).toMatch(new RegExp(`✔ environment ${id} is RUNNING`));
    expect(JSON.parse(await ok(["dev-env", "list", "-o", "json"])).environments.map((e: { id: string }) => e.id)).toContain(id);

    const file = join(home.dir, "automations.yaml");
    writeFileSync(file, "services:\n  web:\n    name: Web\n    commands:\n      start: npm run dev\ntasks:\n  build:\n    name: Build\n    command: npm run build\n");
    expect(await ok(["automations", "apply", file, id])).toMatch(/1 service\(s\), 1 task\(s\) updated/);
    expect(await ok(["task", "list", id])).toMatch(/^build\s+\S+\s+npm run build$/m);

    const run = await ok(["task", "run", id, "build"]);
    expect(run).toMatch(/SUCCEEDED/);
    expect(run).toMatch(/✔ task build succeeded/);

    runner.behavior.steps = "fail";
    const failed = await edgeplane(home, ["task", "run", id, "build"]);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/^error: task build failed/m);

    await ok(["service", "start", id, "web"]);
    await runner.waitFor((m) => m.type === "service-desired" && m.desiredPhase === "running");
    const missing = await edgeplane(home, ["task", "run", id, "nope"]);
    expect(missing.code).toBe(3);

    expect(await ok(["dev-env", "stop", id])).toMatch(new RegExp(`✔ environment ${id} is STOPPED`));
  });
});
