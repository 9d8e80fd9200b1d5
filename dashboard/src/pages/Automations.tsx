/** A developer environment's automation services and tasks, with start and stop, and task executions. */
import { ServicePhase, TaskExecutionPhase } from "../../../proto/gen/gitpod/v1/environment_automation_pb";
import { api } from "../api/clients";
import { Empty, ErrorNote, Section, Status, type Tone, useAction, useLoad } from "../ui/kit";

const words = (n: string | undefined) => (n ? n.charAt(0) + n.slice(1).toLowerCase() : "Unknown");
const serviceTone = (p: ServicePhase): Tone => (p === ServicePhase.RUNNING ? "ok" : p === ServicePhase.FAILED ? "bad" : p === ServicePhase.STOPPED ? "neutral" : "progress");
const execTone = (p: TaskExecutionPhase): Tone =>
  p === TaskExecutionPhase.SUCCEEDED ? "ok" : p === TaskExecutionPhase.FAILED ? "bad" : p === TaskExecutionPhase.STOPPED ? "neutral" : "progress";

export function Automations({ environmentId, version }: { environmentId: string; version: number }) {
  const data = useLoad(async () => {
    const filter = { environmentIds: [environmentId] };
    const [s, t, x] = await Promise.all([
      api.automations.listServices({ filter }),
      api.automations.listTasks({ filter }),
      api.automations.listTaskExecutions({ filter }),
    ]);
    return { services: s.services, tasks: t.tasks, executions: x.taskExecutions };
  }, [environmentId, version]);
  const act = useAction(async (what: "start-service" | "stop-service" | "start-task" | "stop-execution", id: string) => {
    if (what === "start-service") await api.automations.startService({ id });
    if (what === "stop-service") await api.automations.stopService({ id });
    if (what === "start-task") await api.automations.startTask({ id });
    if (what === "stop-execution") await api.automations.stopTaskExecution({ id });
    await data.reload();
  });
  const d = data.data;
  const taskName = (id: string) => d?.tasks.find((t) => t.id === id)?.metadata?.name || id;
  return (
    <Section title="Automations">
      <ErrorNote error={data.error ?? act.error} />
      {d && d.services.length === 0 && d.tasks.length === 0 && <Empty>No services or tasks. Add them with an automations file (UpsertAutomationsFile) or the Gitpod SDK.</Empty>}
      {d && d.services.length > 0 && (
        <>
          <h3>Services</h3>
          <ul class="list">
            {d.services.map((s) => {
              const phase = s.status?.phase ?? ServicePhase.UNSPECIFIED;
              const on = phase === ServicePhase.RUNNING || phase === ServicePhase.STARTING;
              return (
                <li key={s.id} class="row">
                  <strong>{s.metadata?.name || s.metadata?.reference}</strong> <Status tone={serviceTone(phase)}>{words(ServicePhase[phase])}</Status>
                  {s.status?.failureMessage && <span class="error">{s.status.failureMessage}</span>}
                  <button type="button" class="secondary small" disabled={act.busy} onClick={() => void act.run(on ? "stop-service" : "start-service", s.id)}>
                    {on ? "Stop" : "Start"} {s.metadata?.name}
                  </button>
                </li>
              );
            })}
          </ul>
        </>
      )}
      {d && d.tasks.length > 0 && (
        <>
          <h3>Tasks</h3>
          <ul class="list">
            {d.tasks.map((t) => (
              <li key={t.id} class="row">
                <strong>{t.metadata?.name || t.metadata?.reference}</strong>
                <button type="button" class="secondary small" disabled={act.busy} onClick={() => void act.run("start-task", t.id)}>
                  Run {t.metadata?.name}
                </button>
              </li>
            ))}
          </ul>
        </>
      )}
      {d && d.executions.length > 0 && (
        <>
          <h3>Task executions</h3>
          <ul class="list">
            {d.executions.map((x) => {
              const phase = x.status?.phase ?? TaskExecutionPhase.UNSPECIFIED;
              const running = phase === TaskExecutionPhase.RUNNING || phase === TaskExecutionPhase.PENDING;
              return (
                <li key={x.id} class="row">
                  {taskName(x.metadata?.taskId ?? "")} <Status tone={execTone(phase)}>{words(TaskExecutionPhase[phase])}</Status>
                  {x.status?.failureMessage && <span class="error">{x.status.failureMessage}</span>}
                  {running && (
                    <button type="button" class="secondary small" disabled={act.busy} onClick={() => void act.run("stop-execution", x.id)}>
                      Stop
                    </button>
                  )}
                </li>
              );
            })}
          </ul>
        </>
      )}
    </Section>
  );
}
