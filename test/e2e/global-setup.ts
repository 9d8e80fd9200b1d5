/**
 * Global setup of the `e2e` test project: one Worker as `npm run dev` runs it, shared by the
 * test files, and its administrator (the first user to register on an installation is admin).
 * Tests read them with `inject("workerUrl")` and `inject("admin")`.
 */
import { createServer } from "node:net";
import type { TestProject } from "vitest/node";
import { startWorker } from "./worker";

export const admin = { email: "admin@e2e.test", password: "e2e-Admin-password-1" };

declare module "vitest" {
  export interface ProvidedContext {
    workerUrl: string;
    admin: { email: string; password: string };
  }
}

export default async function setup(project: TestProject) {
  const worker = await startWorker(await freePort());
  const res = await fetch(`${worker.url}/api.v1.authentication.Service/Register`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ userPassword: { identifier: { email: admin.email }, password: admin.password } }),
  });
  if (!res.ok) throw new Error(`registering the e2e admin failed: ${res.status} ${await res.text()}`);
  project.provide("workerUrl", worker.url);
  project.provide("admin", admin);
  return () => worker.stop();
}

/** A port nobody listens on now, so parallel checkouts on one machine do not collide. */
export function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? ok(address.port) : fail(new Error("no port"))));
    });
  });
}
