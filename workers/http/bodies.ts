/**
 * Request bodies, read within the limit (`defaults.maxRequestBytes`). A body refused for its
 * size is never left half-read: an unread request body on a keep-alive connection breaks
 * that connection (under `wrangler dev` the refused request, or the next one, came back as
 * 500 "Network connection lost"). So a refusal by `Content-Length` happens before anything is
 * read, and whatever is not read is drained before the answer goes out.
 */
import { defaults } from "../core/config";
import { invalidArgument, resourceExhausted } from "../core/errors";

/**
 * More than this is not drained: it is cancelled, which costs the connection (measured under
 * `wrangler dev`: a cancelled body turns into 500 "Network connection lost" and resets). It is
 * above Cloudflare's own request body limit (100 MB on the smallest plans), which the edge
 * enforces before a request reaches the Worker, so in production every refused body is drained.
 */
const DRAIN_MAX_BYTES = 128 * 1024 * 1024;

export const tooLarge = () => resourceExhausted(`the request body is larger than ${defaults.maxRequestBytes} bytes: send at most that much`);

/** The declared length of the body, or null when there is none (a chunked body) or it is not a number. */
export function declaredLength(request: Request): number | null {
  const header = request.headers.get("content-length");
  const n = header === null ? Number.NaN : Number(header);
  return Number.isSafeInteger(n) && n >= 0 ? n : null;
}

/** A body the caller reads as an async iterable, and releases (drains or cancels) once it is done with it. */
export interface OwnedBody {
  chunks: AsyncIterable<Uint8Array>;
  /** Drains what was not read (or cancels it when that is too much): call once the answer is decided. */
  release(): Promise<void>;
}

/** Takes the request's body so that it can always be released, whoever reads it (connect-es does not). */
export function ownBody(request: Request): OwnedBody {
  const reader = request.body?.getReader();
  let read = 0;
  let done = reader === undefined;
  return {
    chunks: {
      [Symbol.asyncIterator]: () => ({
        async next(): Promise<IteratorResult<Uint8Array>> {
          if (done || !reader) return { done: true, value: undefined };
          const r = await reader.read();
          if (r.done) {
            done = true;
            return { done: true, value: undefined };
          }
          read += r.value.byteLength;
          return { done: false, value: r.value };
        },
      }),
    },
    async release() {
      if (done || !reader) return;
      done = true;
      const declared = declaredLength(request);
      try {
        if (declared !== null && declared > DRAIN_MAX_BYTES) return await reader.cancel("refused");
        for (let r = await reader.read(); !r.done; r = await reader.read()) {
          read += r.value.byteLength;
          if (read > DRAIN_MAX_BYTES) return await reader.cancel("refused");
        }
      } catch {
        // The client went away: nothing is left to release.
      }
    },
  };
}

/**
 * The whole body, at most `defaults.maxRequestBytes` of it: resource_exhausted for a larger
 * `Content-Length` (before reading anything) or for a chunked body that grows past the limit.
 */
export async function readBody(request: Request): Promise<Uint8Array> {
  const body = ownBody(request);
  try {
    const declared = declaredLength(request);
    if (declared !== null && declared > defaults.maxRequestBytes) throw tooLarge();
    const parts: Uint8Array[] = [];
    let total = 0;
    for await (const chunk of body.chunks) {
      total += chunk.byteLength;
      if (total > defaults.maxRequestBytes) throw tooLarge();
      parts.push(chunk);
    }
    const out = new Uint8Array(total);
    parts.reduce((at, p) => (out.set(p, at), at + p.byteLength), 0);
    return out;
  } finally {
    await body.release();
  }
}

/** The body as text (UTF-8), within the limit. */
export async function readText(request: Request): Promise<string> {
  return new TextDecoder().decode(await readBody(request));
}

/** The body as a JSON object (not null, an array or a scalar): invalid_argument naming `expected` otherwise. */
export async function readJsonObject(request: Request, expected: string): Promise<Record<string, unknown>> {
  const text = await readText(request);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw invalidArgument("body", `must be JSON: ${expected}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw invalidArgument("body", `must be a JSON object: ${expected}`);
  return value as Record<string, unknown>;
}
