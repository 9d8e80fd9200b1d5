/**
 * Password hashing: bcrypt (Rig's default) and scrypt in the Firebase variant that Rig's
 * ScryptHashingConfig describes (signer key, salt separator, rounds, memory cost), so users
 * imported from either system keep their passwords. Verification follows the algorithm the
 * hash was made with; new hashes use the configured one.
 */
import { scryptAsync } from "@noble/hashes/scrypt.js";
import bcrypt from "bcryptjs";
import { defaults } from "./config";
import { b64, timingSafeEqual, unb64 } from "./encoding";

export interface ScryptParams {
  /** Base64; when set, the hash is the signer key encrypted with the derived key (Firebase). */
  signerKey: string;
  /** Base64, appended to the salt. */
  saltSeparator: string;
  rounds: number;
  memCost: number;
  p: number;
  keyLen: number;
}

export type HashConfig = { bcrypt: { cost: number } } | { scrypt: ScryptParams };

/** What is stored per user: the algorithm, its parameters and the hash. */
export type StoredHash =
  | { alg: "bcrypt"; hash: string }
  | { alg: "scrypt"; hash: string; salt: string; params: ScryptParams };

export const defaultHashConfig: HashConfig = { bcrypt: { cost: defaults.bcryptCost } };

export async function hashPassword(password: string, config: HashConfig): Promise<StoredHash> {
  if ("bcrypt" in config) return { alg: "bcrypt", hash: await bcrypt.hash(password, config.bcrypt.cost) };
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const hash = await scryptHash(password, salt, config.scrypt);
  return { alg: "scrypt", hash: b64(hash), salt: b64(salt), params: config.scrypt };
}

export async function verifyPassword(password: string, stored: StoredHash): Promise<boolean> {
  if (stored.alg === "bcrypt") return bcrypt.compare(password, stored.hash);
  const hash = await scryptHash(password, unb64(stored.salt), stored.params);
  return timingSafeEqual(b64(hash), stored.hash);
}

/** A hash that burns the same time as a real check, for unknown identifiers. */
export async function verifyAgainstNothing(password: string, config: HashConfig): Promise<false> {
  await hashPassword(password, config);
  return false;
}

async function scryptHash(password: string, salt: Uint8Array, s: ScryptParams): Promise<Uint8Array> {
  const separator = unb64(s.saltSeparator);
  const fullSalt = new Uint8Array(salt.length + separator.length);
  fullSalt.set(salt);
  fullSalt.set(separator, salt.length);
  const derived = await scryptAsync(new TextEncoder().encode(password), fullSalt, {
    N: 2 ** s.memCost,
    r: s.rounds,
    p: s.p || 1,
    dkLen: s.keyLen || 32,
    maxmem: 2 ** 28,
  });
  if (!s.signerKey) return derived;
  const key = await crypto.subtle.importKey("raw", derived.slice(0, 32), { name: "AES-CTR" }, false, ["encrypt"]);
  const cipher = await crypto.subtle.encrypt({ name: "AES-CTR", counter: new Uint8Array(16), length: 128 }, key, unb64(s.signerKey));
  return new Uint8Array(cipher);
}
