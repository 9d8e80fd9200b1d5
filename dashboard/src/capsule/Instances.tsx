/** Instances with status, restarts and age; counts at a glance; restart one; open a terminal into one. */
import { lazy, Suspense } from "preact/compat";
import { useState } from "preact/hooks";
import { type Instance, State } from "../../../proto/gen/api/v1/capsule/instance_pb";
import { api } from "../api/clients";
import { age, Empty, ErrorNote, Section, Status, useAction, useLoad } from "../ui/kit";
import { InstanceBadge } from "../ui/rollout";
import { timestampMs } from "./Rollouts";
import type { CapsuleScope } from "./scope";

// xterm.js is large and only needed once someone opens a terminal: not part of the first page.
const Terminal = lazy(() => import("./Terminal").then((m) => ({ default: m.Terminal })));

/** Counts of instances by what a person cares about. */
export function countsOf(instances: Instance[], currentRolloutId: bigint | undefined) {
  let healthy = 0;
  let starting = 0;
  let oldVersion = 0;
  let failing = 0;
  for (const i of instances) {
    if (i.state === State.FAILED || (i.message && i.state !== State.RUNNING)) failing++;
    else if (currentRolloutId !== undefined && i.rolloutId !== currentRolloutId) oldVersion++;
    else if (i.state === State.PENDING) starting++;
    else if (i.state === State.RUNNING) healthy++;
  }
  return { healthy, starting, oldVersion, failing };
}

export function Instances({ scope, currentRolloutId, version }: { scope: CapsuleScope; currentRolloutId: bigint | undefined; version: number }) {
  const list = useLoad(
    async () => (await api.capsules.listInstances({ projectId: scope.project, capsuleId: scope.capsule, environmentId: scope.environment, pagination: { limit: 1000 } })).instances,
    [scope.project, scope.capsule, scope.environment, version],
  );
  const restart = useAction(async (instanceId: string) => {
    await api.capsules.restartInstance({ projectId: scope.project, capsuleId: scope.capsule, environmentId: scope.environment, instanceId });
    await list.reload();
  });
  const [terminal, setTerminal] = useState<string | null>(null);
  const instances = list.data ?? [];
  const c = countsOf(instances, currentRolloutId);
  return (
    <Section
      title="Instances"
      actions={
        <button type="button" class="secondary small" onClick={() => void list.reload()}>
          Refresh
        </button>
      }
    >
      <p class="counts" data-testid="instance-counts">
        <Status tone="ok">{c.healthy} healthy</Status> <Status tone="progress">{c.starting} starting</Status> <Status tone="warn">{c.oldVersion} old version</Status>{" "}
        <Status tone="bad">{c.failing} failing</Status>
      </p>
      <ErrorNote error={list.error} />
      {instances.length === 0 && !list.error && <Empty>No instances reported. They appear once the environment's runner starts the rollout.</Empty>}
      {instances.length > 0 && (
        <table data-testid="instances">
          <thead>
            <tr>
              <th scope="col">Instance</th>
              <th scope="col">Status</th>
              <th scope="col">Rollout</th>
              <th scope="col">Restarts</th>
              <th scope="col">Age</th>
              <th scope="col">
                <span class="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {instances.map((i) => (
              <tr key={i.instanceId}>
                <td>
                  <code>{i.instanceId}</code>
                  {i.message && <div class="muted">{i.message}</div>}
                </td>
                <td>
                  <InstanceBadge state={i.state} />
                </td>
                <td>#{String(i.rolloutId)}</td>
                <td>{i.restartCount}</td>
                <td>{age(timestampMs(i.startedAt ?? i.createdAt))}</td>
                <td class="row">
                  <button type="button" class="secondary small" disabled={restart.busy} onClick={() => void restart.run(i.instanceId)} aria-label={`Restart ${i.instanceId}`}>
                    Restart
                  </button>
                  <button type="button" class="secondary small" onClick={() => setTerminal(i.instanceId)} aria-label={`Open a terminal in ${i.instanceId}`}>
                    Terminal
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <ErrorNote error={restart.error} />
      {terminal && (
        <Suspense fallback={<p>Loading the terminal…</p>}>
          <Terminal key={terminal} scope={scope} instanceId={terminal} onClose={() => setTerminal(null)} />
        </Suspense>
      )}
    </Section>
  );
}
