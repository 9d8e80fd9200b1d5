/** Administration: users, groups, roles and their permissions, service accounts, and runner set-up. */
import { useState } from "preact/hooks";
import { api } from "../api/clients";
import { Empty, ErrorNote, Field, Section, Select, Submit, useAction, useLoad } from "../ui/kit";

export function Admin() {
  return (
    <>
      <h1>Administration</h1>
      <RunnerSetup />
      <ServiceAccounts />
      <div class="grid two">
        <Users />
        <Groups />
      </div>
      <Roles />
    </>
  );
}

function Users() {
  const list = useLoad(async () => (await api.users.list({ pagination: { limit: 1000 } })).users, []);
  return (
    <Section title="Users">
      <ErrorNote error={list.error} />
      <ul class="list">
        {(list.data ?? []).map((u) => (
          <li key={u.userId}>
            {u.printableName} {u.groupIds.length > 0 && <span class="muted">in {u.groupIds.join(", ")}</span>}
          </li>
        ))}
      </ul>
    </Section>
  );
}

function Groups() {
  const list = useLoad(async () => (await api.groups.list({ pagination: { limit: 1000 } })).groups, []);
  return (
    <Section title="Groups">
      <ErrorNote error={list.error} />
      {list.data?.length === 0 && <Empty>No groups. Groups give their members the roles assigned to them.</Empty>}
      <ul class="list">
        {(list.data ?? []).map((g) => (
          <li key={g.groupId}>
            {g.groupId} <span class="muted">{String(g.numMembers)} members</span>
          </li>
        ))}
      </ul>
    </Section>
  );
}

function Roles() {
  const list = useLoad(async () => (await api.roles.list({ pagination: { limit: 1000 } })).roles, []);
  return (
    <Section title="Roles and permissions">
      <ErrorNote error={list.error} />
      <table>
        <thead>
          <tr>
            <th scope="col">Role</th>
            <th scope="col">Permissions (action on resource, project, environment)</th>
          </tr>
        </thead>
        <tbody>
          {(list.data ?? []).map((r) => (
            <tr key={r.roleId}>
              <th scope="row">{r.roleId}</th>
              <td>
                {r.permissions.map((p, i) => (
                  <div key={i}>
                    <code>{p.action}</code>{" "}
                    <span class="muted">
                      {p.scope?.resource || "*"}, project {p.scope?.project || "*"}, environment {p.scope?.environment || "*"}
                    </span>
                  </div>
                ))}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </Section>
  );
}

/** Client id and secret, shown once: the API never returns the secret again. */
function Credentials({ clientId, clientSecret }: { clientId: string; clientSecret: string }) {
  return (
    <div class="notice" role="status" data-testid="credentials">
      <p>
        <strong>Copy the secret now.</strong> It is shown only this once.
      </p>
      <dl class="facts">
        <dt>Client id</dt>
        <dd>
          <code>{clientId}</code>
        </dd>
        <dt>Client secret</dt>
        <dd>
          <code>{clientSecret}</code>
        </dd>
      </dl>
    </div>
  );
}

function ServiceAccounts() {
  const list = useLoad(async () => (await api.serviceAccounts.list({})).serviceAccounts, []);
  const [name, setName] = useState("");
  const [created, setCreated] = useState<{ clientId: string; clientSecret: string } | null>(null);
  const create = useAction(async () => {
    const res = await api.serviceAccounts.create({ name });
    setCreated({ clientId: res.clientId, clientSecret: res.clientSecret });
    setName("");
    await list.reload();
  });
  const remove = useAction(async (id: string) => {
    await api.serviceAccounts.delete({ serviceAccountId: id });
    await list.reload();
  });
  return (
    <Section title="Service accounts">
      <ErrorNote error={list.error} />
      {list.data?.length === 0 && <Empty>No service accounts. Create one for CI, a script or a runner; give it a role so it may act.</Empty>}
      <ul class="list">
        {(list.data ?? []).map((s) => (
          <li key={s.serviceAccountId} class="row">
            {s.name} <code class="muted">{s.clientId}</code>
            <button type="button" class="danger small" disabled={remove.busy} onClick={() => void remove.run(s.serviceAccountId)} aria-label={`Delete service account ${s.name}`}>
              Delete
            </button>
          </li>
        ))}
      </ul>
      <ErrorNote error={remove.error} />
      <form
        class="inline"
        onSubmit={(e) => {
          e.preventDefault();
          void create.run();
        }}
      >
        <Field label="New service account" placeholder="ci" required value={name} onInput={(e) => setName(e.currentTarget.value)} />
        <Submit busy={create.busy}>Create service account</Submit>
      </form>
      <ErrorNote error={create.error} />
      {created && <Credentials {...created} />}
    </Section>
  );
}

/**
 * A runner for an environment: a service account with a role that holds `runner:connect`
 * there, made through the same public API calls an administrator would make by hand.
 */
function RunnerSetup() {
  const envs = useLoad(async () => (await api.environments.list({ pagination: { limit: 1000 } })).environments.map((e) => e.environmentId), []);
  const [env, setEnv] = useState("");
  const [done, setDone] = useState<{ environment: string; clientId: string; clientSecret: string } | null>(null);
  const environment = env || envs.data?.[0] || "";
  const setup = useAction(async () => {
    const name = `runner-${environment}`;
    await api.roles.create({ roleId: name, permissions: [{ action: "runner:connect", scope: { environment, project: "*", resource: "*" } }] });
    const { clientId, clientSecret } = await api.serviceAccounts.create({ name });
    const account = (await api.serviceAccounts.list({})).serviceAccounts.find((s) => s.clientId === clientId);
    if (!account) throw new Error(`service account ${name} was created but is not listed`);
    await api.roles.assign({ roleId: name, entityId: { kind: { case: "serviceAccountId", value: account.serviceAccountId } } });
    setDone({ environment, clientId, clientSecret });
  });
  return (
    <Section title="Set up a runner">
      <p class="muted">
        A runner runs an environment's workloads next to a Docker host and connects to edgeplane as a service account holding <code>runner:connect</code> on that environment.
      </p>
      {envs.data?.length === 0 && <Empty>Create an environment first.</Empty>}
      {envs.data && envs.data.length > 0 && (
        <form
          class="inline"
          onSubmit={(e) => {
            e.preventDefault();
            void setup.run();
          }}
        >
          <Select label="Environment" options={envs.data.map((value) => ({ value }))} value={environment} onChange={(e) => setEnv(e.currentTarget.value)} />
          <Submit busy={setup.busy}>Create runner credentials</Submit>
        </form>
      )}
      <ErrorNote error={setup.error} />
      {done && (
        <>
          <Credentials clientId={done.clientId} clientSecret={done.clientSecret} />
          <p>
            Start the runner with these credentials, this server's address ({location.origin}) and environment <code>{done.environment}</code>. It logs in with client
            credentials, then opens <code>/environments/{done.environment}/runner</code> with a ticket (docs/runner-protocol.md).
          </p>
        </>
      )}
    </Section>
  );
}
