import { readFileSync, statSync, writeFileSync } from "node:fs";
import { afterEach, describe, expect, inject, it } from "vitest";
import { parse, stringify } from "yaml";
import { adminHome, edgeplane, type Home, newHome } from "./run";

const url = () => inject("workerUrl");
const homes: Home[] = [];
const track = (h: Home) => (homes.push(h), h);
afterEach(async () => {
  await Promise.all(homes.splice(0).map((h) => h.remove()));
});

describe("edgeplane auth and config", () => {
  it("logs in, keeps the tokens owner-only, and says who is logged in as the API's JSON", async () => {
    const home = track(await adminHome());
    expect(statSync(home.configFile).mode & 0o777).toBe(0o600);
    const config = parse(readFileSync(home.configFile, "utf8"));
    expect(config.currentContext).toBe("default");
    expect(config.contexts[0]).toMatchObject({ name: "default", host: url() });
    expect(config.contexts[0].auth.refreshToken).toMatch(/^eyJ/);

    const get = await edgeplane(home, ["auth", "get", "-o", "json"]);
    expect(get.code).toBe(0);
    const me = JSON.parse(get.stdout);
    expect(me.userInfo.email).toBe(inject("admin").email);
    expect(me.userId).toBe(config.contexts[0].auth.subject);
  });

  it("refuses a wrong password with the API's code and exit 3, and stores nothing", async () => {
    const home = track(await newHome());
    const res = await edgeplane(home, ["auth", "login", "-H", url(), "-u", inject("admin").email, "-p", "not-the-password"]);
    expect(res.code).toBe(3);
    expect(res.stderr).toMatch(/^error: unauthenticated: /m);
    expect(res.stdout).toBe("");
    const get = await edgeplane(home, ["auth", "get"]);
    expect(get.code).toBe(2);
    expect(get.stderr).toMatch(/not logged in/);
  });

  it("asks for nothing without a terminal: missing credentials are a usage error", async () => {
    const home = track(await newHome());
    const res = await edgeplane(home, ["auth", "login", "-H", url(), "-u", "someone@example.com"]);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/-p\/--password/);
  });

  it("refreshes an expired access token and saves the rotated tokens", async () => {
    const home = track(await adminHome());
    const config = parse(readFileSync(home.configFile, "utf8"));
    const before = config.contexts[0].auth.refreshToken;
    // An access token that expired a minute ago: the CLI must refresh before calling.
    const expired = `${b64({ alg: "HS256" })}.${b64({ exp: Math.floor(Date.now() / 1000) - 60 })}.x`;
    config.contexts[0].auth.accessToken = expired;
    writeFileSync(home.configFile, stringify(config), { mode: 0o600 });

    const res = await edgeplane(home, ["auth", "get", "-o", "json"]);
    expect(res.stderr).toBe("");
    expect(res.code).toBe(0);
    const after = parse(readFileSync(home.configFile, "utf8")).contexts[0].auth;
    expect(after.accessToken).not.toBe(expired);
    expect(after.refreshToken).not.toBe(before);
    expect(statSync(home.configFile).mode & 0o777).toBe(0o600);
  });

  it("switches contexts: init, use-context, -C, current-context, view-config without tokens", async () => {
    const home = track(await adminHome());
    const init = await edgeplane(home, ["config", "init", "other", "-H", "http://127.0.0.1:9", "-P", "p1"]);
    expect(init.code).toBe(0);
    const current = await edgeplane(home, ["config", "current-context", "-o", "json"]);
    expect(JSON.parse(current.stdout)).toMatchObject({ name: "other", host: "http://127.0.0.1:9", project: "p1", loggedIn: false });

    // The new context has no login yet: a usage error, before any request.
    const notLoggedIn = await edgeplane(home, ["project", "list"]);
    expect(notLoggedIn.code).toBe(2);
    expect(notLoggedIn.stderr).toMatch(/not logged in: run `edgeplane auth login`/);
    // -C picks a context for one command.
    const viaFlag = await edgeplane(home, ["-C", "default", "auth", "get", "-o", "json"]);
    expect(viaFlag.code).toBe(0);
    expect(JSON.parse(viaFlag.stdout).userInfo.email).toBe(inject("admin").email);

    const use = await edgeplane(home, ["config", "use-context", "default"]);
    expect(use.code).toBe(0);
    expect((await edgeplane(home, ["config", "current-context", "-o", "json"])).stdout).toContain('"name": "default"');

    const view = await edgeplane(home, ["config", "view-config", "-o", "yaml"]);
    expect(view.code).toBe(0);
    expect(view.stdout).not.toMatch(/eyJ/);
    expect(parse(view.stdout).contexts.map((c: { name: string }) => c.name)).toEqual(["default", "other"]);

    const missing = await edgeplane(home, ["config", "use-context", "nope"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/no context named "nope"/);
  });

  it("says so when the server cannot be reached (exit 4)", async () => {
    const home = track(await newHome());
    const res = await edgeplane(home, ["auth", "login", "-H", "http://127.0.0.1:9", "-u", "a@b.c", "-p", "x"]);
    expect(res.code).toBe(4);
    expect(res.stderr).toMatch(/cannot reach the server/);
  });

  it("logs out: the session ends on the server and the tokens are forgotten", async () => {
    const home = track(await adminHome());
    const token = parse(readFileSync(home.configFile, "utf8")).contexts[0].auth.accessToken;
    expect((await edgeplane(home, ["auth", "logout"])).code).toBe(0);
    expect(parse(readFileSync(home.configFile, "utf8")).contexts[0].auth).toBeUndefined();
    const res = await fetch(`${url()}/api.v1.authentication.Service/Get`, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${token}` }, body: "{}" });
    expect(res.status).toBe(401);
  });
});

const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
