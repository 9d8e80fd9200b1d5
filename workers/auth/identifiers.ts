/** Validation and normalization of the identifiers a user logs in with. */
import { invalidArgument, quote } from "../core/errors";
import type { Identifier } from "../d1/users";

const EMAIL = /^[^\s@]{1,64}@[^\s@.]+(\.[^\s@.]+)+$/;
const USERNAME = /^[a-zA-Z0-9][a-zA-Z0-9._-]{1,62}$/;
const PHONE = /^\+[1-9][0-9]{6,14}$/;

export function normalizeEmail(email: string, field = "email"): string {
  const e = email.trim().toLowerCase();
  if (e.length > 254 || !EMAIL.test(e)) throw invalidArgument(field, `${quote(email)} is not a valid email address`);
  return e;
}

export function normalizeUsername(username: string, field = "username"): string {
  if (!USERNAME.test(username)) {
    throw invalidArgument(field, "must be 2-63 characters of letters, digits, '.', '_' or '-', starting with a letter or digit");
  }
  return username;
}

export function normalizePhone(phone: string, field = "phone_number"): string {
  const p = phone.replace(/[\s()-]/g, "");
  if (!PHONE.test(p)) throw invalidArgument(field, `${quote(phone)} is not a phone number in international format (+<country><number>)`);
  return p;
}

/** model.UserIdentifier's oneof, as protobuf-es gives it. */
export type IdentifierOneof =
  | { case: "email" | "username" | "phoneNumber"; value: string }
  | { case: undefined; value?: undefined };

export function identifierOf(id: IdentifierOneof | undefined, field = "identifier"): Identifier {
  switch (id?.case) {
    case "email":
      return { kind: "email", value: normalizeEmail(id.value, `${field}.email`) };
    case "username":
      return { kind: "username", value: normalizeUsername(id.value, `${field}.username`) };
    case "phoneNumber":
      return { kind: "phone_number", value: normalizePhone(id.value, `${field}.phone_number`) };
    default:
      throw invalidArgument(field, "set one of email, username or phone_number");
  }
}
