/**
 * Developer environments (gitpod.v1.EnvironmentService): the list with phases updating live,
 * create, and one environment's page with start, stop, delete, its URLs and its automations.
 * Each developer environment has its own event stream; a row follows it while shown.
 */
import { useState } from "preact/hooks";
import { type Environment, EnvironmentPhase } from "../../../proto/gen/gitpod/v1/environment_pb";
import { api } from "../api/clients";
import { useEnvironmentStream } from "../api/useStream";
import { navigate } from "../router";
import { EventsFeed, StreamBadge } from "../ui/EventsFeed";
import { Empty, ErrorNote, Field, Section, Status, Submit, type Tone, useAction, useLoad } from "../ui/kit";
import { Automations } from "./Automations";

const phaseTone = (p: EnvironmentPhase): Tone =>
  p === EnvironmentPhase.RUNNING ? "ok" : p === EnvironmentPhase.STOPPED ? "neutral" : p === EnvironmentPhase.DELETED ? "neutral" : "progress";
const phaseWords = (p: EnvironmentPhase) => {
  const n = EnvironmentPhase[p] ?? "UNSPECIFIED";
  return n.charAt(0) + n.slice(1).toLowerCase();
};

/** The badge of a developer environment's phase, with failures shown as failed. */
export function PhaseBadge({ env }: { env: Environment | undefined }) {
  const phase = env?.status?.phase ?? EnvironmentPhase.UNSPECIFIED;
  const failed = (env?.status?.failureMessage.length ?? 0) > 0;
  return <Status tone={failed ? "bad" : phaseTone(phase)}>{failed ? `${phaseWords(phase)} · failed` : phaseWords(phase)}</Status>;
}

export function DevEnvironments() {
  const list = useLoad(async () => (await api.devEnvironments.listEnvironments({ pagination: { pageSize: 100 } })).environments, []);
  const [name, setName] = useState("");
  const [port, setPort] = useState("");
  const create = useAction(async () => {
    const { environment } = await api.devEnvironments.createEnvironment({
      name: name || undefined,
      spec: { desiredPhase: EnvironmentPhase.RUNNING, ports: port ? [{ port: Number(port), name: `port ${port}` }] : [] },
    });
    setName("");
    setPort("");
    if (environment) navigate(`/dev/${environment.id}`);
  });
  const envs = list.data ?? [];
  return (
    <>
      <h1>Developer environments</h1>
      <Section title="Your environments">
        <ErrorNote error={list.error} />
        {envs.length === 0 && !list.loading && <Empty>No developer environments. Create one below; a runner serving it starts its machine.</Empty>}
        {envs.length > 0 && (
          <table data-testid="dev-environments">
            <thead>
              <tr>
                <th scope="col">Environment</th>
                <th scope="col">Phase</th>
                <th scope="col">Ports</th>
              </tr>
            </thead>
            <tbody>
              {envs.map((e) => (
                <DevRow key={e.id} initial={e} />
              ))}
            </tbody>
          </table>
        )}
      </Section>
      <Section title="Create a developer environment">
        <form
          class="inline"
          onSubmit={(e) => {
            e.preventDefault();
            void create.run();
          }}
        >
          <Field label="Name" placeholder="my feature" value={name} onInput={(e) => setName(e.currentTarget.value)} />
          <Field label="Port to open (optional)" type="number" min={1} max={65535} value={port} onInput={(e) => setPort(e.currentTarget.value)} />
          <Submit busy={create.busy}>Create and start</Submit>
        </form>
        <ErrorNote error={create.error} />
      </Section>
    </>
  );
}

function DevRow({ initial }: { initial: Environment }) {
  const [env, setEnv] = useState(initial);
  useEnvironmentStream(initial.id, () => {
    void api.devEnvironments.getEnvironment({ environmentId: initial.id }).then((r) => r.environment && setEnv(r.environment), () => undefined);
  });
  return (
    <tr>
      <td>
        <a href={`/dev/${env.id}`}>{env.metadata?.name || env.id}</a>
      </td>
      <td>
        <PhaseBadge env={env} />
      </td>
      <td>
        <PortLinks env={env} />
      </td>
    </tr>
  );
}

