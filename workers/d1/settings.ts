/**
 * The `settings` table: installation-wide user settings (api.v1.user.settings), stored as one
 * JSON document and read with defaults filled in, so a fresh installation needs no set-up; and
 * the installation's id, which every project carries.
 */
import { defaults } from "../core/config";
import type { Env } from "../env";
import { defaultHashConfig, type HashConfig } from "../core/passwords";
import { query, readBatch } from "./batch";
import type { Columns } from "./row";
import type { settings } from "./schema";
import { anyUserQuery } from "./users";

/** model.LoginType numbers. */
export const LoginType = { EMAIL_PASSWORD: 1, PHONE_PASSWORD: 2, USERNAME_PASSWORD: 3, SSO: 4 } as const;

export type TemplateKey = "welcomeEmail" | "verifyEmail" | "resetPasswordEmail";

export interface EmailProviderConfig {
  from: string;
  /** "default" sends through the platform's provider: none here, so the dev log. */
  kind: "default" | "mailjet" | "smtp";
  host?: string;
  port?: number;
  /** Mailjet API key / SMTP user. */
  publicKey: string;
  /** Mailjet secret key / SMTP password. Never returned by the API. */
  privateKey: string;
}

export interface UserSettings {
  allowRegister: boolean;
  isVerifiedEmailRequired: boolean;
  isVerifiedPhoneRequired: boolean;
  accessTokenTtlMs: number;
  refreshTokenTtlMs: number;
  verificationCodeTtlMs: number;
  passwordHashing: HashConfig;
  loginMechanisms: number[];
  sendWelcomeMail: boolean;
  emailProvider?: EmailProviderConfig;
  templates: Partial<Record<TemplateKey, { subject: string; body: string }>>;
}

export const defaultUserSettings = (): UserSettings => ({
  allowRegister: defaults.allowRegister,
  isVerifiedEmailRequired: false,
  isVerifiedPhoneRequired: false,
  accessTokenTtlMs: defaults.accessTokenTtlMs,
  refreshTokenTtlMs: defaults.refreshTokenTtlMs,
  verificationCodeTtlMs: defaults.verificationCodeTtlMs,
  passwordHashing: defaultHashConfig,
  loginMechanisms: [LoginType.EMAIL_PASSWORD, LoginType.USERNAME_PASSWORD],
  sendWelcomeMail: false,
  templates: {},
});

const KEY = "users";

/** The read, as a statement, for callers that batch it with their own. */
export const userSettingsStatement = (env: Env) => env.DB.prepare("SELECT value FROM settings WHERE key = ?").bind(KEY);

export const parseUserSettings = (row: Columns<typeof settings, "value"> | undefined | null): UserSettings => ({
  ...defaultUserSettings(),
  ...(row ? (JSON.parse(row.value) as Partial<UserSettings>) : {}),
});

export async function loadUserSettings(env: Env): Promise<UserSettings> {
  return parseUserSettings(await userSettingsStatement(env).first<Columns<typeof settings, "value">>());
}

/** The settings and whether any user exists yet (the first one may always register), in one round trip. */
export async function loadSettingsForSignUp(env: Env): Promise<{ settings: UserSettings; anyUser: boolean }> {
  const [stored, users] = await readBatch(env.DB, query<Columns<typeof settings, "value">>(userSettingsStatement(env)), anyUserQuery(env));
  return { settings: parseUserSettings(stored[0]), anyUser: users.length !== 0 };
}

export function saveUserSettingsStatement(env: Env, s: UserSettings): D1PreparedStatement {
  return env.DB.prepare(
    "INSERT INTO settings (key, value, updated_at) VALUES (?1, ?2, ?3) ON CONFLICT (key) DO UPDATE SET value = ?2, updated_at = ?3",
  ).bind(KEY, JSON.stringify(s), Date.now());
}

const defaultTemplates: Record<TemplateKey, { subject: string; body: string }> = {
  welcomeEmail: {
    subject: "Welcome to {{ .Name }}",
    body: "Hi {{ .Identifier }},\n\nyour account on {{ .Name }} is ready.\n",
  },
  verifyEmail: {
    subject: "Your {{ .Name }} verification code: {{ .Code }}",
    body: "Hi {{ .Identifier }},\n\nyour verification code is {{ .Code }}. It expires in {{ .Minutes }} minutes.\n",
  },
  resetPasswordEmail: {
    subject: "Reset your {{ .Name }} password",
    body: "Hi {{ .Identifier }},\n\nyour password reset code is {{ .Code }}. It expires in {{ .Minutes }} minutes.\nIf you did not ask for it, ignore this email.\n",
  },
};

/** Fills `{{ .Field }}` placeholders (Rig's template syntax) from `values`. */
export function renderTemplate(s: UserSettings, key: TemplateKey, values: Record<string, string>) {
  const t = s.templates[key] ?? defaultTemplates[key];
  const fill = (text: string) => text.replace(/\{\{\s*\.(\w+)\s*\}\}/g, (all, name: string) => values[name] ?? all);
  return { subject: fill(t.subject), body: fill(t.body) };
}

/**
 * This installation's id, created once: INSERT OR IGNORE + RETURNING yields nothing when
 * another request won, hence the read in the same batch.
 */
export async function installationId(env: Env): Promise<string> {
  const fresh = JSON.stringify({ installationId: crypto.randomUUID() });
  const [, row] = await env.DB.batch<Columns<typeof settings, "value">>([
    env.DB.prepare("INSERT OR IGNORE INTO settings (key, value, updated_at) VALUES ('installation', ?, ?)").bind(fresh, Date.now()),
    env.DB.prepare("SELECT value FROM settings WHERE key = 'installation'"),
  ]);
  return (JSON.parse(row!.results[0]!.value) as { installationId: string }).installationId;
}
