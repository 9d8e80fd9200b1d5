/**
 * Global setup of the runner's end-to-end tests (beside test/e2e/global-setup.ts, which
 * starts the Worker): builds the runner as `npm run runner` does, and the test image.
 * Under CI=true a Docker engine must answer (.ci/run starts one); elsewhere the Docker tests
 * skip when none does. Teardown checks that no test left anything of the runner behind.
 */
import { execFileSync } from "node:child_process";
import { resolve } from "node:path";
import type { TestProject } from "vitest/node";
import { docker, dockerAnswers, testImage } from "./docker";

declare module "vitest" {
  export interface ProvidedContext {
    /** The test image's name, or "" when no Docker engine answers (outside CI). */
    testImage: string;
    /** The built runner's entry point. */
    runnerBin: string;
  }
}

const root = resolve(import.meta.dirname, "../..");

/** Environments of runner tests are named with this prefix, so teardown can find their leftovers. */
export const TEST_ENVIRONMENT_PREFIX = "rt-";

export default async function setup(project: TestProject) {
  const npm = process.env.npm_execpath ? [process.execPath, process.env.npm_execpath] : ["npm"];
  execFileSync(npm[0]!, [...npm.slice(1), "run", "-s", "build", "-w", "@edgeplane/runner"], { cwd: root, stdio: "inherit" });
  project.provide("runnerBin", resolve(root, "runner/dist/edgeplane-runner.js"));
  if (!(await dockerAnswers())) {
    if (process.env.CI === "true") throw new Error("CI=true but no Docker engine answers at /var/run/docker.sock: .ci/run starts one");
    project.provide("testImage", "");
    return;
  }
  project.provide("testImage", await testImage());
  return async () => {
    const left = await docker.listContainers({ all: true, filters: { label: ["dev.edgeplane.managed=true"] } });
    const ours = left.filter((c) => c.Labels["dev.edgeplane.environment"]?.startsWith(TEST_ENVIRONMENT_PREFIX));
    if (ours.length > 0) throw new Error(`runner tests left containers behind: ${ours.map((c) => c.Names[0]).join(", ")}`);
  };
}
