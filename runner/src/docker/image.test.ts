import { describe, expect, it } from "vitest";
import { authFor, registryOf } from "./image";

describe("registry credentials for a pull", () => {
  it("finds the registry of an image reference as Docker does", () => {
    expect(registryOf("index.docker.io/library/nginx:1.25")).toBe("index.docker.io");
    expect(registryOf("nginx")).toBe("docker.io");
    expect(registryOf("team/app:v1")).toBe("docker.io");
    expect(registryOf("Registry.Example.com:5000/app")).toBe("registry.example.com:5000");
    expect(registryOf("localhost/app")).toBe("localhost");
  });

  it("uses the credentials of the image's registry only, from username/password or Docker's auth string", () => {
    const registries = [
      { host: "ghcr.io", auth: Buffer.from("robot:tok:en").toString("base64") },
      { host: "docker.io", username: "hub", password: "pw" },
    ];
    expect(authFor("ghcr.io/org/app:v1", registries)).toEqual({ username: "robot", password: "tok:en", serveraddress: "ghcr.io" });
    expect(authFor("index.docker.io/library/nginx:1.25", registries)).toEqual({ username: "hub", password: "pw", serveraddress: "docker.io" });
    expect(authFor("quay.io/x/y", registries)).toBeUndefined();
  });
});
