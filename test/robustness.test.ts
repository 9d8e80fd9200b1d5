import { ScalarType } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { Service as CapsuleService } from "../proto/gen/api/v1/capsule/service_pb";
import { services } from "../workers/services";
import { client, workerFetch } from "./helpers/client";
import { fileAdmin, login } from "./helpers/identity";

/** A small deterministic generator, so a failure names the input that caused it. */
function* inputs(seed: number, count: number): Generator<{ type: string; body: Uint8Array; label: string }> {
  let x = seed;
  const next = () => ((x = (x * 1103515245 + 12345) % 2 ** 31), x);
  const text = new TextEncoder();
  const jsonish = ['{"', "}", "[", "]", ":", ",", '"a"', "1e999", "-0", "null", "true", '"\\u0000"', "{}", '"userPassword"', '"identifier"', '"email"', '"x@y.z"', '"method"', '{"case":1}', '"pagination"', '{"limit":-1}'];
  for (let i = 0; i < count; i++) {
    const binary = next() % 2 === 0;
    if (binary) {
      const bytes = new Uint8Array(next() % 40);
      for (let j = 0; j < bytes.length; j++) bytes[j] = next() % 256;
      yield { type: "application/proto", body: bytes, label: `binary #${i}` };
    } else {
      let s = "";
      for (let j = next() % 12; j > 0; j--) s += jsonish[next() % jsonish.length];
      yield { type: "application/json", body: text.encode(s), label: `json #${i}: ${s}` };
    }
  }
}

describe("robustness", () => {
  it("never answers an implemented RPC with a 500, whatever the body", async () => {
    const admin = await fileAdmin();
    const implemented = services.flatMap((s) =>
      s.service.methods.filter((m) => s.impl[m.localName] && m.methodKind === "unary").map((m) => `/${s.service.typeName}/${m.name}`),
    );
    let calls = 0;
    for (const path of implemented) {
      for (const input of inputs(path.length * 7919, 12)) {
        for (const token of [undefined, admin.accessToken]) {
          const res = await workerFetch(`http://edgeplane.test${path}`, {
            method: "POST",
            headers: { "content-type": input.type, ...(token ? { authorization: `Bearer ${token}` } : {}) },
            body: input.body,
          });
          calls++;
          const text = await res.text();
          expect(res.status, `${path} ${input.label}: ${text}`).toBeLessThan(500);
        }
      }
    }
    expect(calls).toBeGreaterThan(500);
  });

  it("quotes a bounded prefix of an offending value: a huge id never comes back whole", async () => {
    const admin = await fileAdmin();
    const huge = "x".repeat(100_000);
    const unary = services.flatMap((s) => s.service.methods.filter((m) => s.impl[m.localName] && m.methodKind === "unary").map((m) => ({ s, m })));
    /** RPCs that answered with an error of more than 2 KB, or with a 5xx. */
    const long: string[] = [];
    for (const { s, m } of unary) {
      // Every string field of the request at once, each far longer than any id or name may be.
      const strings = m.input.fields.filter((f) => f.fieldKind === "scalar" && f.scalar === ScalarType.STRING);
      if (strings.length === 0) continue;
      const body = JSON.stringify(Object.fromEntries(strings.map((f) => [f.jsonName, huge])));
      const res = await workerFetch(`http://edgeplane.test/${s.service.typeName}/${m.name}`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${admin.accessToken}` },
        body,
      });
      const text = await res.text();
      if (res.status >= 500) long.push(`${s.service.typeName}/${m.name} answered ${res.status}: ${text.slice(0, 120)}`);
      else if (!res.ok && text.length > 2_000) long.push(`${s.service.typeName}/${m.name} (${text.length} bytes): ${text.slice(0, 120)}`);
    }
    // Messages of the Connect stack itself: an unknown field and a bad enum value, named at length.
    for (const body of [`{"${huge}": 1}`, `{"pagination": {"${huge}": 1}}`, `{"kind": "${huge}"}`]) {
      const res = await workerFetch("http://edgeplane.test/api.v1.user.Service/List", {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${admin.accessToken}` },
        body,
      });
      const text = await res.text();
      if (res.status >= 500 || text.length > 2_000) long.push(`user.Service/List ${body.slice(0, 20)}: ${res.status} (${text.length} bytes): ${text.slice(0, 120)}`);
    }
    expect(long).toEqual([]);
  });

  it("serves server streaming over Connect: a stream that fails ends with the handler's code", async () => {
    // A session of its own: the fuzz above may well have logged the admin's first one out.
    const session = await login((await fileAdmin()).email);
    const stream = client(CapsuleService, session.token!.accessToken).logs({ projectId: "p", capsuleId: "c", environmentId: "e" });
    const err = await (async () => {
      try {
        for await (const _ of stream) {
          /* no messages expected */
        }
      } catch (e) {
        return ConnectError.from(e);
      }
    })();
    expect(err?.code).toBe(Code.NotFound);
    expect(err?.rawMessage).toMatch(/capsule c in project p not found|environment e not found/);
  });
});
