import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";
import type { Delivery } from "./test/helpers/smtp.ts";
import { startSmtpSink } from "./test/smtp-sink.ts";

export default defineConfig(async () => {
  const migrations = await readD1Migrations("./migrations");
  const smtp = await startSmtpSink();
  return {
    test: {
      projects: [
        {
          // Inside workerd: the Worker, its Durable Objects and local D1, called in-process.
          plugins: [
            cloudflareTest({
              wrangler: { configPath: "./wrangler.toml" },
              miniflare: {
                bindings: {
                  TEST_MIGRATIONS: migrations,
                  // Tests mint and check tokens without a wrangler secret, like local dev.
                  // Mailjet is reached at a test-only host answered by outboundService below.
                  MAILJET_API_URL: "http://mailjet.test",
                  // Cron job retries in milliseconds rather than seconds, so tests see them happen.
                  JOB_RETRY_BACKOFF_MS: "25",
                  // Sockets silent for 3 s are taken as gone, so tests see a vanished peer noticed;
                  // test clients ping every 500 ms (test/helpers/keep-alive.ts).
                  SOCKET_SILENCE_MS: "3000",
                },
                outboundService: (request: Request) => outbound(request, smtp.received),
              },
            }),
          ],
          test: {
            name: "workers",
            setupFiles: ["./test/setup.ts"],
            include: ["workers/**/*.test.ts", "durable-objects/**/*.test.ts", "test/**/*.test.ts"],
            exclude: ["test/e2e/**"],
            testTimeout: 30_000,
            provide: { smtpPort: smtp.port },
          },
        },
        {
          // In Node, against a Worker started as `npm run dev` starts it (test/e2e/global-setup.ts):
          // the clients (runner, CLI, dashboard in a browser) over real HTTP and WebSockets.
          test: {
            name: "e2e",
            environment: "node",
            include: ["test/e2e/**/*.test.ts", "runner/**/*.test.ts", "cli/**/*.test.ts", "dashboard/**/*.test.ts"],
            globalSetup: ["./test/e2e/global-setup.ts", "./runner/test/global-setup.ts"],
            testTimeout: 120_000,
            hookTimeout: 180_000,
          },
        },
      ],
    },
  };
});

/**
 * Every outbound fetch from workerd lands here. `smtp-inbox.test` lists what the SMTP sink
 * received; `mailjet.test` stands in for Mailjet's HTTP API, where a recipient whose address
 * starts with "bounce" gets a 500, so retries can be tested.
 */
async function outbound(request: Request, received: Delivery[]): Promise<Response> {
  const url = new URL(request.url);
  if (url.host === "smtp-inbox.test") return Response.json(received);
  if (url.hostname === "registry.test" || url.hostname.endsWith(".registry.test")) return registryStub(request);
  if (url.host === "jobs.test") return jobTarget(url);
  if (url.host !== "mailjet.test") return new Response("no network in tests", { status: 502 });
  const body = (await request.json()) as { Messages?: { To?: { Email: string }[] }[] };
  const to = body.Messages?.[0]?.To?.[0]?.Email ?? "";
  if (!request.headers.get("authorization")?.startsWith("Basic ")) return new Response("unauthorized", { status: 401 });
  if (to.startsWith("bounce")) return new Response(JSON.stringify({ ErrorMessage: "mailbox unavailable" }), { status: 500 });
  return Response.json({ Messages: [{ Status: "success", To: [{ Email: to }] }] });
}

/** Requests jobs.test has answered, by path (query included). */
const jobCalls = new Map<string, number>();

/**
 * The target of URL cron jobs in tests, `jobs.test`: `/ok/*` answers 200, `/fail-twice/*`
 * 500 for the first two calls of that path then 200, `/always-fail/*` 500, `/slow/*` 200
 * after 3 s. `/__calls?path=<path>` says how many calls a path got.
 */
