/**
 * Gitpod's ids: UUIDs, which its proto's rules accept in either case (protovalidate's
 * `string.uuid`). Ids are stored and compared lower-cased, so a checked id is returned so.
 */
import { toHex } from "./encoding";
import { invalidArgument, quote } from "./errors";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const isUuid = (v: string) => UUID.test(v);

/** The id a request names in `field`, lower-cased; invalid_argument unless it is a UUID. */
export function checkUuid(field: string, v: string): string {
  if (!isUuid(v)) throw invalidArgument(field, v ? `${quote(v)} is not a UUID` : "is required");
  return v.toLowerCase();
}

/** 16 bytes in the UUID text layout (8-4-4-4-12 lower-case hex); the caller sets version and variant. */
export function uuidOf(b: Uint8Array): string {
  const h = toHex(b);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * A UUIDv7: its first 48 bits are the creation time, so "newest first" is "id descending" and
 * "created before" is a range of ids; it is also a DNS label, so it names a Rig environment too.
 */
export function uuidv7(now = Date.now()): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  for (let i = 0; i < 6; i++) b[i] = Math.floor(now / 2 ** (8 * (5 - i))) & 0xff;
  b[6] = (b[6]! & 0x0f) | 0x70;
  b[8] = (b[8]! & 0x3f) | 0x80;
  return uuidOf(b);
}
