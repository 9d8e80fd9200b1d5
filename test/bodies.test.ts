/**
 * Request bodies as hostile clients send them: JSON that is not an object where an object is
 * expected, and bodies over the limit, declared (Content-Length) or chunked. Every answer is
 * a Connect error with the right code; an oversize body is never left half-read (it is
 * drained or cancelled, see workers/http/bodies.ts), and nothing is written.
 */
import { Code } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { exports } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { Service as EnvironmentService } from "../proto/gen/api/v1/environment/service_pb";
import { Service as ProjectService } from "../proto/gen/api/v1/project/service_pb";
import { defaults } from "../workers/core/config";
import { baseUrl, client } from "./helpers/client";
import { codeOf } from "./helpers/errors";
import { fileAdmin } from "./helpers/identity";

let token: string;
const ENV = "bodies";

beforeAll(async () => {
  token = (await fileAdmin()).accessToken;
  await client(EnvironmentService, token).create({ environmentId: ENV });
});

/** The routes that read a JSON body outside the Connect router. */
const jsonRoutes = [
  { path: `/environments/${ENV}/exec/tickets`, type: "application/json" },
  { path: `/environments/${ENV}/skaffold/v1/execute`, type: "application/json" },
  { path: "/gitpod.v1.EventService/WatchEvents", type: "application/jsonl" },
];

/**
 * A body that counts what was read of it: `pulled` bytes handed out, `cancelled` when its
 * reader gave up on it. `size` bytes of `head` padded with spaces, in 64 KiB chunks.
 */
function countedBody(head: string, size: number) {
  const bytes = new TextEncoder().encode(head.padEnd(size, " "));
  const state = { pulled: 0, cancelled: false, done: false };
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (state.pulled >= bytes.length) {
        state.done = true;
        controller.close();
        return;
      }
      const chunk = bytes.subarray(state.pulled, state.pulled + 65_536);
      state.pulled += chunk.length;
      controller.enqueue(chunk);
    },
    cancel() {
      state.cancelled = true;
    },
  });
  return { stream, bytes, state };
}

async function send(path: string, type: string, body: BodyInit, headers: Record<string, string> = {}) {
  const res = await exports.default.fetch(
    new Request(`${baseUrl}${path}`, { method: "POST", headers: { "content-type": type, authorization: `Bearer ${token}`, ...headers }, body }),
  );
  const text = await res.text();
  // The Skaffold gateway answers grpc-gateway errors, whose code is the number.
  let parsed: { code?: string | Code; message?: string } = {};
  try {
    parsed = JSON.parse(text);
  } catch {
    // Not JSON: the status says enough.
  }
  const code = typeof parsed.code === "number" ? codeToString(parsed.code) : parsed.code;
  return { status: res.status, code, message: parsed.message ?? text.slice(0, 200) };
}

describe("JSON bodies that are not objects", () => {
  it.each(["null", "[]", "5", '"start"', "true"])("are invalid_argument on every JSON route: %s", async (body) => {
    for (const { path, type } of jsonRoutes) {
      const res = await send(path, type, body);
      expect(res, path).toMatchObject({ status: 400, code: "invalid_argument" });
    }
  });
});

describe("bodies over the limit", () => {
  const over = defaults.maxRequestBytes + 1;

  it("are refused by Content-Length before reading, and what was sent is drained", async () => {
    const targets = [...jsonRoutes, { path: "/api.v1.project.Service/Create", type: "application/json" }];
    for (const { path, type } of targets) {
      const body = countedBody('{"projectId": "too-big"}', over);
      const res = await send(path, type, body.stream, { "content-length": String(body.bytes.length) });
      expect(res, path).toMatchObject({ status: 429, code: "resource_exhausted" });
      expect(res.message).toMatch(/larger than .*1048576/);
      // Drained, not left half-read: the connection could carry the next request.
      expect(body.state.done || body.state.cancelled, `${path}: ${JSON.stringify(body.state)}`).toBe(true);
    }
    expect(await codeOf(client(ProjectService, token).get({ projectId: "too-big" }))).toBe(Code.NotFound);
  });

  it("are capped while reading when chunked, without Content-Length", async () => {
    const targets = [...jsonRoutes, { path: "/api.v1.project.Service/Create", type: "application/json" }];
    for (const { path, type } of targets) {
      const body = countedBody('{"projectId": "too-big-chunked"}', 3 * over);
      const res = await send(path, type, body.stream);
      expect(res, path).toMatchObject({ status: 429, code: "resource_exhausted" });
      expect(body.state.done || body.state.cancelled, `${path}: ${JSON.stringify(body.state)}`).toBe(true);
    }
    const after = await send("/api.v1.project.Service/Get", "application/json", JSON.stringify({ projectId: "too-big-chunked" }));
    expect(after).toMatchObject({ status: 404, code: "not_found" });
  });
});
