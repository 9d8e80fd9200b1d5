/** The capsule's cron job executions in the environment: state, attempts, and when. */
import { JobState } from "../../../proto/gen/api/v1/capsule/job_pb";
import { api } from "../api/clients";
import { age, Empty, ErrorNote, Section, Status, type Tone, useLoad } from "../ui/kit";
import { timestampMs } from "./Rollouts";
import type { CapsuleScope } from "./scope";

const tone: Record<JobState, Tone> = {
  [JobState.UNSPECIFIED]: "neutral",
  [JobState.ONGOING]: "progress",
  [JobState.COMPLETED]: "ok",
  [JobState.FAILED]: "bad",
  [JobState.TERMINATED]: "warn",
};

export function Jobs({ scope, version }: { scope: CapsuleScope; version: number }) {
  const list = useLoad(
    async () =>
      (await api.capsules.getJobExecutions({ projectId: scope.project, capsuleId: scope.capsule, environmentId: scope.environment, pagination: { limit: 20, descending: true } }))
        .jobExecutions,
    [scope.project, scope.capsule, scope.environment, version],
  );
  const rows = list.data ?? [];
  return (
    <Section title="Cron job executions">
      <ErrorNote error={list.error} />
      {rows.length === 0 && !list.error && <Empty>No job executions. Add a cron job to the capsule with a deploy (API or CLI); each run shows here.</Empty>}
      {rows.length > 0 && (
        <table>
          <thead>
            <tr>
              <th scope="col">Job</th>
              <th scope="col">State</th>
              <th scope="col">Attempts</th>
              <th scope="col">Started</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((j) => (
              <tr key={j.executionId}>
                <td>{j.jobName}</td>
                <td>
                  <Status tone={tone[j.state]}>{JobState[j.state]?.toLowerCase() ?? "unknown"}</Status>
                </td>
                <td>{j.retries + 1}</td>
                <td>{age(timestampMs(j.createdAt))} ago</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Section>
  );
}
