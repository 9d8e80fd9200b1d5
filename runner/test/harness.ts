/**
 * Runs the real runner against the e2e Worker: a fresh environment (with a project active in
 * it), a service account holding `runner:connect` there, and the runner as its own process,
 * as an operator would start it. `cleanup` removes every container, network and volume the
 * runner created for the environment.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { inject } from "vitest";
import { Service as CapsuleService } from "../../proto/gen/api/v1/capsule/service_pb";
import { Service as EnvironmentService } from "../../proto/gen/api/v1/environment/service_pb";
import { Service as ProjectService } from "../../proto/gen/api/v1/project/service_pb";
import { Service as RoleService } from "../../proto/gen/api/v1/role/service_pb";
import { Service as ServiceAccountService } from "../../proto/gen/api/v1/service_account/service_pb";
import { adminToken, client, workerUrl } from "../../test/e2e/clients";
import { removeAll } from "./docker";
import { TEST_ENVIRONMENT_PREFIX } from "./global-setup";

/** Whether the Docker tests run: always under CI, elsewhere when an engine answers. */
export const haveDocker = (): boolean => inject("testImage") !== "";
export const testImageName = (): string => inject("testImage");

/** Options given to every runner of the tests: short intervals, so rollouts and drains take moments. */
const FAST = ["--probe-interval", "300ms", "--drain", "1s", "--metrics-interval", "1s", "--orphan-grace", "3s"];

export interface RunnerCredentials {
  clientId: string;
  clientSecret: string;
}

/** A runner process. */
export class RunnerProcess {
  private output = "";
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(private readonly child: ChildProcess) {
    child.stdout?.on("data", (d) => (this.output += d));
    child.stderr?.on("data", (d) => (this.output += d));
    this.exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  }

  /** Everything it printed so far. */
  log(): string {
    return this.output;
  }

  /** Waits until its output matches. */
  async waitForLog(pattern: RegExp, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pattern.test(this.output)) {
      if (this.child.exitCode !== null) throw new Error(`the runner exited (${this.child.exitCode}) before printing ${pattern}:\n${this.output}`);
      if (Date.now() > deadline) throw new Error(`the runner did not print ${pattern} within ${timeoutMs} ms:\n${this.output}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Stops it with a signal (SIGKILL: as a crash) and waits for it to exit. */
  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    await this.exited;
  }
}

/** Starts the built runner with `args` (and nothing from this process's environment but PATH). */
export function spawnRunner(args: string[], env: Record<string, string> = {}): RunnerProcess {
  const child = spawn(process.execPath, [inject("runnerBin"), ...args], {
    env: { PATH: process.env.PATH ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  return new RunnerProcess(child);
}

/** A new service account holding `runner:connect` on `environmentId` only, as an operator makes one; its credentials. */
export async function grantRunner(token: string, environmentId: string): Promise<RunnerCredentials> {
  const roleId = `runner-${environmentId}`.slice(0, 63);
  const roles = client(RoleService, token);
  await roles.create({ roleId, permissions: [{ action: "runner:connect", scope: { environment: environmentId, project: "*", resource: "*" } }] });
  const accounts = client(ServiceAccountService, token);
  const { clientId, clientSecret } = await accounts.create({ name: roleId });
  const account = (await accounts.list({})).serviceAccounts.find((s) => s.name === roleId);
  if (!account) throw new Error(`service account ${roleId} was created but is not listed`);
  await roles.assign({ roleId, entityId: { kind: { case: "serviceAccountId", value: account.serviceAccountId } } });
  return { clientId, clientSecret };
}

let counter = 0;

/** An environment served by a real runner, and clients to drive it as the admin. */
export class RunnerEnvironment {
  runner: RunnerProcess | null = null;

  private constructor(
    readonly environmentId: string,
    readonly projectId: string,
    readonly credentials: RunnerCredentials,
    readonly token: string,
  ) {}

  /** Makes the environment, its project and the runner's service account (nothing runs yet). */
  static async create(name: string): Promise<RunnerEnvironment> {
    const token = await adminToken();
    const suffix = `${process.pid.toString(36)}${(++counter).toString(36)}${Math.random().toString(36).slice(2, 6)}`;
    const environmentId = `${TEST_ENVIRONMENT_PREFIX}${name}-${suffix}`.slice(0, 60);
    const projectId = `p-${suffix}`;
    await client(ProjectService, token).create({ projectId });
    await client(EnvironmentService, token).create({ environmentId, initializers: [{ field: { case: "addProject", value: projectId } }] });
    return new RunnerEnvironment(environmentId, projectId, await grantRunner(token, environmentId), token);
  }

  /** The options an operator would pass, plus the tests' short intervals. */
  args(extra: string[] = []): string[] {
    return [
      "--url",
      workerUrl(),
      "--environment",
      this.environmentId,
      "--client-id",
      this.credentials.clientId,
      "--client-secret",
      this.credentials.clientSecret,
      "--name",
      `test-${this.environmentId}`,
      ...FAST,
      ...extra,
    ];
  }

  /** Starts the runner and waits until it is connected. */
  async start(extra: string[] = []): Promise<RunnerProcess> {
    const runner = spawnRunner(this.args(extra));
    this.runner = runner;
    await runner.waitForLog(/connected to environment/);
    return runner;
  }

  capsules() {
    return client(CapsuleService, this.token);
  }

  /** Stops the runner and removes everything it created for the environment. */
  async cleanup(): Promise<void> {
    await this.runner?.stop("SIGKILL");
    await removeAll(this.environmentId);
  }
}
