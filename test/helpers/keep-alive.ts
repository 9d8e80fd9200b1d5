/**
 * The keep-alive every real client of a WebSocket sends (docs/event-streams.md,
 * docs/runner-protocol.md): tests run with a silence deadline of a few seconds
 * (SOCKET_SILENCE_MS in vitest.config.mts), so a test socket that did not ping would be closed
 * under a slow test.
 */

/** Sends `ping` on `ws` every `everyMs` until it closes; returns a function that stops it (a client falling silent). */
export function keepAlive(ws: WebSocket, everyMs = 500): () => void {
  const timer = setInterval(() => {
    try {
      ws.send("ping");
    } catch {
      clearInterval(timer);
    }
  }, everyMs);
  ws.addEventListener("close", () => clearInterval(timer));
  return () => clearInterval(timer);
}

/** Whether a frame is the server's answer to a ping, not a message. */
export const isPong = (data: unknown) => data === "pong";
