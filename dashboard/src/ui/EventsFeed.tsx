/** An environment's events as a feed, newest first, with the stream's connection state. */
import type { StreamEvent, StreamState } from "../api/stream";
import { Empty, Section, Status, type Tone } from "./kit";

const stateTone: Record<StreamState, Tone> = { live: "ok", connecting: "progress", reconnecting: "warn", closed: "neutral" };
const stateWords: Record<StreamState, string> = { live: "Live", connecting: "Connecting…", reconnecting: "Reconnecting…", closed: "Closed" };

/** The connection state of a stream, as a badge. */
export function StreamBadge({ state }: { state: StreamState }) {
  return (
    <span role="status" aria-live="polite" data-testid="stream-state">
      <Status tone={stateTone[state]}>{stateWords[state]}</Status>
    </span>
  );
}

/** One line summarising an event's data. */
export function summary(e: StreamEvent): string {
  const d = e.data;
  const parts: string[] = [];
  for (const k of ["capsuleId", "rolloutId", "jobName", "state", "result", "phase", "name"]) {
    if (d[k] !== undefined && d[k] !== null && d[k] !== "" && d[k] !== "UNSPECIFIED") parts.push(`${k === "rolloutId" ? "#" : ""}${String(d[k])}`);
  }
  if (typeof d.message === "string" && d.message) parts.push(`— ${d.message}`);
  return parts.join(" ");
}

export function EventsFeed(props: { events: StreamEvent[]; state: StreamState; problem: string | null; filter?: (e: StreamEvent) => boolean }) {
  const shown = (props.filter ? props.events.filter(props.filter) : props.events).slice().reverse();
  return (
    <Section title="Events" actions={<StreamBadge state={props.state} />}>
      {props.problem && <p class="error">{props.problem}</p>}
      {shown.length === 0 && <Empty>No events yet. Deploys, runner reports and job runs appear here as they happen.</Empty>}
      {/* biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling region must be reachable by keyboard to be read (WCAG 2.1.1; axe scrollable-region-focusable) */}
      <ol class="feed" aria-label="Environment events" data-testid="events-feed" tabIndex={0}>
        {shown.map((e) => (
          <li key={e.seq} data-seq={e.seq}>
            <time dateTime={e.time}>{new Date(e.time).toLocaleTimeString()}</time>
            <code>{e.type}</code>
            <span>{summary(e)}</span>
          </li>
        ))}
      </ol>
    </Section>
  );
}
