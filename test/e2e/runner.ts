/**
 * The runner double (test/helpers/runner-double.ts) against the Worker on the network: for
 * e2e tests (dashboard, CLI) that need rollouts, instances and logs reported without Docker.
 */
import { type Behavior, issueRunnerToken, refusal, type RunnerLink, TestRunner } from "../helpers/runner-double";
import { adminToken, client, workerUrl } from "./clients";

export type { Behavior, TestRunner };

const link = (): RunnerLink => ({
  fetch: (path, init) => fetch(`${workerUrl()}${path}`, init),
  open(path, what) {
    const ws = new WebSocket(`${workerUrl().replace(/^http/, "ws")}${path}`);
    return new Promise((resolve, reject) => {
      ws.addEventListener("open", () =>
        resolve({
          send: (text) => ws.send(text),
          close: (code, reason) => ws.close(code, reason),
          onMessage: (listener) => ws.addEventListener("message", (e) => listener(String(e.data))),
          onClose: (listener) => ws.addEventListener("close", (e) => listener(e.code, e.reason)),
        }),
      );
      // A refused upgrade gives the browser-style WebSocket no response to read: ask again over HTTP for the reason.
      ws.addEventListener("error", () => void fetch(`${workerUrl()}${path}`).then((res) => refusal(res, what)).then(reject, reject));
    });
  },
});

/** A runner double connected to `environmentId` with a new service account holding `runner:connect` there. */
export async function connectRunner(environmentId: string, opts: { name?: string; behavior?: Partial<Behavior> } = {}): Promise<TestRunner> {
  const token = await issueRunnerToken(environmentId, await adminToken(), client);
  return TestRunner.connect({ ...opts, environmentId, token, link: link() });
}
