/**
 * The Docker driver's jobs, developer environment machine and automations against a real
 * Docker engine, with the frames they send recorded in place of a connection.
 */
import Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunnerMessage, ServerMessage } from "../../../proto/frames/runner";
import { haveDocker, testImageName } from "../../test/harness";
import { DevWorkloads } from "./dev-workloads";

const docker = new Docker();
const owner = { "dev.edgeplane.test-run": `devenv-${process.pid}` };
const sent: RunnerMessage[] = [];
let w: DevWorkloads;

async function until<T>(what: string, find: () => T | undefined, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = find();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what} did not happen; sent: ${JSON.stringify(sent.slice(-10))}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
const frame = <K extends RunnerMessage["type"]>(type: K, ok: (m: Extract<RunnerMessage, { type: K }>) => boolean) => () =>
  sent.find((m): m is Extract<RunnerMessage, { type: K }> => m.type === type && ok(m as Extract<RunnerMessage, { type: K }>));

beforeAll(async () => {
  if (!haveDocker()) return;
  const IMAGE = testImageName();
  w = new DevWorkloads({
    docker,
    send: (m) => (sent.push(m), m.type === "verify-token" ? (queueMicrotask(() => w.handle({ type: "token-verified", requestId: m.requestId, valid: m.token === "good", kind: "logs" })), true) : true),
    ownerLabels: owner,
    template: () => ({ rolloutId: 1, spec: { options: { Image: IMAGE, HostConfig: {} }, files: [{ path: "/etc/job.conf", content: new TextEncoder().encode("from-config") }] } }),
    devImage: IMAGE,
    portBindAddress: "127.0.0.1",
    portPublicHost: "127.0.0.1",
    logs: { host: "127.0.0.1", port: 0 },
    serviceGraceMs: 2000,
  });
  await w.start();
});

afterAll(async () => {
  if (!haveDocker()) return;
  await w.stop();
  for (const c of await docker.listContainers({ all: true, filters: { label: [`dev.edgeplane.test-run=${owner["dev.edgeplane.test-run"]}`] } })) await docker.getContainer(c.Id).remove({ force: true });
  for (const v of (await docker.listVolumes({ filters: { label: [`dev.edgeplane.test-run=${owner["dev.edgeplane.test-run"]}`] } })).Volumes ?? []) await docker.getVolume(v.Name).remove();
});

describe.skipIf(!haveDocker())("command jobs", () => {
  it("reports the exit code and output, and removes the container", async () => {
    w.handle({ type: "job-run", executionId: "exec-ok-1", projectId: "p", capsuleId: "c", jobName: "hello", command: "sh", args: ["-c", "echo hi from job; cat /etc/job.conf; exit 3"] });
    const result = await until("job-result", frame("job-result", (m) => m.executionId === "exec-ok-1"));
    expect(result).toMatchObject({ exitCode: 3, message: "output: hi from job\nfrom-config" });
    expect(sent.some((m) => m.type === "log" && m.lines.some((l) => l.text === "hi from job"))).toBe(true);
    const left = await docker.listContainers({ all: true, filters: { label: ["dev.edgeplane.job-execution=exec-ok-1"] } });
    expect(left).toEqual([]);
  });
  it("kills an attempt past its timeout (exit code 124) and one cancelled (no result), leaving no container", async () => {
    w.handle({ type: "job-run", executionId: "exec-slow-1", projectId: "p", capsuleId: "c", jobName: "slow", command: "sleep", args: ["60"], timeoutMs: 500 });
    expect(await until("timeout result", frame("job-result", (m) => m.executionId === "exec-slow-1"))).toMatchObject({ exitCode: 124 });
    w.handle({ type: "job-run", executionId: "exec-cancel-1", projectId: "p", capsuleId: "c", jobName: "slow", command: "sleep", args: ["60"] });
    const running = () => docker.listContainers({ filters: { label: ["dev.edgeplane.job-execution=exec-cancel-1"] } });
    for (let i = 0; i < 100 && (await running()).length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    w.handle({ type: "job-cancel", executionId: "exec-cancel-1" });
    const jobContainers = () => docker.listContainers({ all: true, filters: { label: ["dev.edgeplane.kind=job", `dev.edgeplane.test-run=${owner["dev.edgeplane.test-run"]}`] } });
    for (let i = 0; i < 100 && (await jobContainers()).length > 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(await jobContainers()).toEqual([]);
    await new Promise((r) => setTimeout(r, 300));
    expect(sent.some((m) => m.type === "job-result" && m.executionId === "exec-cancel-1")).toBe(false);
  });
});

describe.skipIf(!haveDocker())("developer environment", () => {
  const desired = (specVersion: number, desiredPhase: "running" | "stopped" | "deleted", spec: object = {}): ServerMessage => ({
    type: "environment-desired",
    environmentId: `env-${process.pid}`,
    specVersion,
    desiredPhase,
    spec,
  });

  it("runs a machine with a port URL, a service and a task, then stops and deletes it", async () => {
    w.handle(desired(1, "running", { ports: [{ port: 8080, name: "web" }] }));
    const running = await until("running", frame("environment-status", (m) => m.phase === "running"));
    expect(sent.filter((m) => m.type === "environment-status").map((m) => m.type === "environment-status" && m.phase)).toEqual(["creating", "running"]);
    const url = (running.status as { environmentUrls: { ports: { port: number; url: string }[] } }).environmentUrls.ports[0]!;
    expect(url.port).toBe(8080);

    w.handle({ type: "service-desired", serviceId: "svc-1", reference: "web", desiredPhase: "running", session: "s1", commands: { start: "mkdir -p /www && echo hello-from-service > /www/index.html && httpd -f -p 8080 -h /www", ready: "echo | nc 127.0.0.1 8080" } });
    await until("service running", frame("service-status", (m) => m.serviceId === "svc-1" && m.phase === "running"));
    const page = await fetch(url.url);
    expect(await page.text()).toBe("hello-from-service\n");

    w.handle({ type: "task-step-run", executionId: "x1", stepId: "step-1", taskId: "t1", label: "build", command: "echo building; echo done" });
    const done = await until("step succeeded", frame("task-step-status", (m) => m.stepId === "step-1" && m.phase === "succeeded"));
    expect((await fetch(done.logUrl!, { headers: { authorization: "Bearer good" } }).then((r) => r.text()))).toBe("building\ndone\n");
    expect((await fetch(done.logUrl!, { headers: { authorization: "Bearer bad" } })).status).toBe(401);

    w.handle({ type: "service-desired", serviceId: "svc-1", reference: "web", desiredPhase: "stopped", session: "s1", commands: { start: "x" } });
    await until("service stopped", frame("service-status", (m) => m.serviceId === "svc-1" && m.phase === "stopped"));

    w.handle(desired(2, "stopped"));
    await until("stopped", frame("environment-status", (m) => m.specVersion === 2 && m.phase === "stopped"));
    w.handle(desired(3, "deleted"));
    await until("deleted", frame("environment-status", (m) => m.specVersion === 3 && m.phase === "deleted"));
    expect(await docker.listContainers({ all: true, filters: { label: [`dev.edgeplane.dev-environment=env-${process.pid}`] } })).toEqual([]);
    expect((await docker.listVolumes({ filters: { label: [`dev.edgeplane.dev-environment=env-${process.pid}`] } })).Volumes ?? []).toEqual([]);
  });
});
