/** Whether D1 answers at all, for the readiness probe. */
import type { Env } from "../env";

/** One round trip that reads no table; throws when D1 cannot be reached. */
export async function ping(env: Env): Promise<void> {
  await env.DB.prepare("SELECT 1").run();
}
