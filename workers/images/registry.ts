/**
 * A client of container registries (the OCI distribution API, Docker registry HTTP API v2):
 * resolves a reference to its digest, reads an image's config, lists a repository's tags.
 * Access is anonymous: a registry that answers 401 with a Bearer challenge gets the
 * anonymous token flow; private repositories look like missing ones.
 */
import { toHex } from "../core/encoding";
import { defaults } from "../core/config";
import { bounded, failedPrecondition, notFound, unavailable } from "../core/errors";
import { DOCKER_HUB, formatReference, type ImageRef, isDigest } from "../core/image-reference";

const { timeoutMs: TIMEOUT_MS, maxBodyBytes: MAX_BODY_BYTES, maxTagPages: MAX_TAG_PAGES } = defaults.registry;

const INDEX_TYPES = ["application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"];
const MANIFEST_TYPES = ["application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json"];
const ACCEPT = [...INDEX_TYPES, ...MANIFEST_TYPES].join(", ");

/** What an image's manifest and config say about it. */
export interface ImageInfo {
  /** Digest of what the reference points to (for a multi-platform image, its index). */
  digest: string;
  /** The config's `created`, unless missing or pinned to the epoch by a reproducible build. */
  createdAt?: Date;
  /** The config's labels (`org.opencontainers.image.*` and others). */
  labels: Record<string, string>;
}

interface Manifest {
  mediaType?: string;
  manifests?: { digest: string; platform?: { os?: string; architecture?: string }; annotations?: Record<string, string> }[];
  config?: { digest?: string };
}

/** One registry, for the duration of one request: it remembers the tokens it was given. */
export class Registry {
  private readonly origin: string;
  private readonly tokens = new Map<string, string>();

  constructor(readonly host: string) {
    // Docker Hub's API lives at registry-1; Docker speaks plain HTTP to loopback registries.
    const api = host === DOCKER_HUB ? "registry-1.docker.io" : host;
    this.origin = `${/^(localhost|127\.\d+\.\d+\.\d+)(:\d+)?$/.test(host) ? "http" : "https"}://${api}`;
  }

  /** The digest `ref` points to now: a HEAD of its manifest, or a GET when no digest header comes back. */
  async resolve(ref: ImageRef): Promise<string> {
    const what = `image ${formatReference(ref)}`;
    const path = `/v2/${ref.repository}/manifests/${ref.digest || ref.tag}`;
    const head = await this.call(path, { method: "HEAD", headers: { accept: ACCEPT } }, ref.repository, what);
    const digest = head.headers.get("docker-content-digest") ?? "";
    if (isDigest(digest)) return digest;
    return (await this.manifest(path, ref.repository, what)).digest;
  }

  /** The digest of `ref` and, from its config, when it was created and its labels. */
  async inspect(ref: ImageRef): Promise<ImageInfo> {
    const what = `image ${formatReference(ref)}`;
    const top = await this.manifest(`/v2/${ref.repository}/manifests/${ref.digest || ref.tag}`, ref.repository, what);
    let manifest = top.body;
    if (manifest.manifests) {
      // A multi-platform image: describe the linux/amd64 one, else the first that is an image.
      const images = manifest.manifests.filter((m) => m.annotations?.["vnd.docker.reference.type"] !== "attestation-manifest");
      const pick = images.find((m) => m.platform?.os === "linux" && m.platform.architecture === "amd64") ?? images[0];
      if (!pick) return { digest: top.digest, labels: {} };
      manifest = (await this.manifest(`/v2/${ref.repository}/manifests/${pick.digest}`, ref.repository, what)).body;
    }
    const configDigest = manifest.config?.digest;
    if (!configDigest) return { digest: top.digest, labels: {} };
    const config = (await this.json(await this.blob(ref.repository, configDigest, what), what)) as {
      created?: string;
      config?: { Labels?: Record<string, string> | null };
    };
    return { digest: top.digest, createdAt: createdAt(config.created), labels: config.config?.Labels ?? {} };
  }

  /** Every tag of `repository`, following the registry's `Link` pagination. */
  async tags(repository: string): Promise<string[]> {
    const what = `repository ${this.host}/${repository}`;
    const tags: string[] = [];
    let path: string | undefined = `/v2/${repository}/tags/list`;
    for (let page = 0; path && page < MAX_TAG_PAGES; page++) {
      const res = await this.call(path, { headers: { accept: "application/json" } }, repository, what);
      tags.push(...(((await this.json(res, what)) as { tags?: string[] | null }).tags ?? []));
      path = this.nextPage(res.headers.get("link"), path);
    }
    return tags;
  }

  /** The next page a `Link: <...>; rel="next"` header names, if it stays on this registry. */
  private nextPage(link: string | null, current: string): string | undefined {
    const target = link && /<([^>]+)>\s*;\s*rel="?next"?/.exec(link)?.[1];
    if (!target) return undefined;
    const url = new URL(target, this.origin + current);
    return url.origin === this.origin ? url.pathname + url.search : undefined;
  }

  private async manifest(path: string, repository: string, what: string): Promise<{ digest: string; body: Manifest }> {
    const res = await this.call(path, { headers: { accept: ACCEPT } }, repository, what);
    const header = res.headers.get("docker-content-digest") ?? "";
    const bytes = await this.read(res, what);
    const digest = isDigest(header) ? header : `sha256:${toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)))}`;
    return { digest, body: parse(bytes, this.host, what) as Manifest };
  }

