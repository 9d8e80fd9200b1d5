/**
 * The system's Chromium driven by playwright-core, for the dashboard's browser tests, and
 * what every test does with it: check accessibility with axe-core, and leave a screenshot of
 * its last page in dashboard/test-results/ for a person to look at.
 */
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import AxeBuilder from "@axe-core/playwright";
import { type Browser, chromium, type Page } from "playwright-core";
import { expect } from "vitest";

export const chromiumPath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/** Browser tests run where Chromium is installed, and always under CI (where a missing browser fails them). */
export const haveBrowser = existsSync(chromiumPath) || process.env.CI === "true";

const shots = resolve(import.meta.dirname, "../test-results");

export async function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath,
    // Root (CI, these machines) cannot use Chromium's sandbox.
    args: process.getuid?.() === 0 ? ["--no-sandbox"] : [],
  });
}

/** A new page 1280×900 wide in a context of its own (axe-core needs one it can inject into). */
export async function newPage(browser: Browser): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  // afterAll may close the browser while this context is still closing: that rejection means
  // nothing to a test, and left unhandled it would fail the whole run.
  page.on("close", () => context.close().catch(() => undefined));
  page.setDefaultTimeout(20_000);
  return page;
}

/** Fails on any serious or critical axe-core violation of the page as it is now. */
export async function expectAccessible(page: Page, where: string): Promise<void> {
  const { violations } = await new AxeBuilder({ page }).analyze();
  const bad = violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  expect(bad.map((v) => `${where}: ${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`)).toEqual([]);
}

/** Saves a full-page screenshot as dashboard/test-results/<name>.png. */
export async function screenshot(page: Page, name: string): Promise<void> {
  await mkdir(shots, { recursive: true });
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}
