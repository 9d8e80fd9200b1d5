/** `edgeplane user|group|role|service-account …`: who may do what. */
import { create } from "@bufbuild/protobuf";
import { Command, InvalidArgumentError } from "@commander-js/extra-typings";
import { Service as GroupService, GetResponseSchema as GroupGetSchema, ListMembersResponseSchema, ListResponseSchema as GroupListSchema } from "../../../proto/gen/api/v1/group/service_pb";
import { type Permission, PermissionSchema } from "../../../proto/gen/api/v1/role/role_pb";
import { GetResponseSchema as RoleGetSchema, ListResponseSchema as RoleListSchema, Service as RoleService } from "../../../proto/gen/api/v1/role/service_pb";
import { CreateResponseSchema as AccountCreateSchema, ListResponseSchema as AccountListSchema, Service as AccountService } from "../../../proto/gen/api/v1/service_account/service_pb";
import { GetResponseSchema as UserGetSchema, ListResponseSchema as UserListSchema, Service as UserService } from "../../../proto/gen/api/v1/user/service_pb";
import { usage } from "../exit";
import { age, printFields, printMessage, printTable, when } from "../output";
import { say, warn } from "../terminal";
import type { Cli } from "./cli";
import { pagination, paginationOptions } from "./pages";

/** `action[@project[/environment[/resource]]]`, each scope part `*` when left out. */
export function permission(value: string, previous: Permission[] = []): Permission[] {
  const [action, scope = ""] = value.split("@", 2);
  if (!action || !/^[a-z_-]+:[a-z_*-]+$/.test(action)) throw new InvalidArgumentError(`"${value}" is not action[@project[/environment[/resource]]], e.g. capsule:deploy@shop/prod`);
  const [project = "*", environment = "*", ...resource] = scope ? scope.split("/") : [];
  return [...previous, create(PermissionSchema, { action, scope: { project, environment, resource: resource.join("/") || "*" } })];
}

/** The one account a command names with --user, --service-account or --group. */
function entity(opts: { user?: string; serviceAccount?: string; group?: string }, allowGroup: boolean) {
  const named = [opts.user && { case: "userId" as const, value: opts.user }, opts.serviceAccount && { case: "serviceAccountId" as const, value: opts.serviceAccount }, allowGroup && opts.group && { case: "groupId" as const, value: opts.group }].filter(
    (x) => typeof x === "object",
  );
  if (named.length !== 1) throw usage(`name exactly one of --user <id>, --service-account <id>${allowGroup ? " or --group <id>" : ""}`);
  return named[0]!;
}

function userCommand(cli: Cli) {
  const user = new Command("user").description("users");
  paginationOptions(user.command("list"))
    .option("--search <text>", "only users whose name or email contains it")
    .action(async (opts) => {
      const session = cli.session();
      const res = await session.client(UserService).list({ pagination: pagination(opts), search: opts.search ?? "" });
      printMessage(session.options.output, UserListSchema, res, () => printTable(["user id", "name", "groups", "age"], res.users.map((u) => [u.userId, u.printableName, u.groupIds.join(", ") || "-", age(u.createdAt)])));
    });
  user
    .command("get")
    .argument("<user-id>")
    .action(async (userId) => {
      const session = cli.session();
      const res = await session.client(UserService).get({ userId });
      printMessage(session.options.output, UserGetSchema, res, () =>
        printFields([
          ["user id", res.user?.userId],
          ["email", res.user?.userInfo?.email],
          ["username", res.user?.userInfo?.username],
          ["groups", res.user?.userInfo?.groupIds.join(", ")],
          ["created", when(res.user?.userInfo?.createdAt)],
        ]),
      );
    });
  user
    .command("create")
    .requiredOption("--email <email>")
    .requiredOption("--password <password>")
    .option("--group <group>", "a group to put the user in")
    .action(async (opts) => {
      const res = await cli.session().client(UserService).create({
        initialGroupId: opts.group ?? "",
        initializers: [{ field: { case: "email", value: opts.email } }, { field: { case: "password", value: opts.password } }],
      });
      say(`User ${res.user?.userId} created`);
    });
  user
    .command("delete")
    .argument("<user-id>")
    .action(async (userId) => {
      await cli.session().client(UserService).delete({ userId });
      say(`User ${userId} deleted`);
    });
  return user;
}

