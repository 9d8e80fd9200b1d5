/**
 * `exec`: a command in an instance over the Execute WebSocket (docs/execute.md). With a
 * terminal (-t) the local one goes raw and its size follows the window; the remote command's
 * exit code becomes ours.
 */
import WebSocket from "ws";
import { z } from "zod";
import { CliError, ExitCode } from "./exit";
import type { Session } from "./session";
import { openSocket, ticket } from "./sockets";

const Data = z.object({ data: z.string().optional(), closed: z.boolean().optional() });
const ExecFrame = z.object({ stdout: Data.optional(), stderr: Data.optional(), exitCode: z.number().int().optional(), error: z.object({ code: z.string(), message: z.string() }).optional() });

export interface ExecOptions {
  projectId: string;
  environmentId: string;
  capsuleId: string;
  instanceId: string;
  command: string[];
  interactive: boolean;
  tty: boolean;
}

/** Runs the command and resolves with its exit code. */
export async function exec(session: Session, opts: ExecOptions): Promise<number> {
  const tty = opts.tty && Boolean(process.stdin.isTTY && process.stdout.isTTY);
  const url = await ticket(session, `/environments/${opts.environmentId}/exec/tickets`, {
    projectId: opts.projectId,
    capsuleId: opts.capsuleId,
    instanceId: opts.instanceId,
    command: opts.command[0],
    arguments: opts.command.slice(1),
    interactive: opts.interactive,
    ...(tty ? { tty: { width: process.stdout.columns, height: process.stdout.rows } } : {}),
  });
  const ws = await openSocket(session, url);
  const send = (frame: object) => ws.readyState === WebSocket.OPEN && ws.send(JSON.stringify(frame));
  const stdin = process.stdin;
  const onInput = (chunk: Buffer) => send({ stdin: { data: chunk.toString("base64") } });
  const onEnd = () => send({ stdin: { closed: true } });
  const onResize = () => send({ resize: { width: process.stdout.columns, height: process.stdout.rows } });
  if (opts.interactive) {
    if (tty) stdin.setRawMode(true);
    stdin.on("data", onInput);
    stdin.on("end", onEnd);
    stdin.resume();
  }
  if (tty) process.stdout.on("resize", onResize);
  try {
    return await new Promise<number>((resolve, reject) => {
      let exitCode: number | undefined;
      ws.on("message", (raw: Buffer) => {
        const text = raw.toString("utf8");
        if (text === "pong") return;
        const frame = ExecFrame.parse(JSON.parse(text));
        if (frame.stdout?.data) process.stdout.write(Buffer.from(frame.stdout.data, "base64"));
        if (frame.stderr?.data) process.stderr.write(Buffer.from(frame.stderr.data, "base64"));
        if (frame.exitCode !== undefined) exitCode = frame.exitCode;
        if (frame.error) process.stderr.write(`edgeplane: ${frame.error.code}: ${frame.error.message}\n`);
      });
      ws.on("close", (code, reason) => {
        if (exitCode !== undefined) resolve(exitCode);
        else reject(new CliError(`the session ended without an exit code (${code}${reason.length ? ` ${reason.toString("utf8")}` : ""})`, ExitCode.unreachable));
      });
    });
  } finally {
    if (tty) {
      stdin.setRawMode(false);
      process.stdout.off("resize", onResize);
    }
    stdin.off("data", onInput);
    stdin.off("end", onEnd);
    stdin.pause();
  }
}
