/**
 * The environment's services: their storage and their state machine. The spec says what the
 * service should be (its desired phase, a session per run); the status is what the runner
 * last reported. Nothing here claims that something runs: phases move on runner reports.
 */
import { create, equals, type MessageShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  type CreateServiceRequestSchema,
  type ListServicesRequestSchema,
  type Service,
  ServicePhase,
  ServiceSchema,
  ServiceSpec_CommandsSchema,
  ServiceSpecSchema,
  type Task,
  type UpdateServiceRequest_ServiceStatus,
  type UpdateServiceRequestSchema,
} from "../../../proto/gen/gitpod/v1/environment_automation_pb";
import type { Subject } from "../../../proto/gen/gitpod/v1/identity_pb";
import { uuidv7 } from "../../../workers/core/gitpod-ids";
import { alreadyExists, bounded, failedPrecondition, invalidArgument, permissionDenied, quote } from "../../../workers/core/errors";
import type { RunnerMessage } from "../../../proto/frames/runner";
import { mergeOutput, SERVICE_PHASES, serviceDesired } from "./messages";
import { type Op, WAITING } from "./op";
import { AutomationTable, asJsonList, nextVersion, type Page, pageOf } from "./table";
import { checkEnv, checkNewName, checkReadiness, checkReference, checkRole, checkRunsOn, checkTriggers } from "./validation";

/** A service whose process may be alive: it must be stopped before its spec changes or it goes. */
export const isActive = (s: Service) => [ServicePhase.STARTING, ServicePhase.RUNNING, ServicePhase.STOPPING].includes(s.status!.phase);
const servicePhaseName = (p: ServicePhase) => ServicePhase[p];

interface ServiceReport {
  phase?: ServicePhase;
  failureMessage?: string;
  logUrl?: string;
  session?: string;
  output?: Record<string, string>;
}

function statusReport(s: UpdateServiceRequest_ServiceStatus): ServiceReport {
  if (s.phase !== undefined && !(s.phase in ServicePhase)) throw invalidArgument("status.phase", `${s.phase} is not a ServicePhase`);
  return { phase: s.phase, failureMessage: s.failureMessage, logUrl: s.logUrl, session: s.session, output: s.output };
}

/** What the automations file or a create specifies of a service's spec. */
export type ServiceSpecPart = Pick<NonNullable<Service["spec"]>, "commands" | "runsOn" | "env" | "readinessTimeout">;

/** Sets what the file or a create specifies of a service's spec; true when that changed it. */
export function setServiceSpec(s: Service, part: ServiceSpecPart): boolean {
  const before = create(ServiceSpecSchema, { commands: s.spec!.commands, runsOn: s.spec!.runsOn, env: s.spec!.env, readinessTimeout: s.spec!.readinessTimeout });
  const after = create(ServiceSpecSchema, part);
  Object.assign(s.spec!, { commands: part.commands, runsOn: part.runsOn, env: part.env ?? [], readinessTimeout: part.readinessTimeout });
  return !equals(ServiceSpecSchema, before, after);
}

/** What services need of the rest: executions follow services, and tasks may depend on them. */
export interface ServiceLinks {
  /** Moves ongoing executions on after a service changed. */
  advance(op: Op): void;
  /** Tasks that depend on the automation `id`. */
  dependents(id: string): Task[];
}

export class Services extends AutomationTable<typeof ServiceSchema> {
  constructor(
    sql: SqlStorage,
    private readonly links: ServiceLinks,
  ) {
    super(sql, "automation_services", ServiceSchema, "service");
  }






  /** A service as it is before anything was asked of it: stopped, with a first session. */
  fresh(id: string, op: Op, creator: Subject): Service {
    return create(ServiceSchema, {
      id,
      environmentId: op.environmentId,
      metadata: { createdAt: timestampFromMs(op.now), creator },
      spec: { specVersion: nextVersion(this.sql), desiredPhase: ServicePhase.STOPPED, session: uuidv7(op.now) },
      // Nothing was ever asked to run it.
      status: { statusVersion: nextVersion(this.sql), phase: ServicePhase.STOPPED },
    });
  }

  /** CreateService. */
  create(req: MessageShape<typeof CreateServiceRequestSchema>, id: string, op: Op, creator: Subject): Service {
    const m = req.metadata;
    checkReference("metadata.reference", m?.reference ?? "");
    if (!m?.name) throw invalidArgument("metadata.name", "is required");
    checkTriggers("metadata.triggered_by", m.triggeredBy, false);
    checkRole(m.role);
    const spec = req.spec;
    if (!spec?.commands?.start) throw invalidArgument("spec.commands.start", "is required: the command that runs the service");
    checkRunsOn("spec.runs_on", spec.runsOn);
    checkEnv("spec.env", spec.env);
    checkReadiness("spec.readiness_timeout", spec.readinessTimeout);
    const desired = spec.desiredPhase;
    if (![ServicePhase.UNSPECIFIED, ServicePhase.RUNNING, ServicePhase.STOPPED].includes(desired)) {
      throw invalidArgument("spec.desired_phase", `${servicePhaseName(desired) ?? desired} cannot be asked for at creation: use SERVICE_PHASE_RUNNING or SERVICE_PHASE_STOPPED`);
    }
    if (this.hasReference(m.reference)) {
      throw alreadyExists(`service with reference ${bounded(m.reference)} in environment ${bounded(op.environmentId)}`);
    }
    const s = this.fresh(id, op, creator);
    Object.assign(s.metadata!, { reference: m.reference, name: m.name, description: m.description, triggeredBy: m.triggeredBy, role: m.role });
    setServiceSpec(s, { commands: spec.commands, runsOn: spec.runsOn, env: spec.env, readinessTimeout: spec.readinessTimeout });
    this.save(s, false);
    op.created.push(s.id);
    op.emit("service.created", { serviceId: s.id, reference: m.reference });
    if (desired === ServicePhase.RUNNING) this.start(s, op);
    return this.get(s.id)!;
  }

