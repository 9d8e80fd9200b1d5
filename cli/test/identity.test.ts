import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { adminHome, edgeplane, type Home, newHome, unique } from "./run";

let admin: Home;
const homes: Home[] = [];
beforeAll(async () => {
  admin = await adminHome();
});
afterAll(async () => {
  await Promise.all([admin, ...homes].map((h) => h.remove()));
});

const ok = async (home: Home, args: string[]) => {
  const res = await edgeplane(home, args);
  expect(res.code, `edgeplane ${args.join(" ")}: ${res.stderr}`).toBe(0);
  return res.stdout;
};

describe("edgeplane service-account, role, group and user", () => {
  it("a service account created by the CLI logs in with client credentials and holds what its role grants", async () => {
    const name = unique("ci");
    const project = unique("shop");
    await ok(admin, ["project", "create", project]);
    const created = JSON.parse(await ok(admin, ["service-account", "create", name, "-o", "json"]));
    expect(created.clientSecret).toBeTruthy();
    const listed = JSON.parse(await ok(admin, ["service-account", "list", "-o", "json"]));
    const account = listed.serviceAccounts.find((a: { name: string }) => a.name === name);

    const role = unique("viewer");
    await ok(admin, ["role", "create", role, "--permission", `project:view@${project}`]);
    expect(await ok(admin, ["role", "get", role])).toMatch(new RegExp(`project:view\\s+${project}\\s+\\*\\s+\\*`));
    await ok(admin, ["role", "assign", role, "--service-account", account.serviceAccountId]);

    const robot = await newHome();
    homes.push(robot);
    expect(await ok(robot, ["auth", "login", "-H", inject("workerUrl"), "--client-id", created.clientId, "--client-secret", created.clientSecret])).toMatch(/Logged in/);
    expect(JSON.parse(await ok(robot, ["project", "get", project, "-o", "json"])).project.projectId).toBe(project);
    const denied = await edgeplane(robot, ["project", "create", unique("nope")]);
    expect(denied.code).toBe(3);
    expect(denied.stderr).toMatch(/^error: permission_denied: /m);

    const bad = await edgeplane(admin, ["role", "assign", role]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/exactly one of --user/);
  });

  it("creates a user, puts it in a group and lists the members", async () => {
    const email = `${unique("dev")}@example.com`;
    const group = unique("team");
    await ok(admin, ["group", "create", group]);
    const out = await ok(admin, ["user", "create", "--email", email, "--password", "a-Long-password-42"]);
    const userId = /User (\S+) created/.exec(out)?.[1];
    expect(userId).toBeTruthy();
    await ok(admin, ["group", "add-member", group, "--user", userId!]);
    const members = JSON.parse(await ok(admin, ["group", "list-members", group, "-o", "json"]));
    expect(members.members.map((m: { user?: { userId: string } }) => m.user?.userId)).toEqual([userId]);
    expect(JSON.parse(await ok(admin, ["user", "get", userId!, "-o", "json"])).user.userInfo.email).toBe(email);
    await ok(admin, ["user", "delete", userId!]);
  });
});
