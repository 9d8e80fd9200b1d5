/** The environment's automations (gitpod.v1.EnvironmentAutomationService): calls, runner reports and triggers, each one transaction. */
import { indexStatements, unindex } from "../../../workers/d1/automation-index";
import { create } from "@bufbuild/protobuf";
import { EnvironmentPhase } from "../../../proto/gen/gitpod/v1/environment_pb";
import { SubjectSchema } from "../../../proto/gen/gitpod/v1/identity_pb";
import { permissionDenied } from "../../../workers/core/errors";
import type { AutomationCaller } from "./api";
import { Op } from "./op";
import { AutomationStores } from "./stores";
import type { DevEnvironmentState } from "../dev/store";
import type { EnvironmentHost } from "../host";
import { attempt, type Outcome } from "../../../workers/core/outcome";
import type { RunnerMessage } from "../../../proto/frames/runner";

export class EnvironmentAutomations {
  /** Services, tasks and task executions (stores.ts), created on first use; `destroy` drops it. */
  private store?: AutomationStores;

  constructor(private readonly host: EnvironmentHost) {}

  /** Forgets the store: `destroy` deleted its tables. */
  reset(): void {
    this.store = undefined;
  }

  private automations(): AutomationStores {
    return (this.store ??= new AutomationStores(this.host.open().sql));
  }

  /**
   * Runs `fn` as one transaction together with the events it collected, then sends the runner
   * what it must hear. Synchronous throughout, so calls and runner reports never interleave.
   */
  op<T>(fn: (store: AutomationStores, op: Op) => T): T {
    const op = new Op(this.host.requireIdentity().environmentId, this.host.runner()?.name ?? null);
    // Outside the transaction: a refused call must not roll back the creation of the tables.
    const store = this.automations();
    const result = this.host.ctx.storage.transactionSync(() => {
      const value = fn(store, op);
      for (const e of op.events) this.host.stream.publish(e.type, e.data);
      return value;
    });
    for (const m of op.messages) this.host.toRunner(m);
    return result;
  }

  /**
   * One gitpod.v1.EnvironmentAutomationService call about this environment (api.ts); null
   * when the environment does not exist. A `change` of the automations of a non-ephemeral
   * environment runs commands in it, so that needs `environment:edit` there.
   */
  call<T>(change: boolean, caller: AutomationCaller, fn: (store: AutomationStores, op: Op) => T): Promise<Outcome<T | null>> {
    return attempt(() => {
      const identity = this.host.identity();
      if (!identity) return null;
      if (change && !identity.ephemeral && !caller.mayEditPermanent) {
        throw permissionDenied(`environment ${identity.environmentId} is not ephemeral: changing its automations needs environment:edit there`);
      }
      return this.op(fn);
    });
  }

  /** A runner's report about a service or a task step. */
  async onReport(msg: Extract<RunnerMessage, { type: "service-status" | "task-step-status" }>): Promise<void> {
    const deleted = this.op((store, op) => {
      store.report(msg, op);
      return op.deleted;
    });
    // A deleted service that has now stopped is gone: the Worker indexed it, so it is unindexed here.
    await unindex(this.host.env, deleted);
  }

  /** After hello: every service's desired state, and the task steps still to run or to stop. */
  resend(): void {
    this.op((store, op) => store.resync(op));
  }

  /**
   * The developer environment's phase moved from `from` to `s.phase`. Entering RUNNING from
   * anything but UPDATING is an environment start: services and tasks triggered by
   * postEnvironmentStart run, once per start (reports while RUNNING, and RUNNING <-> UPDATING,
   * are no start). postDevcontainerStart fires at the same moment: the runner reports no
   * devcontainer phase of its own, the devcontainer starts with the environment (a rebuild
   * while running is not told apart, so it fires no trigger). Entering STOPPING, STOPPED,
   * or DELETING stops what runs: services meant to run and ongoing executions (`DevEnvironment.remove`
   * does the same for an environment that goes at once).
   * Answers the executions it created, for the D1 index.
   */
  onPhase(from: EnvironmentPhase, s: DevEnvironmentState): string[] {
    const P = EnvironmentPhase;
    if (from === s.phase) return [];
    const started = s.phase === P.RUNNING && from !== P.UPDATING;
    const stopping = [P.STOPPING, P.STOPPED, P.DELETING].includes(s.phase);
    if (!started && !stopping) return [];
    return this.op((store, op) => {
      if (started) store.environmentStarted(["postEnvironmentStart", "postDevcontainerStart"], op, s.metadata.creator ?? create(SubjectSchema));
      else store.environmentStopped(op);
      return op.created;
    });
  }

  /**
   * Index rows of executions the object created itself (triggers): written right after they
   * were, where the Worker writes its before (a Get in between finds no row, hence not_found).
   */
  indexExecutions(environmentId: string, ids: string[]): D1PreparedStatement[] {
    return indexStatements(
      this.host.env,
      environmentId,
      ids.map((id) => ({ id, kind: "execution" })),
    );
  }
}
