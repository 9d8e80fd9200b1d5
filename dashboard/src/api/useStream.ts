import { useEffect, useRef, useState } from "preact/hooks";
import { type StreamEvent, type StreamState, subscribe } from "./stream";

/** How many events a page keeps for its feed. */
const keep = 200;

/**
 * Follows an environment's event stream while the component is mounted: the newest events
 * (for a feed), the connection state, and `onEvents` for each batch as it arrives.
 */
export function useEnvironmentStream(environmentId: string | null, onEvents?: (events: StreamEvent[]) => void) {
  const [events, setEvents] = useState<StreamEvent[]>([]);
  const [state, setState] = useState<StreamState>("connecting");
  const [problem, setProblem] = useState<string | null>(null);
  const handler = useRef(onEvents);
  handler.current = onEvents;
  useEffect(() => {
    setEvents([]);
    if (!environmentId) return;
    const sub = subscribe(`/environments/${encodeURIComponent(environmentId)}/events/tickets`, (batch) => {
      setEvents((old) => [...old, ...batch].slice(-keep));
      handler.current?.(batch);
    });
    const stopState = sub.state.subscribe(setState);
    const stopProblem = sub.problem.subscribe(setProblem);
    return () => {
      stopState();
      stopProblem();
      sub.close();
    };
  }, [environmentId]);
  return { events, state, problem };
}
