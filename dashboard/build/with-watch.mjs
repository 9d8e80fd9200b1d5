#!/usr/bin/env node
// `npm run dev`: rebuilds the dashboard on every change while the given command (wrangler dev)
// runs, and stops watching when it exits. wrangler serves dashboard/dist as it is on disk.
import { spawn } from "node:child_process";
import { build } from "vite";

const [command, ...args] = process.argv.slice(2);
if (!command) throw new Error("usage: with-watch.mjs <command> [args…]");
const watcher = await build({ configFile: new URL("../vite.config.ts", import.meta.url).pathname, build: { watch: {} }, logLevel: "warn" });
const child = spawn(command, args, { stdio: "inherit" });
const stop = () => child.kill("SIGINT");
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
child.on("exit", async (code, signal) => {
  if ("close" in watcher) await watcher.close();
  process.exit(code ?? (signal ? 1 : 0));
});