  /** A new spec version; with `restart`, a new session too, so the runner restarts the service. */
  touchSpec(s: Service, op: Op, restart: boolean): void {
    s.spec!.specVersion = nextVersion(this.sql);
    if (restart) s.spec!.session = uuidv7(op.now);
    this.noteWaiting(s, op);
    op.send(serviceDesired(s));
  }

  /**
   * The service's status text while its desired phase cannot be reached for want of a runner;
   * cleared once one is connected. Returns whether the status changed.
   */
  private noteWaiting(s: Service, op: Op): boolean {
    const st = s.status!;
    const desired = s.spec!.desiredPhase;
    let note = "";
    if (!op.runner) {
      if (desired === ServicePhase.RUNNING && !isActive(s)) note = op.waiting("start the service");
      else if (desired !== ServicePhase.RUNNING && isActive(s)) note = op.waiting("stop the service");
    }
    if (note === st.failureMessage) return false;
    // Clear only our own note: a failure the runner reported stays until the next report.
    if (!note && !st.failureMessage.startsWith(WAITING)) return false;
    st.failureMessage = note;
    st.statusVersion = nextVersion(this.sql);
    return true;
  }

  /** `advance` false: called while an execution is being advanced, which must not be re-entered. */
  private setDesired(s: Service, phase: ServicePhase, op: Op, restart: boolean, advance = true): void {
    s.spec!.desiredPhase = phase;
    this.touchSpec(s, op, restart);
    this.save(s);
    op.emit("service.updated", { serviceId: s.id, reference: s.metadata!.reference, desiredPhase: servicePhaseName(phase) });
    if (advance) this.links.advance(op);
  }

  /**
   * StartService: no-op when it is already starting or running, or asked to run with no report
   * on that session yet (a trigger and a task depending on it start it once, not twice); an
   * ended service gets a new session.
   */
  start(s: Service, op: Op, advance = true): void {
    if (s.spec!.desiredPhase === ServicePhase.DELETED) throw failedPrecondition(`service ${s.metadata!.reference} is being deleted`);
    if (s.spec!.desiredPhase === ServicePhase.RUNNING && (isActive(s) || s.status!.session !== s.spec!.session)) return;
    this.setDesired(s, ServicePhase.RUNNING, op, !isActive(s), advance);
  }

  /** StopService: no-op when it is already meant to stop. */
  stop(s: Service, op: Op): void {
    if (s.spec!.desiredPhase !== ServicePhase.RUNNING) return;
    this.setDesired(s, ServicePhase.STOPPED, op, false);
  }

  /** UpdateService: present fields change; the spec only while the service is stopped. `mayReportStatus`: the caller may set its status. */
  update(req: MessageShape<typeof UpdateServiceRequestSchema>, op: Op, mayReportStatus: boolean): void {
    const s = this.require(req.id);
    const ref = s.metadata!.reference;
    const { metadata: m, spec } = req;
    checkNewName(m?.name);
    if (m?.triggeredBy) checkTriggers("metadata.triggered_by.trigger", m.triggeredBy.trigger, false);
    checkRole(m?.role);
    if (spec?.commands?.start !== undefined && !spec.commands.start) throw invalidArgument("spec.commands.start", "must not be empty");
    checkRunsOn("spec.runs_on", spec?.runsOn);
    checkEnv("spec.env", spec?.env ?? []);
    checkReadiness("spec.readiness_timeout", spec?.readinessTimeout);
    const specChange = !!spec && !!(spec.commands || spec.runsOn || spec.env.length || spec.readinessTimeout);
    if (specChange && (isActive(s) || s.spec!.desiredPhase === ServicePhase.RUNNING)) {
      throw failedPrecondition(`service ${ref} is ${servicePhaseName(s.status!.phase)} and meant to run: stop it (StopService) before changing its spec`);
    }
    const status = req.status && statusReport(req.status);
    if (status && !mayReportStatus) {
      throw permissionDenied("status: a service's status is reported by the environment's runner; runner:connect in the environment is needed to set it");
    }

    if (m) {
      const md = s.metadata!;
      if (m.name !== undefined) md.name = m.name;
      if (m.description !== undefined) md.description = m.description;
      if (m.triggeredBy) md.triggeredBy = m.triggeredBy.trigger;
      if (m.role !== undefined) md.role = m.role;
    }
    if (spec && specChange) {
      const c = s.spec!.commands ?? create(ServiceSpec_CommandsSchema);
      if (spec.commands?.start !== undefined) c.start = spec.commands.start;
      if (spec.commands?.ready !== undefined) c.ready = spec.commands.ready;
      if (spec.commands?.stop !== undefined) c.stop = spec.commands.stop;
      s.spec!.commands = c;
      if (spec.runsOn) s.spec!.runsOn = spec.runsOn;
      if (spec.env.length) s.spec!.env = spec.env;
      if (spec.readinessTimeout) s.spec!.readinessTimeout = spec.readinessTimeout;
      this.touchSpec(s, op, true);
    }
    if (m || specChange) {
      this.save(s);
      op.emit("service.updated", { serviceId: s.id, reference: ref });
    }
    if (status) this.applyStatus(s, status, op);
  }

