/** `edgeplane auth login|get|logout`: tokens of a user or service account, kept in the context. */
import { create } from "@bufbuild/protobuf";
import { Command } from "@commander-js/extra-typings";
import { GetResponseSchema, LoginRequestSchema, Service as AuthService } from "../../../proto/gen/api/v1/authentication/service_pb";
import { putContext } from "../config";
import { usage } from "../exit";
import { printFields, printMessage } from "../output";
import { ask, askSecret, say } from "../terminal";
import type { Cli } from "./cli";

export function authCommand(cli: Cli) {
  const auth = new Command("auth").description("log in and out, and show who is logged in");

  auth
    .command("login")
    .description("log in as a user (email and password) or a service account (client credentials)")
    .option("-u, --user <email>", "the user's email")
    .option("-p, --password <password>", "the user's password")
    .option("--client-id <id>", "a service account's client id")
    .option("--client-secret <secret>", "a service account's client secret")
    .action(async (opts) => {
      const session = cli.session();
      const method = opts.clientId || opts.clientSecret ? await clientCredentials(opts, session.interactive) : await userPassword(opts, session.interactive);
      const host = session.host;
      // Logging in without a context creates one, so a first `auth login -H …` is all it takes.
      let context = session.context;
      if (!context) {
        context = { name: session.options.context ?? "default", host };
        putContext(session.config, context);
        session.config.currentContext = context.name;
      }
      context.host = host;
      const res = await session.anonymous(AuthService).login(create(LoginRequestSchema, { method }));
      if (!res.token) throw new Error("the server answered the login without a token");
      session.setAuth({ subject: res.userId, accessToken: res.token.accessToken, refreshToken: res.token.refreshToken });
      const who = res.userInfo?.email || res.userInfo?.username || (method.case === "clientCredentials" ? `service account ${method.value.clientId}` : res.userId);
      say(`Logged in to ${host} as ${who} (context ${context.name})`);
    });

  auth
    .command("get")
    .description("show who is logged in")
    .action(async () => {
      const session = cli.session();
      const res = await session.client(AuthService).get({});
      printMessage(session.options.output, GetResponseSchema, res, () =>
        printFields([
          ["user id", res.userId],
          ["email", res.userInfo?.email],
          ["username", res.userInfo?.username],
          ["groups", res.userInfo?.groupIds.join(", ")],
          ["host", session.host],
        ]),
      );
    });

  auth
    .command("logout")
    .description("end the session on the server and forget its tokens")
    .action(async () => {
      const session = cli.session();
      if (!session.context?.auth) throw usage("not logged in");
      await session.client(AuthService).logout({});
      session.setAuth(undefined);
      say("Logged out");
    });

  return auth;
}

async function userPassword(opts: { user?: string; password?: string }, interactive: boolean) {
  const user = opts.user ?? (interactive ? await ask("Email") : undefined);
  const password = opts.password ?? (interactive ? await askSecret("Password") : undefined);
  if (!user || !password) throw usage("log in with -u/--user <email> and -p/--password <password> (or --client-id and --client-secret)");
  return { case: "userPassword" as const, value: { identifier: { identifier: { case: "email" as const, value: user } }, password } };
}

async function clientCredentials(opts: { clientId?: string; clientSecret?: string }, interactive: boolean) {
  const clientId = opts.clientId ?? (interactive ? await ask("Client id") : undefined);
  const clientSecret = opts.clientSecret ?? (interactive ? await askSecret("Client secret") : undefined);
  if (!clientId || !clientSecret) throw usage("a service account logs in with both --client-id and --client-secret");
  return { case: "clientCredentials" as const, value: { clientId, clientSecret } };
}
