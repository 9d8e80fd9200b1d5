// `npm run bench`: throughput of edgeplane's RPCs as ratios to a bare Hono route, all served
// by the same workerd in the same run. workerd is driven through Miniflare directly because
// `wrangler dev` puts a Node proxy in front that caps throughput (see PLATFORM-NOTES).
import autocannon from "autocannon";
import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { Miniflare, supportedCompatibilityDate } from "bench-miniflare";
import { benchDeploy, deployBenchWorkers } from "./deploy.mjs";
import { benchRunner } from "./runner.mjs";
import { benchStreams, streamBenchWorkers } from "./streams.mjs";

const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const connections = Number(process.env.BENCH_CONNECTIONS ?? 32);
const outdir = ".wrangler/bench";

execFileSync("wrangler", ["deploy", "--dry-run", "--outdir", outdir], { stdio: ["ignore", "ignore", "inherit"] });

// Miniflare 4 (stable) is pinned for this; its workerd may predate wrangler.toml's
// compatibility date, so the newest date it supports is used when that is older.
const wranglerDate = /compatibility_date\s*=\s*"([^"]+)"/.exec(readFileSync("wrangler.toml", "utf8"))[1];
const compatibilityDate = [wranglerDate, supportedCompatibilityDate].sort()[0];
const mf = new Miniflare({
  workers: [
    {
      name: "edgeplane",
      modules: true,
      modulesRoot: outdir,
      scriptPath: `${outdir}/index.js`,
      compatibilityDate,
      compatibilityFlags: ["nodejs_compat"],
      d1Databases: ["DB"],
      durableObjects: {
        ENVIRONMENTS: { className: "EnvironmentDO", useSQLite: true },
        ROLLOUTS: { className: "RolloutDO", useSQLite: true },
      },
      bindings: { PUBLIC_NAME: "edgeplane" },
    },
    // Baseline and driver of the stream benchmark, defined here so production code has no bench hooks.
    ...streamBenchWorkers(compatibilityDate),
    // Baseline of the deploy latency benchmark (issue #5 b): a bare Durable Object, routed by host.
    ...deployBenchWorkers(compatibilityDate),
  ],
});
const base = (await mf.ready).toString().replace(/\/$/, "");

const db = await mf.getD1Database("DB");
for (const file of readdirSync("migrations").filter((f) => f.endsWith(".sql")).sort()) {
  for (const sql of readFileSync(`migrations/${file}`, "utf8").split("--> statement-breakpoint")) {
    if (sql.trim()) await db.prepare(sql).run();
  }
}

