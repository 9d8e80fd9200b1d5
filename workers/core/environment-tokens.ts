/** Gitpod environment tokens: minted by EnvironmentService, checked for a runner by its environment's object. */
import { defaults } from "./config";
import { mintPurposeToken, verifyPurposeToken } from "./tokens";

/**
 * Access tokens act as the environment; logs tokens only read its logs. Both are purpose
 * tokens signed with the installation key (d1/installation-keys.ts), naming the environment,
 * valid for an hour: a runner has them checked over its socket (`verify-token`) before it
 * honours one.
 */
const PURPOSES = { access: "gitpod-environment-access", logs: "gitpod-environment-logs" } as const;
export type EnvironmentTokenKind = keyof typeof PURPOSES;

export const mintEnvironmentToken = (key: CryptoKey, kind: EnvironmentTokenKind, environmentId: string) =>
  mintPurposeToken(key, PURPOSES[kind], environmentId, defaults.gitpod.environmentTokenTtlMs);

/** Whether `token` is a live access or logs token of `environmentId`, and which. */
export async function verifyEnvironmentToken(
  key: CryptoKey,
  token: string,
  environmentId: string,
): Promise<{ valid: true; kind: EnvironmentTokenKind } | { valid: false; message: string }> {
  let message = "the token is invalid";
  for (const kind of Object.keys(PURPOSES) as EnvironmentTokenKind[]) {
    try {
      const id = await verifyPurposeToken(key, token, PURPOSES[kind]);
      return id === environmentId ? { valid: true, kind } : { valid: false, message: "the token is for another environment" };
    } catch (err) {
      // An expired token says so; a token of another purpose is tried as the next kind.
      if (err instanceof Error && /expired/.test(err.message)) message = "the token has expired";
    }
  }
  return { valid: false, message };
}
