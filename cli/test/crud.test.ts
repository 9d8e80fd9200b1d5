import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { adminHome, edgeplane, type Home, unique } from "./run";

let home: Home;
beforeAll(async () => {
  home = await adminHome();
});
afterAll(() => home.remove());

const ok = async (args: string[]) => {
  const res = await edgeplane(home, args);
  expect(res.stderr, `edgeplane ${args.join(" ")}`).toBe("");
  expect(res.code, `edgeplane ${args.join(" ")}`).toBe(0);
  return res.stdout;
};

describe("edgeplane CRUD commands", () => {
  it("creates, lists, gets, updates and deletes a project; the list pipes into a JSON parser", async () => {
    const project = unique("proj");
    expect(await ok(["project", "create", project, "--name", "Shop"])).toMatch(`Project ${project} created`);
    const list = JSON.parse(await ok(["project", "list", "-o", "json"]));
    expect(list.projects.map((p: { projectId: string }) => p.projectId)).toContain(project);
    expect(await ok(["project", "list"])).toMatch(new RegExp(`^${project}\\s+Shop\\s`, "m"));

    await ok(["project", "update", project, "--name", "Shop 2"]);
    const got = parse(await ok(["project", "get", project, "-o", "yaml"]));
    expect(got.project).toMatchObject({ projectId: project, name: "Shop 2" });

    await ok(["project", "delete", project]);
    const missing = await edgeplane(home, ["project", "get", project]);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toMatch(/^error: not_found: /m);
  });

  it("uses the context's project and environment once chosen, and refuses ones that do not exist", async () => {
    const project = unique("proj");
    const env = unique("env");
    await ok(["project", "create", project]);
    await ok(["environment", "create", env, "--add-project", project]);
    const envs = JSON.parse(await ok(["env", "list", "-o", "json"]));
    expect(envs.environments.find((e: { environmentId: string }) => e.environmentId === env)?.activeProjects).toEqual([project]);

    const noProject = await edgeplane(home, ["capsule", "list"]);
    expect(noProject.code).toBe(2);
    expect(noProject.stderr).toMatch(/no project: pass -P\/--project/);

    const badProject = await edgeplane(home, ["config", "use-project", "no-such-project"]);
    expect(badProject.code).toBe(3);
    expect(badProject.stderr).toMatch(/not_found/);
    const badEnv = await edgeplane(home, ["config", "use-environment", "no-such-env"]);
    expect(badEnv.code).toBe(3);

    await ok(["config", "use-project", project]);
    await ok(["config", "use-environment", env]);
    await ok(["capsule", "create", "web"]);
    await ok(["capsule", "create", "api"]);
    const capsules = JSON.parse(await ok(["capsule", "list", "-o", "json"]));
    expect(capsules.capsules.map((c: { capsuleId: string }) => c.capsuleId).sort()).toEqual(["api", "web"]);
    expect(JSON.parse(await ok(["capsule", "get", "web", "-o", "json"])).capsule.capsuleId).toBe("web");
    await ok(["capsule", "delete", "api"]);
    expect(await ok(["capsule", "list"])).not.toMatch(/^api\b/m);

    // -P overrides the context's project for one command.
    const elsewhere = await edgeplane(home, ["-P", "no-such-project", "capsule", "list"]);
    expect(elsewhere.code).toBe(3);
    expect(elsewhere.stderr).toMatch(/^error: not_found: /m);

    const status = JSON.parse(await ok(["capsule", "status", "web", "-o", "json"]));
    expect(status).toMatchObject({ capsuleId: "web", environmentId: env, state: "NONE" });

    await ok(["environment", "delete", env, "--force"]);
    expect((JSON.parse(await ok(["env", "list", "-o", "json"])).environments ?? []).map((e: { environmentId: string }) => e.environmentId)).not.toContain(env);
  });

  it("refuses bad flags and arguments as usage errors (exit 2) with help", async () => {
    const unknownFlag = await edgeplane(home, ["project", "list", "--frobnicate"]);
    expect(unknownFlag.code).toBe(2);
    expect(unknownFlag.stderr).toMatch(/unknown option '--frobnicate'/);
    expect(unknownFlag.stderr).toMatch(/--help/);

    const badOutput = await edgeplane(home, ["-o", "xml", "project", "list"]);
    expect(badOutput.code).toBe(2);
    expect(badOutput.stderr).toMatch(/xml.*Allowed choices are pretty, json, yaml/);

    const missingArg = await edgeplane(home, ["capsule", "create"]);
    expect(missingArg.code).toBe(2);
    expect(missingArg.stderr).toMatch(/missing required argument 'capsule'/);

    const badNumber = await edgeplane(home, ["-P", "p", "-E", "e", "capsule", "deploy", "web", "-r", "two"]);
    expect(badNumber.code).toBe(2);
    expect(badNumber.stderr).toMatch(/"two" is not a non-negative integer/);

    const nothing = await edgeplane(home, ["-P", "p", "-E", "e", "capsule", "deploy", "web"]);
    expect(nothing.code).toBe(2);
    expect(nothing.stderr).toMatch(/nothing to deploy/);

    const help = await edgeplane(home, ["capsule", "deploy", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/--set-env-var <KEY=VALUE>/);
    expect(help.stdout).toMatch(/--no-rollback/);
  });
});