  /**
   * DeleteService: a service that may be running is stopped first and removed once its runner
   * reports it stopped; one that is not, or with `force`, is removed at once.
   */
  delete(id: string, force: boolean, op: Op): void {
    const s = this.require(id);
    const users = this.links.dependents(id);
    if (users.length) {
      throw failedPrecondition(`tasks ${users.map((t) => t.metadata!.reference).join(", ")} depend on service ${s.metadata!.reference}: change or delete them first`);
    }
    this.remove(s, force, op);
  }

  /** Deletes without asking who depends on it (the automations file checked that). */
  remove(s: Service, force: boolean, op: Op): void {
    if (force || !isActive(s)) {
      this.drop(s, op);
      this.links.advance(op);
    } else if (s.spec!.desiredPhase !== ServicePhase.DELETED) {
      this.setDesired(s, ServicePhase.DELETED, op, false);
    }
  }

  /** Removes the service now; its runner is told to forget it. */
  private drop(s: Service, op: Op): void {
    this.sql.exec("DELETE FROM automation_services WHERE id = ?", s.id);
    s.spec!.desiredPhase = ServicePhase.DELETED;
    op.send(serviceDesired(s));
    op.deleted.push(s.id);
    op.emit("service.deleted", { serviceId: s.id, reference: s.metadata!.reference });
  }

  /** A status report (runner or UpdateService.status). */
  private applyStatus(s: Service, report: ServiceReport, op: Op): void {
    const st = s.status!;
    if (report.phase !== undefined) st.phase = report.phase;
    if (report.failureMessage !== undefined || report.phase !== undefined) st.failureMessage = report.failureMessage ?? "";
    if (report.logUrl) st.logUrl = report.logUrl;
    // A report without a session is about the current one.
    st.session = report.session || s.spec!.session;
    mergeOutput(st.output, report.output);
    st.statusVersion = nextVersion(this.sql);
    if (s.spec!.desiredPhase === ServicePhase.DELETED && !isActive(s)) {
      this.drop(s, op);
    } else {
      this.noteWaiting(s, op);
      this.save(s);
      op.emit("service.status-updated", { serviceId: s.id, reference: s.metadata!.reference, phase: servicePhaseName(st.phase) });
    }
    this.links.advance(op);
  }

  /** ListServices: a page after the id `after`. */
  list(req: MessageShape<typeof ListServicesRequestSchema>, after: string, limit: number): Page<Service> {
    const f = req.filter;
    const rows = this.select(
      `SELECT body FROM automation_services WHERE id > ?1
       AND (?2 = '[]' OR reference IN (SELECT value FROM json_each(?2)))
       AND (?3 = '[]' OR id IN (SELECT value FROM json_each(?3))) ORDER BY id`,
      after,
      asJsonList(f?.references ?? []),
      asJsonList((f?.serviceIds ?? []).map((i) => i.toLowerCase())),
    );
    // Roles are only in the body: filtered here, so the page is cut after.
    return pageOf(
      rows.filter((s) => !f?.roles.length || f.roles.includes(s.metadata!.role)),
      limit,
    );
  }

  /** The runner's report about a service. Reports about what no longer exists, or an earlier session (a process that was replaced), change nothing. */
  report(msg: Extract<RunnerMessage, { type: "service-status" }>, op: Op): void {
    const phase = SERVICE_PHASES[msg.phase];
    if (phase === undefined) throw new Error(`phase: ${quote(msg.phase)} is not one of ${Object.keys(SERVICE_PHASES).join(", ")}`);
    const s = this.get(String(msg.serviceId));
    if (!s || (msg.session && msg.session !== s.spec!.session)) return;
    this.applyStatus(s, { ...msg, phase }, op);
  }

  /** After a runner's hello: every service's desired state and the complete set; what waited for a runner no longer does. */
  resend(op: Op): void {
    const services = this.all();
    for (const s of services) {
      op.send(serviceDesired(s));
      if (this.noteWaiting(s, op)) {
        this.save(s);
        op.emit("service.status-updated", { serviceId: s.id, reference: s.metadata!.reference, phase: servicePhaseName(s.status!.phase) });
      }
    }
    op.send({ type: "services-synced", serviceIds: services.map((s) => s.id) });
  }
}
