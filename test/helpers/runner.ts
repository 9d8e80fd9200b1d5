/**
 * The runner double (runner-double.ts) inside the test pool: its requests and its socket go
 * straight to the Worker's fetch handler, and its service account is made by the file's admin.
 */
import { exports } from "cloudflare:workers";
import { type Behavior, issueRunnerToken, refusal, type RunnerLink, TestRunner as RunnerDouble } from "./runner-double";
import { baseUrl, client } from "./client";
import { fileAdmin } from "./identity";

export type { Behavior };

const link: RunnerLink = {
  fetch: (path, init) => exports.default.fetch(`${baseUrl}${path}`, init),
  async open(path, what) {
    const res = await exports.default.fetch(`${baseUrl}${path}`, { headers: { upgrade: "websocket" } });
    const ws = res.webSocket;
    if (res.status !== 101 || !ws) throw await refusal(res, what);
    ws.accept();
    return {
      send: (text) => ws.send(text),
      close: (code, reason) => ws.close(code, reason),
      onMessage: (listener) => ws.addEventListener("message", (e) => listener(e.data as string)),
      onClose: (listener) => ws.addEventListener("close", (e) => listener(e.code, e.reason)),
    };
  },
};

/**
 * An access token of a new service account holding `runner:connect` on the environment
 * only, made through the public API by the file's admin.
 */
export async function runnerToken(environmentId: string): Promise<string> {
  return issueRunnerToken(environmentId, (await fileAdmin()).accessToken, client);
}

export type TestRunner = RunnerDouble;
export const TestRunner = {
  connect: (opts: Omit<Parameters<typeof RunnerDouble.connect>[0], "link">) => RunnerDouble.connect({ ...opts, link }),
};
