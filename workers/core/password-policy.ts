import { invalidArgument } from "./errors";

/**
 * Rig's password rules: at least 8 characters, a digit, a symbol, and no whitespace at
 * either end. Throws invalid_argument naming `field` and the first rule broken.
 */
export function checkPasswordPolicy(password: string, field = "password"): void {
  if (password.length < 8) throw invalidArgument(field, "must be at least 8 characters long");
  if (password.length > 256) throw invalidArgument(field, "must be at most 256 characters long");
  if (password.trim() !== password) throw invalidArgument(field, "must not start or end with whitespace");
  if (!/\p{Nd}/u.test(password)) throw invalidArgument(field, "must contain a digit");
  if (!/[^\p{L}\p{Nd}\s]/u.test(password)) throw invalidArgument(field, "must contain a symbol");
}
