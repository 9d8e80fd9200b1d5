/**
 * Skaffold's HTTP/JSON gateway, per environment, below /environments/<id>/skaffold/:
 *
 *   GET  v1/state                 → State
 *   GET  v1/events, v1/event_log  → NDJSON, one {"result": LogEntry} per line
 *   POST v1/execute               body: the bare Intent
 *   PUT  v1/{build,sync,deploy}/auto_execute   body: the bare TriggerState
 *   POST v1/events/handle         body: the Event
 *
 * It answers as Skaffold's grpc-gateway (v2) does: proto field names, every unpopulated field
 * emitted (null for unset messages), enums by name, unknown input fields ignored, errors as
 * google.rpc.Status JSON with the HTTP status grpc-gateway maps the code to. Authorization
 * is the Connect rules' (services/skaffold.ts), from the bearer token.
 */
import { type DescMessage, fromJson, type JsonObject, type JsonValue, type MessageShape, toJson } from "@bufbuild/protobuf";
import { Code, type ConnectError } from "@connectrpc/connect";
import { type Context, Hono } from "hono";
import { EventSchema, IntentSchema, type LogEntry, LogEntrySchema, StateSchema, TriggerStateSchema } from "../../proto/gen/skaffold/v1/skaffold_pb";
import type { SkaffoldPhase as Phase } from "../../durable-objects/contract";
import type { Env } from "../env";
import { environmentIdOf, skaffoldOps, skaffoldRules } from "../services/skaffold";
import { invalidArgument, toConnectError } from "../core/errors";
import { guard } from "./guard";
import { ndjsonResponse } from "./jsonl";
import { readText } from "./bodies";

type C = Context<{ Bindings: Env }>;

export const skaffoldGateway = new Hono<{ Bindings: Env }>();

const v1 = "/environments/:id/skaffold/v1";

/** grpc-gateway's HTTPStatusFromCode (runtime/errors.go). */
const httpStatus: Record<Code, number> = {
  [Code.Canceled]: 499,
  [Code.Unknown]: 500,
  [Code.InvalidArgument]: 400,
  [Code.DeadlineExceeded]: 504,
  [Code.NotFound]: 404,
  [Code.AlreadyExists]: 409,
  [Code.PermissionDenied]: 403,
  [Code.Unauthenticated]: 401,
  [Code.ResourceExhausted]: 429,
  [Code.FailedPrecondition]: 400,
  [Code.Aborted]: 409,
  [Code.OutOfRange]: 400,
  [Code.Unimplemented]: 501,
  [Code.Internal]: 500,
  [Code.Unavailable]: 503,
  [Code.DataLoss]: 500,
};

/** google.rpc.Status as protojson writes it; Connect codes are gRPC's numbers. */
const rpcStatus = (e: ConnectError) => ({ code: e.code as number, message: e.rawMessage, details: [] });

const json = (body: JsonValue, status = 200) => new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });

/** The one error answer of the gateway's routes (its streams' last line aside): google.rpc.Status JSON. */
function gatewayErrorResponse(err: unknown): Response {
  const e = toConnectError(err);
  return json(rpcStatus(e), httpStatus[e.code]);
}

/**
 * protojson with grpc-gateway's options (UseProtoNames, EmitUnpopulated). protobuf-es emits
 * implicit scalars, lists and maps with `alwaysEmitImplicit`; unset messages are added as null.
 */
export function gatewayJson<D extends DescMessage>(schema: D, message: MessageShape<D>): JsonObject {
  const out = toJson(schema, message, { useProtoFieldName: true, alwaysEmitImplicit: true }) as JsonObject;
  addNulls(schema, message as Record<string, unknown>, out);
  return out;
}

function addNulls(schema: DescMessage, message: Record<string, unknown>, out: JsonObject): void {
  // Well-known types (a Timestamp is a string) have JSON of their own.
  if (schema.typeName.startsWith("google.protobuf.")) return;
  for (const f of schema.fields) {
    // A oneof emits only its member that is set.
    const value = f.oneof ? oneofMember(message[f.oneof.localName], f.localName) : message[f.localName];
    const at = out[f.name];
    if (f.fieldKind === "message") {
      if (value !== undefined) addNulls(f.message, value as Record<string, unknown>, at as JsonObject);
      else if (!f.oneof) out[f.name] = null;
    } else if (f.fieldKind === "list" && f.listKind === "message") {
      const items = at as JsonObject[];
      for (const [i, v] of (value as Record<string, unknown>[]).entries()) addNulls(f.message, v, items[i]!);
    } else if (f.fieldKind === "map" && f.mapKind === "message") {
      const entries = value as Record<string, Record<string, unknown>>;
      for (const k of Object.keys(entries)) addNulls(f.message, entries[k]!, (at as Record<string, JsonObject>)[k]!);
    }
  }
}

