import { cors as connectCors } from "@connectrpc/connect";
import { Hono } from "hono";
import { cors } from "hono/cors";
import { ping } from "../d1/health";
import type { Env } from "../env";
import { ownBody } from "./bodies";
import { serveConnect } from "./connect";
import { skaffoldGateway } from "./skaffold-gateway";
import { streams } from "./streams";

/** The Worker's HTTP surface: CORS for browser clients, liveness, and every RPC. */
export const app = new Hono<{ Bindings: Env }>();

app.use(
  "*",
  cors({
    // Bearer tokens, not cookies, so any origin may call; browsers still need the headers listed.
    origin: "*",
    // Connect needs GET and POST; Skaffold's HTTP gateway also takes PUT (auto_execute).
    allowMethods: [...connectCors.allowedMethods, "PUT"],
    allowHeaders: [...connectCors.allowedHeaders, "Authorization"],
    exposeHeaders: [...connectCors.exposedHeaders, "Retry-After"],
    maxAge: 7200,
  }),
);

// A body no handler read (a ticket request carrying one, say) is drained before the answer
// goes out, so the connection stays usable for the client's next request (bodies.ts).
app.use("*", async (c, next) => {
  await next();
  const body = c.req.raw.body;
  if (body && !c.req.raw.bodyUsed && !body.locked) await ownBody(c.req.raw).release();
});

app.get("/healthz", (c) => c.text("ok"));

/** Readiness: the Worker can reach D1 (one round trip, also the benchmark's floor for an RPC that reads D1). */
app.get("/readyz", async (c) => {
  try {
    await ping(c.env);
    return c.text("ok");
  } catch (err) {
    console.error("readiness check failed", err);
    return c.text("D1 is unreachable", 503);
  }
});

app.route("/", streams);
app.route("/", skaffoldGateway);

app.on(["GET", "POST"], "/:service/:method", async (c, next) => {
  const res = await serveConnect(c.req.raw, c.req.path, c.env, executionContext(c));
  return res ?? next();
});

// Skaffold's API belongs to one environment, so its RPCs live under that environment's path.
app.on(["GET", "POST"], "/environments/:id/skaffold/:service/:method", async (c, next) => {
  const rpcPath = `/${c.req.param("service")}/${c.req.param("method")}`;
  if (!rpcPath.startsWith("/proto.SkaffoldService/")) return next();
  const res = await serveConnect(c.req.raw, rpcPath, c.env, executionContext(c));
  return res ?? next();
});

app.notFound((c) => {
  // A browser opening a dashboard page (/p/shop, /dev…): the dashboard's index.html. Anything else is an API miss.
  if (isPageRequest(c.req.raw)) return c.env.ASSETS.fetch(c.req.raw);
  return c.json({ code: "not_found", message: `no route for ${c.req.method} ${c.req.path}` }, 404);
});

/** A GET or HEAD that asks for HTML: a browser navigating, not an API client. */
function isPageRequest(req: Request): boolean {
  return (req.method === "GET" || req.method === "HEAD") && (req.headers.get("accept") ?? "").includes("text/html");
}

function executionContext(c: { executionCtx: unknown }): ExecutionContext | undefined {
  try {
    return c.executionCtx as ExecutionContext;
  } catch {
    return undefined; // Hono throws when called without one (app.request in tests).
  }
}