  /**
   * A blob. Registries often redirect blobs to object storage with a signed URL, which refuses
   * requests that also carry the registry's token: follow the redirect without it.
   */
  private async blob(repository: string, digest: string, what: string): Promise<Response> {
    const path = `/v2/${repository}/blobs/${digest}`;
    const res = await this.call(path, { redirect: "manual" }, repository, what);
    const location = res.status >= 300 && res.status < 400 ? res.headers.get("location") : null;
    if (!location) return res;
    return this.check(await this.fetch(new URL(location, this.origin + path).href, {}), what);
  }

  /** Sends a request, answering one anonymous Bearer challenge; fails unless the answer is 2xx (or a redirect). */
  private async call(path: string, init: RequestInit & { headers?: Record<string, string> }, repository: string, what: string): Promise<Response> {
    const url = this.origin + path;
    const scope = `repository:${repository}:pull`;
    const withToken = (token?: string) => ({ ...init, headers: { ...init.headers, ...(token ? { authorization: `Bearer ${token}` } : {}) } });
    let res = await this.fetch(url, withToken(this.tokens.get(scope)));
    if (res.status === 401) {
      const challenge = bearerChallenge(res.headers.get("www-authenticate"));
      if (challenge) {
        void res.body?.cancel();
        this.tokens.set(scope, await this.token(challenge, scope, what));
        res = await this.fetch(url, withToken(this.tokens.get(scope)));
      }
    }
    return this.check(res, what);
  }

  /** An anonymous token from the challenge's realm, for the challenge's scope (or ours). */
  private async token(c: Record<string, string>, scope: string, what: string): Promise<string> {
    let url: URL;
    try {
      url = new URL(c.realm!);
    } catch {
      throw failedPrecondition(`registry ${this.host} named a token service that is not a URL: ${c.realm}`);
    }
    if (c.service) url.searchParams.set("service", c.service);
    url.searchParams.set("scope", c.scope || scope);
    const res = await this.check(await this.fetch(url.href, { headers: { accept: "application/json" } }), what);
    const body = (await this.json(res, what)) as { token?: string; access_token?: string };
    const token = body.token || body.access_token;
    if (!token) throw failedPrecondition(`the token service of registry ${this.host} answered without a token`);
    return token;
  }

  private async fetch(url: string, init: RequestInit): Promise<Response> {
    try {
      return await fetch(url, { ...init, signal: AbortSignal.timeout(TIMEOUT_MS) });
    } catch (err) {
      const why = err instanceof Error && err.name === "TimeoutError" ? `did not answer within ${TIMEOUT_MS / 1000}s` : `is unreachable (${String(err)})`;
      throw unavailable(`registry ${this.host} ${why}; retry later`);
    }
  }

  /** Maps a registry's failure to the caller's error. */
  private check(res: Response, what: string): Response {
    if (res.ok || (res.status >= 300 && res.status < 400)) return res;
    void res.body?.cancel();
    if (res.status === 404) throw notFound(what);
    // Docker Hub answers 401 for repositories that do not exist, even with a token.
    if (res.status === 401 || res.status === 403) {
      throw notFound(`${bounded(what)} (registry ${bounded(this.host)} refused anonymous access: it does not exist or is private)`);
    }
    if (res.status === 429) throw unavailable(`registry ${this.host} is rate limiting requests; retry later`);
    throw unavailable(`registry ${this.host} answered HTTP ${res.status} for ${what}; retry later`);
  }

  /** The body, refused past MAX_BODY_BYTES without reading the rest. */
  private async read(res: Response, what: string): Promise<Uint8Array> {
    const tooLarge = () => failedPrecondition(`registry ${this.host} sent more than ${MAX_BODY_BYTES} bytes for ${what}`);
    if (Number(res.headers.get("content-length") ?? 0) > MAX_BODY_BYTES) {
      void res.body?.cancel();
      throw tooLarge();
    }
    const chunks: Uint8Array[] = [];
    let size = 0;
    const reader = res.body?.getReader();
    const next = () =>
      reader!.read().catch((err: unknown) => {
        throw unavailable(`registry ${this.host} broke off its answer for ${what} (${String(err)}); retry later`);
      });
    for (let r = reader && (await next()); r && !r.done; r = await next()) {
      size += r.value.byteLength;
      if (size > MAX_BODY_BYTES) {
        void reader!.cancel();
        throw tooLarge();
      }
      chunks.push(r.value);
    }
    const out = new Uint8Array(size);
    let at = 0;
    for (const c of chunks) {
      out.set(c, at);
      at += c.byteLength;
    }
    return out;
  }

  private async json(res: Response, what: string): Promise<unknown> {
    return parse(await this.read(res, what), this.host, what);
  }
}

function parse(bytes: Uint8Array, host: string, what: string): unknown {
  try {
    const v: unknown = JSON.parse(new TextDecoder().decode(bytes));
    if (v && typeof v === "object") return v;
  } catch {
    // Reported below.
  }
  throw failedPrecondition(`registry ${host} sent something that is not JSON for ${what}`);
}

/** The parameters of a `Bearer realm=...,service=...,scope=...` challenge, if it is one with a realm. */
export function bearerChallenge(header: string | null): Record<string, string> | undefined {
  const m = header && /^\s*Bearer\s+(.*)$/i.exec(header);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  for (const p of m[1]!.matchAll(/(\w+)=(?:"([^"]*)"|([^,\s]*))/g)) params[p[1]!.toLowerCase()] = p[2] ?? p[3] ?? "";
  return params.realm ? params : undefined;
}

/** An RFC 3339 `created`; reproducible builds pin it to the epoch or year 1, which says nothing. */
function createdAt(created: string | undefined): Date | undefined {
  if (!created) return undefined;
  // Go writes nanoseconds; Date reads at most milliseconds.
  const ms = Date.parse(created.replace(/(\.\d{3})\d+/, "$1"));
  return Number.isFinite(ms) && ms > 0 ? new Date(ms) : undefined;
}
