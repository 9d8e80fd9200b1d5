import { LogLevel, WorkerMailer } from "worker-mailer";
import { defaults } from "../core/config";
import type { EmailProviderConfig } from "../d1/settings";
import type { Env } from "../env";
import type { Email } from "./outbox";

/** Mailjet's Send API v3.1 over HTTPS, with the API key pair as basic auth. */
export async function sendViaMailjet(env: Env, p: EmailProviderConfig, email: Email): Promise<void> {
  const res = await fetch(`${env.MAILJET_API_URL ?? defaults.mailjetApiUrl}/v3.1/send`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      authorization: `Basic ${btoa(`${p.publicKey}:${p.privateKey}`)}`,
    },
    body: JSON.stringify({
      Messages: [{ From: { Email: p.from }, To: [{ Email: email.to }], Subject: email.subject, TextPart: email.body }],
    }),
  });
  if (!res.ok) throw new Error(`mailjet answered ${res.status}: ${(await res.text()).slice(0, 200)}`);
}

/** SMTP over a Workers TCP socket; port 465 is implicit TLS, others upgrade with STARTTLS when offered. */
export async function sendViaSmtp(p: EmailProviderConfig, email: Email): Promise<void> {
  if (!p.host || !p.port) throw new Error("smtp provider needs a host and a port");
  await WorkerMailer.send(
    {
      host: p.host,
      port: p.port,
      secure: p.port === 465,
      credentials: p.publicKey ? { username: p.publicKey, password: p.privateKey } : undefined,
      // worker-mailer offers no mechanism unless told which; take whichever the server supports.
      authType: ["plain", "login", "cram-md5"],
      logLevel: LogLevel.WARN,
      socketTimeoutMs: 10_000,
      responseTimeoutMs: 10_000,
    },
    { from: p.from, to: email.to, subject: email.subject, text: email.body },
  );
}