/** The value of a oneof (protobuf-es's `{ case, value }`) when `member` is the one set. */
function oneofMember(oneof: unknown, member: string): unknown {
  const o = oneof as { case?: string; value?: unknown };
  return o.case === member ? o.value : undefined;
}

/** The environment's id, once the caller is known to hold the RPC's action there. */
async function authorize(c: C, rpc: keyof typeof skaffoldRules): Promise<string> {
  const url = new URL(c.req.url);
  const { action, scope } = skaffoldRules[rpc];
  await guard(c.env, c.req.raw.headers, "the Skaffold API", { action, scope: scope(undefined, url) });
  return environmentIdOf(url) ?? "";
}

/** The request body as `schema`; an empty body is the empty message, as grpc-gateway reads it. */
async function bodyOf<D extends DescMessage>(c: C, schema: D): Promise<MessageShape<D>> {
  const text = await readText(c.req.raw);
  let value: JsonValue = {};
  try {
    if (text.trim()) value = JSON.parse(text);
  } catch (err) {
    throw invalidArgument("body", `is not JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  try {
    return fromJson(schema, value, { ignoreUnknownFields: true });
  } catch (err) {
    throw invalidArgument("body", `is not a ${schema.typeName} in JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
}

skaffoldGateway.onError((err) => gatewayErrorResponse(err));

/** A unary route: `run` gets the authorized environment id and returns the response body. */
function unary(rpc: keyof typeof skaffoldRules, run: (c: C, id: string) => Promise<JsonValue>) {
  return async (c: C) => json(await run(c, await authorize(c, rpc)));
}

/**
 * A server stream as grpc-gateway writes it: NDJSON (ndjsonResponse), one `{"result": …}` per
 * message; an error is a last `{"error": Status}` line, or, before the first message, the
 * whole answer with the code's HTTP status.
 */
function stream(rpc: "events" | "eventLog") {
  return async (c: C) => {
    const error = (err: unknown) => JSON.stringify({ error: rpcStatus(toConnectError(err)) });
    let entries: AsyncGenerator<LogEntry>;
    try {
      entries = await skaffoldOps.events(c.env, await authorize(c, rpc), c.req.raw.signal);
    } catch (err) {
      const e = toConnectError(err);
      return new Response(`${error(e)}\n`, { status: httpStatus[e.code], headers: { "content-type": "application/json" } });
    }
    return ndjsonResponse(entries, (entry) => JSON.stringify({ result: gatewayJson(LogEntrySchema, entry) }), {
      contentType: "application/json",
      errorLine: error,
    });
  };
}

skaffoldGateway.get(
  `${v1}/state`,
  unary("getState", async (c, id) => gatewayJson(StateSchema, await skaffoldOps.state(c.env, id))),
);
skaffoldGateway.get(`${v1}/events`, stream("events"));
// Deprecated in Skaffold, still served there for old clients.
skaffoldGateway.get(`${v1}/event_log`, stream("eventLog"));
skaffoldGateway.post(
  `${v1}/execute`,
  unary("execute", async (c, id) => {
    await skaffoldOps.execute(c.env, id, await bodyOf(c, IntentSchema));
    return {};
  }),
);
for (const [phase, rpc] of [["build", "autoBuild"], ["sync", "autoSync"], ["deploy", "autoDeploy"]] as const) {
  skaffoldGateway.put(
    `${v1}/${phase}/auto_execute`,
    unary(rpc, async (c, id) => {
      await skaffoldOps.trigger(c.env, id, phase satisfies Phase, await bodyOf(c, TriggerStateSchema));
      return {};
    }),
  );
}
skaffoldGateway.post(
  `${v1}/events/handle`,
  unary("handle", async (c, id) => {
    await skaffoldOps.handle(c.env, id, await bodyOf(c, EventSchema));
    return {};
  }),
);