function groupCommand(cli: Cli) {
  const group = new Command("group").description("groups of users and service accounts");
  paginationOptions(group.command("list")).action(async (opts) => {
    const session = cli.session();
    const res = await session.client(GroupService).list({ pagination: pagination(opts) });
    printMessage(session.options.output, GroupListSchema, res, () => printTable(["group", "members", "age"], res.groups.map((g) => [g.groupId, String(g.numMembers), age(g.createdAt)])));
  });
  group
    .command("get")
    .argument("<group>")
    .action(async (groupId) => {
      const session = cli.session();
      const res = await session.client(GroupService).get({ groupId });
      printMessage(session.options.output, GroupGetSchema, res, () => printFields([["group", res.group?.groupId], ["members", String(res.group?.numMembers ?? 0)], ["created", when(res.group?.createdAt)]]));
    });
  group
    .command("create")
    .argument("<group>")
    .action(async (groupId) => {
      await cli.session().client(GroupService).create({ initializers: [{ field: { case: "groupId", value: groupId } }] });
      say(`Group ${groupId} created`);
    });
  group
    .command("delete")
    .argument("<group>")
    .action(async (groupId) => {
      await cli.session().client(GroupService).delete({ groupId });
      say(`Group ${groupId} deleted`);
    });
  group
    .command("add-member")
    .argument("<group>")
    .option("--user <id>")
    .option("--service-account <id>")
    .action(async (groupId, opts) => {
      const kind = entity(opts, false);
      if (kind.case === "groupId") throw usage("a group cannot be a member of a group");
      await cli.session().client(GroupService).addMember({ groupId, memberIds: [{ kind }] });
      say(`Added ${kind.value} to ${groupId}`);
    });
  group
    .command("remove-member")
    .argument("<group>")
    .option("--user <id>")
    .option("--service-account <id>")
    .action(async (groupId, opts) => {
      const kind = entity(opts, false);
      if (kind.case === "groupId") throw usage("a group cannot be a member of a group");
      await cli.session().client(GroupService).removeMember({ groupId, memberId: { kind } });
      say(`Removed ${kind.value} from ${groupId}`);
    });
  paginationOptions(group.command("list-members"))
    .argument("<group>")
    .action(async (groupId, opts) => {
      const session = cli.session();
      const res = await session.client(GroupService).listMembers({ groupId, pagination: pagination(opts) });
      printMessage(session.options.output, ListMembersResponseSchema, res, () =>
        printTable(
          ["kind", "id", "name", "joined"],
          res.members.map((m) =>
            m.entry.case === "user"
              ? ["user", m.entry.value.userId, m.entry.value.printableName, age(m.joinedAt)]
              : ["service account", m.entry.value?.serviceAccountId ?? "-", m.entry.value?.name ?? "-", age(m.joinedAt)],
          ),
        ),
      );
    });
  return group;
}

function roleCommand(cli: Cli) {
  const role = new Command("role").description("roles: permissions, given to users, service accounts and groups");
  role.command("list").action(async () => {
    const session = cli.session();
    const res = await session.client(RoleService).list({});
    printMessage(session.options.output, RoleListSchema, res, () => printTable(["role", "permissions"], res.roles.map((r) => [r.roleId, r.permissions.length])));
  });
  role
    .command("get")
    .argument("<role>")
    .action(async (roleId) => {
      const session = cli.session();
      const res = await session.client(RoleService).get({ roleId });
      printMessage(session.options.output, RoleGetSchema, res, () =>
        printTable(["action", "project", "environment", "resource"], (res.role?.permissions ?? []).map((p) => [p.action, p.scope?.project ?? "*", p.scope?.environment ?? "*", p.scope?.resource ?? "*"])),
      );
    });
  role
    .command("create")
    .argument("<role>")
    .option("--permission <action@project/environment/resource>", "a permission (repeatable), e.g. capsule:deploy@shop/prod", permission)
    .action(async (roleId, opts) => {
      await cli.session().client(RoleService).create({ roleId, permissions: opts.permission ?? [] });
      say(`Role ${roleId} created`);
    });
  role
    .command("delete")
    .argument("<role>")
    .action(async (roleId) => {
      await cli.session().client(RoleService).delete({ roleId });
      say(`Role ${roleId} deleted`);
    });
  for (const [name, verb] of [["assign", "Assigned"], ["revoke", "Revoked"]] as const) {
    role
      .command(name)
      .argument("<role>")
      .option("--user <id>")
      .option("--service-account <id>")
      .option("--group <id>")
      .action(async (roleId, opts) => {
        const kind = entity(opts, true);
        const roles = cli.session().client(RoleService);
        await (name === "assign" ? roles.assign({ roleId, entityId: { kind } }) : roles.revoke({ roleId, entityId: { kind } }));
        say(`${verb} ${roleId} ${name === "assign" ? "to" : "from"} ${kind.value}`);
      });
  }
  return role;
}

function serviceAccountCommand(cli: Cli) {
  const account = new Command("service-account").description("service accounts: logins for programs (client credentials)");
  account.command("list").action(async () => {
    const session = cli.session();
    const res = await session.client(AccountService).list({});
    printMessage(session.options.output, AccountListSchema, res, () =>
      printTable(["id", "name", "client id", "groups", "age"], res.serviceAccounts.map((a) => [a.serviceAccountId, a.name, a.clientId, a.groupIds.join(", ") || "-", age(a.createdAt)])),
    );
  });
  account
    .command("create")
    .argument("<name>")
    .option("--group <group>", "a group to put it in")
    .action(async (name, opts) => {
      const session = cli.session();
      const res = await session.client(AccountService).create({ name, initialGroupId: opts.group ?? "" });
      printMessage(session.options.output, AccountCreateSchema, res, () => {
        printFields([["client id", res.clientId], ["client secret", res.clientSecret]]);
        warn("The secret is shown only now: keep it. Log in with `edgeplane auth login --client-id … --client-secret …`.");
      });
    });
  account
    .command("delete")
    .argument("<service-account-id>")
    .action(async (id) => {
      await cli.session().client(AccountService).delete({ serviceAccountId: id });
      say(`Service account ${id} deleted`);
    });
  return account;
}

export function identityCommands(cli: Cli): Command[] {
  return [userCommand(cli), groupCommand(cli), roleCommand(cli), serviceAccountCommand(cli)];
}

