import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { Service as AuthService } from "../proto/gen/api/v1/authentication/service_pb";
import { services } from "../workers/services";
import { client, type Protocol, workerFetch } from "./helpers/client";
import { fileAdmin } from "./helpers/identity";

const url = (path: string) => `http://edgeplane.test${path}`;
const post = (path: string, body: BodyInit, headers: Record<string, string> = { "content-type": "application/json" }) =>
  workerFetch(url(path), { method: "POST", headers, body });

describe("protocols", () => {
  it.each<Protocol>(["connect-json", "connect-binary", "grpc-web"])("serves %s", async (protocol) => {
    const cfg = await client(AuthService, undefined, protocol).getAuthConfig({});
    expect(cfg.name).toBe("edgeplane");
    expect(cfg.loginTypes.length).toBeGreaterThan(0);
  });

  it("serves authenticated calls over gRPC-Web", async () => {
    const admin = await fileAdmin();
    expect((await client(AuthService, admin.accessToken, "grpc-web").get({})).userId).toBe(admin.userId);
  });

  it("answers a plain JSON POST as curl sends it", async () => {
    const res = await post("/api.v1.authentication.Service/GetAuthConfig", "{}");
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ name: "edgeplane", validatePassword: true });
  });

  it("does not require the Connect-Protocol-Version header", async () => {
    const res = await post("/api.v1.authentication.Service/GetAuthConfig", "{}", { "content-type": "application/json" });
    expect(res.status).toBe(200);
  });
});

describe("bad input", () => {
  async function connectError(res: Response) {
    const body = (await res.json()) as { code: string; message: string };
    return { status: res.status, ...body };
  }

  it("answers malformed JSON with invalid_argument", async () => {
    const res = await post("/api.v1.authentication.Service/Login", "{not json");
    expect(await connectError(res)).toMatchObject({ status: 400, code: "invalid_argument" });
  });

  it("answers JSON of the wrong shape with invalid_argument", async () => {
    const res = await post("/api.v1.authentication.Service/Login", JSON.stringify({ userPassword: { password: 12 } }));
    expect(await connectError(res)).toMatchObject({ code: "invalid_argument" });
  });

  it("answers malformed protobuf with invalid_argument", async () => {
    const res = await post("/api.v1.authentication.Service/Login", new Uint8Array([0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01]), {
      "content-type": "application/proto",
    });
    expect(res.status).toBe(400);
    expect(await connectError(res)).toMatchObject({ code: "invalid_argument" });
  });

  it("answers malformed protobuf over gRPC-Web with invalid_argument", async () => {
    const frame = new Uint8Array([0, 0, 0, 0, 6, 0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01]);
    const res = await post("/api.v1.authentication.Service/Login", frame, { "content-type": "application/grpc-web+proto" });
    const body = new TextDecoder().decode(await res.arrayBuffer());
    expect(body).toContain("grpc-status: 3");
    expect(body).not.toContain("grpc-status: 13");
  });

  it("answers an oversize body with resource_exhausted", async () => {
    const big = JSON.stringify({ refreshToken: "x".repeat(2 * 1024 * 1024) });
    const res = await post("/api.v1.authentication.Service/RefreshToken", big);
    expect(await connectError(res)).toMatchObject({ code: "resource_exhausted" });
  });

  it("answers an unsupported content type with 415, not a crash", async () => {
    const res = await post("/api.v1.authentication.Service/Login", "hello", { "content-type": "text/plain" });
    expect(res.status).toBe(415);
  });

  it("answers a malformed Authorization header with unauthenticated", async () => {
    const res = await post("/api.v1.authentication.Service/Get", "{}", { "content-type": "application/json", authorization: "Basic abc" });
    expect(await connectError(res)).toMatchObject({ code: "unauthenticated" });
  });

  it("answers an RPC needing a token without one with unauthenticated", async () => {
    const err = ConnectError.from(await client(AuthService).get({}).catch((e) => e));
    expect(err.code).toBe(Code.Unauthenticated);
  });
});

describe("the API surface", () => {
  const all = services.flatMap((s) => s.service.methods.map((m) => ({ service: s, method: m })));

  it("routes every RPC of every service; those not built yet say so by name", async () => {
    expect(all.length).toBeGreaterThan(100);
    const admin = await fileAdmin();
    // Implemented RPCs have their own tests (and Logout here would end the session).
    for (const { service, method } of all.filter(({ service, method }) => !service.impl[method.localName])) {
      const path = `/${service.service.typeName}/${method.name}`;
      const prefix = service.service.typeName === "proto.SkaffoldService" ? "/environments/any/skaffold" : "";
      const unary = method.methodKind === "unary";
      // Streaming calls carry enveloped messages: a flags byte, a 4-byte length, then the JSON.
      const body = unary ? "{}" : new Uint8Array([0, 0, 0, 0, 2, 0x7b, 0x7d]);
      const res = await post(`${prefix}${path}`, body, {
        "content-type": unary ? "application/json" : "application/connect+json",
        authorization: `Bearer ${admin.accessToken}`,
      });
      expect(res.status, path).not.toBe(404);
      const text = await res.text();
      expect(text, path).toContain("unimplemented");
      expect(text, path).toContain(`${service.service.typeName}.${method.name}`);
    }
  });

  it("declares an access rule for every routed RPC", () => {
    for (const { service, method } of all) {
      expect(service.rules[method.localName], `${service.service.typeName}/${method.name}`).toBeDefined();
    }
  });

  it("checks access before answering unimplemented", async () => {
    const res = await post("/api.v1.capsule.Service/Deploy", "{}");
    expect(await res.json()).toMatchObject({ code: "unauthenticated" });
  });

  it("serves the three specifications' services at their exact paths", () => {
    const names = services.map((s) => s.service.typeName);
    for (const n of [
      "api.v1.authentication.Service",
      "api.v1.user.Service",
      "api.v1.user.settings.Service",
      "api.v1.service_account.Service",
      "api.v1.group.Service",
      "api.v1.role.Service",
      "api.v1.project.Service",
      "api.v1.project.settings.Service",
      "api.v1.cluster.Service",
      "api.v1.environment.Service",
      "api.v1.image.Service",
      "api.v1.capsule.Service",
      "gitpod.v1.EnvironmentService",
      "gitpod.v1.EnvironmentAutomationService",
      "proto.SkaffoldService",
    ]) {
      expect(names).toContain(n);
    }
  });
});
