/**
 * JSON lines for WatchEvents. Gitpod's SDK posts `gitpod.v1.EventService/WatchEvents` with
 * `Content-Type: application/jsonl` and a plain JSON body, and reads the answer as one JSON
 * message per line: not Connect's enveloped streaming, which the Connect router would refuse
 * (415). A refusal (bad token, no access, unknown environment) is answered like a unary
 * Connect error, with its HTTP status, so the SDK raises it as its usual error classes.
 * ndjsonResponse writes the lines, here and for the Skaffold gateway's streams.
 */
import { fromJsonString, toJsonString } from "@bufbuild/protobuf";
import { WatchEventsRequestSchema, WatchEventsResponseSchema } from "../../proto/gen/gitpod/v1/event_pb";
import type { Env } from "../env";
import { openWatch } from "../services/gitpod-event";
import { invalidArgument } from "../core/errors";
import { readText } from "./bodies";
import { guard } from "./guard";
import { connectErrorResponse } from "./responses";
import { unbuffered } from "./unbuffered";

const WATCH = "/gitpod.v1.EventService/WatchEvents";

/** A request asking for JSON lines. */
export const isJsonLines = (request: Request) => request.headers.get("content-type")?.split(";")[0]?.trim().toLowerCase() === "application/jsonl";

/** Serves a JSON lines call; undefined for an RPC that is not served so. */
export async function serveJsonLines(request: Request, rpcPath: string, env: Env): Promise<Response | undefined> {
  if (rpcPath !== WATCH || request.method !== "POST") return undefined;
  try {
    // openWatch checks environment:view on the environment the request names, which implies
    // the grant anywhere that WatchEvents' rule asks for.
    const principal = await guard(env, request.headers, WATCH.slice(1), { authenticated: true });
    const text = await readText(request);
    let req: ReturnType<typeof fromJsonString<typeof WatchEventsRequestSchema>>;
    try {
      req = fromJsonString(WatchEventsRequestSchema, text.trim() || "{}");
    } catch (err) {
      throw invalidArgument("body", `must be a gitpod.v1.WatchEventsRequest in JSON: ${err instanceof Error ? err.message : String(err)}`);
    }
    const events = await openWatch(env, principal, req, request.signal);
    return ndjsonResponse(events, (e) => toJsonString(WatchEventsResponseSchema, e), { contentType: "application/jsonl" });
  } catch (err) {
    return connectErrorResponse(err);
  }
}

/**
 * A streamed answer of one JSON line per item, each its own chunk (so flushed as it comes).
 * Items are read only as the client reads them, so a slow client costs nobody else anything;
 * a client that leaves ends the iteration. `line` writes an item as JSON, without the newline.
 * An error of the iteration ends the stream with the last line `errorLine` makes of it, or,
 * without `errorLine`, errors the stream.
 */
export function ndjsonResponse<T>(
  items: AsyncIterable<T>,
  line: (item: T) => string,
  init: { contentType: string; errorLine?: (err: unknown) => string },
): Response {
  const iterator = items[Symbol.asyncIterator]();
  const encoder = new TextEncoder();
  let gone = false;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      let next: IteratorResult<T>;
      try {
        next = await iterator.next();
      } catch (err) {
        if (!init.errorLine) throw err;
        next = { done: true, value: undefined };
        if (!gone) controller.enqueue(encoder.encode(`${init.errorLine(err)}\n`));
      }
      // The client may have left while the item was on its way.
      if (gone) return;
      if (next.done) controller.close();
      else controller.enqueue(encoder.encode(`${line(next.value)}\n`));
    },
    async cancel() {
      gone = true;
      await iterator.return?.();
    },
  });
  return new Response(body, { headers: unbuffered(new Headers({ "content-type": init.contentType })) });
}