function PortLinks({ env }: { env: Environment }) {
  const ports = env.status?.environmentUrls?.ports ?? [];
  if (ports.length === 0) return <span class="muted">—</span>;
  return (
    <>
      {ports.map((p) => (
        <a key={p.port} href={p.url} target="_blank" rel="noreferrer" class="port">
          {p.port}
        </a>
      ))}
    </>
  );
}

/** One developer environment: lifecycle, URLs, messages, automations and its events. */
export function DevEnvironment({ id }: { id: string }) {
  const env = useLoad(async () => (await api.devEnvironments.getEnvironment({ environmentId: id })).environment, [id]);
  const [version, setVersion] = useState(0);
  // Once deleted there is nothing left to read: the stream's last event says so.
  const [deleted, setDeleted] = useState(false);
  const stream = useEnvironmentStream(id, (batch) => {
    if (batch.some((e) => e.type === "dev-environment.deleted")) return setDeleted(true);
    void env.reload();
    setVersion((v) => v + 1);
  });
  const act = useAction(async (what: "start" | "stop" | "delete") => {
    if (what === "start") await api.devEnvironments.startEnvironment({ environmentId: id });
    if (what === "stop") await api.devEnvironments.stopEnvironment({ environmentId: id });
    if (what === "delete") await api.devEnvironments.deleteEnvironment({ environmentId: id });
    await env.reload();
  });
  const e = env.data;
  const phase = deleted ? EnvironmentPhase.DELETED : (e?.status?.phase ?? EnvironmentPhase.UNSPECIFIED);
  const desired = deleted ? EnvironmentPhase.DELETED : (e?.spec?.desiredPhase ?? EnvironmentPhase.UNSPECIFIED);
  const urls = e?.status?.environmentUrls;
  return (
    <>
      <p class="crumbs">
        <a href="/dev">Developer environments</a> / {e?.metadata?.name || id}
      </p>
      <h1>{e?.metadata?.name || id}</h1>
      {!deleted && <ErrorNote error={env.error} />}
      <Section title="Lifecycle" actions={<StreamBadge state={stream.state} />}>
        <p data-testid="dev-phase">
          {deleted ? <Status tone="neutral">Deleted</Status> : <PhaseBadge env={e} />} {desired !== phase && desired !== EnvironmentPhase.UNSPECIFIED && <span class="muted">heading to {phaseWords(desired).toLowerCase()}</span>}
        </p>
        {deleted && (
          <p class="notice" role="status">
            This environment was deleted. <a href="/dev">Back to your environments</a>.
          </p>
        )}
        {!deleted && e?.status?.warningMessage.map((w) => (
          <p key={w} class="notice">
            {w}
          </p>
        ))}
        {e?.status?.failureMessage.map((f) => (
          <p key={f} class="error">
            {f}
          </p>
        ))}
        <div class="row">
          <button type="button" disabled={act.busy || desired === EnvironmentPhase.RUNNING || desired === EnvironmentPhase.DELETED} onClick={() => void act.run("start")}>
            Start
          </button>
          <button type="button" class="secondary" disabled={act.busy || desired === EnvironmentPhase.STOPPED || desired === EnvironmentPhase.DELETED} onClick={() => void act.run("stop")}>
            Stop
          </button>
          <button type="button" class="danger" disabled={act.busy || desired === EnvironmentPhase.DELETED} onClick={() => void act.run("delete")}>
            Delete
          </button>
        </div>
        <ErrorNote error={act.error} />
        {urls && !deleted && (
          <dl class="facts">
            {urls.ssh?.url && (
              <>
                <dt>SSH</dt>
                <dd>
                  <code>{urls.ssh.url}</code>
                </dd>
              </>
            )}
            {urls.logs && (
              <>
                <dt>Logs</dt>
                <dd>
                  <a href={urls.logs}>{urls.logs}</a>
                </dd>
              </>
            )}
            {urls.ports.length > 0 && (
              <>
                <dt>Ports</dt>
                <dd data-testid="dev-ports">
                  {urls.ports.map((p) => (
                    <div key={p.port}>
                      {p.port}: <a href={p.url}>{p.url}</a>
                    </div>
                  ))}
                </dd>
              </>
            )}
          </dl>
        )}
      </Section>
      {phase !== EnvironmentPhase.DELETED && <Automations environmentId={id} version={version} />}
      <EventsFeed events={stream.events} state={stream.state} problem={stream.problem} />
    </>
  );
}