async function jobTarget(url: URL): Promise<Response> {
  if (url.pathname === "/__calls") return Response.json({ calls: jobCalls.get(url.searchParams.get("path") ?? "") ?? 0 });
  const key = url.pathname + url.search;
  const n = (jobCalls.get(key) ?? 0) + 1;
  jobCalls.set(key, n);
  const [, kind] = url.pathname.split("/");
  if (kind === "ok") return new Response("ok");
  if (kind === "fail-twice") return new Response(n <= 2 ? "not yet" : "ok", { status: n <= 2 ? 500 : 200 });
  if (kind === "slow") {
    await new Promise((r) => setTimeout(r, 3000));
    return new Response("late");
  }
  return new Response("failing", { status: 500 });
}

/**
 * A stub OCI registry (distribution API v2) at `registry.test`:
 * - `team/app`: v1 (Docker manifest; config with `created` and OCI source/revision labels),
 *   v2 and latest (one OCI manifest whose config has no `created`); tags are listed two per page.
 * - `team/multi:latest`: an OCI index (an attestation, linux/arm64, linux/amd64).
 * - `team/plain:v1`: answers without a Docker-Content-Digest header.
 * - `private/app:v1`: needs the anonymous token flow: 401 with a Bearer challenge, token
 *   `anon:<repository>` from `auth.registry.test/token`.
 * Blobs redirect to `blobs.registry.test`, which refuses requests that carry a token (as S3
 * does). `down.registry.test` answers 503; unknown repositories and manifests are 404s.
 */
async function registryStub(request: Request): Promise<Response> {
  const url = new URL(request.url);
  const reg = await (registryData ??= buildRegistry());
  if (url.hostname === "down.registry.test") return new Response("service unavailable", { status: 503 });
  if (url.hostname === "auth.registry.test") {
    // Like Docker Hub's, it grants an anonymous token for any repository; the registry decides.
    const scope = /^repository:([^:]+):pull$/.exec(url.searchParams.get("scope") ?? "");
    const ok = url.pathname === "/token" && url.searchParams.get("service") === "registry.test" && scope;
    return ok ? Response.json({ token: `anon:${scope[1]}`, expires_in: 300 }) : Response.json({ details: "bad token request" }, { status: 400 });
  }
  if (url.hostname === "blobs.registry.test") {
    if (request.headers.has("authorization")) return new Response("only one auth mechanism allowed", { status: 400 });
    const blob = reg.blobs.get(url.pathname.slice(1));
    return blob ? new Response(blob, { headers: { "content-type": "application/octet-stream" } }) : new Response("no such blob", { status: 404 });
  }
  if (url.hostname !== "registry.test") return new Response("no such registry", { status: 502 });
  const unknown = (code: string) => Response.json({ errors: [{ code, message: "unknown" }] }, { status: 404 });
  const m = /^\/v2\/(.+)\/(manifests|blobs|tags)\/([^/]+)$/.exec(url.pathname);
  if (!m) return url.pathname === "/v2/" ? Response.json({}) : unknown("NAME_UNKNOWN");
  const [, repo, kind, ref] = m as unknown as [string, string, string, string];
  const tags = reg.tags.get(repo);
  // Like Docker Hub, a missing repository there looks like one the token may not read.
  if (repo.startsWith("private/") && (!tags || request.headers.get("authorization") !== `Bearer anon:${repo}`)) {
    return Response.json({ errors: [{ code: "UNAUTHORIZED" }] }, {
      status: 401,
      headers: { "www-authenticate": `Bearer realm="https://auth.registry.test/token",service="registry.test",scope="repository:${repo}:pull"` },
    });
  }
  if (!tags) return unknown("NAME_UNKNOWN");
  if (kind === "tags" && ref === "list") {
    const all = [...tags.keys()].sort();
    const last = url.searchParams.get("last");
    const page = all.filter((t) => !last || t > last).slice(0, 2);
    const more = page.length > 0 && all.at(-1) !== page.at(-1);
    const link = `</v2/${repo}/tags/list?n=2&last=${page.at(-1)}>; rel="next"`;
    return Response.json({ name: repo, tags: page }, { headers: more ? { link } : {} });
  }
  if (kind === "blobs") return reg.blobs.has(ref) ? new Response(null, { status: 307, headers: { location: `https://blobs.registry.test/${ref}` } }) : unknown("BLOB_UNKNOWN");
  const digest = tags.get(ref) ?? ref;
  const manifest = reg.manifests.get(digest);
  // By digest: the repository's tagged manifests and those their indexes list.
  const inRepo = [...tags.values()].some((d) => d === digest || reg.children.get(d)?.includes(digest));
  if (!manifest || !inRepo) return unknown("MANIFEST_UNKNOWN");
  const headers: Record<string, string> = { "content-type": manifest.type, "content-length": String(manifest.body.length) };
  if (repo !== "team/plain") headers["docker-content-digest"] = manifest.digest;
  return new Response(request.method === "HEAD" ? null : manifest.body, { headers });
}

