// The runner on Docker for `npm run bench` (issue #13): Deploy → all N instances ready
// (N = 1 and 5) against starting the same N containers straight through the Docker API and
// polling each until it answers HTTP (the target is a median at most 1.5× that), and the
// runner's resident memory while it runs 50 instances. The runner is the built program,
// started as an operator starts it, against the same workerd as the other benchmarks.
// Without a Docker engine this part says so and is skipped (bench is not CI).
import { execFileSync, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { resolve } from "node:path";
import Docker from "dockerode";

const ROUNDS = Number(process.env.BENCH_RUNNER_ROUNDS ?? 3);
const MEMORY_INSTANCES = Number(process.env.BENCH_RUNNER_INSTANCES ?? 50);
const TARGET = 1.5;
const root = resolve(import.meta.dirname, "..");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const round = (x) => Math.round(x);
/** What every instance runs: busybox httpd answering `/`, as in the runner's e2e tests. */
const SERVE = ["sh", "-c", "mkdir -p /tmp/www && echo ok > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"];

async function until(what, check, timeoutMs = 120_000, everyMs = 25) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`runner bench: ${what} did not happen within ${timeoutMs} ms`);
    await sleep(everyMs);
  }
}

/** N containers of `image` started through the Docker API until each answers HTTP on its published port. */
async function bareStart(docker, image, n) {
  const t0 = performance.now();
  const containers = await Promise.all(
    Array.from({ length: n }, async () => {
      const c = await docker.createContainer({
        Image: image,
        Cmd: SERVE,
        Labels: { "dev.edgeplane.bench": "bare" },
        ExposedPorts: { "8080/tcp": {} },
        HostConfig: { PortBindings: { "8080/tcp": [{ HostIp: "127.0.0.1", HostPort: "" }] } },
      });
      await c.start();
      const port = (await c.inspect()).NetworkSettings.Ports["8080/tcp"][0].HostPort;
      await until("a bare container answering", () => fetch(`http://127.0.0.1:${port}/`).then((r) => r.ok, () => false));
      return c;
    }),
  );
  const ms = performance.now() - t0;
  await Promise.all(containers.map((c) => c.remove({ force: true })));
  return ms;
}

/** The runner process's resident set size, from /proc. */
const rssBytes = (pid) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]) * 1024;

