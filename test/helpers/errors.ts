import { type Code, ConnectError } from "@connectrpc/connect";

/** The ConnectError a call fails with; a call that succeeds fails the test. */
export async function errorOf(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to fail, but it succeeded");
}

/** The Connect code a call fails with. */
export const codeOf = async (call: Promise<unknown>): Promise<Code> => (await errorOf(call)).code;
