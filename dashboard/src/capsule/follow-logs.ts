/**
 * Follows a capsule's logs (capsule.Service/Logs with follow) across instances, and resumes
 * when the stream drops (a network blip, a deploy of the Worker, a tab the browser put to
 * sleep): it asks again from the last line's time and drops the lines it already has.
 */
import { describeError } from "../api/errors";
import { api } from "../api/clients";

export interface LogLine {
  /** Unique per line: time, instance and text (the API has no line ids). */
  key: string;
  timeMs: number;
  instanceId: string;
  stream: "stdout" | "stderr";
  text: string;
}

export interface LogFollower {
  stop(): void;
  /** Restarts the stream now if it is not running (used when a hidden tab becomes visible). */
  poke(): void;
}

const decoder = new TextDecoder();

/** Follows the logs of a capsule in an environment; `onLines` gets new lines, `onState` the connection. */
export function followLogs(
  target: { projectId: string; capsuleId: string; environmentId: string },
  onLines: (lines: LogLine[]) => void,
  onState: (state: "live" | "reconnecting", problem?: string) => void,
): LogFollower {
  let stopped = false;
  let running = false;
  let lastMs = 0;
  // Keys of the lines at `lastMs`: a resume asks from that millisecond again, so they come twice.
  let atLast = new Set<string>();
  let controller: AbortController | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let attempt = 0;

  async function run() {
    if (stopped || running) return;
    running = true;
    controller = new AbortController();
    const since = lastMs ? { seconds: BigInt(Math.floor((Date.now() - lastMs) / 1000) + 1), nanos: 0 } : undefined;
    try {
      const stream = api.capsules.logs({ ...target, follow: true, since }, { signal: controller.signal });
      onState("live");
      for await (const res of stream) {
        attempt = 0;
        const log = res.log;
        const m = log?.message?.message;
        if (!log || !m || (m.case !== "stdout" && m.case !== "stderr")) continue;
        const timeMs = log.timestamp ? Number(log.timestamp.seconds) * 1000 + Math.floor(log.timestamp.nanos / 1e6) : Date.now();
        const text = decoder.decode(m.value).replace(/\n$/, "");
        const key = `${timeMs}|${log.instanceId}|${m.case}|${text}`;
        if (timeMs < lastMs || (timeMs === lastMs && atLast.has(key))) continue;
        if (timeMs > lastMs) {
          lastMs = timeMs;
          atLast = new Set();
        }
        atLast.add(key);
        onLines([{ key, timeMs, instanceId: log.instanceId, stream: m.case, text }]);
      }
    } catch (err) {
      if (stopped) return;
      const { code, message } = describeError(err);
      onState("reconnecting", `${code}: ${message}`);
    } finally {
      running = false;
    }
    if (stopped) return;
    onState("reconnecting");
    timer = setTimeout(run, Math.min(10_000, 500 * 2 ** attempt++));
  }

  void run();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
      controller?.abort();
    },
    poke() {
      if (running) return;
      clearTimeout(timer);
      void run();
    },
  };
}
