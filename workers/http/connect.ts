/**
 * Connect served from Hono. There is no Workers adapter for connect-es, so the router's
 * universal handlers are called with requests converted from and to fetch's types.
 * Connect (JSON and binary) and gRPC-Web are served; plain gRPC is not, because it needs
 * HTTP trailers, which a Worker cannot send.
 */
import { createConnectRouter, createContextValues } from "@connectrpc/connect";
import {
  type UniversalHandler,
  universalServerRequestFromFetch,
  universalServerResponseToFetch,
} from "@connectrpc/connect/protocol";
import { defaults } from "../config";
import type { Env } from "../env";
import { services } from "../services";
import type { Rule } from "../services/registry";
import { kEnv, kExecution, kRequest } from "./context";
import { authorize, mapErrors } from "./interceptors";

function buildHandlers(): Map<string, UniversalHandler> {
  const rules = new Map<string, Rule>();
  const implemented = new Set<string>();
  for (const entry of services) {
    for (const method of entry.service.methods) {
      const path = `${entry.service.typeName}/${method.name}`;
      const rule = entry.rules[method.localName];
      if (rule) rules.set(path, rule);
      if (entry.impl[method.localName]) implemented.add(path);
    }
  }
  const router = createConnectRouter({
    grpc: false,
    connect: true,
    grpcWeb: true,
    readMaxBytes: defaults.maxRequestBytes,
    interceptors: [mapErrors, authorize(rules, implemented)],
  });
  for (const entry of services) router.service(entry.service, entry.impl);
  return new Map(router.handlers.map((h) => [h.requestPath, h]));
}

let handlers: Map<string, UniversalHandler> | undefined;

/** Serves a Connect or gRPC-Web call; undefined when no RPC lives at the path. */
export async function serveConnect(request: Request, env: Env, exec?: ExecutionContext): Promise<Response | undefined> {
  handlers ??= buildHandlers();
  const handler = handlers.get(new URL(request.url).pathname);
  if (!handler) return undefined;
  const ureq = universalServerRequestFromFetch(request, {});
  ureq.contextValues = createContextValues().set(kEnv, env).set(kExecution, exec).set(kRequest, request);
  return universalServerResponseToFetch(await handler(ureq));
}
