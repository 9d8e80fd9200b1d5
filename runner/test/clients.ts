/** Clients of the capsule's Logs stream and of Execute, used as a user would use them, for the runner's e2e tests. */
import { eventually } from "../../test/helpers/wait";
import { workerUrl } from "../../test/e2e/clients";
import type { RunnerEnvironment } from "./harness";

export interface FollowedLine {
  instanceId: string;
  stream: "stdout" | "stderr";
  text: string;
}

/** Follows a capsule's logs (capsule.Service/Logs with follow) until `stop`. */
export function followLogs(e: RunnerEnvironment, capsuleId: string) {
  const abort = new AbortController();
  const lines: FollowedLine[] = [];
  const decoder = new TextDecoder();
  const done = (async () => {
    try {
      for await (const r of e.capsules().logs({ projectId: e.projectId, capsuleId, environmentId: e.environmentId, follow: true }, { signal: abort.signal })) {
        const m = r.log?.message?.message;
        if (m?.case !== "stdout" && m?.case !== "stderr") continue;
        for (const text of decoder.decode(m.value).split("\n").filter((t) => t !== "")) lines.push({ instanceId: r.log!.instanceId, stream: m.case, text });
      }
    } catch (err) {
      if (!abort.signal.aborted) throw err;
    }
  })();
  return {
    lines,
    until: (ok: (l: FollowedLine[]) => boolean, what: string, timeoutMs = 15_000) => eventually(async () => lines, ok, what, timeoutMs, 100),
    stop: () => {
      abort.abort();
      void done.catch(() => {});
    },
  };
}

export interface ExecuteCall {
  capsuleId: string;
  instanceId: string;
  command: string;
  arguments?: string[];
  interactive?: boolean;
  tty?: { width: number; height: number };
  /** Sent as stdin once the session is open, then stdin is closed. */
  stdin?: string;
}

/** One Execute session over its WebSocket (docs/execute.md): everything it printed and its exit code. */
export async function execute(e: RunnerEnvironment, call: ExecuteCall): Promise<{ stdout: string; stderr: string; exitCode: number | null; close: number }> {
  const { stdin, ...start } = call;
  const res = await fetch(`${workerUrl()}/environments/${e.environmentId}/exec/tickets`, {
    method: "POST",
    headers: { authorization: `Bearer ${e.token}`, "content-type": "application/json" },
    body: JSON.stringify({ projectId: e.projectId, arguments: [], interactive: false, ...start }),
  });
  if (!res.ok) throw new Error(`exec ticket: ${res.status} ${await res.text()}`);
  const { url } = (await res.json()) as { url: string };
  const ws = new WebSocket(`${workerUrl().replace(/^http/, "ws")}${url}`);
  const out = { stdout: "", stderr: "", exitCode: null as number | null, close: 0 };
  const text = (data: string) => Buffer.from(data, "base64").toString("utf8");
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`Execute did not end within 20 s: ${JSON.stringify(out)}`)), 20_000);
    ws.addEventListener("open", () => {
      if (stdin === undefined) return;
      ws.send(JSON.stringify({ stdin: { data: Buffer.from(stdin).toString("base64") } }));
      ws.send(JSON.stringify({ stdin: { closed: true } }));
    });
    ws.addEventListener("message", (m) => {
      const f = JSON.parse(String(m.data)) as { stdout?: { data: string }; stderr?: { data: string }; exitCode?: number };
      if (f.stdout) out.stdout += text(f.stdout.data);
      if (f.stderr) out.stderr += text(f.stderr.data);
      // The exit code is the last frame.
      if (f.exitCode !== undefined) {
        out.exitCode = f.exitCode;
        clearTimeout(timer);
        ws.close();
        resolve(out);
      }
    });
    ws.addEventListener("close", (c) => {
      clearTimeout(timer);
      out.close = c.code;
      resolve(out);
    });
  });
}
