import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";
import type { Delivery } from "./test/helpers/smtp.ts";
import { startSmtpSink } from "./test/smtp-sink.ts";

export default defineConfig(async () => {
  const migrations = await readD1Migrations("./migrations");
  const smtp = await startSmtpSink();
  return {
    plugins: [
      cloudflareTest({
        wrangler: { configPath: "./wrangler.toml" },
        miniflare: {
          bindings: {
            TEST_MIGRATIONS: migrations,
            // Tests mint and check tokens without a wrangler secret, like local dev.
            // Mailjet is reached at a test-only host answered by outboundService below.
            MAILJET_API_URL: "http://mailjet.test",
          },
          outboundService: (request: Request) => outbound(request, smtp.received),
        },
      }),
    ],
    test: {
      setupFiles: ["./test/setup.ts"],
      include: ["workers/**/*.test.ts", "durable-objects/**/*.test.ts", "test/**/*.test.ts"],
      testTimeout: 30_000,
      provide: { smtpPort: smtp.port },
    },
  };
});

/**
 * Every outbound fetch from workerd lands here. `smtp-inbox.test` lists what the SMTP sink
 * received; `mailjet.test` stands in for Mailjet's HTTP API, where a recipient whose address
 * starts with "bounce" gets a 500, so retries can be tested.
 */
async function outbound(request: Request, received: Delivery[]): Promise<Response> {
  const url = new URL(request.url);
  if (url.host === "smtp-inbox.test") return Response.json(received);
  if (url.host !== "mailjet.test") return new Response("no network in tests", { status: 502 });
  const body = (await request.json()) as { Messages?: { To?: { Email: string }[] }[] };
  const to = body.Messages?.[0]?.To?.[0]?.Email ?? "";
  if (!request.headers.get("authorization")?.startsWith("Basic ")) return new Response("unauthorized", { status: 401 });
  if (to.startsWith("bounce")) return new Response(JSON.stringify({ ErrorMessage: "mailbox unavailable" }), { status: 500 });
  return Response.json({ Messages: [{ Status: "success", To: [{ Email: to }] }] });
}
