/** The frames of the event streams (docs/event-streams.md), checked as they arrive. */

/** One event of a stream, as the server sends it. */
export interface StreamEvent {
  seq: number;
  type: string;
  time: string;
  data: Record<string, unknown>;
}

function isEvent(v: unknown): v is StreamEvent {
  if (!v || typeof v !== "object") return false;
  const e = v as Partial<Record<keyof StreamEvent, unknown>>;
  return typeof e.seq === "number" && typeof e.type === "string" && typeof e.time === "string" && !!e.data && typeof e.data === "object";
}

/** Parses one frame: an event or an array of events. Anything else is ignored. */
export function parseFrame(text: string): StreamEvent[] {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return [];
  }
  return (Array.isArray(v) ? v : [v]).filter(isEvent);
}
