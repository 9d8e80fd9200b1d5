/** The edgeplane Worker: HTTP (Hono + Connect), the cron trigger, and the Durable Object classes. */
import type { Env } from "./env";
import { app } from "./http/app";
import { sweepExpired } from "./housekeeping";
import { wakeDueJobs } from "./jobs";
import { retryDueEmails } from "./outbox/outbox";

export { EnvironmentDO, RolloutDO } from "../durable-objects";

export default {
  fetch: app.fetch,
  async scheduled(controller, env, ctx) {
    ctx.waitUntil(Promise.all([retryDueEmails(env), sweepExpired(env), wakeDueJobs(env, controller.scheduledTime)]));
  },
} satisfies ExportedHandler<Env>;
