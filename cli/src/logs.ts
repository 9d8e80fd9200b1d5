/**
 * Printing a capsule's logs (capsule.Service/Logs), and with `follow` staying on them: a
 * dropped stream is asked for again from the last line's time, lines already shown skipped.
 */
import { durationFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { Service as CapsuleService } from "../../proto/gen/api/v1/capsule/service_pb";
import { defaultMaxOutageMs } from "./events";
import { CliError, ExitCode } from "./exit";
import { unreachable } from "./failure";
import type { Session } from "./session";
import { color, warn } from "./terminal";

export interface LogsOptions {
  projectId: string;
  environmentId: string;
  capsuleId: string;
  instanceId?: string;
  follow: boolean;
  sinceMs?: number;
  previousContainers: boolean;
  /** Prefix each line with its instance (default: when no instance is named). */
  prefix: boolean;
  signal: AbortSignal;
}

/** A stream cut by the network (or a Worker deploy) rather than refused: worth asking again. */
const transient = (e: unknown) =>
  unreachable(e) || (e instanceof ConnectError && [Code.Unknown, Code.Unavailable, Code.Internal, Code.DeadlineExceeded].includes(e.code));

const palette = [color.cyan, color.magenta, color.yellow, color.green, color.blue, color.red];

/** Streams the logs to stdout (stderr lines to stderr) until done, or until `signal` aborts when following. */
export async function printLogs(session: Session, opts: LogsOptions): Promise<void> {
  const capsules = session.client(CapsuleService);
  const colours = new Map<string, (s: string) => string>();
  const colourOf = (id: string) => colours.get(id) ?? colours.set(id, palette[colours.size % palette.length]!).get(id)!;
  let lastMs: number | undefined;
  /** Lines shown at `lastMs`: a resumed stream starts at that millisecond again. */
  let atLast = new Set<string>();
  let lostSince: number | undefined;
  for (;;) {
    const sinceMs = lastMs === undefined ? opts.sinceMs : Date.now() - lastMs;
    try {
      const stream = capsules.logs(
        {
          projectId: opts.projectId,
          environmentId: opts.environmentId,
          capsuleId: opts.capsuleId,
          instanceId: opts.instanceId ?? "",
          follow: opts.follow,
          previousContainers: opts.previousContainers,
          since: sinceMs === undefined ? undefined : durationFromMs(Math.max(0, sinceMs)),
        },
        { signal: opts.signal },
      );
      for await (const { log } of stream) {
        if (lostSince !== undefined) warn("Connection restored");
        lostSince = undefined;
        if (!log) continue;
        const ms = log.timestamp ? timestampMs(log.timestamp) : Date.now();
        const message = log.message?.message;
        const kind = message?.case;
        const text = message?.case === "stdout" || message?.case === "stderr" ? Buffer.from(message.value).toString("utf8") : "";
        const key = `${log.instanceId}\u0000${kind}\u0000${text}`;
        if (lastMs !== undefined && (ms < lastMs || (ms === lastMs && atLast.has(key)))) continue;
        if (ms !== lastMs) atLast = new Set();
        atLast.add(key);
        lastMs = ms;
        if (kind === "containerTermination") {
          warn(color.dim(`--- ${log.instanceId}: container terminated ---`));
          continue;
        }
        const line = opts.prefix ? `${colourOf(log.instanceId)(log.instanceId)} ${text}` : text;
        (kind === "stderr" ? process.stderr : process.stdout).write(line.endsWith("\n") ? line : `${line}\n`);
      }
      return;
    } catch (e) {
      if (opts.signal.aborted) return;
      if (!opts.follow || !transient(e)) throw e;
      const now = Date.now();
      if (lostSince === undefined) {
        lostSince = now;
        warn("Connection lost, retrying…");
      }
      if (now - lostSince > defaultMaxOutageMs) {
        throw new CliError("the log stream stayed lost too long; giving up", ExitCode.unreachable);
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

