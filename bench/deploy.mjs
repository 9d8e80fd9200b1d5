// Deploy latency for `npm run bench` (issue #5, benchmark b): from sending
// api.v1.capsule.Service/Deploy until a subscriber of the environment's event stream receives
// the rollout's `rollout.created` event, against a bare Durable Object that broadcasts a small
// JSON payload to its one WebSocket subscriber when POSTed to. Both are reached from here the
// same way (a POST through Miniflare's entry worker, a WebSocket opened through it), in the same
// workerd, one request at a time; the target is a median at most 2× the bare one.
import { performance } from "node:perf_hooks";

const ROUNDS = Number(process.env.BENCH_DEPLOY_ROUNDS ?? 50);
const WARMUP = Number(process.env.BENCH_DEPLOY_WARMUP ?? 10);
const TARGET = 2;
const BARE_HOST = "bare-deploy.bench";

const bare = `
import { DurableObject } from "cloudflare:workers";
export class BareDeploy extends DurableObject {
  async fetch(request) {
    if (request.method === "POST") {
      const { round } = await request.json();
      const payload = JSON.stringify({ seq: round, type: "rollout.created", time: new Date().toISOString(), data: { round } });
      for (const ws of this.ctx.getWebSockets()) ws.send(payload);
      return new Response("ok");
    }
    const { 0: client, 1: server } = new WebSocketPair();
    this.ctx.acceptWebSocket(server);
    return new Response(null, { status: 101, webSocket: client });
  }
  webSocketMessage() {}
}
export default { fetch: (request, env) => env.BARE_DEPLOY.getByName("deploy").fetch(request) };
`;

/** The baseline worker, routed by host so that it is reached exactly as edgeplane is. */
export function deployBenchWorkers(compatibilityDate) {
  return [
    {
      name: "bare-deploy",
      modules: true,
      script: bare,
      compatibilityDate,
      routes: [`${BARE_HOST}/*`],
      durableObjects: { BARE_DEPLOY: { className: "BareDeploy", useSQLite: true } },
    },
  ];
}

/** A WebSocket from `open()` whose messages resolve waiters keyed by `keyOf(event)`, with the time each arrived. */
async function listen(open, keyOf) {
  const arrived = new Map();
  const waiters = new Map();
  const ws = await open();
  ws.addEventListener("message", (m) => {
    const at = performance.now();
    for (const e of [JSON.parse(m.data)].flat()) {
      const key = keyOf(e);
      if (key === undefined) continue;
      arrived.set(key, at);
      waiters.get(key)?.(at);
    }
  });
  ws.accept();
  return {
    /** When the event for `key` arrived (now or later). */
    at: (key) => (arrived.has(key) ? Promise.resolve(arrived.get(key)) : new Promise((resolve) => waiters.set(key, resolve))),
    close: () => ws.close(),
  };
}

const quantile = (xs, q) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * q))];
const round2 = (x) => Math.round(x * 100) / 100;

export async function benchDeploy(mf, rpc, adminToken) {
  const post = async (url, body, headers = {}) => {
    const res = await mf.dispatchFetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
    const text = await res.text();
    if (!res.ok) throw new Error(`${url}: ${res.status} ${text}`);
    return text;
  };

  const projectId = "bench-deploy";
  const environmentId = "bench-deploy";
  await rpc("api.v1.project.Service/Create", { projectId }, adminToken);
  await rpc("api.v1.environment.Service/Create", { environmentId, initializers: [{ addProject: projectId }] }, adminToken);
  const { capsuleId } = await rpc("api.v1.capsule.Service/Create", { projectId, name: "app" }, adminToken);

  // A fresh environment: replaying from 0 sends only what came before any deploy, and every
  // rollout.created this socket gets is live.
  const ours = await listen(async () => {
    const { url } = await (await mf.dispatchFetch(`http://edgeplane/environments/${environmentId}/events/tickets`, {
      method: "POST",
      headers: { authorization: `Bearer ${adminToken}` },
    })).json();
    const res = await mf.dispatchFetch(`http://edgeplane${url}&after=0`, { headers: { upgrade: "websocket" } });
    if (!res.webSocket) throw new Error(`environment stream: ${res.status} ${await res.text()}`);
    return res.webSocket;
  }, (e) => (e.type === "rollout.created" && e.data?.capsuleId === capsuleId ? Number(e.data.rolloutId) : undefined));
  const theirs = await listen(async () => {
    const res = await mf.dispatchFetch(`http://${BARE_HOST}/`, { headers: { upgrade: "websocket" } });
    if (!res.webSocket) throw new Error(`bare Durable Object: ${res.status} ${await res.text()}`);
    return res.webSocket;
  }, (e) => e.data?.round);

  // Deploy, then wait for both its answer and its event (which may come first). The answer's
  // own latency is kept too: it shows how much of the deploy the event waits for.
  const answerTimes = [];
  const deploy = async (replicas) => {
    const t0 = performance.now();
    const answer = await post(
      "http://edgeplane/api.v1.capsule.Service/Deploy",
      { projectId, capsuleId, environmentId, changes: [{ replicas }], force: true },
      { authorization: `Bearer ${adminToken}` },
    );
    answerTimes.push(performance.now() - t0);
    return (await ours.at(Number(JSON.parse(answer).rolloutId))) - t0;
  };
  const broadcast = async (round) => {
    const t0 = performance.now();
    const [, at] = await Promise.all([post(`http://${BARE_HOST}/`, { round }), theirs.at(round)]);
    return at - t0;
  };

  const oursTimes = [];
  const bareTimes = [];
  for (let i = 1; i <= WARMUP + ROUNDS; i++) {
    const b = await broadcast(i);
    const o = await deploy((i % 5) + 1);
    if (i > WARMUP) {
      bareTimes.push(b);
      oursTimes.push(o);
    }
  }
  ours.close();
  theirs.close();

  const bare50 = quantile(bareTimes, 0.5);
  const bare90 = quantile(bareTimes, 0.9);
  const ours50 = quantile(oursTimes, 0.5);
  const ours90 = quantile(oursTimes, 0.9);
  const answer50 = quantile(answerTimes.slice(WARMUP), 0.5);
  const ratio = Number((ours50 / bare50).toFixed(3));
  const summary = {
    rounds: ROUNDS,
    warmup: WARMUP,
    bare: { medianMs: round2(bare50), p90Ms: round2(bare90) },
    deploy: { medianMs: round2(ours50), p90Ms: round2(ours90), answerMedianMs: round2(answer50) },
    ratio,
    target: TARGET,
    met: ratio <= TARGET,
  };
  const common = { unit: "ms", baseline: round2(bare50) };
  return {
    summary,
    results: [
      {
        key: "deploy.bare",
        name: `bare Durable Object: POST → message on its one WebSocket (median of ${ROUNDS})`,
        value: round2(bare50),
        p90: round2(bare90),
        ...common,
        ratio: 1,
      },
      {
        key: "deploy.firstEvent",
        name: `Deploy → rollout.created seen by a subscriber (median of ${ROUNDS})`,
        value: round2(ours50),
        p90: round2(ours90),
        ...common,
        ratio,
        deployAnswerMedian: round2(answer50),
        target: `<= ${TARGET}x the bare Durable Object`,
        met: ratio <= TARGET,
      },
    ],
  };
}
