/**
 * Liveness and readiness probes as the rollout configures them (HTTP path, TCP, gRPC health),
 * run by the runner against a replica's container IP. Each answers true (healthy) or the
 * reason it is not.
 */
import { connect as http2Connect } from "node:http2";
import { connect } from "node:net";
import type { InterfaceProbe } from "../../../proto/gen/api/v1/capsule/change_pb";

const TIMEOUT_MS = 1000;

export type ProbeResult = true | string;

export function probe(p: InterfaceProbe, host: string, port: number): Promise<ProbeResult> {
  switch (p.kind.case) {
    case "http":
      return httpProbe(host, port, p.kind.value.path || "/");
    case "grpc":
      return grpcProbe(host, port, p.kind.value.service);
    default:
      return tcpProbe(host, port);
  }
}

async function httpProbe(host: string, port: number, path: string): Promise<ProbeResult> {
  try {
    const res = await fetch(`http://${host}:${port}${path.startsWith("/") ? path : `/${path}`}`, { signal: AbortSignal.timeout(TIMEOUT_MS), redirect: "manual" });
    await res.body?.cancel();
    // As Kubernetes: 200–399 is healthy.
    return res.status >= 200 && res.status < 400 ? true : `HTTP probe of ${path} answered ${res.status}`;
  } catch (e) {
    return `HTTP probe of ${path} failed: ${e instanceof Error ? (e.cause instanceof Error ? e.cause.message : e.message) : String(e)}`;
  }
}

function tcpProbe(host: string, port: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const s = connect({ host, port, timeout: TIMEOUT_MS });
    const end = (r: ProbeResult) => {
      s.destroy();
      resolve(r);
    };
    s.once("connect", () => end(true));
    s.once("timeout", () => end(`TCP probe of port ${port} timed out`));
    s.once("error", (e) => end(`TCP probe of port ${port} failed: ${e.message}`));
  });
}

/** grpc.health.v1.Health/Check: a HealthCheckRequest {service} in one gRPC frame; SERVING (1) is healthy. */
function grpcProbe(host: string, port: number, service: string): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const session = http2Connect(`http://${host}:${port}`);
    const end = (r: ProbeResult) => {
      clearTimeout(timer);
      session.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => end(`gRPC health check timed out`), TIMEOUT_MS);
    session.on("error", (e) => end(`gRPC health check failed: ${e.message}`));
    const name = Buffer.from(service, "utf8");
    const message = name.length > 0 ? Buffer.concat([Buffer.from([0x0a, name.length]), name]) : Buffer.alloc(0);
    const frame = Buffer.alloc(5 + message.length);
    frame.writeUInt32BE(message.length, 1);
    message.copy(frame, 5);
    const req = session.request({ ":method": "POST", ":path": "/grpc.health.v1.Health/Check", "content-type": "application/grpc", te: "trailers" });
    const chunks: Buffer[] = [];
    let status: string | undefined;
    req.on("response", (h) => (status = h["grpc-status"]?.toString() ?? status));
    req.on("trailers", (h) => (status = h["grpc-status"]?.toString() ?? status));
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("error", (e) => end(`gRPC health check failed: ${e.message}`));
    req.on("end", () => {
      const body = Buffer.concat(chunks).subarray(5);
      // HealthCheckResponse: field 1 (status) varint; SERVING = 1.
      const serving = body.length >= 2 && body[0] === 0x08 && body[1] === 0x01;
      if (status && status !== "0") end(`gRPC health check answered status ${status}`);
      else end(serving ? true : "gRPC health check: not SERVING");
    });
    req.end(frame);
  });
}
