/** A WebSocket subscriber of an environment's event stream, as a browser would open one. */
import { exports } from "cloudflare:workers";
import { expect } from "vitest";
import { baseUrl } from "./client";
import { isPong, keepAlive } from "./keep-alive";
import { eventually } from "./wait";

/** An event as the stream sends it. */
export interface WireEvent {
  seq: number;
  type: string;
  time: string;
  data: Record<string, unknown>;
}

/** Asks for a stream ticket of `environmentId` with `token`; the raw answer, for tests of its errors. */
export const streamTicket = (environmentId: string, token: string) =>
  exports.default.fetch(`${baseUrl}/environments/${environmentId}/events/tickets`, { method: "POST", headers: { authorization: `Bearer ${token}` } });

/** Subscribes from `after`: the frames received, flattened to events, and ways to wait for them. */
export async function subscribe(environmentId: string, token: string, after = 0) {
  const { url } = (await (await streamTicket(environmentId, token)).json()) as { url: string };
  const res = await exports.default.fetch(`${baseUrl}${url}&after=${after}`, { headers: { upgrade: "websocket" } });
  expect(res.status).toBe(101);
  const ws = res.webSocket!;
  const frames: (WireEvent | WireEvent[])[] = [];
  ws.addEventListener("message", (m) => {
    if (!isPong(m.data)) frames.push(JSON.parse(m.data as string));
  });
  ws.accept();
  keepAlive(ws);
  const events = () => frames.flatMap((f) => (Array.isArray(f) ? f : [f]));
  return {
    ws,
    frames,
    events,
    /** Waits until at least `n` events arrived; returns all of them. */
    count: (n: number) => eventually(async () => events(), (e) => e.length >= n, `${n} event(s) on ${environmentId}`),
    waitFor: (ok: (e: WireEvent[]) => boolean, what: string) => eventually(async () => events(), ok, what),
  };
}
