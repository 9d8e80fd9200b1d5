/** An interactive terminal into an instance: Execute over its WebSocket (docs/execute.md), shown with xterm.js. */
import { FitAddon } from "@xterm/addon-fit";
import { Terminal as XTerm } from "@xterm/xterm";
import "@xterm/xterm/css/xterm.css";
import { useEffect, useRef, useState } from "preact/hooks";
import { ticket } from "../api/clients";
import { describeError } from "../api/errors";
import { Status } from "../ui/kit";
import type { CapsuleScope } from "./scope";

const toBase64 = (bytes: Uint8Array) => btoa(Array.from(bytes, (b) => String.fromCharCode(b)).join(""));
const fromBase64 = (data: string) => Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
const encoder = new TextEncoder();

/** The frames edgeplane sends on an Execute socket. */
function parseResponse(text: string): { stdout?: Uint8Array; stderr?: Uint8Array; exitCode?: number; error?: string } {
  try {
    const v: unknown = JSON.parse(text);
    if (!v || typeof v !== "object") return {};
    const o = v as { stdout?: { data?: unknown }; stderr?: { data?: unknown }; exitCode?: unknown; error?: { message?: unknown } };
    if (typeof o.stdout?.data === "string") return { stdout: fromBase64(o.stdout.data) };
    if (typeof o.stderr?.data === "string") return { stderr: fromBase64(o.stderr.data) };
    if ("exitCode" in o) return { exitCode: Number(o.exitCode ?? 0) };
    if (o.error) return { error: String(o.error.message ?? "error") };
  } catch {
    // Not JSON: nothing to show.
  }
  return {};
}

export function Terminal({ scope, instanceId, onClose }: { scope: CapsuleScope; instanceId: string; onClose: () => void }) {
  const el = useRef<HTMLDivElement>(null);
  const [state, setState] = useState<"connecting" | "open" | "ended">("connecting");
  const [problem, setProblem] = useState<string | null>(null);
  useEffect(() => {
    if (!el.current) return;
    const term = new XTerm({ fontSize: 13, convertEol: true, cursorBlink: true, screenReaderMode: true });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(el.current);
    fit.fit();
    let ws: WebSocket | null = null;
    let closed = false;
    const send = (frame: object) => ws?.readyState === WebSocket.OPEN && ws.send(JSON.stringify(frame));
    const input = term.onData((d) => send({ stdin: { data: toBase64(encoder.encode(d)) } }));
    const resize = term.onResize(({ cols, rows }) => send({ resize: { width: cols, height: rows } }));
    const onWindow = () => fit.fit();
    addEventListener("resize", onWindow);
    void (async () => {
      try {
        const url = await ticket(`/environments/${encodeURIComponent(scope.environment)}/exec/tickets`, {
          projectId: scope.project,
          capsuleId: scope.capsule,
          instanceId,
          command: "sh",
          interactive: true,
          tty: { width: term.cols, height: term.rows },
        });
        if (closed) return;
        ws = new WebSocket(url);
        ws.addEventListener("open", () => (setState("open"), term.focus()));
        ws.addEventListener("message", (e) => {
          if (typeof e.data !== "string") return;
          const f = parseResponse(e.data);
          if (f.stdout) term.write(f.stdout);
          if (f.stderr) term.write(f.stderr);
          if (f.error) setProblem(f.error);
          if (f.exitCode !== undefined) term.write(`\r\n[exited with code ${f.exitCode}]\r\n`);
        });
        ws.addEventListener("close", (e) => {
          setState("ended");
          if (e.code !== 1000) setProblem(`the session closed (${e.code}${e.reason ? `: ${e.reason}` : ""})`);
        });
      } catch (err) {
        const { code, message } = describeError(err);
        setProblem(`${code}: ${message}`);
        setState("ended");
      }
    })();
    return () => {
      closed = true;
      removeEventListener("resize", onWindow);
      input.dispose();
      resize.dispose();
      ws?.close();
      term.dispose();
    };
  }, [scope.project, scope.capsule, scope.environment, instanceId]);
  return (
    <section class="terminal" aria-label={`Terminal in ${instanceId}`}>
      <div class="card-head">
        <h3>
          Terminal: <code>{instanceId}</code>{" "}
          <Status tone={state === "open" ? "ok" : state === "connecting" ? "progress" : "neutral"}>{state === "open" ? "Connected" : state === "connecting" ? "Connecting…" : "Ended"}</Status>
        </h3>
        <button type="button" class="secondary small" onClick={onClose}>
          Close terminal
        </button>
      </div>
      {problem && (
        <p class="error" role="alert">
          {problem}
        </p>
      )}
      <div ref={el} class="xterm-host" data-testid="terminal" />
    </section>
  );
}