export async function benchRunner(base, rpc, adminToken) {
  const docker = new Docker({ socketPath: process.env.DOCKER_HOST?.replace(/^unix:\/\//, "") || "/var/run/docker.sock" });
  try {
    await docker.ping();
  } catch (e) {
    return { lines: [`runner on Docker: skipped, no Docker engine answers at /var/run/docker.sock (${e.message})`], results: [] };
  }
  const { testImage, removeAll } = await import("../runner/test/docker.ts");
  const image = await testImage();
  execFileSync("npm", ["run", "-s", "build", "-w", "@edgeplane/runner"], { cwd: root, stdio: "inherit" });

  const projectId = "bench-runner";
  const environmentId = "bench-runner";
  await rpc("api.v1.project.Service/Create", { projectId }, adminToken);
  await rpc("api.v1.environment.Service/Create", { environmentId, initializers: [{ addProject: projectId }] }, adminToken);
  const roleId = "bench-runner";
  await rpc("api.v1.role.Service/Create", { roleId, permissions: [{ action: "runner:connect", scope: { environment: environmentId, project: "*", resource: "*" } }] }, adminToken);
  const { clientId, clientSecret } = await rpc("api.v1.service_account.Service/Create", { name: roleId }, adminToken);
  const { serviceAccounts } = await rpc("api.v1.service_account.Service/List", {}, adminToken);
  const account = serviceAccounts.find((s) => s.name === roleId);
  await rpc("api.v1.role.Service/Assign", { roleId, entityId: { serviceAccountId: account.serviceAccountId } }, adminToken);

  const runner = spawn(
    process.execPath,
    [resolve(root, "runner/dist/edgeplane-runner.js"), "--url", base, "--environment", environmentId, "--client-id", clientId, "--client-secret", clientSecret, "--probe-interval", "100ms", "--drain", "0s", "--metrics-interval", "5s"],
    { stdio: ["ignore", "pipe", "pipe"], env: { PATH: process.env.PATH } },
  );
  let output = "";
  runner.stdout.on("data", (d) => (output += d));
  runner.stderr.on("data", (d) => (output += d));
  try {
    await until("the runner connecting", () => /connected to environment/.test(output) || runner.exitCode !== null, 30_000, 50);
    if (runner.exitCode !== null) throw new Error(`the runner exited: ${output}`);

    let capsules = 0;
    /** Deploys a new capsule with `replicas` instances; resolves with the ms until its rollout is healthy. */
    const deployed = async (replicas, changes) => {
      const capsuleId = `c${++capsules}`;
      await rpc("api.v1.capsule.Service/Create", { projectId, name: capsuleId }, adminToken);
      const t0 = performance.now();
      const { rolloutId } = await rpc("api.v1.capsule.Service/Deploy", { projectId, capsuleId, environmentId, changes: [{ addImage: { image } }, { replicas }, ...changes] }, adminToken);
      await until(`${replicas} instance(s) of ${capsuleId} ready`, async () => {
        const { rollout } = await rpc("api.v1.capsule.Service/GetRollout", { projectId, capsuleId, rolloutId }, adminToken);
        const steps = rollout.status?.stages?.running?.steps ?? [];
        return rollout.status?.state === "STATE_RUNNING" && steps.some((s) => s.instances?.info?.state === "STEP_STATE_DONE");
      });
      return { capsuleId, rolloutId, ms: performance.now() - t0 };
    };
    const served = [{ commandArguments: { command: SERVE[0], args: SERVE.slice(1) } }, { setInterface: { name: "http", port: 8080, readiness: { http: { path: "/" } } } }];

    const results = [];
    const lines = [];
    for (const n of [1, 5]) {
      const ours = [];
      const bare = [];
      for (let i = 0; i < ROUNDS; i++) {
        bare.push(await bareStart(docker, image, n));
        const d = await deployed(n, served);
        ours.push(d.ms);
        // StopRollout: the runner removes its containers, so rounds do not pile up.
        await rpc("api.v1.capsule.Service/StopRollout", { projectId, capsuleId: d.capsuleId, rolloutId: d.rolloutId }, adminToken);
      }
      const ratio = Number((median(ours) / median(bare)).toFixed(3));
      results.push({
        key: `runner.deployReady.${n}`,
        name: `Deploy → ${n} instance(s) ready through the runner (median of ${ROUNDS})`,
        value: round(median(ours)),
        unit: "ms",
        baseline: round(median(bare)),
        ratio,
        target: `<= ${TARGET}x starting them through the Docker API`,
        met: ratio <= TARGET,
      });
      lines.push(
        `runner: Deploy → ${n} ready: median ${round(median(ours))} ms vs ${n} container(s) started through the Docker API until they answer: ` +
          `${round(median(bare))} ms = ${ratio.toFixed(2)}x; target ≤ ${TARGET}x: ${ratio <= TARGET ? "met" : "NOT met"}`,
      );
    }

    // Memory: 50 instances of one capsule, without probes (each instance is still a container the runner follows).
    const before = rssBytes(runner.pid);
    const many = await deployed(MEMORY_INSTANCES, [{ commandArguments: { command: "sleep", args: ["3600"] } }]);
    const samples = [];
    for (let i = 0; i < 10; i++) {
      samples.push(rssBytes(runner.pid));
      await sleep(500);
    }
    const peakMiB = Math.max(...samples) / 2 ** 20;
    results.push({ key: "runner.rss", name: `runner resident memory while it runs ${MEMORY_INSTANCES} instances (peak of 10 samples over 5 s)`, value: Number(peakMiB.toFixed(1)), unit: "MiB", baseline: Number((before / 2 ** 20).toFixed(1)), ratio: Number((peakMiB / (before / 2 ** 20)).toFixed(3)) });
    lines.push(`runner: resident memory with ${MEMORY_INSTANCES} instances running: ${peakMiB.toFixed(1)} MiB (${(before / 2 ** 20).toFixed(1)} MiB before; they got ready in ${round(many.ms)} ms)`);
    return { lines, results };
  } finally {
    runner.kill("SIGKILL");
    await removeAll(environmentId);
    for (const c of await docker.listContainers({ all: true, filters: { label: ["dev.edgeplane.bench=bare"] } })) await docker.getContainer(c.Id).remove({ force: true });
  }
}
