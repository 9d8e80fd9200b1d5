/** api.v1.user.settings.Service: how people sign up and log in, tokens, hashing, email. */
import { create } from "@bufbuild/protobuf";
import { durationFromMs, durationMs } from "@bufbuild/protobuf/wkt";
import { Service } from "../../proto/gen/api/v1/user/settings/service_pb";
import {
  DefaultInstanceSchema,
  type EmailInstance,
  MailjetInstanceSchema,
  SmtpInstanceSchema,
  TemplateType,
  type Update,
} from "../../proto/gen/api/v1/user/settings/settings_pb";
import type { HashingConfig } from "../../proto/gen/model/common_pb";
import { normalizeEmail } from "../auth/identifiers";
import { sha256Hex } from "../core/encoding";
import type { HashConfig } from "../core/passwords";
import { defaults } from "../core/config";
import {
  type EmailProviderConfig,
  LoginType,
  loadUserSettings,
  saveUserSettingsStatement,
  type TemplateKey,
  type UserSettings,
} from "../d1/settings";
import { envOf } from "./context";
import { invalidArgument } from "../core/errors";
import { defineService } from "./registry";

const MINUTE = 60_000;
const templateKeys: Partial<Record<TemplateType, TemplateKey>> = {
  [TemplateType.WELCOME_EMAIL]: "welcomeEmail",
  [TemplateType.EMAIL_VERIFICATION]: "verifyEmail",
  [TemplateType.EMAIL_RESET_PASSWORD]: "resetPasswordEmail",
};
const templateTypes = Object.fromEntries(Object.entries(templateKeys).map(([t, k]) => [k, Number(t)])) as Record<TemplateKey, TemplateType>;

function ttl(field: string, d: { seconds: bigint; nanos: number } | undefined, min: number, max: number): number {
  if (!d) throw invalidArgument(field, "is required");
  const ms = durationMs(d as Parameters<typeof durationMs>[0]);
  if (ms < min || ms > max) throw invalidArgument(field, `must be between ${min / 1000}s and ${max / 1000}s`);
  return ms;
}

function hashConfigOf(c: HashingConfig | undefined): HashConfig {
  const m = c?.method;
  if (m?.case === "bcrypt") {
    if (m.value.cost < 4 || m.value.cost > 15) throw invalidArgument("password_hashing.bcrypt.cost", "must be between 4 and 15");
    return { bcrypt: { cost: m.value.cost } };
  }
  if (m?.case === "scrypt") {
    const s = m.value;
    const d = defaults.scrypt;
    const params = {
      signerKey: s.signerKey,
      saltSeparator: s.saltSeparator,
      rounds: s.rounds || d.rounds,
      memCost: s.memCost || d.memCost,
      p: s.p || d.p,
      keyLen: s.keyLen || d.keyLen,
    };
    for (const [k, v] of [["signer_key", s.signerKey], ["salt_separator", s.saltSeparator]] as const) {
      try {
        atob(v);
      } catch {
        throw invalidArgument(`password_hashing.scrypt.${k}`, "must be base64");
      }
    }
    if (params.memCost < 10 || params.memCost > 17) throw invalidArgument("password_hashing.scrypt.mem_cost", "must be between 10 and 17 (N = 2^mem_cost)");
    if (params.rounds < 1 || params.rounds > 16) throw invalidArgument("password_hashing.scrypt.rounds", "must be between 1 and 16");
    if (params.p < 1 || params.p > 4) throw invalidArgument("password_hashing.scrypt.p", "must be between 1 and 4");
    if (params.keyLen < 16 || params.keyLen > 64) throw invalidArgument("password_hashing.scrypt.key_len", "must be between 16 and 64");
    return { scrypt: params };
  }
  throw invalidArgument("password_hashing", "set bcrypt or scrypt");
}

