/**
 * Live event streams over WebSocket. A client asks for a single-use ticket with its bearer
 * token (the one place authorization runs), then opens the socket with the ticket, since
 * browsers cannot send headers on a WebSocket:
 *
 *   POST /environments/<id>/events/tickets   → { ticket, expiresAt, url }
 *   GET  /environments/<id>/events?ticket=…&after=<seq>   (WebSocket upgrade)
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToHttpStatus, errorToJson } from "@connectrpc/connect/protocol-connect";
import { Hono } from "hono";
import { allows, authenticate, bearerToken } from "../auth/principal";
import { requireExisting } from "../db/exists";
import type { Env } from "../env";
import { permissionDenied, toConnectError, unauthenticated } from "./errors";

export const streams = new Hono<{ Bindings: Env }>();

/** Connect's error JSON and HTTP status, so clients handle these answers like RPC errors. */
function errorResponse(err: unknown): Response {
  const e = toConnectError(err);
  return Response.json(errorToJson(e, undefined), { status: codeToHttpStatus(e.code) });
}

streams.post("/environments/:id/events/tickets", async (c) => {
  try {
    const id = c.req.param("id");
    const token = bearerToken(c.req.raw.headers);
    if (!token) throw unauthenticated("send `Authorization: Bearer <access token>` to get a stream ticket");
    const principal = await authenticate(c.env, token);
    // The stream carries the events of every capsule in the environment.
    if (!allows(principal, "capsule:view", { environment: id, resource: "capsule/*" })) {
      throw permissionDenied(`capsule:view in environment ${id} is not granted to this ${principal.subjectType.replace("_", " ")}`);
    }
    await requireExisting(c.env, "environment", id);
    const { ticket, expiresAt } = await c.env.ENVIRONMENTS.getByName(id).issueStreamTicket(`${principal.subjectType}/${principal.subjectId}`);
    return c.json({ ticket, expiresAt: new Date(expiresAt).toISOString(), url: `/environments/${id}/events?ticket=${ticket}` });
  } catch (err) {
    return errorResponse(err);
  }
});

streams.get("/environments/:id/events", async (c) => {
  const id = c.req.param("id");
  try {
    await requireExisting(c.env, "environment", id);
  } catch (err) {
    return errorResponse(err);
  }
  if (!c.req.query("ticket")) return errorResponse(new ConnectError("ticket: get one from POST /environments/<id>/events/tickets", Code.Unauthenticated));
  return c.env.ENVIRONMENTS.getByName(id).fetch(c.req.raw);
});