let registryData: ReturnType<typeof buildRegistry> | undefined;

async function buildRegistry() {
  const sha = async (s: string) =>
    `sha256:${[...new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(s)))].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
  const blobs = new Map<string, string>();
  const manifests = new Map<string, { type: string; body: string; digest: string }>();
  /** Index digest → the manifests it lists. */
  const children = new Map<string, string[]>();
  const config = async (c: object) => {
    const body = JSON.stringify(c);
    const digest = await sha(body);
    blobs.set(digest, body);
    return { mediaType: "application/vnd.oci.image.config.v1+json", digest, size: body.length };
  };
  const manifest = async (type: string, m: object) => {
    const body = JSON.stringify({ schemaVersion: 2, mediaType: type, ...m });
    const digest = await sha(body);
    manifests.set(digest, { type, body, digest });
    return digest;
  };
  const docker = "application/vnd.docker.distribution.manifest.v2+json";
  const oci = "application/vnd.oci.image.manifest.v1+json";
  const v1 = await manifest(docker, {
    config: await config({
      created: "2024-03-01T12:00:00.123456789Z",
      architecture: "amd64",
      os: "linux",
      config: { Labels: { "org.opencontainers.image.source": "https://github.com/team/app", "org.opencontainers.image.revision": "0123abc" } },
    }),
    layers: [],
  });
  const v2 = await manifest(oci, { config: await config({ architecture: "amd64", os: "linux", config: {} }), layers: [] });
  const arch = async (architecture: string, created: string) => {
    const d = await manifest(oci, { config: await config({ created, architecture, os: "linux" }), layers: [] });
    return { mediaType: oci, digest: d, size: manifests.get(d)!.body.length, platform: { os: "linux", architecture } };
  };
  const attestation = await manifest(oci, { config: await config({}), layers: [] });
  const platforms = [
    { mediaType: oci, digest: attestation, size: 1, platform: { os: "unknown", architecture: "unknown" }, annotations: { "vnd.docker.reference.type": "attestation-manifest" } },
    await arch("arm64", "2023-01-01T00:00:00Z"),
    await arch("amd64", "2023-06-15T08:30:00Z"),
  ];
  const multi = await manifest("application/vnd.oci.image.index.v1+json", { manifests: platforms });
  children.set(multi, platforms.map((p) => p.digest));
  const plain = await manifest(oci, { config: await config({ created: "2022-02-02T02:02:02Z" }), layers: [] });
  const priv = await manifest(docker, { config: await config({ created: "2021-05-05T05:05:05Z" }), layers: [] });
  const tags = new Map<string, Map<string, string>>([
    ["team/app", new Map([["v1", v1], ["v2", v2], ["latest", v2]])],
    ["team/multi", new Map([["latest", multi]])],
    ["team/plain", new Map([["v1", plain]])],
    ["private/app", new Map([["v1", priv]])],
  ]);
  return { blobs, manifests, children, tags };
}
