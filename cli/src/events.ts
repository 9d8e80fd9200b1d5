/**
 * Following an event stream (docs/event-streams.md) through dropped connections: each event
 * is handed over once, in order, and a lost socket is reopened with `after=<last seq>`, for a
 * bounded time, saying so on stderr.
 */
import { z } from "zod";
import { CliError, ExitCode } from "./exit";
import { unreachable } from "./failure";
import type { Session } from "./session";
import { openSocket, ticket } from "./sockets";
import { warn } from "./terminal";

export const StreamEvent = z.object({ seq: z.number().int(), type: z.string(), time: z.string(), data: z.unknown() });
export type StreamEvent = z.infer<typeof StreamEvent>;

const Frame = z.union([StreamEvent, z.array(StreamEvent)]);

export interface FollowOptions {
  /** Where tickets come from, e.g. `/projects/p/capsules/c/rollouts/3/events/tickets`. */
  ticketPath: string;
  /** Called for each event; resolve true to stop following. */
  onEvent(event: StreamEvent): Promise<boolean> | boolean;
  /** Give up after the stream stayed lost this long. */
  maxOutageMs?: number;
  /** Stop following when this aborts. */
  signal?: AbortSignal;
}

/** Rig's CLI retries a lost rollout stream for 2 minutes. */
export const defaultMaxOutageMs = 120_000;
const pingEveryMs = 20_000;

/** Follows the stream until `onEvent` says stop, the server ends it (1001) or `signal` aborts. */
export async function follow(session: Session, opts: FollowOptions): Promise<void> {
  const maxOutageMs = opts.maxOutageMs ?? defaultMaxOutageMs;
  let after = 0;
  let lostSince: number | undefined;
  let attempt = 0;
  while (!opts.signal?.aborted) {
    let ended: { code: number } | "stopped";
    try {
      const url = await ticket(session, opts.ticketPath);
      const ws = await openSocket(session, `${url}&after=${after}`);
      if (lostSince !== undefined) warn("Connection restored");
      lostSince = undefined;
      attempt = 0;
      ended = await new Promise((resolve, reject) => {
        const ping = setInterval(() => ws.send("ping"), pingEveryMs);
        const abort = () => ws.close(1000);
        opts.signal?.addEventListener("abort", abort, { once: true });
        // Events are handled one after another, even when frames arrive faster.
        let chain = Promise.resolve();
        let stopped = false;
        let lost = false;
        ws.on("message", (raw: Buffer) => {
          const text = raw.toString("utf8");
          if (text === "pong") return;
          const frame = Frame.parse(JSON.parse(text));
          chain = chain.then(async () => {
            for (const event of Array.isArray(frame) ? frame : [frame]) {
              if (stopped || lost || event.seq <= after) continue;
              const stop = await opts.onEvent(event);
              // Only an event handled to the end counts as seen: a resumed stream hands it over again.
              after = event.seq;
              if (stop) {
                stopped = true;
                ws.close(1000);
              }
            }
          }).catch((e) => {
            // What the handler asked the server for was cut off too: the same outage as the socket's.
            if (unreachable(e)) lost = true;
            else {
              stopped = true;
              reject(e);
            }
            ws.close(1000);
          });
        });
        ws.on("close", (code) => {
          clearInterval(ping);
          opts.signal?.removeEventListener("abort", abort);
          void chain.then(() => resolve(stopped ? "stopped" : { code: lost ? 1006 : code }));
        });
      });
    } catch (e) {
      // A refusal (expired login, permission, gone) will not heal by retrying.
      if (!unreachable(e)) throw e;
      ended = { code: 1006 };
    }
    if (ended === "stopped" || opts.signal?.aborted) return;
    // 1001: the environment was deleted; the stream is over for good.
    if (ended.code === 1001) return;
    const now = Date.now();
    if (lostSince === undefined) {
      lostSince = now;
      warn("Connection lost, retrying…");
    }
    if (now - lostSince > maxOutageMs) throw new CliError(`the connection stayed lost for ${Math.round(maxOutageMs / 1000)}s; giving up`, ExitCode.unreachable);
    await sleep(Math.min(5_000, 250 * 2 ** attempt++), opts.signal);
  }
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
  });
