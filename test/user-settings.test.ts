import { Code, ConnectError } from "@connectrpc/connect";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { createScheduledController, createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import worker from "../workers/index";
import { beforeAll, describe, expect, inject, it } from "vitest";
import { smtpInbox } from "./helpers/smtp";
import { Service as AuthService } from "../proto/gen/api/v1/authentication/service_pb";
import { Service as SettingsService } from "../proto/gen/api/v1/user/settings/service_pb";
import { SettingsSchema, TemplateType } from "../proto/gen/api/v1/user/settings/settings_pb";
import { toJsonString } from "@bufbuild/protobuf";
import { codeOf } from "./helpers/errors";
import { client } from "./helpers/client";
import { freshEmail, latestEmail, login, register, registerAdmin } from "./helpers/identity";

let admin: Awaited<ReturnType<typeof registerAdmin>>;
const settings = () => client(SettingsService, admin.accessToken);
const passwordHashOf = async (email: string) =>
  JSON.parse((await env.DB.prepare("SELECT password_hash FROM users WHERE email = ?").bind(email).first<{ password_hash: string }>())!.password_hash);

beforeAll(async () => {
  admin = await registerAdmin();
  await settings().updateSettings({ settings: [{ field: { case: "allowRegister", value: true } }] });
});

describe("user.settings.Service", () => {
  it("starts from Rig's defaults", async () => {
    const { settings: s } = await settings().getSettings({});
    expect(s?.accessTokenTtl?.seconds).toBe(3600n);
    expect(s?.refreshTokenTtl?.seconds).toBe(7n * 24n * 3600n);
    expect(s?.verificationCodeTtl?.seconds).toBe(600n);
    expect(s?.passwordHashing?.method).toEqual({ case: "bcrypt", value: expect.objectContaining({ cost: 10 }) });
  });

  it("makes new hashes with the configured algorithm while old ones still verify, and moves users over at login", async () => {
    const oldUser = freshEmail("bcrypt");
    await register(oldUser);
    expect((await passwordHashOf(oldUser)).alg).toBe("bcrypt");
    await settings().updateSettings({
      settings: [{ field: { case: "passwordHashing", value: { method: { case: "scrypt", value: { memCost: 10, rounds: 8, p: 1, keyLen: 32, signerKey: btoa("k"), saltSeparator: btoa("s") } } } } }],
    });
    const newUser = freshEmail("scrypt");
    await register(newUser);
    expect((await passwordHashOf(newUser)).alg).toBe("scrypt");
    expect((await login(newUser)).token).toBeTruthy();
    expect((await login(oldUser)).token).toBeTruthy();
    await expect.poll(async () => (await passwordHashOf(oldUser)).alg).toBe("scrypt");
    expect((await login(oldUser)).token).toBeTruthy();
    await settings().updateSettings({
      settings: [{ field: { case: "passwordHashing", value: { method: { case: "bcrypt", value: { cost: 4 } } } } }],
    });
  });

  it("applies token TTLs to new tokens", async () => {
    await settings().updateSettings({ settings: [{ field: { case: "accessTokenTtl", value: durationFromMs(120_000) } }] });
    const s = await login(admin.email);
    const claims = JSON.parse(atob(s.token!.accessToken.split(".")[1]!.replace(/-/g, "+").replace(/_/g, "/")));
    expect(claims.exp - claims.iat).toBe(120);
    await settings().updateSettings({ settings: [{ field: { case: "accessTokenTtl", value: durationFromMs(3_600_000) } }] });
  });

  it("validates updates and names the field, applying nothing on error", async () => {
    const cases: [object, string][] = [
      [{ case: "accessTokenTtl", value: durationFromMs(1000) }, "access_token_ttl"],
      [{ case: "passwordHashing", value: { method: { case: "bcrypt", value: { cost: 40 } } } }, "password_hashing.bcrypt.cost"],
      [{ case: "loginMechanisms", value: { loginMechanisms: [] } }, "login_mechanisms"],
      [{ case: "emailProvider", value: { from: "x@example.com", instance: { instance: { case: "mailjet", value: {} } } } }, "email_provider.credentials"],
      [{ case: "isVerifiedPhoneRequired", value: true }, "is_verified_phone_required"],
    ];
    for (const [field, name] of cases) {
      const err = ConnectError.from(
        await settings()
          .updateSettings({ settings: [{ field: { case: "allowRegister", value: false } }, { field } as never] })
          .catch((e) => e),
      );
      expect(err.code, name).toBe(Code.InvalidArgument);
      expect(err.rawMessage).toContain(name);
    }
    expect((await settings().getSettings({})).settings?.allowRegister).toBe(true);
  });

  it("is refused to non-admins", async () => {
    const { token } = await register(freshEmail());
    expect(await codeOf(client(SettingsService, token!.accessToken).getSettings({}))).toBe(Code.PermissionDenied);
  });
});

describe("email delivery through the outbox", () => {
  it("prints to the dev log and keeps the message when no provider is configured", async () => {
    const email = freshEmail("devlog");
    await register(email);
    await client(AuthService).sendPasswordReset({ identifier: { identifier: { case: "email", value: email } } });
    const mail = await latestEmail(email);
    expect(mail.status).toBe("logged");
    expect(mail.body).toMatch(/\b\d{6}\b/);
  });

  it("sends through Mailjet, retries failures from the cron trigger, and never hides them", async () => {
    await settings().updateSettings({
      settings: [
        {
          field: {
            case: "emailProvider",
            value: { from: "noreply@example.com", credentials: { publicKey: "key", privateKey: "secret" }, instance: { instance: { case: "mailjet", value: {} } } },
          },
        },
      ],
    });
    const { settings: s } = await settings().getSettings({});
    expect(s?.emailProvider?.clientId).toBe("key");
    expect(toJsonString(SettingsSchema, s!)).not.toContain('"secret"');

    const good = freshEmail("delivered");
    await register(good);
    await client(AuthService).sendPasswordReset({ identifier: { identifier: { case: "email", value: good } } });
    await expect.poll(async () => (await latestEmail(good)).status).toBe("sent");

    const bad = freshEmail("bounce");
    await register(bad);
    await client(AuthService).sendPasswordReset({ identifier: { identifier: { case: "email", value: bad } } });
    await expect.poll(async () => (await latestEmail(bad)).last_error).toBeTruthy();
    const failed = await latestEmail(bad);
    expect(failed.attempts).toBe(1);
    expect(failed.status).toBe("pending");
    expect(failed.last_error).toContain("500");

    await env.DB.prepare("UPDATE outbox SET next_attempt_at = 0 WHERE id = ?").bind(failed.id).run();
    const ctx = createExecutionContext();
    await worker.scheduled!(createScheduledController({ cron: "* * * * *", scheduledTime: Date.now() }), env, ctx);
    await waitOnExecutionContext(ctx);
    const retried = await latestEmail(bad);
    expect(retried.attempts).toBe(2);
    expect(retried.status).toBe("pending");

    await env.DB.prepare("UPDATE outbox SET attempts = 6, next_attempt_at = 0 WHERE id = ?").bind(failed.id).run();
    const ctx2 = createExecutionContext();
    await worker.scheduled!(createScheduledController({ cron: "* * * * *", scheduledTime: Date.now() }), env, ctx2);
    await waitOnExecutionContext(ctx2);
    expect((await latestEmail(bad)).status).toBe("failed");

    await settings().updateSettings({
      settings: [{ field: { case: "emailProvider", value: { instance: { instance: { case: "default", value: {} } } } } }],
    });
  });

  it("sends through SMTP with the configured template", async () => {
    await settings().updateSettings({
      settings: [
        {
          field: {
            case: "emailProvider",
            value: {
              from: "noreply@example.com",
              credentials: { publicKey: "smtp-user", privateKey: "smtp-pass" },
              instance: { instance: { case: "smtp", value: { host: "127.0.0.1", port: BigInt(inject("smtpPort")) } } },
            },
          },
        },
        {
          field: {
            case: "template",
            value: { type: TemplateType.EMAIL_RESET_PASSWORD, subject: "Reset for {{ .Identifier }}", body: "Use {{ .Code }} on {{ .Name }}.", format: [] },
          },
        },
      ],
    });
    try {
      const to = freshEmail("smtp");
      await register(to);
      await client(AuthService).sendPasswordReset({ identifier: { identifier: { case: "email", value: to } } });
      await expect.poll(async () => (await latestEmail(to)).status, { timeout: 10_000 }).toBe("sent");
      const mail = await latestEmail(to);
      expect(mail.subject).toBe(`Reset for ${to}`);
      expect(mail.body).toMatch(/^Use \d{6} on edgeplane\.$/);
      const inbox = await smtpInbox();
      const delivered = inbox.find((d) => d.to.some((r) => r.includes(to)));
      expect(delivered?.data).toContain(`Reset for ${to}`);
      expect(delivered?.auth).toMatch(/^AUTH (PLAIN|LOGIN)/);
    } finally {
      await settings().updateSettings({
        settings: [{ field: { case: "emailProvider", value: { instance: { instance: { case: "default", value: {} } } } } }],
      });
    }
  });
});
