/**
 * The capsule page's tools in a real browser: roll back and stop, a terminal into an
 * instance, the CPU and memory chart, and a session revoked elsewhere returning to sign-in.
 */
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { Service as AuthService } from "../../proto/gen/api/v1/authentication/service_pb";
import { Service as CapsuleService } from "../../proto/gen/api/v1/capsule/service_pb";
import { Service as EnvironmentService } from "../../proto/gen/api/v1/environment/service_pb";
import { Service as ProjectService } from "../../proto/gen/api/v1/project/service_pb";
import { adminToken, client, workerUrl } from "../../test/e2e/clients";
import { connectRunner, type TestRunner } from "../../test/e2e/runner";
import { expectAccessible, haveBrowser, launch, newPage, screenshot } from "./browser";

describe.skipIf(!haveBrowser)("the capsule page's tools", () => {
  let browser: Browser;
  let runner: TestRunner;
  beforeAll(async () => {
    browser = await launch();
    const token = await adminToken();
    await client(ProjectService, token).create({ projectId: "tools" });
    await client(EnvironmentService, token).create({ environmentId: "tools", initializers: [{ field: { case: "addProject", value: "tools" } }] });
    await client(CapsuleService, token).create({ projectId: "tools", name: "api" });
    runner = await connectRunner("tools");
    const deploy = (image: string) =>
      client(CapsuleService, token).deploy({
        projectId: "tools",
        environmentId: "tools",
        capsuleId: "api",
        changes: [{ field: { case: "addImage", value: { image } } }, { field: { case: "replicas", value: 1 } }],
      });
    await deploy("nginx:1.26");
    await runner.waitFor("desired");
    await deploy("nginx:1.27");
    await runner.waitFor((m) => m.type === "desired" && m.rolloutId === 2);
    const now = Date.now();
    runner.metrics("tools", "api", [
      { instanceId: "api-2-0", time: new Date(now - 20_000).toISOString(), cpuMs: 120, memoryBytes: 40 * 2 ** 20 },
      { instanceId: "api-2-0", time: new Date(now - 10_000).toISOString(), cpuMs: 180, memoryBytes: 44 * 2 ** 20 },
    ]);
  });
  afterAll(async () => {
    runner?.disconnect();
    await browser?.close();
  });

  it("rolls back, opens a terminal, charts CPU and memory, stops, and ends a revoked session", async () => {
    const page = await newPage(browser);
    try {
      const { email, password } = inject("admin");
      await page.goto(`${workerUrl()}/p/tools/c/api?env=tools`);
      await page.getByLabel("Email").fill(email);
      await page.getByLabel("Password").fill(password);
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.getByRole("heading", { name: "Current rollout #2" }).waitFor();
      await page.getByTestId("rollout-state").getByText("Running").waitFor();

      // The chart loads its library on demand and draws the samples the runner reported.
      await page.getByRole("figure").first().locator("canvas").waitFor();
      await expect.poll(() => page.getByText("CPU (ms)").count()).toBeGreaterThan(0);

      await page.getByRole("button", { name: "Open a terminal in api-2-0" }).click();
      // xterm.js also mirrors its text into an accessibility tree and a live region: read the screen rows.
      const terminal = page.getByTestId("terminal").locator(".xterm-rows");
      await page.getByText("Connected").waitFor();
      await terminal.getByText("started sh").waitFor();
      await page.keyboard.type("echo hello-terminal");
      // The runner double echoes stdin back as stdout.
      await terminal.getByText("echo hello-terminal").waitFor();
      await expectAccessible(page, "capsule with terminal");
      await screenshot(page, "capsule-terminal");
      await page.getByRole("button", { name: "Close terminal" }).click();

      await page.getByRole("button", { name: "Roll back to #1" }).click();
      await page.getByRole("heading", { name: "Current rollout #3" }).waitFor();
      await page.getByTestId("rollout-state").getByText("Running").waitFor();
      await page.getByRole("button", { name: "Stop" }).click();
      await page.getByTestId("rollout-state").getByText("Stopped").waitFor();

      // Sign out elsewhere (another tab, an admin's session reset): the next call here fails and lands on sign-in.
      const stored = JSON.parse((await page.evaluate(() => localStorage.getItem("edgeplane.session"))) ?? "{}");
      await client(AuthService, stored.accessToken).logout({});
      await page.getByRole("button", { name: "Refresh" }).click();
      await page.getByText(/Your session ended/).waitFor();
    } finally {
      await screenshot(page, "capsule-tools");
      await page.close();
    }
  });
});
