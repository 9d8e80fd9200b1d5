/**
 * A capsule in one environment: its current rollout live, deploy, history, instances, logs,
 * metrics, cron jobs and the environment's events. Everything live comes from the
 * environment's event stream; a relevant event reloads what it changed.
 */
import { useState } from "preact/hooks";
import { api } from "../api/clients";
import type { StreamEvent } from "../api/stream";
import { useEnvironmentStream } from "../api/useStream";
import { Deploy } from "../capsule/Deploy";
import { Instances } from "../capsule/Instances";
import { Jobs } from "../capsule/Jobs";
import { Logs } from "../capsule/Logs";
import { Metrics } from "../capsule/Metrics";
import { CurrentRollout, RolloutHistory } from "../capsule/Rollouts";
import { navigate } from "../router";
import { EventsFeed } from "../ui/EventsFeed";
import { Empty, ErrorNote, useLoad } from "../ui/kit";

export function Capsule(props: { project: string; capsule: string; environment: string | null }) {
  const { project, capsule } = props;
  const envs = useLoad(async () => {
    const { environments } = await api.environments.list({ projectFilter: project, excludeEphemeral: true, pagination: { limit: 1000 } });
    return environments.filter((e) => e.global || e.activeProjects.includes(project)).map((e) => e.environmentId);
  }, [project]);
  const environment = props.environment ?? envs.data?.[0] ?? null;
  const base = `/p/${encodeURIComponent(project)}/c/${encodeURIComponent(capsule)}`;
  return (
    <>
      <p class="crumbs">
        <a href="/">Projects</a> / <a href={`/p/${encodeURIComponent(project)}`}>{project}</a> / {capsule}
      </p>
      <div class="title-row">
        <h1>{capsule}</h1>
        {envs.data && envs.data.length > 0 && (
          <div class="field env-picker">
            <label for="env-picker">Environment</label>
            <select id="env-picker" value={environment ?? ""} onChange={(e) => navigate(`${base}?env=${encodeURIComponent(e.currentTarget.value)}`)}>
              {envs.data.map((e) => (
                <option key={e} value={e}>
                  {e}
                </option>
              ))}
            </select>
          </div>
        )}
      </div>
      <ErrorNote error={envs.error} />
      {envs.data && envs.data.length === 0 && (
        <Empty>
          Project {project} is active in no environment. Activate it in one on the <a href="/">projects page</a>, then deploy here.
        </Empty>
      )}
      {environment && <InEnvironment key={environment} project={project} capsule={capsule} environment={environment} />}
    </>
  );
}

function InEnvironment({ project, capsule, environment }: { project: string; capsule: string; environment: string }) {
  // Bumped by every event about this capsule, so the panels reload what changed.
  const [version, setVersion] = useState(0);
  const mine = (e: StreamEvent) => e.data.projectId === project && e.data.capsuleId === capsule;
  const stream = useEnvironmentStream(environment, (batch) => {
    if (batch.some((e) => mine(e) || e.type.startsWith("runner."))) setVersion((v) => v + 1);
  });
  const rollouts = useLoad(
    async () => (await api.capsules.listRollouts({ projectId: project, capsuleId: capsule, environmentId: environment, pagination: { limit: 20 } })).rollouts,
    [project, capsule, environment, version],
  );
  const current = rollouts.data?.[0];
  const scope = { project, capsule, environment };
  return (
    <>
      <ErrorNote error={rollouts.error} />
      <div class="grid two">
        <CurrentRollout scope={scope} rollout={current} onChange={rollouts.reload} />
        <Deploy scope={scope} current={current} />
      </div>
      <Instances scope={scope} currentRolloutId={current?.rolloutId} version={version} />
      <Logs scope={scope} />
      <Metrics scope={scope} />
      <RolloutHistory scope={scope} rollouts={rollouts.data ?? []} />
      <Jobs scope={scope} version={version} />
      <EventsFeed events={stream.events} state={stream.state} problem={stream.problem} />
    </>
  );
}
