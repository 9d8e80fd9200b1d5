/**
 * The runner double (test/helpers/runner-double.ts) against the Worker on the network: for
 * e2e tests (dashboard, CLI) that need rollouts, instances and logs reported without Docker.
 */
import { type Behavior, type ClientFactory, issueRunnerToken, refusal, type RunnerLink, TestRunner } from "../helpers/runner-double";
import { adminToken, client, workerUrl } from "./clients";

export type { Behavior, TestRunner };

const link = (base: string): RunnerLink => ({
  fetch: (path, init) => fetch(`${base}${path}`, init),
  open(path, what) {
    const ws = new WebSocket(`${base.replace(/^http/, "ws")}${path}`);
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
      ws.addEventListener("error", () => void fetch(`${base}${path}`).then((res) => refusal(res, what)).then(reject, reject));
    });
  },
});

/**
 * A runner double connected to `environmentId` with a new service account holding `runner:connect` there,
 * on the shared Worker or on `worker` (another installation, with its administrator's token).
 */
export async function connectRunner(
  environmentId: string,
  opts: { name?: string; behavior?: Partial<Behavior>; worker?: { url: string; adminToken: string } } = {},
): Promise<TestRunner> {
  const { worker, ...rest } = opts;
  const base = worker?.url ?? workerUrl();
  const factory: ClientFactory = (service, token) => client(service, token, base);
  const token = await issueRunnerToken(environmentId, worker?.adminToken ?? (await adminToken()), factory);
  return TestRunner.connect({ ...rest, environmentId, token, link: link(base) });
}
