/** HMACs under the installation's key (d1/installation-keys.ts); secret encryption is d1/secrets.ts. */
import { installationHmacKey } from "../d1/installation-keys";
import { toHex } from "../core/encoding";
import type { Env } from "../env";

/** Hex HMAC-SHA256, for codes that must be stored hashed but are too short to hash unkeyed. */
export async function hmacHex(env: Env, value: string): Promise<string> {
  const mac = await crypto.subtle.sign("HMAC", await installationHmacKey(env), new TextEncoder().encode(value));
  return toHex(new Uint8Array(mac));
}
