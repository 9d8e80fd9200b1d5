/**
 * The error answer of routes outside the Connect router that clients read like RPC errors
 * (socket tickets, sockets, JSON lines): Connect's error JSON with its HTTP status. Skaffold's
 * gateway answers in grpc-gateway's format instead (skaffold-gateway.ts).
 */
import { codeToHttpStatus, errorToJson } from "@connectrpc/connect/protocol-connect";
import { toConnectError } from "../core/errors";

/** `err`, through the one error mapper, as a Connect error response. */
export function connectErrorResponse(err: unknown): Response {
  const e = toConnectError(err);
  return Response.json(errorToJson(e, undefined), { status: codeToHttpStatus(e.code) });
}
