import { describe, expect, it } from "vitest";
import { State } from "../../proto/gen/api/v1/capsule/rollout/status_pb";
import { Service as CapsuleService } from "../../proto/gen/api/v1/capsule/service_pb";
import { Service as EnvironmentService } from "../../proto/gen/api/v1/environment/service_pb";
import { Service as ProjectService } from "../../proto/gen/api/v1/project/service_pb";
import { adminToken, client } from "./clients";
import { connectRunner } from "./runner";

describe("the runner double over the network", () => {
  it("takes a deploy to RUNNING with its instances reported", async () => {
    const token = await adminToken();
    await client(ProjectService, token).create({ projectId: "double" });
    await client(EnvironmentService, token).create({ environmentId: "double", initializers: [{ field: { case: "addProject", value: "double" } }] });
    const capsules = client(CapsuleService, token);
    await capsules.create({ projectId: "double", name: "web" });
    const runner = await connectRunner("double");
    try {
      const { rolloutId } = await capsules.deploy({
        projectId: "double",
        environmentId: "double",
        capsuleId: "web",
        changes: [{ field: { case: "addImage", value: { image: "nginx:1.27" } } }, { field: { case: "replicas", value: 2 } }],
      });
      await runner.waitFor("desired");
      let state = State.UNSPECIFIED;
      for (let i = 0; i < 100 && state !== State.RUNNING; i++) {
        state = (await capsules.getRollout({ projectId: "double", capsuleId: "web", rolloutId })).rollout?.status?.state ?? state;
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(State[state]).toBe("RUNNING");
      const { instances } = await capsules.listInstances({ projectId: "double", environmentId: "double", capsuleId: "web" });
      expect(instances.map((i) => i.instanceId).sort()).toEqual(["web-1-0", "web-1-1"]);
    } finally {
      runner.disconnect();
    }
  });
});
