/** Logs merged across instances, live, with an instance filter. */
import { useEffect, useRef, useState } from "preact/hooks";
import { Empty, Section, Status } from "../ui/kit";
import { followLogs, type LogLine } from "./follow-logs";
import type { CapsuleScope } from "./scope";

const keep = 2000;

export function Logs({ scope }: { scope: CapsuleScope }) {
  const [lines, setLines] = useState<LogLine[]>([]);
  const [state, setState] = useState<{ live: boolean; problem?: string }>({ live: false });
  const [filter, setFilter] = useState("");
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    setLines([]);
    const follower = followLogs(
      { projectId: scope.project, capsuleId: scope.capsule, environmentId: scope.environment },
      (fresh) => setLines((old) => [...old, ...fresh].slice(-keep)),
      (s, problem) => setState({ live: s === "live", problem }),
    );
    const onVisible = () => document.visibilityState === "visible" && follower.poke();
    document.addEventListener("visibilitychange", onVisible);
    return () => {
      document.removeEventListener("visibilitychange", onVisible);
      follower.stop();
    };
  }, [scope.project, scope.capsule, scope.environment]);
  // Keep following the bottom unless the reader scrolled up.
  useEffect(() => {
    const el = box.current;
    if (el && el.scrollHeight - el.scrollTop - el.clientHeight < 80) el.scrollTop = el.scrollHeight;
  }, [lines]);
  const instances = [...new Set(lines.map((l) => l.instanceId))].sort();
  const shown = filter ? lines.filter((l) => l.instanceId === filter) : lines;
  return (
    <Section
      title="Logs"
      actions={
        <>
          <label class="inline-label">
            Instance{" "}
            <select value={filter} onChange={(e) => setFilter(e.currentTarget.value)}>
              <option value="">All instances</option>
              {instances.map((i) => (
                <option key={i} value={i}>
                  {i}
                </option>
              ))}
            </select>
          </label>
          <span role="status">{state.live ? <Status tone="ok">Following</Status> : <Status tone="warn">Reconnecting…</Status>}</span>
        </>
      }
    >
      {shown.length === 0 ? (
        <Empty>No log lines yet. Lines the instances write appear here as they are written.</Empty>
      ) : (
        <>
          {/* biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling region must be reachable by keyboard to be read (WCAG 2.1.1; axe scrollable-region-focusable) */}
          <div class="logs" ref={box} tabIndex={0} role="log" aria-label="Log lines" data-testid="logs">
            {shown.map((l) => (
              <div key={l.key} class={l.stream === "stderr" ? "stderr" : undefined}>
                <span class="muted">{new Date(l.timeMs).toLocaleTimeString()}</span> <span class="instance">{l.instanceId}</span> {l.text}
              </div>
            ))}
          </div>
        </>
      )}
    </Section>
  );
}
