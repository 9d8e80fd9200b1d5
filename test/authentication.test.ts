import { Code, ConnectError } from "@connectrpc/connect";
import { env } from "cloudflare:test";
import { SignJWT } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { Service as AuthService } from "../proto/gen/api/v1/authentication/service_pb";
import { Service as UserService } from "../proto/gen/api/v1/user/service_pb";
import { Service as SettingsService } from "../proto/gen/api/v1/user/settings/service_pb";
import { codeOf } from "./helpers/errors";
import { client } from "./helpers/client";
import { freshEmail, latestCode, login, register, registerAdmin, strongPassword } from "./helpers/identity";


let admin: Awaited<ReturnType<typeof registerAdmin>>;
const settings = () => client(SettingsService, admin.accessToken);

beforeAll(async () => {
  admin = await registerAdmin();
  // Cheaper hashes keep the suite fast; bcrypt at the default cost is covered in passwords.test.ts.
  await settings().updateSettings({
    settings: [
      { field: { case: "allowRegister", value: true } },
      { field: { case: "passwordHashing", value: { method: { case: "bcrypt", value: { cost: 4 } } } } },
    ],
  });
});

describe("registration", () => {
  it("makes the first user of an installation its administrator", async () => {
    const me = await client(AuthService, admin.accessToken).get({});
    expect(me.userId).toBe(admin.userId);
    const row = await env.DB.prepare("SELECT role_id FROM role_assignments WHERE subject_id = ?").bind(admin.userId).first();
    expect(row).toEqual({ role_id: "admin" });
  });

  it("does not make later users administrators", async () => {
    const res = await register(freshEmail());
    expect(await codeOf(client(UserService, res.token!.accessToken).list({}))).toBe(Code.PermissionDenied);
  });

  it("follows allow_register after the first user", async () => {
    await settings().updateSettings({ settings: [{ field: { case: "allowRegister", value: false } }] });
    try {
      expect(await codeOf(register(freshEmail()))).toBe(Code.PermissionDenied);
      const cfg = await client(AuthService).getAuthConfig({});
      expect(cfg.allowsRegister).toBe(false);
    } finally {
      await settings().updateSettings({ settings: [{ field: { case: "allowRegister", value: true } }] });
    }
  });

  it("refuses a taken email with already_exists", async () => {
    const email = freshEmail();
    await register(email);
    const err = await register(email.toUpperCase()).catch((e) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.AlreadyExists);
    expect((err as ConnectError).rawMessage).toContain("email");
  });

  it.each([
    ["shrt-1!", "at least 8"],
    ["longenough1", "symbol"],
    ["long-enough!", "digit"],
    [" padded-pass1", "whitespace"],
    ["padded-pass1 ", "whitespace"],
  ])("refuses the weak password %j, naming the rule", async (password, rule) => {
    const err = ConnectError.from(await register(freshEmail(), password).catch((e) => e));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toContain("user_password.password");
    expect(err.rawMessage).toContain(rule);
  });

  it.each(["not-an-email", "a@b", "two@@example.com", "spaces in@example.com"])("refuses the malformed email %j", async (email) => {
    const err = ConnectError.from(await register(email).catch((e) => e));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toContain("user_password.identifier.email");
  });

  it("refuses a request without an identifier", async () => {
    const err = ConnectError.from(await client(AuthService).register({ method: { case: "userPassword", value: { password: strongPassword } } }).catch((e) => e));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toContain("identifier");
  });
});

