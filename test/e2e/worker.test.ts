import { describe, expect, it } from "vitest";
import { Service as AuthService } from "../../proto/gen/api/v1/authentication/service_pb";
import { adminToken, client, workerUrl } from "./clients";

describe("the Worker as npm run dev runs it", () => {
  it("serves the API over HTTP to a client on the network", async () => {
    const token = await adminToken();
    const me = await client(AuthService, token).get({});
    expect(me.userInfo?.email).toBe("admin@e2e.test");
  });

  it("refuses an anonymous caller", async () => {
    await expect(client(AuthService).get({})).rejects.toThrow(/unauthenticated/i);
  });

  it("answers /readyz", async () => {
    expect((await fetch(`${workerUrl()}/readyz`)).status).toBe(200);
  });
});
