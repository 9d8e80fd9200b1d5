/** The current rollout (stages, steps, failure reasons, abort and stop) and the rollout history with roll back. */
import { Result, State } from "../../../proto/gen/api/v1/capsule/rollout/status_pb";
import type { Rollout } from "../../../proto/gen/api/v1/capsule/rollout_pb";
import { api } from "../api/clients";
import { age, Empty, ErrorNote, Section, useAction } from "../ui/kit";
import { RolloutBadge, StepBadge, stepsOf } from "../ui/rollout";
import type { CapsuleScope } from "./scope";

const ms = (t: { seconds: bigint; nanos: number } | undefined) => (t ? Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6) : undefined);

/** The capsule's newest rollout in the environment, updating as the page's stream reports. */
export function CurrentRollout({ scope, rollout, onChange }: { scope: CapsuleScope; rollout: Rollout | undefined; onChange: () => void }) {
  const ids = { projectId: scope.project, capsuleId: scope.capsule, rolloutId: rollout?.rolloutId ?? 0n };
  const abort = useAction(async () => (await api.capsules.abortRollout(ids), onChange()));
  const stop = useAction(async () => (await api.capsules.stopRollout(ids), onChange()));
  if (!rollout) {
    return (
      <Section title="Current rollout">
        <Empty>Nothing deployed to {scope.environment} yet. Deploy an image with the form.</Empty>
      </Section>
    );
  }
  const status = rollout.status;
  const steps = stepsOf(status);
  const stopped = status?.state === State.STOPPED;
  const healthy = status?.state === State.RUNNING;
  return (
    <Section
      title={`Current rollout #${rollout.rolloutId}`}
      actions={
        <>
          {!stopped && !healthy && (
            <button type="button" class="secondary" disabled={abort.busy} onClick={() => void abort.run()}>
              Abort
            </button>
          )}
          {!stopped && (
            <button type="button" class="danger" disabled={stop.busy} onClick={() => void stop.run()}>
              Stop
            </button>
          )}
        </>
      }
    >
      <p data-testid="rollout-state">
        <RolloutBadge status={status} /> <span class="muted">by {rollout.config?.createdBy?.printableName || rollout.config?.createdBy?.identifier || "the system"}, {age(ms(rollout.config?.createdAt))} ago</span>
      </p>
      {rollout.config?.message && <p>“{rollout.config.message}”</p>}
      <ol class="steps" aria-label="Rollout steps" data-testid="rollout-steps">
        {steps.map((s, i) => (
          <li key={i}>
            <StepBadge state={s.state} /> <span class="muted">{s.stage}:</span> {s.name}
            {s.message && <div class="step-message">{s.message}</div>}
          </li>
        ))}
      </ol>
      {stopped && status?.result === Result.FAILED && <p class="error">This rollout failed. Deploy again, or roll back to an earlier rollout below.</p>}
      <ErrorNote error={abort.error ?? stop.error} />
    </Section>
  );
}

/** Past rollouts, newest first, each with a one-click roll back. */
export function RolloutHistory({ scope, rollouts }: { scope: CapsuleScope; rollouts: Rollout[] }) {
  const rollback = useAction(async (id: bigint) => {
    await api.capsules.deploy({
      projectId: scope.project,
      capsuleId: scope.capsule,
      environmentId: scope.environment,
      message: `Roll back to #${id}`,
      changes: [{ field: { case: "rollback", value: { rollbackId: id } } }],
    });
  });
  return (
    <Section title="Rollout history">
      {rollouts.length === 0 && <Empty>No rollouts yet.</Empty>}
      {rollouts.length > 0 && (
        <table>
          <thead>
            <tr>
              <th scope="col">Rollout</th>
              <th scope="col">State</th>
              <th scope="col">Image</th>
              <th scope="col">Age</th>
              <th scope="col">
                <span class="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {rollouts.map((r, i) => (
              <tr key={String(r.rolloutId)}>
                <td>#{String(r.rolloutId)}</td>
                <td>
                  <RolloutBadge status={r.status} />
                </td>
                <td>
                  <code>{r.config?.imageId || "—"}</code>
                </td>
                <td>{age(ms(r.config?.createdAt))}</td>
                <td>
                  {i > 0 && (
                    <button type="button" class="secondary small" disabled={rollback.busy} onClick={() => void rollback.run(r.rolloutId)}>
                      Roll back to #{String(r.rolloutId)}
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <ErrorNote error={rollback.error} />
    </Section>
  );
}

export { ms as timestampMs };