const rpc = async (path, body, token) => {
  const res = await fetch(`${base}/${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
  return res.json();
};
const password = "bench-Passw0rd!";
const identifier = { email: "bench@example.com" };
await rpc("api.v1.authentication.Service/Register", { userPassword: { identifier, password } });
const { token } = await rpc("api.v1.authentication.Service/Login", { userPassword: { identifier, password } });

// A member who holds its permissions through two groups and three roles.
const admin = token.accessToken;
await rpc("api.v1.user.settings.Service/UpdateSettings", { settings: [{ allowRegister: true }] }, admin);
const member = await rpc("api.v1.authentication.Service/Register", {
  userPassword: { identifier: { email: "member@example.com" }, password },
});
for (const [roleId, action] of [["readers", "user:view"], ["group-readers", "group:view"], ["role-readers", "role:view"]]) {
  await rpc("api.v1.role.Service/Create", { roleId, permissions: [{ action, scope: { resource: "*", project: "*", environment: "*" } }] }, admin);
}
for (const [groupId, roles] of [["team-a", ["readers", "group-readers"]], ["team-b", ["role-readers"]]]) {
  await rpc("api.v1.group.Service/Create", { initializers: [{ groupId }] }, admin);
  await rpc("api.v1.group.Service/AddMember", { groupId, memberIds: [{ userId: member.userId }] }, admin);
  for (const roleId of roles) await rpc("api.v1.role.Service/Assign", { roleId, entityId: { groupId } }, admin);
}

async function measure(name, { path, ...opts }) {
  // Progress on stderr: a whole run takes minutes and prints its table only at the end.
  process.stderr.write(`bench: ${name}\n`);
  const result = await autocannon({ url: `${base}${path}`, connections, duration: seconds, ...opts });
  const bad = result.non2xx + result.errors;
  if (bad > 0) throw new Error(`${name}: ${bad} failed requests (${JSON.stringify({ non2xx: result.non2xx, errors: result.errors, timeouts: result.timeouts, statusCodeStats: result.statusCodeStats })})`);
  return { name, value: Math.round(result.requests.average), unit: "req/s" };
}

const json = { "content-type": "application/json" };
const baseline = await measure("bare Hono route (GET /healthz)", { path: "/healthz" });
const runs = [
  baseline,
  // The floor for any RPC that reads D1: the same bare route plus one D1 round trip.
  await measure("bare Hono route + one D1 query (GET /readyz)", { path: "/readyz" }),
  await measure("unauthenticated RPC (authentication.GetAuthConfig)", {
    path: "/api.v1.authentication.Service/GetAuthConfig", method: "POST", headers: json, body: "{}",
  }),
  await measure("authenticated RPC (authentication.Get: JWT + session check + D1 read)", {
    path: "/api.v1.authentication.Service/Get", method: "POST",
    headers: { ...json, authorization: `Bearer ${token.accessToken}` }, body: "{}",
  }),
  // The same RPC for a caller with one direct role: the difference is what extra roles cost.
  await measure("authorized RPC (user.Get, admin: one direct role)", {
    path: "/api.v1.user.Service/Get", method: "POST",
    headers: { ...json, authorization: `Bearer ${admin}` }, body: JSON.stringify({ userId: member.userId }),
  }),
  await measure("authorized RPC (user.Get, permission held through 2 groups and 3 roles)", {
    path: "/api.v1.user.Service/Get", method: "POST",
    headers: { ...json, authorization: `Bearer ${member.token.accessToken}` }, body: JSON.stringify({ userId: member.userId }),
  }),
];
// Deploy latency first: after the stream benchmarks workerd is still closing thousands of sockets.
process.stderr.write("bench: deploy latency\n");
const deploy = await benchDeploy(mf, rpc, admin);
process.stderr.write("bench: streams\n");
runs.push(...(await benchStreams(mf, rpc, admin)), ...deploy.results);
process.stderr.write("bench: runner on Docker\n");
const runner = await benchRunner(base, rpc, admin);
runs.push(...runner.results);
await mf.dispose();

// Stream results carry their own baseline (a bare Durable Object); the rest compare to the bare route.
const results = runs.map((r) => r.baseline !== undefined ? r : { ...r, baseline: baseline.value, ratio: Number((r.value / baseline.value).toFixed(3)) });
for (const r of results) {
  const p90 = r.p90 !== undefined ? `  (p90 ${r.p90} ${r.unit})` : "";
  console.log(`${r.name.padEnd(75)} ${String(r.value).padStart(7)} ${r.unit}  ${r.ratio.toFixed(2)}x${p90}`);
}
const d = deploy.summary;
console.log(
  `deploy → first rollout event: median ${d.deploy.medianMs} ms (p90 ${d.deploy.p90Ms}) vs bare Durable Object ` +
    `${d.bare.medianMs} ms (p90 ${d.bare.p90Ms}) = ${d.ratio.toFixed(2)}x; target ≤ ${d.target}x: ${d.met ? "met" : "NOT met"} ` +
    `(the Deploy answer itself: median ${d.deploy.answerMedianMs} ms)`,
);
for (const line of runner.lines) console.log(line);
writeFileSync("bench/results.json", JSON.stringify(results, null, 2) + "\n");
console.log("written to bench/results.json");
