/**
 * The installation's HMAC key. Production sets JWT_SECRET with `wrangler secret put`;
 * without it (local dev, tests) a random key is created once and kept in D1, so there is
 * nothing to configure and no well-known default key that would let anyone forge tokens.
 */
import type { Env } from "../env";

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
    const fresh = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))));
    // INSERT OR IGNORE + RETURNING yields nothing when another isolate won, hence the read.
    const [, row] = await env.DB.batch<{ secret: string }>([
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

/** Hex HMAC-SHA256, for codes that must be stored hashed but are too short to hash unkeyed. */
export async function hmacHex(env: Env, value: string): Promise<string> {
  const mac = await crypto.subtle.sign("HMAC", await installationHmacKey(env), new TextEncoder().encode(value));
  return toHex(new Uint8Array(mac));
}

export async function sha256Hex(value: string): Promise<string> {
  return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(value))));
}

export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Constant-time comparison of two equal-length strings. */
export function timingSafeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}
