/**
 * Secrets kept in D1 (project private keys, registry credentials), encrypted under a key
 * derived from the installation's HMAC key (installation-keys.ts).
 */
import { b64, unb64 } from "../core/encoding";
import type { Env } from "../env";
import { installationHmacKey } from "./installation-keys";

const utf8 = new TextEncoder();
const secretKeys = new WeakMap<CryptoKey, Promise<CryptoKey>>();

/**
 * The AES-256-GCM key for secrets kept in D1 (project private keys, registry credentials).
 * HKDF derives it from an HMAC of a fixed label under the installation key, so it is bound to
 * this purpose and never equals the token key. Rotating JWT_SECRET makes stored secrets
 * unreadable, like it invalidates every token.
 */
async function secretKey(env: Env): Promise<CryptoKey> {
  const hmac = await installationHmacKey(env);
  let key = secretKeys.get(hmac);
  if (!key) {
    key = (async () => {
      const prk = await crypto.subtle.sign("HMAC", hmac, utf8.encode("edgeplane secret encryption"));
      const ikm = await crypto.subtle.importKey("raw", prk, "HKDF", false, ["deriveKey"]);
      return crypto.subtle.deriveKey(
        { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(32), info: utf8.encode("aes-256-gcm v1") },
        ikm,
        { name: "AES-GCM", length: 256 },
        false,
        ["encrypt", "decrypt"],
      );
    })();
    secretKeys.set(hmac, key);
  }
  return key;
}

/**
 * Encrypts `plaintext` for storage as `v1.<iv>.<ciphertext>` (base64). `context` (e.g.
 * `project/<id>`) is authenticated too, so a ciphertext copied to another row will not decrypt.
 */
export async function encryptSecret(env: Env, plaintext: Uint8Array | string, context: string): Promise<string> {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const data = typeof plaintext === "string" ? utf8.encode(plaintext) : plaintext;
  const sealed = await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: utf8.encode(context) }, await secretKey(env), data);
  return `v1.${b64(iv)}.${b64(new Uint8Array(sealed))}`;
}

/** The bytes `encryptSecret` sealed under the same `context`; throws if they were altered. */
export async function decryptSecret(env: Env, stored: string, context: string): Promise<Uint8Array> {
  const [version, iv, sealed] = stored.split(".");
  if (version !== "v1" || !iv || !sealed) throw new Error("stored secret has an unknown format");
  const opened = await crypto.subtle.decrypt(
    { name: "AES-GCM", iv: unb64(iv), additionalData: utf8.encode(context) },
    await secretKey(env),
    unb64(sealed),
  );
  return new Uint8Array(opened);
}
