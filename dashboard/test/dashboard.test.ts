/**
 * The dashboard in a real browser against a Worker as `npm run dev` runs it: a person signs
 * up on a fresh installation, creates a project, an environment and a capsule, deploys, and
 * watches the rollout, logs and events live, across a restart of the Worker that drops every
 * socket (as a deploy does), then signs out.
 */
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Service as AuthService } from "../../proto/gen/api/v1/authentication/service_pb";
import { client } from "../../test/e2e/clients";
import { freePort } from "../../test/e2e/global-setup";
import { connectRunner, type TestRunner } from "../../test/e2e/runner";
import { type RunningWorker, startWorker } from "../../test/e2e/worker";
import { expectAccessible, haveBrowser, launch, newPage, screenshot } from "./browser";

const person = { email: "ada@example.com", password: "analytical-Engine-1" };

/** The seqs shown in the events feed, oldest first. */
const feedSeqs = (page: Page) => page.locator("[data-testid=events-feed] li").evaluateAll((els) => els.map((e) => Number(e.getAttribute("data-seq"))).reverse());
const feedTypes = (page: Page) => page.locator("[data-testid=events-feed] li code").allTextContents();

describe.skipIf(!haveBrowser)("the dashboard", () => {
  let browser: Browser;
  let worker: RunningWorker;
  const runners: TestRunner[] = [];

  beforeAll(async () => {
    [browser, worker] = await Promise.all([launch(), startWorker(await freePort())]);
  });
  afterAll(async () => {
    for (const r of runners) r.disconnect();
    await browser?.close();
    await worker?.stop();
  });

  it("signs up, deploys, follows the rollout, logs and events live across a dropped connection, and signs out", { timeout: 240_000 }, async () => {
    const page = await newPage(browser);
    try {
      await page.goto(worker.url);
      await page.getByRole("heading", { name: /Sign in to/ }).waitFor();
      await expectAccessible(page, "sign-in");
      // The first user of an installation may register, and becomes its administrator.
      await page.getByRole("button", { name: "Create an account" }).click();
      await page.getByLabel("Email").fill(person.email);
      await page.getByLabel("Password").fill(person.password);
      await page.getByRole("button", { name: "Create account" }).click();
      await page.getByRole("heading", { name: "Projects and environments" }).waitFor();
      await page.getByText("No projects yet").waitFor();
      await expectAccessible(page, "home, empty");

      await page.getByLabel("New project").fill("shop");
      await page.getByRole("button", { name: "Create project" }).click();
      await page.getByRole("link", { name: "shop" }).waitFor();
      await page.getByLabel("New environment").fill("prod");
      await page.getByRole("button", { name: "Create environment" }).click();
      // A new environment is global (every project active) until projects are chosen for it.
      await page.getByText("Active (global)").waitFor();
      await page.getByRole("button", { name: "Choose the projects of prod" }).click();
      await page.getByRole("button", { name: "Make prod global" }).waitFor();
      await page.getByLabel("shop active in prod").click();
      await page.getByText("Active", { exact: true }).waitFor();
      await expectAccessible(page, "home");

      // A reload keeps the session (tokens in storage).
      await page.reload();
      await page.getByRole("link", { name: "shop" }).click();
      await page.getByText("No capsules yet").waitFor();
      await page.getByLabel("New capsule").fill("web");
      await page.getByRole("button", { name: "Create capsule" }).click();
      await page.getByRole("link", { name: "web", exact: true }).click();
      await page.getByRole("heading", { name: "web", exact: true }).waitFor();
      await page.getByText("Nothing deployed to prod yet").waitFor();

      // The runner answers after a pause, so the rollout is seen waiting before it runs.
      const { token } = await client(AuthService, undefined, worker.url).login({
        method: { case: "userPassword", value: { identifier: { identifier: { case: "email", value: person.email } }, password: person.password } },
      });
      const runner = await connectRunner("prod", { worker: { url: worker.url, adminToken: token!.accessToken }, behavior: { applyDelayMs: 2500 } });
      runners.push(runner);
      await page.getByTestId("events-feed").getByText("runner.connected").waitFor();

      await page.getByLabel("Image").fill("nginx:1.27");
      await page.getByLabel("Replicas").fill("2");
      await page.getByLabel("Environment variables").fill("GREETING=hello");
      await page.getByRole("button", { name: "Dry run" }).click();
      await expect.poll(() => page.getByTestId("dry-run-config").textContent()).toContain("nginx:1.27");
      expect(await page.getByTestId("dry-run-config").textContent()).toContain("GREETING");

      // Nothing below reloads the page: the marker would be gone.
      await page.evaluate(() => Object.assign(window, { edgeplaneMarker: true }));
      await page.getByRole("button", { name: "Deploy", exact: true }).click();
      await page.getByText("Rollout #1 started").waitFor();
      const state = page.getByTestId("rollout-state");
      await state.getByText("Resource creation").waitFor();
      const stepsWaiting = await page.getByTestId("rollout-steps").textContent();
      await state.getByText("Running").waitFor({ timeout: 30_000 });
      await expect.poll(() => page.getByTestId("rollout-steps").textContent()).not.toBe(stepsWaiting);
      await page.getByTestId("instance-counts").getByText("2 healthy").waitFor();
      expect(await page.evaluate(() => "edgeplaneMarker" in window)).toBe(true);

      runner.log("shop", "web", "web-1-0", ["hello from web-1-0"]);
      await page.getByTestId("logs").getByText("hello from web-1-0").waitFor();
      await expectAccessible(page, "capsule");
      const before = await feedSeqs(page);
      expect(before.length).toBeGreaterThan(2);

      // A deploy of the Worker drops every socket: the page must resume from where it was.
      await worker.restart();
      const again = await connectRunner("prod", { worker: { url: worker.url, adminToken: token!.accessToken } });
      runners.push(again);
      again.log("shop", "web", "web-1-0", ["after the restart"]);
      await page.getByTestId("logs").getByText("after the restart").waitFor({ timeout: 40_000 });
      await expect.poll(async () => (await feedTypes(page)).filter((t) => t === "runner.connected").length, { timeout: 40_000 }).toBeGreaterThanOrEqual(2);
      await page.getByTestId("stream-state").getByText("Live").waitFor();
      const after = await feedSeqs(page);
      // Every event once, in order, with no gap: 1, 2, 3 … n.
      expect(after).toEqual(after.map((_, i) => i + 1));
      expect(after.length).toBeGreaterThan(before.length);
      expect(await page.getByTestId("logs").getByText("hello from web-1-0").count()).toBe(1);
      expect(await page.getByTestId("logs").getByText("after the restart").count()).toBe(1);
      expect(await page.evaluate(() => "edgeplaneMarker" in window)).toBe(true);
      await screenshot(page, "capsule-live");

      await page.getByRole("link", { name: "Administration" }).click();
      await page.getByRole("heading", { name: "Roles and permissions" }).waitFor();
      await expectAccessible(page, "administration");

      const stored = await page.evaluate(() => localStorage.getItem("edgeplane.session"));
      const { refreshToken } = JSON.parse(stored ?? "{}");
      await page.getByRole("button", { name: "Sign out" }).click();
      await page.getByText("You signed out.").waitFor();
      // Signing out ended the session on the server too: its refresh token no longer works.
      await expect(client(AuthService, undefined, worker.url).refreshToken({ refreshToken })).rejects.toThrow(/unauthenticated/i);
    } finally {
      await screenshot(page, "sign-up-to-sign-out");
      await page.close();
    }
  });
});
