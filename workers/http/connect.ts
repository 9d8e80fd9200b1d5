/**
 * Connect served from Hono. There is no Workers adapter for connect-es, so the router's
 * universal handlers are called with requests converted from and to fetch's types.
 * Connect (JSON and binary) and gRPC-Web are served; plain gRPC is not, because it needs
 * HTTP trailers, which a Worker cannot send.
 */
import { createConnectRouter, createContextValues } from "@connectrpc/connect";
import {
  type UniversalHandler,
  type UniversalServerRequest,
  type UniversalServerResponse,
  universalServerResponseToFetch,
} from "@connectrpc/connect/protocol";
import { defaults } from "../core/config";
import type { Env } from "../env";
import { services } from "../services";
import type { Rule } from "../services/registry";
import { kEnv, kExecution, kRequest } from "../services/context";
import { authorize, mapErrors } from "./interceptors";
import { isJsonLines, serveJsonLines } from "./jsonl";
import { unbuffered } from "./unbuffered";
import { ownBody } from "./bodies";

function buildHandlers(): Map<string, UniversalHandler> {
  const rules = new Map<string, Rule>();
  for (const entry of services) {
    for (const method of entry.service.methods) {
      const rule = entry.rules[method.localName];
      if (rule) rules.set(`${entry.service.typeName}/${method.name}`, rule);
    }
  }
  const router = createConnectRouter({
    grpc: false,
    connect: true,
    grpcWeb: true,
    readMaxBytes: defaults.maxRequestBytes,
    interceptors: [mapErrors, authorize(rules)],
  });
  for (const entry of services) router.service(entry.service, entry.impl);
  return new Map(router.handlers.map((h) => [h.requestPath, h]));
}

let handlers: Map<string, UniversalHandler> | undefined;

/**
 * Serves a Connect or gRPC-Web call to the RPC at `rpcPath` (`/<service>/<method>`);
 * undefined when no RPC lives there.
 */
export async function serveConnect(
  request: Request,
  rpcPath: string,
  env: Env,
  exec?: ExecutionContext,
): Promise<Response | undefined> {
  // Gitpod's SDK reads WatchEvents as JSON lines, which Connect does not speak (jsonl.ts).
  const lines = isJsonLines(request) ? await serveJsonLines(request, rpcPath, env) : undefined;
  if (lines) return lines;
  handlers ??= buildHandlers();
  const handler = handlers.get(rpcPath);
  if (!handler) return undefined;
  // connect-es refuses a body over readMaxBytes (by Content-Length or while reading) but leaves
  // the rest unread and locked; owning the body lets it be drained once the handler has answered.
  const body = ownBody(request);
  const ureq: UniversalServerRequest = {
    httpVersion: "",
    method: request.method,
    url: request.url,
    header: request.headers,
    body: body.chunks,
    signal: request.signal,
    contextValues: createContextValues().set(kEnv, env).set(kExecution, exec).set(kRequest, request),
  };
  let res = await handler(ureq);
  // A unary handler has read its request when it answers; a streaming one reads it as its
  // answer starts streaming, so its body is released once the answer has ended.
  if (handler.method.methodKind === "unary" || res.body === undefined) await body.release();
  else res = { ...res, body: releasedAfter(res.body, body.release) };
  // Gitpod's SDK retries a 409 unless told not to. Ours are already_exists and aborted (a lost
  // compare-and-swap): sending the same request again cannot succeed, so it must not be replayed.
  if (res.status === 409) res.header?.set("x-should-retry", "false");
  if (handler.method.methodKind === "unary") return universalServerResponseToFetch(await binaryParseErrorsAreBadInput(res));
  return universalServerResponseToFetch({ ...res, header: unbuffered(new Headers(res.header)) });
}

/**
 * connect-es reports a request body that is not valid protobuf as `internal` (its JSON parse
 * errors are `invalid_argument`, as they should be). Bad input must never look like our fault,
 * so those answers are rewritten here: Connect unary errors are a JSON body, gRPC-Web errors a
 * trailer frame at the end of the body. Only unary answers are read, and they are small.
 */
async function binaryParseErrorsAreBadInput(res: UniversalServerResponse): Promise<UniversalServerResponse> {
  const type = res.header?.get("content-type") ?? "";
  const connectError = res.status === 500 && type === "application/json";
  const grpcWeb = type.startsWith("application/grpc-web");
  if (!res.body || (!connectError && !grpcWeb)) return res;
  const bytes = await readAll(res.body);
  if (connectError) {
    const error = JSON.parse(new TextDecoder().decode(bytes)) as { code?: string; message?: string };
    if (error.code !== "internal" || !error.message?.startsWith(PARSE_ERROR)) return { ...res, body: once(bytes) };
    return { ...res, status: 400, body: once(new TextEncoder().encode(JSON.stringify({ ...error, code: "invalid_argument" }))) };
  }
  // The trailer frame: flag 0x80, a 4-byte length, then HTTP/1-style header lines.
  const at = lastFrameOffset(bytes);
  if (at < 0 || bytes[at] !== 0x80) return { ...res, body: once(bytes) };
  const trailer = new TextDecoder().decode(bytes.subarray(at + 5));
  if (!trailer.includes("grpc-status: 13") || !trailer.includes(`grpc-message: ${encodeURIComponent(PARSE_ERROR)}`)) {
    return { ...res, body: once(bytes) };
  }
  const fixed = new TextEncoder().encode(trailer.replace("grpc-status: 13", "grpc-status: 3"));
  const frame = new Uint8Array(5 + fixed.length);
  frame[0] = 0x80;
  new DataView(frame.buffer).setUint32(1, fixed.length);
  frame.set(fixed, 5);
  const out = new Uint8Array(at + frame.length);
  out.set(bytes.subarray(0, at));
  out.set(frame, at);
  return { ...res, body: once(out) };
}

const PARSE_ERROR = "parse binary";

function lastFrameOffset(bytes: Uint8Array): number {
  let at = 0;
  let last = -1;
  while (at + 5 <= bytes.length) {
    last = at;
    at += 5 + new DataView(bytes.buffer, bytes.byteOffset + at + 1, 4).getUint32(0);
  }
  return at === bytes.length ? last : -1;
}

async function readAll(body: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of body) chunks.push(chunk);
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  chunks.reduce((at, c) => (out.set(c, at), at + c.length), 0);
  return out;
}

async function* releasedAfter(chunks: AsyncIterable<Uint8Array>, release: () => Promise<void>) {
  try {
    yield* chunks;
  } finally {
    await release();
  }
}

async function* once(bytes: Uint8Array) {
  yield bytes;
}
