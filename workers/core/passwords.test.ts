import { describe, expect, it } from "vitest";
import { hashPassword, verifyPassword } from "./passwords";

describe("password hashing", () => {
  it("hashes with bcrypt at Rig's default cost and verifies", async () => {
    const h = await hashPassword("s3cret-Pass", { bcrypt: { cost: 10 } });
    expect(h.alg).toBe("bcrypt");
    expect(h.hash).toMatch(/^\$2[aby]\$10\$/);
    expect(await verifyPassword("s3cret-Pass", h)).toBe(true);
    expect(await verifyPassword("s3cret-Pasz", h)).toBe(false);
  });

  it("hashes with scrypt and its parameters, with and without a signer key", async () => {
    const base = { rounds: 8, memCost: 10, p: 1, keyLen: 32 };
    for (const params of [
      { ...base, signerKey: "", saltSeparator: "" },
      { ...base, signerKey: btoa("signer-key-bytes"), saltSeparator: btoa("\x01") },
    ]) {
      const h = await hashPassword("s3cret-Pass", { scrypt: params });
      expect(h.alg).toBe("scrypt");
      expect(await verifyPassword("s3cret-Pass", h)).toBe(true);
      expect(await verifyPassword("other-Pass-1", h)).toBe(false);
    }
  });

  it("salts: the same password hashes differently twice", async () => {
    const params = { rounds: 8, memCost: 10, p: 1, keyLen: 32, signerKey: "", saltSeparator: "" };
    const [a, b] = [await hashPassword("same-Pass-1", { scrypt: params }), await hashPassword("same-Pass-1", { scrypt: params })];
    expect(a.hash).not.toBe(b.hash);
  });
});
