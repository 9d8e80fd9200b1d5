import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { checkRegistry, checkRepository, formatReference, parseReference } from "./image-reference";

const digest = `sha256:${"ab".repeat(32)}`;

/** The invalid_argument message a bad reference is refused with. */
function refusal(input: string): string {
  try {
    parseReference(input);
  } catch (err) {
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    return (err as ConnectError).rawMessage;
  }
  throw new Error(`"${input}" was accepted`);
}

describe("parseReference", () => {
  it("puts a bare name on Docker Hub under library/ with the tag latest", () => {
    expect(parseReference("nginx")).toEqual({ registry: "index.docker.io", repository: "library/nginx", tag: "latest", digest: "" });
    expect(formatReference(parseReference("nginx"))).toBe("index.docker.io/library/nginx:latest");
  });

  it("keeps an explicit tag", () => {
    expect(formatReference(parseReference("nginx:1.25"))).toBe("index.docker.io/library/nginx:1.25");
  });

  it("folds Docker Hub's aliases and keeps two-segment Hub names as they are", () => {
    for (const s of ["docker.io/library/nginx:1.25", "index.docker.io/nginx:1.25", "DOCKER.IO/nginx:1.25"]) {
      expect(formatReference(parseReference(s)), s).toBe("index.docker.io/library/nginx:1.25");
    }
    expect(formatReference(parseReference("bitnami/redis"))).toBe("index.docker.io/bitnami/redis:latest");
  });

  it("parses registry, nested repository, tag and digest", () => {
    expect(parseReference(`ghcr.io/org/team/app:v1@${digest}`)).toEqual({ registry: "ghcr.io", repository: "org/team/app", tag: "v1", digest });
    expect(formatReference(parseReference(`ghcr.io/org/app:v1@${digest}`))).toBe(`ghcr.io/org/app:v1@${digest}`);
  });

  it("does not add latest when a digest pins the image", () => {
    expect(parseReference(`ghcr.io/org/app@${digest}`)).toMatchObject({ tag: "", digest });
    expect(formatReference(parseReference(`nginx@${digest}`))).toBe(`index.docker.io/library/nginx@${digest}`);
  });

  it("reads a registry port, and localhost, as a registry", () => {
    expect(parseReference("localhost:5000/app")).toEqual({ registry: "localhost:5000", repository: "app", tag: "latest", digest: "" });
    expect(parseReference("localhost/app:dev")).toMatchObject({ registry: "localhost", repository: "app", tag: "dev" });
    expect(parseReference("10.0.0.1:5000/a/b:c")).toMatchObject({ registry: "10.0.0.1:5000", repository: "a/b", tag: "c" });
    // Without a '/', the part after ':' is a tag, as in Docker.
    expect(parseReference("localhost:5000")).toMatchObject({ registry: "index.docker.io", repository: "library/localhost", tag: "5000" });
  });

  it("is idempotent on its own output", () => {
    for (const s of ["nginx", `ghcr.io/org/app:v1@${digest}`, "localhost:5000/app", `a.io/b@${digest}`]) {
      const once = formatReference(parseReference(s));
      expect(formatReference(parseReference(once))).toBe(once);
    }
  });

  it("refuses an uppercase repository, saying which name to use", () => {
    expect(refusal("ghcr.io/Org/App:v1")).toContain('use "org/app"');
    expect(refusal("MyApp")).toContain("lowercase");
    // Uppercase in the first segment makes it a registry (Docker's rule); the host is case-insensitive.
    expect(parseReference("Registry.Example.com/app").registry).toBe("registry.example.com");
  });

  it("refuses bad digests", () => {
    expect(refusal("nginx@sha256:abc")).toContain("not a digest");
    expect(refusal(`nginx@sha256:${"AB".repeat(32)}`)).toContain("not a digest");
    expect(refusal(`nginx@md5:${"ab".repeat(32)}`)).toContain("not a digest");
    expect(refusal("nginx@")).toContain("not a digest");
  });

  it("refuses empty and malformed references, naming the field", () => {
    expect(refusal("")).toMatch(/^image: is required/);
    expect(refusal("   ")).toMatch(/^image: is required/);
    expect(refusal("nginx:")).toContain("not a tag");
    expect(refusal("nginx:-bad")).toContain("not a tag");
    expect(refusal(`nginx:${"t".repeat(129)}`)).toContain("not a tag");
    expect(refusal("ghcr.io/")).toContain("empty");
    expect(refusal("ghcr.io//app")).toContain("not a repository");
    expect(refusal("ghcr.io/app-/x")).toContain("not a repository");
    expect(refusal("has space")).toContain("not a repository");
    expect(refusal("-bad.io:5000/app")).toContain("not a registry");
    expect(refusal(`ghcr.io/${"a".repeat(250)}`)).toContain("longer than 255");
    expect(() => parseReference("x y", "image_id")).toThrow(/^\[invalid_argument\] image_id: /);
  });
});

describe("registry and repository checks", () => {
  it("normalizes registry hosts and Docker Hub repositories", () => {
    expect(checkRegistry("registry", "GHCR.io")).toBe("ghcr.io");
    expect(checkRegistry("registry", "docker.io")).toBe("index.docker.io");
    expect(checkRepository("repository", "index.docker.io", "nginx")).toBe("library/nginx");
    expect(checkRepository("repository", "ghcr.io", "nginx")).toBe("nginx");
    expect(() => checkRegistry("registry", "not a host")).toThrow(/registry: /);
  });
});
