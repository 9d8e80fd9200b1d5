/**
 * Starts edgeplane the way `npm run dev` does — wrangler dev with local D1 migrated — on a
 * port of its own with a throwaway state folder, for tests that drive it from outside
 * (the runner, the CLI, a browser) over real HTTP and WebSockets.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const root = resolve(import.meta.dirname, "../..");
const bin = join(root, "node_modules/.bin");

export interface RunningWorker {
  /** Base URL, e.g. http://127.0.0.1:8799 */
  url: string;
  /** Everything wrangler printed so far (for failure messages). */
  log(): string;
  /**
   * Stops wrangler and starts it again on the same port and state, as a deploy does: every
   * socket drops, stored data stays.
   */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts a Worker on `port` and resolves once `/readyz` answers 200. */
export async function startWorker(port: number, vars: Record<string, string> = {}): Promise<RunningWorker> {
  const state = await mkdtemp(join(tmpdir(), "edgeplane-e2e-"));
  // wrangler needs Node 22, which the `node` devDependency puts in node_modules/.bin.
  const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, CI: "true", WRANGLER_SEND_METRICS: "false" };
  await run(["d1", "migrations", "apply", "DB", "--local", "--persist-to", state], env);
  const varArgs = Object.entries(vars).flatMap(([k, v]) => ["--var", `${k}:${v}`]);
  const url = `http://127.0.0.1:${port}`;
  let output = "";
  const launch = async () => {
    const child = spawn(
      join(bin, "wrangler"),
      ["dev", "--test-scheduled", "--ip", "127.0.0.1", "--port", String(port), "--inspector-port", "0", "--persist-to", state, ...varArgs],
      { cwd: root, env, stdio: ["ignore", "pipe", "pipe"], detached: true },
    );
    child.stdout?.on("data", (d) => (output += d));
    child.stderr?.on("data", (d) => (output += d));
    try {
      await waitReady(url, child, () => output);
    } catch (e) {
      await kill(child);
      throw e;
    }
    return child;
  };
  let child: ChildProcess | undefined;
  const stop = async () => {
    if (child) await kill(child);
    await rm(state, { recursive: true, force: true });
  };
  try {
    child = await launch();
  } catch (e) {
    await stop();
    throw e;
  }
  const restart = async () => {
    if (child) await kill(child);
    child = await launch();
  };
  return { url, log: () => output, restart, stop };
}

function run(args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((ok, fail) => {
    const child = spawn(join(bin, "wrangler"), args, { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    child.on("exit", (code) => (code === 0 ? ok() : fail(new Error(`wrangler ${args.join(" ")} exited ${code}:\n${output}`))));
  });
}

async function waitReady(url: string, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`wrangler dev exited ${child.exitCode}:\n${log()}`);
    try {
      if ((await fetch(`${url}/readyz`)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`wrangler dev did not answer ${url}/readyz within 60 s:\n${log()}`);
}

/** wrangler dev starts workerd as a child: end the whole process group. */
async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.pid === undefined) return;
  const exited = new Promise((r) => child.once("exit", r));
  try {
    process.kill(-child.pid, "SIGTERM");
  } catch {
    return;
  }
  const timer = setTimeout(() => {
    try {
      process.kill(-child.pid!, "SIGKILL");
    } catch {}
  }, 5_000);
  await exited;
  clearTimeout(timer);
}
