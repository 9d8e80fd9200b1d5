/** Identity fixtures for tests: users made through the public API, codes read from the outbox. */
import { env } from "cloudflare:test";
import { expect } from "vitest";
import { Service as AuthService } from "../../proto/gen/api/v1/authentication/service_pb";
import { client } from "./client";

export const strongPassword = "correct-Horse-9";

let counter = 0;
/** A fresh email address, unique within the test file. */
export const freshEmail = (prefix = "user") => `${prefix}-${++counter}-${crypto.randomUUID().slice(0, 8)}@example.com`;

export async function register(email: string, password = strongPassword) {
  return client(AuthService).register({
    method: { case: "userPassword", value: { identifier: { identifier: { case: "email", value: email } }, password } },
  });
}

export async function login(email: string, password = strongPassword) {
  return client(AuthService).login({
    method: { case: "userPassword", value: { identifier: { identifier: { case: "email", value: email } }, password } },
  });
}

/** The first user of an installation, who becomes its admin. Call once per test file. */
export async function registerAdmin(email = freshEmail("admin")) {
  const res = await register(email);
  expect(res.token?.accessToken).toBeTruthy();
  return { email, userId: res.userId, accessToken: res.token!.accessToken, refreshToken: res.token!.refreshToken };
}

/** Waits for the newest email to `to` in the outbox (sent after the response) and returns it. */
export async function latestEmail(to: string, since = 0) {
  for (let i = 0; i < 100; i++) {
    const row = await env.DB.prepare(
      "SELECT * FROM outbox WHERE recipient = ? AND created_at >= ? ORDER BY created_at DESC, rowid DESC LIMIT 1",
    )
      .bind(to, since)
      .first<{ id: string; subject: string; body: string; status: string; attempts: number; last_error: string | null }>();
    if (row) return row;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no email to ${to} arrived in the outbox`);
}

/** The six-digit code in the newest email to `to`. */
export async function latestCode(to: string, since = 0): Promise<string> {
  const mail = await latestEmail(to, since);
  const code = /\b(\d{6})\b/.exec(mail.body)?.[1];
  if (!code) throw new Error(`no code in email to ${to}: ${mail.body}`);
  return code;
}

let admin: ReturnType<typeof registerAdmin> | undefined;
/** The administrator of this test file's installation, registered on first use. */
export const fileAdmin = () => (admin ??= registerAdmin());
