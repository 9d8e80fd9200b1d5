/**
 * Metadata of users, groups and roles: `map<string, bytes>` on the wire, stored in D1 as a
 * JSON object of base64 values.
 */
import { b64, unb64 } from "../core/encoding";
import { invalidArgument } from "../core/errors";

export type MetadataUpdate =
  | { case: "setMetadata"; value: { key: string; value: Uint8Array } }
  | { case: "deleteMetadataKey"; value: string };

/** Applies one set or delete to stored metadata and returns the new JSON. */
export function updateMetadata(stored: string, u: MetadataUpdate, field: string): string {
  const m = JSON.parse(stored) as Record<string, string>;
  if (u.case === "setMetadata") {
    if (!u.value.key) throw invalidArgument(`${field}.set_metadata.key`, "is required");
    m[u.value.key] = b64(u.value.value);
  } else {
    delete m[u.value];
  }
  return JSON.stringify(m);
}

export const metadataMap = (stored: string): Record<string, Uint8Array> =>
  Object.fromEntries(Object.entries(JSON.parse(stored) as Record<string, string>).map(([k, v]) => [k, unb64(v)]));
