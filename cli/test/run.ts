/**
 * Runs the `edgeplane` command as a user would: the bin npm linked into node_modules/.bin,
 * real argv, a temporary home with its own config directory, against a Worker on the network.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createConnection, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { inject } from "vitest";

export const root = resolve(import.meta.dirname, "../..");
export const bin = join(root, "node_modules/.bin/edgeplane");

/** A user's home: its own $HOME and $XDG_CONFIG_HOME. */
export interface Home {
  dir: string;
  env: NodeJS.ProcessEnv;
  configFile: string;
  remove(): Promise<void>;
}

export async function newHome(): Promise<Home> {
  const dir = await mkdtemp(join(tmpdir(), "edgeplane-cli-"));
  const config = join(dir, ".config");
  const { EDGEPLANE_HOST: _, NO_COLOR: __, ...inherited } = process.env;
  return {
    dir,
    env: { ...inherited, HOME: dir, XDG_CONFIG_HOME: config },
    configFile: join(config, "edgeplane", "config.yaml"),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `edgeplane …args` to its end; `input` is written to its stdin. */
export function edgeplane(home: Home, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  const child = start(home, args, opts.env);
  child.process.stdin?.end(opts.input ?? "");
  return child.done;
}

/** A running `edgeplane`, with what it printed so far. */
export interface Running {
  process: ChildProcess;
  output(): { stdout: string; stderr: string };
  /** Resolves once stdout (or stderr) matches `pattern`. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>;
  done: Promise<Run>;
}

/** Starts `edgeplane …args` and returns at once. */
export function start(home: Home, args: string[], env: NodeJS.ProcessEnv = {}): Running {
  const child = spawn(bin, args, { cwd: home.dir, env: { ...home.env, ...env }, stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  const listeners = new Set<() => void>();
  const changed = () => {
    for (const l of listeners) l();
  };
  child.stdout?.on("data", (d) => ((stdout += d), changed()));
  child.stderr?.on("data", (d) => ((stderr += d), changed()));
  const done = new Promise<Run>((ok) => child.on("close", (code) => ok({ code, stdout, stderr })));
  return {
    process: child,
    output: () => ({ stdout, stderr }),
    done,
    waitFor(pattern, timeoutMs = 20_000) {
      return new Promise((ok, fail) => {
        const check = () => {
          if (!pattern.test(stdout) && !pattern.test(stderr)) return;
          listeners.delete(check);
          clearTimeout(timer);
          ok();
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          fail(new Error(`edgeplane ${args.join(" ")}: no output matching ${pattern} within ${timeoutMs}ms\nstdout: ${stdout}\nstderr: ${stderr}`));
        }, timeoutMs);
        listeners.add(check);
        check();
        void done.then(() => {
          if (listeners.has(check)) {
            listeners.delete(check);
            clearTimeout(timer);
            fail(new Error(`edgeplane ${args.join(" ")} exited before printing ${pattern}\nstdout: ${stdout}\nstderr: ${stderr}`));
          }
        });
      });
    },
  };
}

/** A home whose current context is logged in to `url` (the shared Worker by default) as its admin. */
export async function adminHome(url: string = inject("workerUrl")): Promise<Home> {
  const home = await newHome();
  const { email, password } = inject("admin");
  const res = await edgeplane(home, ["auth", "login", "-H", url, "-u", email, "-p", password]);
  if (res.code !== 0) throw new Error(`admin login failed (${res.code}): ${res.stderr}`);
  return home;
}

/** A fresh DNS label for this test run. */
export const unique = (prefix: string) => `${prefix}-${Math.random().toString(36).slice(2, 8)}`;

/** `edgeplane …args` in a terminal of its own (a tmux session), for what only a terminal shows. */
export function inTerminal(home: Home, args: string[]) {
  const socket = unique("edgeplane-tmux");
  const tmux = (...a: string[]) => execFileSync("tmux", ["-L", socket, ...a], { encoding: "utf8" });
  const envs = Object.entries({ HOME: home.env.HOME, XDG_CONFIG_HOME: home.env.XDG_CONFIG_HOME, PATH: process.env.PATH, TERM: "xterm-256color" }).map(([k, v]) => `${k}=${v}`);
  const command = ["env", ...envs, bin, ...args].map((a) => `'${a}'`).join(" ");
  tmux("new-session", "-d", "-s", "cli", "-x", "120", "-y", "30", `${command}; echo "exited $?"; sleep 120`);
  /** The screen, with colour escapes. */
  const screen = () => tmux("capture-pane", "-p", "-e", "-t", "cli");
  return {
    screen,
    /** Types `text` as is (no Enter). */
    type: (text: string) => void tmux("send-keys", "-t", "cli", "-l", text),
    enter: () => void tmux("send-keys", "-t", "cli", "Enter"),
    /** Resolves with the screen once it matches `pattern`; fails after `timeoutMs`. */
    async waitFor(pattern: RegExp, timeoutMs = 30_000): Promise<string> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const now = screen();
        if (pattern.test(now)) return now;
        if (Date.now() > deadline) throw new Error(`edgeplane ${args.join(" ")}: the terminal never showed ${pattern}:\n${now}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    },
    close: () => void tmux("kill-server"),
  };
}

/** A TCP proxy to the Worker whose open connections can be cut, as a network drop would. */
export async function cuttableProxy(port: string) {
  const open = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = createConnection(Number(port), "127.0.0.1");
    open.add(client).add(upstream);
    client.pipe(upstream).pipe(client);
    const end = () => (client.destroy(), upstream.destroy(), open.delete(client), open.delete(upstream));
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const address = server.address();
  if (!address || typeof address === "string") throw new Error("proxy has no port");
  return {
    url: `http://127.0.0.1:${address.port}`,
    cut: () => {
      for (const s of open) s.destroy();
    },
    close: () =>
      new Promise<void>((ok) => {
        server.close(() => ok());
        for (const s of open) s.destroy();
      }),
  };
}
