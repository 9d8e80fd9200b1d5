import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type RunningWorker, startWorker } from "../../test/e2e/worker";
import { connectRunner, type TestRunner } from "../../test/e2e/runner";
import { adminHome, edgeplane, type Home } from "./run";

// A Worker of its own whose rollouts get stuck after 2 s rather than 10 minutes (port from this checkout's range).
let worker: RunningWorker;
let home: Home;
let runner: TestRunner | undefined;
let adminToken: string;
beforeAll(async () => {
  worker = await startWorker(8881, { ROLLOUT_READY_TIMEOUT_MS: "2000" });
  const { email, password } = inject("admin");
  const res = await fetch(`${worker.url}/api.v1.authentication.Service/Register`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ userPassword: { identifier: { email }, password } }),
  });
  if (!res.ok) throw new Error(`registering the admin failed: ${res.status} ${await res.text()}`);
  adminToken = ((await res.json()) as { token: { accessToken: string } }).token.accessToken;
  home = await adminHome(worker.url);
});
afterAll(async () => {
  runner?.disconnect();
  await home?.remove();
  await worker?.stop();
});

describe("edgeplane capsule deploy against a rollout that gets stuck", () => {
  it("shows the crashing instances and exits 1 with the rollout's message once it is stuck", async () => {
    for (const args of [["project", "create", "shop"], ["environment", "create", "prod", "--add-project", "shop"], ["config", "use-project", "shop"], ["config", "use-environment", "prod"], ["capsule", "create", "web"]]) {
      const res = await edgeplane(home, args);
      expect(res.code, res.stderr).toBe(0);
    }
    runner = await connectRunner("prod", { behavior: { instances: "crashing" }, worker: { url: worker.url, adminToken } });
    const res = await edgeplane(home, ["capsule", "deploy", "web", "-i", "nginx:1.27", "-r", "2"]);
    expect(res.code).toBe(1);
    expect(res.stdout).toMatch(/instances: 0 of 2 ready \(2 stuck\)/);
    expect(res.stdout).toMatch(/✖ running: instances — stuck: 0 of 2 instance\(s\) ready after 2s/);
    expect(res.stderr).toMatch(/^error: rollout 1 is stuck: 0 of 2 instance\(s\) ready after 2s$/m);

    const status = JSON.parse((await edgeplane(home, ["capsule", "status", "web", "-o", "json"])).stdout);
    expect(status).toMatchObject({ rolloutId: "1", state: "RUNNING", replicas: 2, ready: 0 });
  });
});
