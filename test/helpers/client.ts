/**
 * Connect clients as a user would build them, talking to the real Worker in workerd: the
 * fetch they use is the Worker's own fetch handler instead of the network.
 */
import type { DescService } from "@bufbuild/protobuf";
import { type Client, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { exports } from "cloudflare:workers";

export const baseUrl = "http://edgeplane.test";

/** The Worker's fetch, callable like the global one. */
export const workerFetch: typeof fetch = (input, init) => {
  // connect-web asks for redirect "error", which workerd's Request does not implement.
  const { redirect: _, ...rest } = init ?? {};
  return exports.default.fetch(new Request(input, rest));
};

export type Protocol = "connect-json" | "connect-binary" | "grpc-web";

export function transport(token?: string, protocol: Protocol = "connect-json"): Transport {
  const auth: Interceptor = (next) => (req) => {
    if (token) req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
  const options = { baseUrl, fetch: workerFetch, interceptors: [auth] };
  return protocol === "grpc-web"
    ? createGrpcWebTransport(options)
    : createConnectTransport({ ...options, useBinaryFormat: protocol === "connect-binary" });
}

export const client = <S extends DescService>(service: S, token?: string, protocol?: Protocol): Client<S> =>
  createClient(service, transport(token, protocol));
