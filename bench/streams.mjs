// Stream benchmarks for `npm run bench`: an event published to many WebSocket subscribers of
// one environment, against a bare Durable Object that only broadcasts the same payload to as
// many sockets, both in the same workerd. A small driver worker triggers both through
// Durable Object RPC, so the comparison is the fan-out itself.
import { performance } from "node:perf_hooks";

const SUBSCRIBERS = Number(process.env.BENCH_SUBSCRIBERS ?? 1000);
const ROUNDS = Number(process.env.BENCH_STREAM_ROUNDS ?? 15);
const MANY = Number(process.env.BENCH_MANY_SUBSCRIBERS ?? 10_000);
/** Well inside the objects' 90 s silence deadline (workers/core/config.ts). */
const PING_EVERY_MS = 20_000;

const bare = `
import { DurableObject } from "cloudflare:workers";
export class Bare extends DurableObject {
  async fetch() {
    const { 0: client, 1: server } = new WebSocketPair();
    this.ctx.acceptWebSocket(server);
    return new Response(null, { status: 101, webSocket: client });
  }
  async broadcast(payload) {
    for (const ws of this.ctx.getWebSockets()) ws.send(payload);
  }
  webSocketMessage() {}
}
export default { fetch: (request, env) => env.BARE.getByName("bench").fetch(request) };
`;

const driver = `
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const round = Number(url.searchParams.get("round"));
    if (url.pathname === "/bare") {
      const payload = JSON.stringify({ seq: round, type: "bench", time: new Date().toISOString(), data: { round } });
      await env.BARE.getByName("bench").broadcast(payload);
    } else {
      await env.ENVIRONMENTS.getByName(url.searchParams.get("env")).publish("bench", { round });
    }
    return new Response("ok");
  },
};
`;

/** The baseline and driver workers, to run beside edgeplane in one Miniflare. */
export function streamBenchWorkers(compatibilityDate) {
  return [
    { name: "bare", modules: true, script: bare, compatibilityDate, durableObjects: { BARE: "Bare" } },
    {
      name: "driver",
      modules: true,
      script: driver,
      compatibilityDate,
      durableObjects: {
        ENVIRONMENTS: { className: "EnvironmentDO", scriptName: "edgeplane" },
        BARE: { className: "Bare", scriptName: "bare" },
      },
    },
  ];
}

/** Opens `n` sockets with `open()` and counts, per round number, the sockets that received it. */
async function subscribers(n, open) {
  const received = new Map();
  const waiters = new Map();
  const sockets = [];
  for (let i = 0; i < n; i++) {
    const ws = await open();
    ws.addEventListener("message", (m) => {
      if (m.data === "pong") return;
      const frames = [JSON.parse(m.data)].flat();
      for (const e of frames) {
        const round = e.data?.round;
        if (round === undefined) continue;
        const count = (received.get(round) ?? 0) + 1;
        received.set(round, count);
        if (count === n) waiters.get(round)?.();
      }
    });
    ws.accept();
    sockets.push(ws);
  }
  // Subscribers ping as every client must: opening thousands takes longer than the silence
  // deadline after which an object closes a socket it has not heard from (lib/socket-liveness.ts).
  const pinger = setInterval(() => {
    for (const ws of sockets) ws.send("ping");
  }, PING_EVERY_MS);
  return {
    received,
    all: (round) => (received.get(round) === n ? Promise.resolve() : new Promise((resolve) => waiters.set(round, resolve))),
    close: () => {
      clearInterval(pinger);
      for (const ws of sockets) ws.close();
    },
  };
}

async function time(trigger, waitAll) {
  const t0 = performance.now();
  await Promise.all([trigger(), waitAll()]);
  return performance.now() - t0;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function benchStreams(mf, rpc, adminToken) {
  const driverWorker = await mf.getWorker("driver");
  const bareWorker = await mf.getWorker("bare");
  const trigger = (path) => () => driverWorker.fetch(`http://driver${path}`).then((r) => r.text());

  const subscribeTo = (environmentId) => async () => {
    const { url } = await (await mf.dispatchFetch(`http://edgeplane/environments/${environmentId}/events/tickets`, {
      method: "POST",
      headers: { authorization: `Bearer ${adminToken}` },
    })).json();
    const res = await mf.dispatchFetch(`http://edgeplane${url}`, { headers: { upgrade: "websocket" } });
    return res.webSocket;
  };
  const openBare = async () => (await bareWorker.fetch("http://bare/", { headers: { upgrade: "websocket" } })).webSocket;

  await rpc("api.v1.environment.Service/Create", { environmentId: "fanout" }, adminToken);
  const ours = await subscribers(SUBSCRIBERS, subscribeTo("fanout"));
  const theirs = await subscribers(SUBSCRIBERS, openBare);
  const oursTimes = [];
  const bareTimes = [];
  for (let round = 1; round <= ROUNDS; round++) {
    bareTimes.push(await time(trigger(`/bare?round=${round}`), () => theirs.all(round)));
    oursTimes.push(await time(trigger(`/edgeplane?env=fanout&round=${round}`), () => ours.all(round)));
  }
  ours.close();
  theirs.close();
  const bareMs = median(bareTimes);
  const oursMs = median(oursTimes);
  const results = [
    { name: `bare Durable Object: one message to ${SUBSCRIBERS} WebSockets (median of ${ROUNDS})`, value: round2(bareMs), unit: "ms", baseline: round2(bareMs), ratio: 1 },
    {
      name: `environment stream: one event to ${SUBSCRIBERS} subscribers (median of ${ROUNDS})`,
      value: round2(oursMs),
      unit: "ms",
      baseline: round2(bareMs),
      ratio: Number((oursMs / bareMs).toFixed(3)),
    },
  ];

  if (MANY > 0) {
    await rpc("api.v1.environment.Service/Create", { environmentId: "crowd" }, adminToken);
    const crowd = await subscribers(MANY, subscribeTo("crowd"));
    const events = 5;
    const t0 = performance.now();
    for (let round = 1; round <= events; round++) await time(trigger(`/edgeplane?env=crowd&round=${round}`), () => crowd.all(round));
    const elapsed = performance.now() - t0;
    const complete = [...Array(events).keys()].every((i) => crowd.received.get(i + 1) === MANY);
    crowd.close();
    if (!complete) throw new Error(`not every one of ${MANY} subscribers received all ${events} events`);
    results.push({
      name: `environment stream: ${events} events each received by all ${MANY} subscribers (per event)`,
      value: round2(elapsed / events),
      unit: "ms",
      baseline: round2(bareMs),
      ratio: Number((elapsed / events / bareMs).toFixed(3)),
    });
  }
  return results;
}

const round2 = (x) => Math.round(x * 100) / 100;
