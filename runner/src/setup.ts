/**
 * edgeplane-runner-setup: everything a runner needs before it can start, in one command. As
 * an administrator (logging in, or registering the installation's first user), it makes the
 * environment if it is missing, a role holding `runner:connect` there, a service account with
 * that role, and prints the account's credentials once with the command that starts the
 * runner. With `--image` it also deploys a capsule, so the runner has something to run.
 */
import { Code, ConnectError, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { Service as AuthService } from "../../proto/gen/api/v1/authentication/service_pb";
import { Service as CapsuleService } from "../../proto/gen/api/v1/capsule/service_pb";
import { Service as EnvironmentService } from "../../proto/gen/api/v1/environment/service_pb";
import { Service as ProjectService } from "../../proto/gen/api/v1/project/service_pb";
import { Service as RoleService } from "../../proto/gen/api/v1/role/service_pb";
import { Service as ServiceAccountService } from "../../proto/gen/api/v1/service_account/service_pb";
import { reason } from "./log";

interface SetupOptions {
  url: URL;
  environment: string;
  email: string;
  password: string;
  image?: string;
  project: string;
  capsule: string;
  port: number;
  hostPort: number;
}

const port = (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new InvalidArgumentError("expected a port, 1 to 65535");
  return n;
};

function program(): Command {
  return new Command("edgeplane-runner-setup")
    .description("Creates a runner's service account, role and credentials for an environment (and the environment if missing), and prints them once.")
    .addOption(new Option("--url <url>", "edgeplane's base URL").env("EDGEPLANE_URL").default("http://localhost:8787"))
    .addOption(new Option("--environment <id>", "the environment the runner serves").env("EDGEPLANE_ENVIRONMENT").makeOptionMandatory())
    .addOption(new Option("--email <email>", "an administrator's email (registered as the first user on a fresh installation)").env("EDGEPLANE_EMAIL").makeOptionMandatory())
    .addOption(new Option("--password <password>", "that administrator's password").env("EDGEPLANE_PASSWORD").makeOptionMandatory())
    .addOption(new Option("--image <image>", "also deploy this image as a capsule, serving HTTP on --port, public on --host-port"))
    .addOption(new Option("--project <id>", "the project of the deployed capsule").default("demo"))
    .addOption(new Option("--capsule <name>", "the deployed capsule's name").default("hello"))
    .addOption(new Option("--port <port>", "the port the image listens on").argParser(port).default(80))
    .addOption(new Option("--host-port <port>", "the localhost port the capsule answers on").argParser(port).default(8080))
    .helpOption("-h, --help", "show this help")
    .exitOverride()
    .configureOutput({ writeErr: () => {} });
}

const bearer =
  (token: () => string): Interceptor =>
  (next) =>
  (req) => {
    req.header.set("authorization", `Bearer ${token()}`);
    return next(req);
  };

/** Runs `create`, taking "already exists" as done: setup can run again. */
async function ensure(create: () => Promise<unknown>): Promise<void> {
  try {
    await create();
  } catch (e) {
    if (!(e instanceof ConnectError && e.code === Code.AlreadyExists)) throw e;
  }
}

async function adminToken(transport: Transport, o: SetupOptions): Promise<string> {
  const auth = createClient(AuthService, transport);
  const login = () =>
    auth.login({ method: { case: "userPassword", value: { identifier: { identifier: { case: "email", value: o.email } }, password: o.password } } });
  try {
    return (await login()).token?.accessToken ?? "";
  } catch (e) {
    // A fresh installation has no user yet: the first to register is its administrator.
    if (!(e instanceof ConnectError) || (e.code !== Code.Unauthenticated && e.code !== Code.NotFound)) throw e;
    try {
      await auth.register({ method: { case: "userPassword", value: { identifier: { identifier: { case: "email", value: o.email } }, password: o.password } } });
    } catch {
      throw new Error(`edgeplane refused logging in as ${o.email}: ${e.rawMessage}`);
    }
    return (await login()).token?.accessToken ?? "";
  }
}

async function setup(o: SetupOptions): Promise<void> {
  const base = o.url.href.replace(/\/$/, "");
  let token = "";
  const anonymous = createConnectTransport({ baseUrl: base });
  token = await adminToken(anonymous, o);
  const transport = createConnectTransport({ baseUrl: base, interceptors: [bearer(() => token)] });
  const environments = createClient(EnvironmentService, transport);
  // Without project initializers the environment is global: every project may deploy to it.
  await ensure(() => environments.create({ environmentId: o.environment }));

  const name = `runner-${o.environment}`;
  const roles = createClient(RoleService, transport);
  await ensure(() =>
    roles.create({ roleId: name, permissions: [{ action: "runner:connect", scope: { environment: o.environment, project: "*", resource: "*" } }] }),
  );
  const accounts = createClient(ServiceAccountService, transport);
  // Secrets are shown once: a new account each run, named so the operator can tell them apart.
  const accountName = `${name}-${new Date().toISOString().replace(/[-:]/g, "").slice(0, 15).toLowerCase()}`;
  const { clientId, clientSecret } = await accounts.create({ name: accountName });
  const account = (await accounts.list({})).serviceAccounts.find((s) => s.name === accountName);
  if (!account) throw new Error(`service account ${accountName} was created but is not listed`);
  await roles.assign({ roleId: name, entityId: { kind: { case: "serviceAccountId", value: account.serviceAccountId } } });

  if (o.image) {
    await ensure(() => createClient(ProjectService, transport).create({ projectId: o.project }));
    const capsules = createClient(CapsuleService, transport);
    await ensure(() => capsules.create({ projectId: o.project, name: o.capsule }));
    await capsules.deploy({
      projectId: o.project,
      capsuleId: o.capsule,
      environmentId: o.environment,
      force: true,
      changes: [
        { field: { case: "addImage", value: { image: o.image } } },
        { field: { case: "replicas", value: 1 } },
        {
          field: {
            case: "setInterface",
            value: {
              name: "http",
              port: o.port,
              readiness: { kind: { case: "tcp", value: {} } },
              public: { enabled: true, method: { kind: { case: "loadBalancer", value: { port: o.hostPort } } } },
            },
          },
        },
      ],
    });
  }

  const out = process.stdout;
  out.write(`Runner credentials for environment ${o.environment} (service account ${accountName}); shown only now:\n\n`);
  out.write(`  EDGEPLANE_CLIENT_ID=${clientId}\n  EDGEPLANE_CLIENT_SECRET=${clientSecret}\n\n`);
  out.write(`Start the runner next to Docker with:\n\n`);
  out.write(`  npm run runner -- --url ${base} --environment ${o.environment} --client-id ${clientId} --client-secret ${clientSecret}\n`);
  if (o.image) out.write(`\nCapsule ${o.project}/${o.capsule} (${o.image}) is deployed; once the runner runs it, it answers on http://127.0.0.1:${o.hostPort}/\n`);
}

async function main(): Promise<void> {
  const cmd = program();
  try {
    cmd.parse(process.argv.slice(2), { from: "user" });
  } catch (e) {
    if (e instanceof CommanderError && (e.code === "commander.helpDisplayed" || e.code === "commander.help")) process.exit(0);
    process.stderr.write(`edgeplane-runner-setup: ${reason(e).replace(/^error: /, "")} (see --help)\n`);
    process.exit(2);
  }
  const o = cmd.opts<Omit<SetupOptions, "url"> & { url: string }>();
  let url: URL;
  try {
    url = new URL(o.url);
  } catch {
    process.stderr.write(`edgeplane-runner-setup: --url ${JSON.stringify(o.url)} is not a URL\n`);
    process.exit(2);
  }
  try {
    await setup({ ...o, url });
  } catch (e) {
    const why = e instanceof ConnectError ? e.rawMessage : reason(e);
    process.stderr.write(`edgeplane-runner-setup: ${/fetch failed/.test(why) ? `cannot reach edgeplane at ${url.origin}` : why}\n`);
    process.exit(1);
  }
}

void main();