function apply(s: UserSettings, u: Update): void {
  const f = u.field;
  switch (f.case) {
    case "allowRegister":
      s.allowRegister = f.value;
      return;
    case "isVerifiedEmailRequired":
      s.isVerifiedEmailRequired = f.value;
      return;
    case "isVerifiedPhoneRequired":
      if (f.value) throw invalidArgument("is_verified_phone_required", "cannot be enabled: edgeplane sends no text messages");
      s.isVerifiedPhoneRequired = false;
      return;
    case "accessTokenTtl":
      s.accessTokenTtlMs = ttl("access_token_ttl", f.value, MINUTE, 24 * 60 * MINUTE);
      return;
    case "refreshTokenTtl":
      s.refreshTokenTtlMs = ttl("refresh_token_ttl", f.value, 5 * MINUTE, 90 * 24 * 60 * MINUTE);
      return;
    case "verificationCodeTtl":
      s.verificationCodeTtlMs = ttl("verification_code_ttl", f.value, MINUTE, 24 * 60 * MINUTE);
      return;
    case "passwordHashing":
      s.passwordHashing = hashConfigOf(f.value);
      return;
    case "loginMechanisms": {
      const knownLoginTypes: readonly number[] = Object.values(LoginType);
      const list = [...new Set(f.value.loginMechanisms)];
      if (list.length === 0) throw invalidArgument("login_mechanisms", "keep at least one, or nobody can log in");
      for (const m of list) {
        if (m === LoginType.SSO) throw invalidArgument("login_mechanisms", "SSO is not supported");
        if (!knownLoginTypes.includes(m)) throw invalidArgument("login_mechanisms", `unknown login type ${m}`);
      }
      s.loginMechanisms = list;
      return;
    }
    case "emailProvider": {
      const p = f.value;
      const instance = p.instance?.instance;
      const from = p.from ? normalizeEmail(p.from, "email_provider.from") : "";
      const creds = { publicKey: p.credentials?.publicKey ?? "", privateKey: p.credentials?.privateKey ?? "" };
      if (instance?.case === "mailjet") {
        if (!from) throw invalidArgument("email_provider.from", "is required");
        if (!creds.publicKey || !creds.privateKey) throw invalidArgument("email_provider.credentials", "Mailjet needs the API key (public_key) and secret (private_key)");
        s.emailProvider = { kind: "mailjet", from, ...creds };
      } else if (instance?.case === "smtp") {
        if (!from) throw invalidArgument("email_provider.from", "is required");
        if (!instance.value.host) throw invalidArgument("email_provider.instance.smtp.host", "is required");
        const port = Number(instance.value.port);
        if (!(port > 0 && port < 65536)) throw invalidArgument("email_provider.instance.smtp.port", "must be between 1 and 65535");
        s.emailProvider = { kind: "smtp", from, host: instance.value.host, port, ...creds };
      } else {
        s.emailProvider = { kind: "default", from, publicKey: "", privateKey: "" };
      }
      return;
    }
    case "textProvider":
      throw invalidArgument("text_provider", "text messages are not supported");
    case "template": {
      const key = templateKeys[f.value.type];
      if (!key) throw invalidArgument("template.type", "only the email templates (welcome, verification, reset password) can be set");
      if (!f.value.body.trim() || !f.value.subject.trim()) throw invalidArgument("template", "subject and body are required");
      s.templates = { ...s.templates, [key]: { subject: f.value.subject, body: f.value.body } };
      return;
    }
    default:
      throw invalidArgument("settings", "set one field per update");
  }
}

function emailInstanceOf(p: EmailProviderConfig): EmailInstance["instance"] {
  if (p.kind === "smtp") return { case: "smtp", value: create(SmtpInstanceSchema, { host: p.host!, port: BigInt(p.port!) }) };
  if (p.kind === "mailjet") return { case: "mailjet", value: create(MailjetInstanceSchema) };
  return { case: "default", value: create(DefaultInstanceSchema) };
}

export const userSettings = defineService(
  Service,
  {
    getSettings: { action: "settings:view" },
    updateSettings: { action: "settings:edit" },
  },
  {
    async getSettings(_req, ctx) {
      const s = await loadUserSettings(envOf(ctx));
      const p = s.emailProvider;
      return {
        settings: {
          allowRegister: s.allowRegister,
          isVerifiedEmailRequired: s.isVerifiedEmailRequired,
          isVerifiedPhoneRequired: s.isVerifiedPhoneRequired,
          accessTokenTtl: durationFromMs(s.accessTokenTtlMs),
          refreshTokenTtl: durationFromMs(s.refreshTokenTtlMs),
          verificationCodeTtl: durationFromMs(s.verificationCodeTtlMs),
          passwordHashing: {
            method: "bcrypt" in s.passwordHashing
              ? { case: "bcrypt", value: s.passwordHashing.bcrypt }
              : { case: "scrypt", value: s.passwordHashing.scrypt },
          },
          loginMechanisms: s.loginMechanisms,
          sendWelcomeMail: s.sendWelcomeMail,
          emailProvider: p && {
            from: p.from,
            clientId: p.publicKey,
            // The secret never leaves the server; this fingerprint tells which one is set.
            secretId: p.privateKey ? `sha256:${(await sha256Hex(p.privateKey)).slice(0, 12)}` : "",
            instance: { instance: emailInstanceOf(p) },
          },
          templates: Object.fromEntries(
            Object.entries(s.templates).map(([k, t]) => [k, { ...t, type: templateTypes[k as TemplateKey], format: [] }]),
          ),
        },
      };
    },

    async updateSettings(req, ctx) {
      const env = envOf(ctx);
      const s = await loadUserSettings(env);
      for (const u of req.settings) apply(s, u);
      if (s.refreshTokenTtlMs <= s.accessTokenTtlMs) {
        throw invalidArgument("refresh_token_ttl", "must be longer than access_token_ttl");
      }
      await saveUserSettingsStatement(env, s).run();
      return {};
    },
  },
);
