/**
 * Ticketed WebSockets (docs/event-streams.md, docs/execute.md): a ticket is asked for with the
 * access token over HTTP, then the socket is opened with it, since a ticket is all a socket carries.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { codeFromHttpStatus, errorFromJson } from "@connectrpc/connect/protocol-connect";
import WebSocket from "ws";
import { z } from "zod";
import type { Session } from "./session";

const TicketAnswer = z.object({ ticket: z.string(), expiresAt: z.string(), url: z.string() });

/** The ConnectError of a refused HTTP answer (the server answers Connect's error JSON). */
async function refusal(res: { status: number; text(): Promise<string> }, what: string): Promise<ConnectError> {
  const fallback = new ConnectError(`${what}: HTTP ${res.status}`, codeFromHttpStatus(res.status));
  try {
    return errorFromJson(JSON.parse(await res.text()), undefined, fallback);
  } catch {
    return fallback;
  }
}

/** Asks for a ticket at `path` (with `body` as JSON, if any) and returns the socket URL it grants. */
export async function ticket(session: Session, path: string, body?: unknown): Promise<string> {
  let res: Response;
  try {
    res = await fetch(`${session.host}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${await session.accessToken()}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ConnectError(`cannot reach ${session.host}`, Code.Unavailable, undefined, undefined, e);
  }
  if (!res.ok) throw await refusal(res, `ticket ${path}`);
  return TicketAnswer.parse(await res.json()).url;
}

/** Opens the socket at `url` (a path from a ticket answer); rejects with the server's refusal. */
export function openSocket(session: Session, url: string): Promise<WebSocket> {
  const ws = new WebSocket(`${session.host.replace(/^http/, "ws")}${url}`);
  return new Promise((resolve, reject) => {
    ws.once("open", () => resolve(ws));
    ws.once("unexpected-response", (_req, res) => {
      let text = "";
      res.on("data", (d: Buffer) => (text += d.toString("utf8")));
      res.on("end", () => void refusal({ status: res.statusCode ?? 500, text: async () => text }, "socket").then(reject));
    });
    ws.once("error", (e) => reject(new ConnectError(`socket to ${session.host}: ${e.message}`, Code.Unavailable, undefined, undefined, e)));
  });
}
