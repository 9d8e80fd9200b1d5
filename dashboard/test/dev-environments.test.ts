/** A developer environment's lifecycle on screen, its phases arriving live as a runner reports them. */
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { workerUrl } from "../../test/e2e/clients";
import { connectRunner, type TestRunner } from "../../test/e2e/runner";
import { expectAccessible, haveBrowser, launch, newPage, screenshot } from "./browser";

/** Signs in as the shared Worker's administrator. */
async function signIn(page: Page): Promise<void> {
  const { email, password } = inject("admin");
  await page.goto(workerUrl());
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Projects and environments" }).waitFor();
}

describe.skipIf(!haveBrowser)("developer environments in the dashboard", () => {
  let browser: Browser;
  let runner: TestRunner | undefined;
  beforeAll(async () => {
    browser = await launch();
  });
  afterAll(async () => {
    runner?.disconnect();
    await browser?.close();
  });

  it("creates one, sees it start when a runner connects, stops, starts and deletes it", async () => {
    const page = await newPage(browser);
    try {
      await signIn(page);
      await page.getByRole("link", { name: "Dev environments" }).click();
      await page.getByLabel("Name").fill("feature-x");
      await page.getByLabel("Port to open (optional)").fill("3000");
      await page.getByRole("button", { name: "Create and start" }).click();
      await page.waitForURL(/\/dev\/[0-9a-f-]{36}$/);
      const id = new URL(page.url()).pathname.split("/").pop()!;
      const phase = page.getByTestId("dev-phase");
      await page.getByText("waiting for a runner").waitFor();
      await page.evaluate(() => Object.assign(window, { edgeplaneMarker: true }));

      runner = await connectRunner(id, { behavior: { environmentDelayMs: 300 } });
      await phase.getByText("Running", { exact: true }).waitFor();
      await page.getByTestId("dev-ports").getByText(`https://3000-${id}.ports.test`).waitFor();
      await expectAccessible(page, "developer environment");
      await screenshot(page, "dev-environment-running");

      await page.getByRole("button", { name: "Stop" }).click();
      await phase.getByText("Stopped", { exact: true }).waitFor();
      await page.getByRole("button", { name: "Start" }).click();
      await phase.getByText("Running", { exact: true }).waitFor();
      // All of it arrived over the environment's stream: the page never reloaded.
      expect(await page.evaluate(() => "edgeplaneMarker" in window)).toBe(true);

      await page.getByRole("link", { name: "Developer environments" }).click();
      const row = page.getByTestId("dev-environments").getByRole("row").filter({ hasText: "feature-x" });
      await row.getByText("Running").waitFor();
      await expectAccessible(page, "developer environments");
      await row.getByRole("link", { name: "feature-x" }).click();
      await page.getByRole("button", { name: "Delete" }).click();
      await phase.getByText("Deleted", { exact: true }).waitFor();
    } finally {
      await screenshot(page, "dev-environment-lifecycle");
      await page.close();
    }
  });
});