describe("sign-up → verify → login → refresh → logout", () => {
  it("walks the whole flow through a Connect client", async () => {
    await settings().updateSettings({ settings: [{ field: { case: "isVerifiedEmailRequired", value: true } }] });
    try {
      const email = freshEmail("flow");
      const since = Date.now();
      const signup = await register(email);
      expect(signup.token).toBeUndefined();
      expect(await codeOf(login(email))).toBe(Code.FailedPrecondition);

      const code = await latestCode(email, since);
      expect(await codeOf(client(AuthService).verifyEmail({ email, code: code === "000000" ? "111111" : "000000" }))).toBe(
        Code.PermissionDenied,
      );
      await client(AuthService).verifyEmail({ email, code });
      // Single use: the same code does not verify twice.
      expect(await codeOf(client(AuthService).verifyEmail({ email, code }))).toBe(Code.FailedPrecondition);

      const first = await login(email);
      const auth = client(AuthService, first.token!.accessToken);
      expect((await auth.get({})).userInfo?.email).toBe(email);

      const refreshed = await client(AuthService).refreshToken({ refreshToken: first.token!.refreshToken });
      expect(refreshed.token!.accessToken).not.toBe(first.token!.accessToken);
      // The refresh supersedes the access token it replaced.
      expect(await codeOf(auth.get({}))).toBe(Code.Unauthenticated);
      const current = client(AuthService, refreshed.token!.accessToken);
      expect((await current.get({})).userId).toBe(signup.userId);

      await current.logout({});
      expect(await codeOf(current.get({}))).toBe(Code.Unauthenticated);
      expect(await codeOf(client(AuthService).refreshToken({ refreshToken: refreshed.token!.refreshToken }))).toBe(
        Code.Unauthenticated,
      );
    } finally {
      await settings().updateSettings({ settings: [{ field: { case: "isVerifiedEmailRequired", value: false } }] });
    }
  });

  it("verifies with the token SendVerificationEmail returns", async () => {
    const email = freshEmail();
    await register(email);
    const since = Date.now();
    const { token } = await client(AuthService).sendVerificationEmail({ identifier: { identifier: { case: "email", value: email } } });
    expect(token).toBeTruthy();
    const code = await latestCode(email, since);
    await client(AuthService).verifyEmail({ token, code });
    const u = await client(UserService, admin.accessToken).getByIdentifier({ identifier: { identifier: { case: "email", value: email } } });
    expect(u.user?.isEmailVerified).toBe(true);
  });

  it("burns a code after too many wrong guesses", async () => {
    const email = freshEmail();
    await register(email);
    const since = Date.now();
    await client(AuthService).sendVerificationEmail({ identifier: { identifier: { case: "email", value: email } } });
    const code = await latestCode(email, since);
    const wrong = code === "123456" ? "654321" : "123456";
    for (let i = 0; i < 5; i++) expect(await codeOf(client(AuthService).verifyEmail({ email, code: wrong }))).toBe(Code.PermissionDenied);
    expect(await codeOf(client(AuthService).verifyEmail({ email, code }))).toBe(Code.ResourceExhausted);
  });

  it("refuses an expired code", async () => {
    const email = freshEmail();
    await register(email);
    const since = Date.now();
    await client(AuthService).sendVerificationEmail({ identifier: { identifier: { case: "email", value: email } } });
    const code = await latestCode(email, since);
    await env.DB.prepare("UPDATE verification_codes SET expires_at = ? WHERE user_id = (SELECT id FROM users WHERE email = ?)")
      .bind(Date.now() - 1, email)
      .run();
    expect(await codeOf(client(AuthService).verifyEmail({ email, code }))).toBe(Code.FailedPrecondition);
  });

  it("stores codes only hashed", async () => {
    const email = freshEmail();
    await register(email);
    const since = Date.now();
    await client(AuthService).sendVerificationEmail({ identifier: { identifier: { case: "email", value: email } } });
    const code = await latestCode(email, since);
    const row = await env.DB.prepare("SELECT code_hash FROM verification_codes WHERE user_id = (SELECT id FROM users WHERE email = ?)")
      .bind(email)
      .first<{ code_hash: string }>();
    expect(row!.code_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(row!.code_hash).not.toContain(code);
  });
});

describe("password reset", () => {
  it("resets with the emailed code, revokes every session, and works once", async () => {
    const email = freshEmail("reset");
    await register(email);
    const before = await login(email);
    const since = Date.now();
    const { token } = await client(AuthService).sendPasswordReset({ identifier: { identifier: { case: "email", value: email } } });
    const code = await latestCode(email, since);
    const newPassword = "brand-New-pass-7";
    expect(await codeOf(client(AuthService).resetPassword({ token, code, newPassword: "weak" }))).toBe(Code.InvalidArgument);
    await client(AuthService).resetPassword({ token, code, newPassword });
    expect(await codeOf(client(AuthService, before.token!.accessToken).get({}))).toBe(Code.Unauthenticated);
    expect(await codeOf(login(email))).toBe(Code.Unauthenticated);
    expect((await login(email, newPassword)).userId).toBeTruthy();
    expect(await codeOf(client(AuthService).resetPassword({ token, code, newPassword: "another-Pass-8" }))).toBe(Code.PermissionDenied);
  });

  it("answers alike whether the account exists or not", async () => {
    const email = freshEmail("reset-known");
    await register(email);
    const nobody = freshEmail("reset-nobody");
    const send = (e: string) => client(AuthService).sendPasswordReset({ identifier: { identifier: { case: "email", value: e } } });
    const known = await send(email);
    const unknown = await send(nobody);
    expect(unknown.token.split(".").map((p) => p.length)).toEqual(known.token.split(".").map((p) => p.length));
    // Asked again at once: still a token each, not "a code was sent moments ago" for the real account only.
    expect((await send(email)).token).toBeTruthy();
    expect((await send(nobody)).token).toBeTruthy();

    const refusal = async (call: Promise<unknown>) => {
      const err = await call.then(() => null, (e: unknown) => ConnectError.from(e));
      return { code: err?.code, message: err?.rawMessage };
    };
    const newPassword = "brand-New-pass-7";
    const byToken = await refusal(client(AuthService).resetPassword({ token: known.token, code: "000000", newPassword }));
    const byDummyToken = await refusal(client(AuthService).resetPassword({ token: unknown.token, code: "000000", newPassword }));
    const byIdentifier = (e: string) => client(AuthService).resetPassword({ identifier: { identifier: { case: "email", value: e } }, code: "000000", newPassword });
    expect(byToken).toEqual({ code: Code.PermissionDenied, message: "the code is wrong or no longer valid: ask for a new one" });
    expect(byDummyToken).toEqual(byToken);
    expect(await refusal(byIdentifier(nobody))).toEqual(byToken);
    expect(await refusal(byIdentifier(email))).toEqual(byToken);
    // Burnt by wrong guesses: still the same answer.
    for (let i = 0; i < 6; i++) await refusal(byIdentifier(email));
    expect(await refusal(byIdentifier(email))).toEqual(byToken);
    // And nothing changed: the old password still works.
    expect((await login(email)).userId).toBeTruthy();
  });
});

describe("login", () => {
  it("accepts email, username and phone number identifiers", async () => {
    await settings().updateSettings({
      settings: [{ field: { case: "loginMechanisms", value: { loginMechanisms: [1, 2, 3] } } }],
    });
    const username = `user${crypto.randomUUID().slice(0, 6)}`;
    const phone = `+4512${String(Math.floor(Math.random() * 1e6)).padStart(6, "0")}`;
    for (const identifier of [
      { case: "username" as const, value: username },
      { case: "phoneNumber" as const, value: phone },
    ]) {
      await client(AuthService).register({ method: { case: "userPassword", value: { identifier: { identifier }, password: strongPassword } } });
      const res = await client(AuthService).login({
        method: { case: "userPassword", value: { identifier: { identifier }, password: strongPassword } },
      });
      expect(res.token?.accessToken).toBeTruthy();
    }
  });

  it("answers an unknown user exactly as a wrong password, at a similar cost", async () => {
    const email = freshEmail();
    await register(email);
    const refusal = async (call: Promise<unknown>) => {
      const started = performance.now();
      const err = await call.then(() => null, (e: unknown) => ConnectError.from(e));
      return { code: err?.code, message: err?.rawMessage, ms: performance.now() - started };
    };
    const unknown = await refusal(login(freshEmail("nobody"), "wrong-Password-1"));
    const wrong = await refusal(login(email, "wrong-Password-1"));
    expect(unknown).toMatchObject({ code: Code.Unauthenticated, message: "the identifier or the password is wrong" });
    expect({ code: wrong.code, message: wrong.message }).toEqual({ code: unknown.code, message: unknown.message });
    // Both hash the password (bcrypt, a few tens of ms): the unknown one is not the quick one.
    const costs = { unknown: [] as number[], wrong: [] as number[] };
    for (let i = 0; i < 3; i++) {
      costs.unknown.push((await refusal(login(freshEmail("nobody"), "wrong-Password-1"))).ms);
      costs.wrong.push((await refusal(login(email, `wrong-Password-${i + 2}`))).ms);
    }
    const median = (xs: number[]) => xs.sort((a, b) => a - b)[1]!;
    expect(median(costs.unknown)).toBeGreaterThan(median(costs.wrong) * 0.4);
  });

  it("refuses a login mechanism that is switched off", async () => {
    await settings().updateSettings({ settings: [{ field: { case: "loginMechanisms", value: { loginMechanisms: [3] } } }] });
    try {
      expect(await codeOf(login(admin.email))).toBe(Code.FailedPrecondition);
    } finally {
      await settings().updateSettings({ settings: [{ field: { case: "loginMechanisms", value: { loginMechanisms: [1, 3] } } }] });
    }
  });

  it("throttles repeated failures for one identifier with a retry hint", async () => {
    const email = freshEmail("throttled");
    await register(email);
    for (let i = 0; i < 5; i++) expect(await codeOf(login(email, "wrong-Password-1"))).toBe(Code.Unauthenticated);
    const err = ConnectError.from(await login(email).catch((e) => e));
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(Number(err.metadata.get("retry-after"))).toBeGreaterThan(0);
    // Another identifier is not affected.
    const other = freshEmail();
    await register(other);
    expect((await login(other)).token).toBeTruthy();
  });

  it("counts a burst of parallel guesses before checking any", async () => {
    const email = freshEmail("burst");
    await register(email);
    const codes = await Promise.all(Array.from({ length: 12 }, () => codeOf(login(email, "wrong-Password-1"))));
    expect(codes.filter((c) => c === Code.Unauthenticated).length).toBeLessThanOrEqual(5);
    expect(codes.filter((c) => c === Code.ResourceExhausted).length).toBeGreaterThanOrEqual(7);
  });
});

describe("tokens", () => {
  async function key() {
    const row = await env.DB.prepare("SELECT secret FROM installation_keys WHERE id = 'jwt'").first<{ secret: string }>();
    return new TextEncoder().encode(row!.secret);
  }
  const claimsOf = (token: string) => JSON.parse(atob(token.split(".")[1]!.replace(/-/g, "+").replace(/_/g, "/")));
  const getWith = (token: string) => client(AuthService, token).get({});

  it("refuses an expired access token", async () => {
    const c = claimsOf(admin.accessToken);
    const expired = await new SignJWT({ sty: c.sty, jti: c.jti, gen: c.gen })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject(c.sub)
      .setIssuer(c.iss)
      .setAudience(c.aud)
      .setIssuedAt(Math.floor(Date.now() / 1000) - 7200)
      .setExpirationTime(Math.floor(Date.now() / 1000) - 3600)
      .sign(await key());
    const err = ConnectError.from(await getWith(expired).catch((e) => e));
    expect(err.code).toBe(Code.Unauthenticated);
    expect(err.rawMessage).toContain("expired");
  });

  it("refuses a forged signature, alg none and algorithm switching", async () => {
    const [h, p] = admin.accessToken.split(".");
    const none = `${btoa(JSON.stringify({ alg: "none", typ: "JWT" })).replace(/=+$/, "")}.${p}.`;
    const tampered = `${h}.${p}.${"A".repeat(43)}`;
    const c = claimsOf(admin.accessToken);
    const otherKey = await new SignJWT(c).setProtectedHeader({ alg: "HS256" }).sign(new TextEncoder().encode("not-the-key-000000000000000000000"));
    const hs512 = await new SignJWT(c).setProtectedHeader({ alg: "HS512" }).sign(await key());
    for (const token of [none, tampered, otherKey, hs512, "garbage", `${h}.${p}`]) {
      expect(await codeOf(getWith(token))).toBe(Code.Unauthenticated);
    }
    // The genuine token still works.
    expect((await getWith(admin.accessToken)).userId).toBe(admin.userId);
  });

  it("does not accept a refresh token as an access token", async () => {
    const email = freshEmail();
    const res = await register(email);
    expect(await codeOf(getWith(res.token!.refreshToken))).toBe(Code.Unauthenticated);
  });

  it("revokes the whole session when a used refresh token comes back", async () => {
    const email = freshEmail("reuse");
    const { token: t0 } = await register(email);
    const { token: t1 } = await client(AuthService).refreshToken({ refreshToken: t0!.refreshToken });
    const { token: t2 } = await client(AuthService).refreshToken({ refreshToken: t1!.refreshToken });
    // t0's refresh token was rotated twice: a thief's replay, not a race.
    expect(await codeOf(client(AuthService).refreshToken({ refreshToken: t0!.refreshToken }))).toBe(Code.Unauthenticated);
    expect(await codeOf(getWith(t2!.accessToken))).toBe(Code.Unauthenticated);
    expect(await codeOf(client(AuthService).refreshToken({ refreshToken: t2!.refreshToken }))).toBe(Code.Unauthenticated);
  });

  it("revokes the session when a used refresh token comes back after the race window", async () => {
    const email = freshEmail("late-reuse");
    const { token: t0 } = await register(email);
    const { token: t1 } = await client(AuthService).refreshToken({ refreshToken: t0!.refreshToken });
    await env.DB.prepare("UPDATE sessions SET refresh_rotated_at = refresh_rotated_at - 60000 WHERE subject_id = (SELECT id FROM users WHERE email = ?)")
      .bind(email)
      .run();
    expect(await codeOf(client(AuthService).refreshToken({ refreshToken: t0!.refreshToken }))).toBe(Code.Unauthenticated);
    expect(await codeOf(getWith(t1!.accessToken))).toBe(Code.Unauthenticated);
  });

  it("leaves exactly one valid pair after concurrent refreshes of one token", async () => {
    const email = freshEmail("race");
    const { token } = await register(email);
    const results = await Promise.allSettled(
      Array.from({ length: 6 }, () => client(AuthService).refreshToken({ refreshToken: token!.refreshToken })),
    );
    const won = results.filter((r) => r.status === "fulfilled");
    expect(won).toHaveLength(1);
    for (const r of results) if (r.status === "rejected") expect(ConnectError.from(r.reason).code).toBe(Code.Aborted);
    const pair = (won[0] as PromiseFulfilledResult<{ token?: { accessToken: string; refreshToken: string } }>).value.token!;
    expect((await getWith(pair.accessToken)).userInfo?.email).toBe(email);
    expect(await codeOf(getWith(token!.accessToken))).toBe(Code.Unauthenticated);
    expect((await client(AuthService).refreshToken({ refreshToken: pair.refreshToken })).token?.accessToken).toBeTruthy();
  });

  it("revokes a deleted user's sessions at once", async () => {
    const email = freshEmail("deleted");
    const { token, userId } = await register(email);
    await client(UserService, admin.accessToken).delete({ userId });
    expect(await codeOf(getWith(token!.accessToken))).toBe(Code.Unauthenticated);
    expect(await codeOf(client(AuthService).refreshToken({ refreshToken: token!.refreshToken }))).toBe(Code.Unauthenticated);
  });

  it("lets a user delete itself, ending its session", async () => {
    const email = freshEmail("self-delete");
    const { token } = await register(email);
    await client(AuthService, token!.accessToken).delete({});
    expect(await codeOf(getWith(token!.accessToken))).toBe(Code.Unauthenticated);
    expect(await codeOf(login(email))).toBe(Code.Unauthenticated);
  });

  it("refuses to delete the last administrator", async () => {
    expect(await codeOf(client(AuthService, admin.accessToken).delete({}))).toBe(Code.FailedPrecondition);
  });
});
