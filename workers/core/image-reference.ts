/**
 * Container image references, parsed and normalized by Docker's rules (distribution's
 * reference grammar), so that `nginx`, `docker.io/library/nginx:latest` and
 * `index.docker.io/library/nginx:latest` name the same image and get the same image id.
 */
import { invalidArgument, quote } from "./errors";

/** Docker Hub, as normalized references name it (go-containerregistry's default registry). */
export const DOCKER_HUB = "index.docker.io";
/** Names that mean Docker Hub in a reference. */
const HUB_ALIASES = new Set(["docker.io", "index.docker.io"]);

/** A parsed image reference; `tag` or `digest` may be empty, never both. */
export interface ImageRef {
  /** host[:port], lowercase. */
  registry: string;
  /** Path in the registry, e.g. `library/nginx`. */
  repository: string;
  tag: string;
  /** `sha256:<64 hex>`. */
  digest: string;
}

const DOMAIN_COMPONENT = "[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?";
const DOMAIN = new RegExp(`^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[0-9a-fA-F:.]+\\])(?::[0-9]{1,5})?$`);
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^\w[\w.-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;
/** Docker's limit on registry + repository. */
const NAME_MAX = 255;

const EXAMPLES = "e.g. nginx:1.25 or ghcr.io/org/app:v1";

/** Whether `s` is a digest edgeplane accepts: `sha256:` and 64 lowercase hex digits. */
export const isDigest = (s: string) => DIGEST.test(s);

/** Checks a digest: `sha256:` and 64 lowercase hex digits. */
export function checkDigest(field: string, digest: string): string {
  if (!isDigest(digest)) throw invalidArgument(field, `${quote(digest)} is not a digest: use sha256: followed by 64 lowercase hex digits`);
  return digest;
}

/** The normalized host of a registry: lowercase, Docker Hub's aliases folded into one. */
export function checkRegistry(field: string, registry: string): string {
  if (!DOMAIN.test(registry)) throw invalidArgument(field, `${quote(registry)} is not a registry host: use host[:port], e.g. ghcr.io`);
  const host = registry.toLowerCase();
  return HUB_ALIASES.has(host) ? DOCKER_HUB : host;
}

/** Checks a repository path in `registry` (already normalized); a one-segment Docker Hub path gets `library/`. */
export function checkRepository(field: string, registry: string, repository: string): string {
  if (!repository) throw invalidArgument(field, `the repository name is empty (${EXAMPLES})`);
  if (repository !== repository.toLowerCase()) {
    throw invalidArgument(field, `repository ${quote(repository)} must be lowercase: use ${quote(repository.toLowerCase())}`);
  }
  const parts = repository.split("/");
  const bad = parts.find((p) => !PATH_COMPONENT.test(p));
  if (bad !== undefined) {
    throw invalidArgument(
      field,
      `"${repository}" is not a repository: each '/'-separated part must be lowercase letters and digits, joined by '.', '_', '__' or '-'`,
    );
  }
  const path = registry === DOCKER_HUB && parts.length === 1 ? `library/${repository}` : repository;
  if (registry.length + 1 + path.length > NAME_MAX) throw invalidArgument(field, `the image name is longer than ${NAME_MAX} characters`);
  return path;
}

/**
 * Parses `[registry/]repository[:tag][@digest]`. Docker's rules: the first path segment is a
 * registry only if it has a '.' or ':', is `localhost`, or has uppercase letters; otherwise the
 * registry is Docker Hub. Without tag and digest the tag is `latest`.
 */
export function parseReference(input: string, field = "image"): ImageRef {
  const s = input.trim();
  if (!s) throw invalidArgument(field, `is required (${EXAMPLES})`);

  const at = s.indexOf("@");
  const digest = at < 0 ? "" : checkDigest(field, s.slice(at + 1));
  let name = at < 0 ? s : s.slice(0, at);

  // A ':' after the last '/' starts the tag; one before it belongs to a registry port.
  let tag = "";
  const colon = name.lastIndexOf(":");
  if (colon > name.lastIndexOf("/")) {
    tag = name.slice(colon + 1);
    name = name.slice(0, colon);
    if (!TAG.test(tag)) throw invalidArgument(field, `${quote(tag)} is not a tag: use up to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'`);
  }

  const slash = name.indexOf("/");
  const first = slash < 0 ? "" : name.slice(0, slash);
  const hasRegistry = slash >= 0 && (/[.:]/.test(first) || first === "localhost" || first !== first.toLowerCase());
  const registry = hasRegistry ? checkRegistry(field, first) : DOCKER_HUB;
  const repository = checkRepository(field, registry, hasRegistry ? name.slice(slash + 1) : name);
  return { registry, repository, tag: tag || (digest ? "" : "latest"), digest };
}

/** `registry/repository[:tag][@digest]`: the normalized form, which is also an image's id. */
export const formatReference = (r: ImageRef): string =>
  `${r.registry}/${r.repository}${r.tag ? `:${r.tag}` : ""}${r.digest ? `@${r.digest}` : ""}`;
