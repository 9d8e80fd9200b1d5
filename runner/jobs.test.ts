/**
 * Command cron jobs end to end: the Worker's Cron Trigger (fired through `wrangler dev
 * --test-scheduled`), the runner as its own process, and one-off containers of the capsule's
 * image on a real Docker engine.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it } from "vitest";
import { JobState } from "../proto/gen/api/v1/capsule/job_pb";
import type { ChangeSchema } from "../proto/gen/api/v1/capsule/change_pb";
import { workerUrl } from "../test/e2e/clients";
import { eventually } from "../test/helpers/wait";
import { docker, leftovers } from "./test/docker";
import { haveDocker, RunnerEnvironment, testImageName } from "./test/harness";
import { deploy, image, newCapsule, replicas, settled, until } from "./test/rollouts";

const made: RunnerEnvironment[] = [];
afterEach(async () => {
  for (const e of made.splice(0)) {
    await e.cleanup();
    expect(await leftovers(e.environmentId)).toEqual({ containers: [], networks: [], volumes: [] });
  }
});

const commandJob = (jobName: string, script: string, maxRetries: number): MessageInitShape<typeof ChangeSchema> => ({
  field: { case: "addCronJob", value: { jobName, schedule: "* * * * *", maxRetries, jobType: { case: "command", value: { command: "sh", args: ["-c", script] } } } },
});

/**
 * Fires the Cron Trigger for the next whole minute, when every `* * * * *` job is due.
 * wrangler's own `/__scheduled` ignores `time`; Miniflare's trigger path (which
 * `--test-scheduled` turns on too) passes it as the event's scheduledTime.
 */
async function fireCron(): Promise<void> {
  const at = Math.ceil((Date.now() + 1) / 60_000) * 60_000;
  const res = await fetch(`${workerUrl()}/cdn-cgi/local/scheduled?cron=${encodeURIComponent("* * * * *")}&time=${at}`);
  expect(res.ok, `/__scheduled answered ${res.status}`).toBe(true);
}

describe.skipIf(!haveDocker())("command cron jobs on Docker", () => {
  it("completes on exit 0 and fails after its retries on exit 1, each attempt a container removed afterwards", async () => {
    const e = await RunnerEnvironment.create("jobs");
    made.push(e);
    await e.start();
    const c = await newCapsule(e);
    const id = await deploy(e, c, [image(testImageName()), replicas(0), commandJob("ok", "echo job-ran-in-$(hostname)", 0), commandJob("broken", "echo failing >&2; exit 1", 1)]);
    // The runner holds the capsule's configuration once its rollout reached it.
    await until(e, c, id, settled, "healthy");
    await fireCron();
    const executions = () => e.capsules().getJobExecutions({ projectId: e.projectId, capsuleId: c, environmentId: e.environmentId });
    const byJob = async (name: string) => (await executions()).jobExecutions.find((x) => x.jobName === name);
    const ok = await eventually(() => byJob("ok"), (x) => x?.state === JobState.COMPLETED, "the ok job COMPLETED", 30_000, 200);
    expect(ok).toMatchObject({ state: JobState.COMPLETED, retries: 0 });
    // One retry after the default 10 s backoff, then FAILED.
    const broken = await eventually(() => byJob("broken"), (x) => x?.state === JobState.FAILED, "the broken job FAILED", 60_000, 500);
    expect(broken).toMatchObject({ state: JobState.FAILED, retries: 1 });
    // The attempts' output is in the capsule's logs, under an instance id of the job's own.
    const logs: { instanceId: string; text: string }[] = [];
    for await (const r of e.capsules().logs({ projectId: e.projectId, capsuleId: c, environmentId: e.environmentId, follow: false })) {
      const m = r.log?.message?.message;
      if (r.log && (m?.case === "stdout" || m?.case === "stderr")) logs.push({ instanceId: r.log.instanceId, text: new TextDecoder().decode(m.value).trim() });
    }
    expect(logs.find((l) => l.text.startsWith("job-ran-in-"))?.instanceId).toMatch(new RegExp(`^${c}-job-ok-`));
    expect(logs.filter((l) => l.text === "failing")).toHaveLength(2);
    const jobs = await docker.listContainers({ all: true, filters: { label: ["dev.edgeplane.kind=job", `dev.edgeplane.environment=${e.environmentId}`] } });
    expect(jobs).toEqual([]);
  });
});
