/**
 * The newcomer's path from the README: `npm run runner:setup` makes the runner's credentials
 * (and deploys an image), `npm run runner` with them runs it, and it answers HTTP on localhost.
 */
import { execFile } from "node:child_process";
import { resolve } from "node:path";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { inject } from "vitest";
import { workerUrl } from "../test/e2e/clients";
import { eventually } from "../test/helpers/wait";
import { INDEX, removeAll } from "./test/docker";
import { haveDocker, type RunnerProcess, spawnRunner, testImageName } from "./test/harness";
import { TEST_ENVIRONMENT_PREFIX } from "./test/global-setup";

const run = promisify(execFile);
const setupBin = resolve(import.meta.dirname, "dist/edgeplane-runner-setup.js");

let runner: RunnerProcess | null = null;
const environmentId = `${TEST_ENVIRONMENT_PREFIX}setup-${process.pid.toString(36)}`;

afterEach(async () => {
  await runner?.stop("SIGKILL");
  await removeAll(environmentId);
});

describe.skipIf(!haveDocker())("runner:setup", () => {
  it("prints credentials once that start a runner, which serves the deployed image on localhost", async () => {
    const { email, password } = inject("admin");
    const args = ["--url", workerUrl(), "--environment", environmentId, "--email", email, "--password", password, "--image", testImageName(), "--host-port", "18844"];
    const { stdout } = await run(process.execPath, [setupBin, ...args], { env: { PATH: process.env.PATH ?? "" } });
    const id = /EDGEPLANE_CLIENT_ID=(\S+)/.exec(stdout)?.[1];
    const secret = /EDGEPLANE_CLIENT_SECRET=(\S+)/.exec(stdout)?.[1];
    expect(id && secret, stdout).toBeTruthy();
    expect(stdout).toContain(`npm run runner -- --url ${workerUrl()} --environment ${environmentId} --client-id ${id} --client-secret ${secret}`);

    runner = spawnRunner(["--url", workerUrl(), "--environment", environmentId, "--client-id", id!, "--client-secret", secret!, "--probe-interval", "300ms"]);
    await runner.waitForLog(/connected to environment/);
    const body = await eventually(
      () => fetch("http://127.0.0.1:18844/").then((r) => r.text(), (e: Error) => e.message),
      (b) => b === INDEX,
      "the capsule answers on the host port",
      30_000,
      250,
    );
    expect(body).toBe(INDEX);

    // Running setup again is fine: a new account, the same environment and role.
    const again = await run(process.execPath, [setupBin, ...args.slice(0, 8)], { env: { PATH: process.env.PATH ?? "" } });
    expect(/EDGEPLANE_CLIENT_ID=(\S+)/.exec(again.stdout)?.[1]).not.toBe(id);
  });
});
