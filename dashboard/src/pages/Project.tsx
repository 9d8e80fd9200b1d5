/** A project's capsules, with the current rollout in each environment the project is active in. */
import { useState } from "preact/hooks";
import type { Rollout } from "../../../proto/gen/api/v1/capsule/rollout_pb";
import { api } from "../api/clients";
import { Empty, ErrorNote, Field, Section, Submit, useAction, useLoad } from "../ui/kit";
import { RolloutBadge } from "../ui/rollout";

export function Project({ project }: { project: string }) {
  const overview = useLoad(async () => {
    const [{ capsules }, { environments }] = await Promise.all([
      api.capsules.list({ projectId: project, pagination: { limit: 1000 } }),
      api.environments.list({ projectFilter: project, excludeEphemeral: true, pagination: { limit: 1000 } }),
    ]);
    const envIds = environments.filter((e) => e.global || e.activeProjects.includes(project)).map((e) => e.environmentId);
    const current = new Map<string, Rollout | undefined>();
    await Promise.all(
      capsules.flatMap((c) =>
        envIds.map(async (environmentId) => {
          const { rollouts } = await api.capsules.listRollouts({ projectId: project, capsuleId: c.capsuleId, environmentId, pagination: { limit: 1 } });
          current.set(`${c.capsuleId}/${environmentId}`, rollouts[0]);
        }),
      ),
    );
    return { capsules, envIds, current };
  }, [project]);
  const [name, setName] = useState("");
  const create = useAction(async () => {
    await api.capsules.create({ projectId: project, name });
    setName("");
    await overview.reload();
  });
  const d = overview.data;
  return (
    <>
      <p class="crumbs">
        <a href="/">Projects</a> / {project}
      </p>
      <h1>{project}</h1>
      <Section title="Capsules">
        <ErrorNote error={overview.error} />
        {d && d.envIds.length === 0 && <Empty>This project is active in no environment yet: activate it in one on the <a href="/">projects page</a> to deploy.</Empty>}
        {d && d.capsules.length === 0 && <Empty>No capsules yet. A capsule is one deployable application: create one below.</Empty>}
        {d && d.capsules.length > 0 && (
          <div class="scroll">
            <table>
              <thead>
                <tr>
                  <th scope="col">Capsule</th>
                  {d.envIds.map((e) => (
                    <th scope="col" key={e}>
                      {e}
                    </th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {d.capsules.map((c) => (
                  <tr key={c.capsuleId}>
                    <th scope="row">
                      <a href={`/p/${encodeURIComponent(project)}/c/${encodeURIComponent(c.capsuleId)}`}>{c.capsuleId}</a>
                    </th>
                    {d.envIds.map((e) => {
                      const r = d.current.get(`${c.capsuleId}/${e}`);
                      return (
                        <td key={e}>
                          <a href={`/p/${encodeURIComponent(project)}/c/${encodeURIComponent(c.capsuleId)}?env=${encodeURIComponent(e)}`} aria-label={`${c.capsuleId} in ${e}`}>
                            {r ? <>#{String(r.rolloutId)} </> : null}
                            <RolloutBadge status={r?.status} />
                          </a>
                        </td>
                      );
                    })}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        <form
          class="inline"
          onSubmit={(e) => {
            e.preventDefault();
            void create.run();
          }}
        >
          <Field label="New capsule" placeholder="web" required value={name} onInput={(e) => setName(e.currentTarget.value)} />
          <Submit busy={create.busy}>Create capsule</Submit>
        </form>
        <ErrorNote error={create.error} />
      </Section>
    </>
  );
}
