/**
 * Every streamed answer reaches a client that accepts compression as it happens: each
 * endpoint is read with `Accept-Encoding: gzip, deflate, br` (what browsers and Node's fetch
 * send), and its first event must arrive while the stream is still open, then a live one.
 * The pool calls the Worker in-process, where nothing compresses; what keeps Cloudflare's
 * edge and `wrangler dev` from compressing (and so buffering) is the pair of headers checked
 * here (workers/http/unbuffered.ts). test/e2e/streams.test.ts reads the same streams through
 * `wrangler dev`, which does compress.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { EmptySchema } from "@bufbuild/protobuf/wkt";
import { beforeAll, describe, expect, it } from "vitest";
import { State } from "../proto/gen/api/v1/capsule/rollout/status_pb";
import { Service as CapsuleService } from "../proto/gen/api/v1/capsule/service_pb";
import { Service as EnvironmentService } from "../proto/gen/api/v1/environment/service_pb";
import { EnvironmentService as GitpodEnvironmentService } from "../proto/gen/gitpod/v1/environment_pb";
import { Service as ProjectService } from "../proto/gen/api/v1/project/service_pb";
import { LogEntrySchema, SkaffoldService } from "../proto/gen/skaffold/v1/skaffold_pb";
import { baseUrl, client, workerFetch } from "./helpers/client";
import { fileAdmin } from "./helpers/identity";
import { runnerToken, TestRunner } from "./helpers/runner";
import { envelope, expectUnbuffered, openStream } from "./helpers/stream-reader";
import { eventually } from "./helpers/wait";

let admin: Awaited<ReturnType<typeof fileAdmin>>;
let counter = 0;

beforeAll(async () => {
  admin = await fileAdmin();
  await client(ProjectService, admin.accessToken).create({ projectId: "flow" });
});

/** A fresh (global) environment. */
async function environment(): Promise<string> {
  const environmentId = `flow-${++counter}`;
  await client(EnvironmentService, admin.accessToken).create({ environmentId });
  return environmentId;
}

/** A streamed answer of the Worker, read as a compression-accepting client reads it. */
const open = (path: string, init: Parameters<typeof openStream>[3]) => openStream(workerFetch, `${baseUrl}${path}`, admin.accessToken, init);

/** Logs a Skaffold build event in the environment. */
const buildEvent = (environmentId: string, artifact: string) =>
  workerFetch(`${baseUrl}/environments/${environmentId}/skaffold/v1/events/handle`, {
    method: "POST",
    headers: { authorization: `Bearer ${admin.accessToken}`, "content-type": "application/json" },
    body: JSON.stringify({ buildEvent: { artifact, status: "In Progress" } }),
  });

describe("streams for clients that accept compression", () => {
  it("Skaffold's gateway GET v1/events", async () => {
    const id = await environment();
    await buildEvent(id, "replayed");
    const s = await open(`/environments/${id}/skaffold/v1/events`, { method: "GET" });
    expectUnbuffered(s.res);
    await s.until("artifact replayed");
    await buildEvent(id, "live");
    await s.until("artifact live");
    await s.close();
  });

  it("proto.SkaffoldService/Events over Connect (JSON) and gRPC-Web (binary)", async () => {
    const id = await environment();
    await buildEvent(id, "replayed");
    const path = `/environments/${id}/skaffold/${SkaffoldService.typeName}/Events`;
    const connect = await open(path, { contentType: "application/connect+json", body: envelope(new TextEncoder().encode("{}")) });
    const grpcWeb = await open(path, { contentType: "application/grpc-web+proto", body: envelope(toBinary(EmptySchema, create(EmptySchema))) });
    for (const s of [connect, grpcWeb]) expectUnbuffered(s.res);
    await connect.until("artifact replayed");
    await grpcWeb.until("replayed");
    await buildEvent(id, "live");
    await connect.until("artifact live");
    await grpcWeb.until("live");
    // The gRPC-Web frames are LogEntry messages as they were logged.
    const first = grpcWeb.bytes();
    const len = new DataView(first.buffer, first.byteOffset + 1, 4).getUint32(0);
    expect(fromBinary(LogEntrySchema, first.subarray(5, 5 + len)).entry).toBe("Build started for artifact replayed");
    await Promise.all([connect.close(), grpcWeb.close()]);
  });

  it("api.v1.capsule.Service/Logs with follow", async () => {
    const environmentId = await environment();
    const runner = await TestRunner.connect({ environmentId, token: await runnerToken(environmentId) });
    const capsules = client(CapsuleService, admin.accessToken);
    await capsules.create({ projectId: "flow", name: "web" });
    await capsules.deploy({
      projectId: "flow",
      environmentId,
      capsuleId: "web",
      changes: [{ field: { case: "addImage", value: { image: "nginx:1.27" } } }, { field: { case: "replicas", value: 1 } }],
    });
    await eventually(() => capsules.getRollout({ projectId: "flow", capsuleId: "web", rolloutId: 1n }), (r) => r.rollout?.status?.state === State.RUNNING, "running");
    runner.log("flow", "web", "web-1-0", ["first line"]);
    await eventually(async () => (await capsules.listInstances({ projectId: "flow", capsuleId: "web", environmentId })).total, (n) => n > 0n, "an instance");

    const request = new TextEncoder().encode(JSON.stringify({ projectId: "flow", capsuleId: "web", environmentId, follow: true }));
    const s = await open(`/${CapsuleService.typeName}/Logs`, { contentType: "application/connect+json", body: envelope(request) });
    expectUnbuffered(s.res);
    // Log lines are bytes, base64 in JSON: "first line\n", then "live line\n".
    await s.until(btoa("first line\n"));
    runner.log("flow", "web", "web-1-0", ["live line"]);
    await s.until(btoa("live line\n"));
    await s.close();
    runner.disconnect();
  });

  it("gitpod.v1.EventService/WatchEvents as JSON lines, as the Gitpod SDK reads it", async () => {
    const gitpod = client(GitpodEnvironmentService, admin.accessToken);
    const { environment } = await gitpod.createEnvironment({ spec: {} });
    const id = environment!.id;
    const s = await open("/gitpod.v1.EventService/WatchEvents", { contentType: "application/jsonl", body: JSON.stringify({ environmentId: id }) });
    expectUnbuffered(s.res);
    await gitpod.stopEnvironment({ environmentId: id });
    await s.until("RESOURCE_OPERATION_UPDATE");
    await s.close();
  });
});
