import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { defaults } from "./core/config";
import { sweepExpired } from "./housekeeping";

describe("housekeeping", () => {
  it("drops expired login-failure windows and verification codes, and keeps live ones", async () => {
    const now = Date.now();
    await env.DB.batch([
      env.DB.prepare("INSERT INTO login_failures (identifier, failures, window_started_at) VALUES ('email:old@x.io', 3, ?), ('email:new@x.io', 3, ?)").bind(
        now - defaults.loginFailureWindowMs - 1,
        now,
      ),
      env.DB.prepare(
        "INSERT INTO verification_codes (id, user_id, type, code_hash, sent_at, expires_at) VALUES ('a', 'u1', 1, 'h', ?, ?), ('b', 'u2', 1, 'h', ?, ?)",
      ).bind(now - 20 * 60_000, now - 1, now, now + 60_000),
    ]);
    await sweepExpired(env, now);
    const failures = await env.DB.prepare("SELECT identifier FROM login_failures").all();
    expect(failures.results).toEqual([{ identifier: "email:new@x.io" }]);
    const codes = await env.DB.prepare("SELECT id FROM verification_codes").all();
    expect(codes.results).toEqual([{ id: "b" }]);
  });
});
