import { env } from "cloudflare:test";
import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import * as pb from "../../../proto/gen/gitpod/v1/environment_automation_pb";
import { Principal } from "../../../proto/gen/gitpod/v1/identity_pb";
import { held } from "../../contract";

const missing = "0190f3a0-0000-7000-8000-000000000000";
/** A caller with environment:edit:ephemeral only. */
const developer = { subject: { id: "u1", principal: Principal.USER }, mayEditPermanent: false, mayReportStatus: false };

async function permanentEnvironment(name: string) {
  const stub = env.ENVIRONMENTS.getByName(name);
  await stub.initialize({ environmentId: name, ephemeral: false, createdAt: 1 });
  return stub;
}

describe("AutomationsApi", () => {
  it("lets any caller read a permanent environment's automations, but changing them needs mayEditPermanent, RPC by RPC", async () => {
    using api = held((await permanentEnvironment("api-permanent")).automations(developer));
    const id = { id: missing };
    const reads = [
      api.getService(create(pb.GetServiceRequestSchema, id)),
      api.listServices(create(pb.ListServicesRequestSchema), "", 10),
      api.getTask(create(pb.GetTaskRequestSchema, id)),
      api.listTasks(create(pb.ListTasksRequestSchema), "", 10),
      api.getTaskExecution(create(pb.GetTaskExecutionRequestSchema, id)),
      api.listTaskExecutions(create(pb.ListTaskExecutionsRequestSchema), "", 10),
    ];
    for (const outcome of await Promise.all(reads)) expect(outcome.ok || outcome.code).not.toBe(Code.PermissionDenied);

    const writes = [
      api.upsertAutomationsFile(create(pb.UpsertAutomationsFileRequestSchema), {}),
      api.createService(create(pb.CreateServiceRequestSchema), missing),
      api.updateService(create(pb.UpdateServiceRequestSchema, id)),
      api.deleteService(create(pb.DeleteServiceRequestSchema, id)),
      api.startService(create(pb.StartServiceRequestSchema, id)),
      api.stopService(create(pb.StopServiceRequestSchema, id)),
      api.createTask(create(pb.CreateTaskRequestSchema), missing),
      api.updateTask(create(pb.UpdateTaskRequestSchema, id)),
      api.deleteTask(create(pb.DeleteTaskRequestSchema, id)),
      api.startTask(create(pb.StartTaskRequestSchema, id), missing),
      api.stopTaskExecution(create(pb.StopTaskExecutionRequestSchema, id)),
    ];
    for (const outcome of await Promise.all(writes)) expect(outcome).toMatchObject({ ok: false, code: Code.PermissionDenied });
  });

  it("answers null for an environment that does not exist", async () => {
    using api = held(env.ENVIRONMENTS.getByName("api-missing").automations(developer));
    expect(await api.getService(create(pb.GetServiceRequestSchema, { id: missing }))).toEqual({ ok: true, value: null });
    expect(await api.stopService(create(pb.StopServiceRequestSchema, { id: missing }))).toEqual({ ok: true, value: null });
  });
});
