/**
 * Streams through `wrangler dev`, which compresses text types for clients that accept gzip
 * or br as Cloudflare's edge does: each streaming endpoint, read with
 * `Accept-Encoding: gzip, deflate, br`, delivers its first event while the stream is open and
 * then a live one. (A compressed stream would arrive only when it ends: nothing within 5 s.)
 * wrangler's list of compressed types has application/json (Skaffold's gateway) but not the
 * Connect, gRPC-Web or JSON lines types; the edge's list may, so every stream is checked.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { EmptySchema } from "@bufbuild/protobuf/wkt";
import { beforeAll, describe, expect, it } from "vitest";
import { State } from "../../proto/gen/api/v1/capsule/rollout/status_pb";
import { Service as CapsuleService } from "../../proto/gen/api/v1/capsule/service_pb";
import { Service as EnvironmentService } from "../../proto/gen/api/v1/environment/service_pb";
import { Service as ProjectService } from "../../proto/gen/api/v1/project/service_pb";
import { EnvironmentService as GitpodEnvironmentService } from "../../proto/gen/gitpod/v1/environment_pb";
import { LogEntrySchema, SkaffoldService } from "../../proto/gen/skaffold/v1/skaffold_pb";
import { envelope, expectUnbuffered, openStream } from "../helpers/stream-reader";
import { eventually } from "../helpers/wait";
import { adminToken, client, workerUrl } from "./clients";
import { connectRunner } from "./runner";

let token: string;
const suffix = crypto.randomUUID().slice(0, 6);

beforeAll(async () => {
  token = await adminToken();
  await client(ProjectService, token).create({ projectId: `flow-${suffix}` });
});

let counter = 0;
async function environment(): Promise<string> {
  const environmentId = `flow-${suffix}-${++counter}`;
  await client(EnvironmentService, token).create({ environmentId });
  return environmentId;
}

const open = (path: string, init: Parameters<typeof openStream>[3]) => openStream(fetch, `${workerUrl()}${path}`, token, init);

const buildEvent = (environmentId: string, artifact: string) =>
  fetch(`${workerUrl()}/environments/${environmentId}/skaffold/v1/events/handle`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ buildEvent: { artifact, status: "In Progress" } }),
  });

describe("streams through wrangler dev, for clients that accept compression", () => {
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
    const first = grpcWeb.bytes();
    const len = new DataView(first.buffer, first.byteOffset + 1, 4).getUint32(0);
    expect(fromBinary(LogEntrySchema, first.subarray(5, 5 + len)).entry).toBe("Build started for artifact replayed");
    await Promise.all([connect.close(), grpcWeb.close()]);
  });

  it("api.v1.capsule.Service/Logs with follow", async () => {
    const environmentId = await environment();
    const projectId = `flow-${suffix}`;
    const runner = await connectRunner(environmentId);
    const capsules = client(CapsuleService, token);
    await capsules.create({ projectId, name: "web" });
    await capsules.deploy({
      projectId,
      environmentId,
      capsuleId: "web",
      changes: [{ field: { case: "addImage", value: { image: "nginx:1.27" } } }, { field: { case: "replicas", value: 1 } }],
    });
    await eventually(() => capsules.getRollout({ projectId, capsuleId: "web", rolloutId: 1n }), (r) => r.rollout?.status?.state === State.RUNNING, "running");
    await eventually(async () => (await capsules.listInstances({ projectId, capsuleId: "web", environmentId })).total, (n) => n > 0n, "an instance");
    runner.log(projectId, "web", "web-1-0", ["first line"]);

    const request = new TextEncoder().encode(JSON.stringify({ projectId, capsuleId: "web", environmentId, follow: true }));
    const s = await open(`/${CapsuleService.typeName}/Logs`, { contentType: "application/connect+json", body: envelope(request) });
    expectUnbuffered(s.res);
    await s.until(btoa("first line\n"));
    runner.log(projectId, "web", "web-1-0", ["live line"]);
    await s.until(btoa("live line\n"));
    await s.close();
    runner.disconnect();
  });

  it("gitpod.v1.EventService/WatchEvents as JSON lines", async () => {
    const gitpod = client(GitpodEnvironmentService, token);
    const { environment } = await gitpod.createEnvironment({ spec: {} });
    const id = environment!.id;
    const s = await open("/gitpod.v1.EventService/WatchEvents", { contentType: "application/jsonl", body: JSON.stringify({ environmentId: id }) });
    expectUnbuffered(s.res);
    await gitpod.stopEnvironment({ environmentId: id });
    await s.until("RESOURCE_OPERATION_UPDATE");
    await s.close();
  });
});
