/**
 * The runner as an operator meets it: --help, and every refusal to run as one clear line and
 * a non-zero exit (a wrong option, Docker or edgeplane unreachable, credentials refused,
 * superseded by another runner, the environment deleted).
 */
import { afterEach, describe, expect, it } from "vitest";
import { Service as EnvironmentService } from "../proto/gen/api/v1/environment/service_pb";
import { client, workerUrl } from "../test/e2e/clients";
import { haveDocker, type RunnerProcess, RunnerEnvironment, spawnRunner } from "./test/harness";

const started: RunnerProcess[] = [];
const made: RunnerEnvironment[] = [];
afterEach(async () => {
  for (const r of started.splice(0)) await r.stop("SIGKILL");
  for (const e of made.splice(0)) await e.cleanup();
});

/** Runs the runner to its end: exit code and what it printed. */
async function outcome(args: string[], env: Record<string, string> = {}) {
  const r = spawnRunner(args, env);
  started.push(r);
  const { code } = await r.exited;
  return { code, log: r.log() };
}

const creds = ["--environment", "prod", "--client-id", "id", "--client-secret", "secret"];
const lastLine = (log: string) => log.trim().split("\n").at(-1) ?? "";

describe("edgeplane-runner's command line", () => {
  it("explains every option with --help", async () => {
    const { code, log } = await outcome(["--help"]);
    expect(code).toBe(0);
    for (const o of ["--url", "--environment", "--client-id", "--client-secret", "--docker-host", "EDGEPLANE_URL", "EDGEPLANE_CLIENT_SECRET", "DOCKER_HOST"]) expect(log).toContain(o);
  });

  it("refuses a missing or wrong option with one line and exit code 2", async () => {
    const missing = await outcome(["--url", "http://127.0.0.1:1"]);
    expect(missing).toEqual({ code: 2, log: "edgeplane-runner: required option '--environment <id>' not specified (see --help)\n" });
    const bad = await outcome(["--url", "ftp://x", ...creds]);
    expect(bad.code).toBe(2);
    expect(bad.log).toMatch(/^edgeplane-runner: option '--url <url>' argument 'ftp:\/\/x' is invalid\. expected an http:\/\/ or https:\/\/ URL.*\n$/);
    const duration = await outcome(["--url", "http://x", ...creds, "--drain", "soon"]);
    expect(duration.log).toMatch(/--drain <duration>.*expected a duration/);
  });

  it("takes its options from the environment too", async () => {
    const { code, log } = await outcome([], { EDGEPLANE_URL: "http://127.0.0.1:1", EDGEPLANE_ENVIRONMENT: "prod", EDGEPLANE_CLIENT_ID: "a", EDGEPLANE_CLIENT_SECRET: "b", DOCKER_HOST: "/nonexistent.sock" });
    expect(code).toBe(1);
    expect(lastLine(log)).toBe("edgeplane-runner: cannot reach Docker at /nonexistent.sock: connect ENOENT /nonexistent.sock");
  });

  it.skipIf(!haveDocker())("says so when edgeplane cannot be reached or refuses the credentials", async () => {
    const unreachable = await outcome(["--url", "http://127.0.0.1:1", ...creds]);
    expect(unreachable.code).toBe(1);
    expect(lastLine(unreachable.log)).toMatch(/^edgeplane-runner: cannot reach edgeplane at http:\/\/127\.0\.0\.1:1: /);
    const refused = await outcome(["--url", workerUrl(), ...creds]);
    expect(refused.code).toBe(1);
    expect(lastLine(refused.log)).toMatch(/^edgeplane-runner: edgeplane refused the runner's client credentials: /);
    expect(refused.log).not.toMatch(/\n\s+at /);
  });

  it.skipIf(!haveDocker())("stops for good, saying why, when superseded by another runner and when the environment is deleted", async () => {
    const e = await RunnerEnvironment.create("final");
    made.push(e);
    const first = await e.start();
    const second = spawnRunner(e.args());
    started.push(second);
    expect((await first.exited).code).toBe(1);
    expect(lastLine(first.log())).toMatch(/stopping for good: superseded: another runner connected to the environment \(4001/);
    await second.waitForLog(/connected to environment/);
    await client(EnvironmentService, e.token).delete({ environmentId: e.environmentId });
    expect((await second.exited).code).toBe(1);
    expect(lastLine(second.log())).toMatch(/stopping for good: the environment was deleted \(1001/);
  });
});
