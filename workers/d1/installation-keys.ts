/**
 * The installation's HMAC key. Production sets JWT_SECRET with `wrangler secret put`;
 * without it (local dev, tests) a random key is created once and kept in D1, so there is
 * nothing to configure and no well-known default key that would let anyone forge tokens.
 */
import { b64 } from "../core/encoding";
import type { Env } from "../env";
import type { Columns } from "./row";
import type { installationKeys } from "./schema";

let cached: { source: string; key: CryptoKey } | undefined;

/**
 * The key, imported for HMAC-SHA256. Importing costs as much as a signature, so it is done
 * once per isolate rather than on every token check.
 */
export async function installationHmacKey(env: Env): Promise<CryptoKey> {
  const source = env.JWT_SECRET ? `secret:${env.JWT_SECRET}` : "d1";
  if (cached?.source === source) return cached.key;
  let secret = env.JWT_SECRET;
  if (!secret) {
    const fresh = b64(crypto.getRandomValues(new Uint8Array(32)));
    // INSERT OR IGNORE + RETURNING yields nothing when another isolate won, hence the read.
    const [, row] = await env.DB.batch<Columns<typeof installationKeys, "secret">>([
      env.DB.prepare("INSERT OR IGNORE INTO installation_keys (id, secret, created_at) VALUES ('jwt', ?, ?)").bind(fresh, Date.now()),
      env.DB.prepare("SELECT secret FROM installation_keys WHERE id = 'jwt'"),
    ]);
    secret = row!.results[0]!.secret;
  }
  const key = await crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
    "verify",
  ]);
  cached = { source, key };
  return key;
}

