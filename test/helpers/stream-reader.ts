/**
 * Reading a streamed answer as a client that accepts compression does (what browsers and
 * Node's fetch send), chunk by chunk as it arrives. Shared by the workerd tests and the e2e
 * tests against `wrangler dev`, so `fetch` is whichever reaches the Worker.
 */
import { expect } from "vitest";
import { within } from "./wait";

export const ACCEPT_COMPRESSED = { "accept-encoding": "gzip, deflate, br" };

/**
 * Opens `url` with `Accept-Encoding: gzip, deflate, br` and `token`; `until(text)` waits for
 * `text` in what arrived so far and fails if the stream ends (or stays silent 5 s) first.
 */
export async function openStream(fetcher: typeof fetch, url: string, token: string, init: { method?: string; contentType?: string; body?: BodyInit }) {
  const res = await fetcher(url, {
    method: init.method ?? "POST",
    headers: { ...ACCEPT_COMPRESSED, authorization: `Bearer ${token}`, ...(init.contentType ? { "content-type": init.contentType } : {}) },
    body: init.body,
  });
  expect(res.status, `${url}: ${res.status}`).toBe(200);
  const reader = res.body!.getReader();
  const chunks: Uint8Array[] = [];
  const text = () => new TextDecoder().decode(concat(chunks));
  return {
    res,
    bytes: () => concat(chunks),
    async until(wanted: string): Promise<void> {
      while (!text().includes(wanted)) {
        const { value, done } = await within(reader.read(), `${url}: "${wanted}" while the stream is open`);
        if (done) throw new Error(`${url}: the stream ended before "${wanted}" arrived; got ${text().slice(0, 300)}`);
        chunks.push(value);
      }
    },
    close: () => reader.cancel(),
  };
}

/** What stops a compressing proxy (Cloudflare's edge, wrangler dev) from buffering a stream. */
export function expectUnbuffered(res: Response): void {
  expect(res.headers.get("content-encoding")).toBe("identity");
  expect(res.headers.get("cache-control")).toBe("no-transform");
}

/** One stream envelope (flags, length, message), as Connect and gRPC-Web frame them. */
export function envelope(message: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(5 + message.length);
  new DataView(out.buffer).setUint32(1, message.length);
  out.set(message, 5);
  return out;
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  chunks.reduce((at, c) => (out.set(c, at), at + c.length), 0);
  return out;
}
