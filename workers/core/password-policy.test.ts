import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { checkPasswordPolicy } from "./password-policy";

describe("password policy", () => {
  it.each(["abcdef1!", "Long-enough-9", "ünïcode-pass-1", "with inner space1!"])("accepts %j", (pw) => {
    expect(() => checkPasswordPolicy(pw)).not.toThrow();
  });
  it.each(["", "abc1!", "abcdefgh!", "abcdefgh1", " abcdefg1!", "abcdefg1! ", "\tabcdefg1!"])("refuses %j", (pw) => {
    try {
      checkPasswordPolicy(pw, "new_password");
      expect.unreachable();
    } catch (err) {
      expect(ConnectError.from(err).code).toBe(Code.InvalidArgument);
      expect(ConnectError.from(err).rawMessage).toMatch(/^new_password: /);
    }
  });
});
