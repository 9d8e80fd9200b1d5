import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";

describe("HTTP surface", () => {
  it("answers liveness", async () => {
    const res = await exports.default.fetch("http://edgeplane.test/healthz");
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("ok");
  });

  it("answers readiness once D1 is reachable", async () => {
    const res = await exports.default.fetch("http://edgeplane.test/readyz");
    expect(res.status).toBe(200);
  });

  it("answers CORS preflights for Connect calls from browsers", async () => {
    const res = await exports.default.fetch("http://edgeplane.test/api.v1.authentication.Service/Login", {
      method: "OPTIONS",
      headers: {
        origin: "https://app.example.com",
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type,connect-protocol-version,authorization",
      },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe("*");
    const allowed = res.headers.get("access-control-allow-headers")!.toLowerCase();
    for (const h of ["content-type", "connect-protocol-version", "authorization"]) expect(allowed).toContain(h);
  });

  it("serves the dashboard to a browser opening one of its pages, and API misses as JSON", async () => {
    const html = { accept: "text/html,application/xhtml+xml" };
    for (const path of ["/", "/p/shop/c/web"]) {
      const page = await exports.default.fetch(`http://edgeplane.test${path}`, { headers: html });
      expect(page.status, path).toBe(200);
      expect(await page.text()).toContain('<div id="app">');
    }
    const miss = await exports.default.fetch("http://edgeplane.test/no/such/route");
    expect(miss.status).toBe(404);
    expect(await miss.json()).toMatchObject({ code: "not_found" });
    // The Worker's own routes win over the dashboard, also for a browser.
    const ready = await exports.default.fetch("http://edgeplane.test/readyz", { headers: html });
    expect(await ready.text()).toBe("ok");
    const ticket = await exports.default.fetch("http://edgeplane.test/environments/prod/events", { headers: html });
    expect(ticket.headers.get("content-type")).toContain("application/json");
  });
});
