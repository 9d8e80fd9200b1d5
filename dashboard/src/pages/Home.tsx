/** Projects and environments, and which projects are active in which environment. */
import { useState } from "preact/hooks";
import { api } from "../api/clients";
import { Empty, ErrorNote, Field, Section, Status, Submit, useAction, useLoad } from "../ui/kit";

export function Home() {
  const projects = useLoad(async () => (await api.projects.list({ pagination: { limit: 1000 } })).projects, []);
  const environments = useLoad(async () => (await api.environments.list({ excludeEphemeral: true, pagination: { limit: 1000 } })).environments, []);
  const [projectId, setProjectId] = useState("");
  const [environmentId, setEnvironmentId] = useState("");
  const createProject = useAction(async () => {
    await api.projects.create({ projectId });
    setProjectId("");
    await projects.reload();
  });
  const createEnvironment = useAction(async () => {
    await api.environments.create({ environmentId });
    setEnvironmentId("");
    await environments.reload();
  });
  const toggle = useAction(async (environment: string, project: string, active: boolean) => {
    await api.environments.update({
      environmentId: environment,
      updates: [{ field: active ? { case: "addProject", value: project } : { case: "removeProject", value: project } }],
    });
    await environments.reload();
  });
  const setGlobal = useAction(async (environment: string, global: boolean) => {
    await api.environments.update({ environmentId: environment, updates: [{ field: { case: "setGlobal", value: global } }] });
    await environments.reload();
  });
  const ps = projects.data ?? [];
  const es = environments.data ?? [];
  return (
    <>
      <h1>Projects and environments</h1>
      <div class="grid two">
        <Section title="Projects">
          <ErrorNote error={projects.error} />
          {ps.length === 0 && !projects.loading && <Empty>No projects yet. Create one below, then an environment to deploy it to.</Empty>}
          <ul class="list">
            {ps.map((p) => (
              <li key={p.projectId}>
                <a href={`/p/${encodeURIComponent(p.projectId)}`}>{p.projectId}</a>
              </li>
            ))}
          </ul>
          <form
            class="inline"
            onSubmit={(e) => {
              e.preventDefault();
              void createProject.run();
            }}
          >
            <Field label="New project" placeholder="shop" required value={projectId} onInput={(e) => setProjectId(e.currentTarget.value)} />
            <Submit busy={createProject.busy}>Create project</Submit>
          </form>
          <ErrorNote error={createProject.error} />
        </Section>
        <Section title="Environments">
          <ErrorNote error={environments.error} />
          {es.length === 0 && !environments.loading && <Empty>No environments yet. Create one (for example “production”), then activate projects in it.</Empty>}
          <ul class="list">
            {es.map((e) => (
              <li key={e.environmentId}>
                {e.environmentId} {e.global && <Status tone="neutral">Global</Status>} {e.default && <Status tone="neutral">Default</Status>}
                <small class="muted"> cluster {e.clusterId}</small>
              </li>
            ))}
          </ul>
          <form
            class="inline"
            onSubmit={(e) => {
              e.preventDefault();
              void createEnvironment.run();
            }}
          >
            <Field label="New environment" placeholder="production" required value={environmentId} onInput={(e) => setEnvironmentId(e.currentTarget.value)} />
            <Submit busy={createEnvironment.busy}>Create environment</Submit>
          </form>
          <ErrorNote error={createEnvironment.error} />
        </Section>
      </div>
      {ps.length > 0 && es.length > 0 && (
        <Section title="Where projects are active">
          <p class="muted">A project can be deployed to an environment it is active in. Global environments include every project.</p>
          <div class="scroll">
            <table>
              <caption class="sr-only">Projects (rows) active in environments (columns)</caption>
              <thead>
                <tr>
                  <th scope="col">Project</th>
                  {es.map((e) => (
                    <th scope="col" key={e.environmentId}>
                      {e.environmentId}{" "}
                      <button
                        type="button"
                        class="secondary small"
                        disabled={setGlobal.busy}
                        onClick={() => void setGlobal.run(e.environmentId, !e.global)}
                        aria-label={e.global ? `Choose the projects of ${e.environmentId}` : `Make ${e.environmentId} global`}
                      >
                        {e.global ? "Choose projects" : "Make global"}
                      </button>
                    </th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {ps.map((p) => (
                  <tr key={p.projectId}>
                    <th scope="row">{p.projectId}</th>
                    {es.map((e) => {
                      const active = e.global || e.activeProjects.includes(p.projectId);
                      return (
                        <td key={e.environmentId}>
                          <label class="check">
                            <input
                              type="checkbox"
                              checked={active}
                              disabled={e.global || toggle.busy}
                              onChange={(ev) => void toggle.run(e.environmentId, p.projectId, ev.currentTarget.checked)}
                            />
                            <span class="sr-only">
                              {p.projectId} active in {e.environmentId}
                            </span>
                            <span aria-hidden="true">{e.global ? "Active (global)" : active ? "Active" : "—"}</span>
                          </label>
                        </td>
                      );
                    })}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <ErrorNote error={toggle.error ?? setGlobal.error} />
        </Section>
      )}
    </>
  );
}
