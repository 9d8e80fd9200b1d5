/**
 * UpsertAutomationsFile: the environment's services and tasks made to match an automations
 * file (automations.yaml), matched by reference.
 */
import { clone, create, equals } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  type AutomationsFile,
  type AutomationsFile_Service,
  type AutomationsFile_Task,
  type Service,
  ServicePhase,
  ServiceSchema,
  type Task,
  TaskSchema,
  TaskSpecSchema,
} from "../../../proto/gen/gitpod/v1/environment_automation_pb";
import type { Subject } from "../../../proto/gen/gitpod/v1/identity_pb";
import { failedPrecondition, invalidArgument, quote } from "../../../workers/core/errors";
import type { Op } from "./op";
import { type Services, type ServiceSpecPart, setServiceSpec } from "./services";
import { checkAcyclic, type TaskNode, type Tasks } from "./tasks";
import { checkReadiness, checkReference, checkRunsOn, fileTriggers, ROLES } from "./validation";

/** A file's service entry, checked; errors name it as `automations_file.services.<reference>`. */
function fileService(ref: string, f: AutomationsFile_Service) {
  const at = `automations_file.services.${ref}`;
  checkReference(at, ref);
  if (!f.name) throw invalidArgument(`${at}.name`, "is required");
  if (!f.commands?.start) throw invalidArgument(`${at}.commands.start`, "is required: the command that runs the service");
  checkRunsOn(`${at}.runs_on`, f.runsOn);
  checkReadiness(`${at}.readiness_timeout`, f.readinessTimeout);
  const role = ROLES[f.role];
  if (role === undefined) throw invalidArgument(`${at}.role`, `${quote(f.role)} is not a role: use default, editor or ai-agent`);
  return {
    metadata: { reference: ref, name: f.name, description: f.description, triggeredBy: fileTriggers(`${at}.triggered_by`, f.triggeredBy, false), role },
    spec: { commands: f.commands, runsOn: f.runsOn, env: [], readinessTimeout: f.readinessTimeout } satisfies ServiceSpecPart,
  };
}

/** A file's task entry, checked; `dependsOn` is resolved to ids by the caller. */
function fileTask(ref: string, f: AutomationsFile_Task) {
  const at = `automations_file.tasks.${ref}`;
  checkReference(at, ref);
  if (!f.name) throw invalidArgument(`${at}.name`, "is required");
  if (!f.command) throw invalidArgument(`${at}.command`, "is required: the command the task runs");
  checkRunsOn(`${at}.runs_on`, f.runsOn);
  return {
    metadata: { reference: ref, name: f.name, description: f.description, triggeredBy: fileTriggers(`${at}.triggered_by`, f.triggeredBy, true) },
    spec: create(TaskSpecSchema, { command: f.command, runsOn: f.runsOn, prebuildRequiresSuccess: f.prebuildRequiresSuccess }),
    dependsOn: [] as string[],
  };
}

/**
 * Makes the environment's services and tasks match the file, matched by reference (the map
 * keys): missing ones are created, changed ones updated in place (same id), and those an
 * earlier file created that this one no longer has are deleted. Entries made with
 * CreateService/CreateTask are left alone unless the file names their reference. Everything
 * is checked before anything is written, so a bad file changes nothing. A running service
 * whose commands the file changes is restarted (a new session); one the file drops is
 * stopped, then removed. `newId(kind:reference)`: the id of an entry made now.
 */
export function upsertAutomationsFile(
  store: { services: Services; tasks: Tasks },
  file: AutomationsFile | undefined,
  op: Op,
  creator: Subject,
  newId: (key: string) => string,
): { updatedServiceIds: string[]; updatedTaskIds: string[] } {
  const services = Object.entries(file?.services ?? {});
  const tasks = Object.entries(file?.tasks ?? {});
  const wantedServices = services.map(([ref, f]) => fileService(ref, f));
  const wantedTasks = tasks.map(([ref, f]) => fileTask(ref, f));

  const byRef = <T extends Service | Task>(items: T[]) => new Map(items.map((i) => [i.metadata!.reference, i]));
  const oldServices = byRef(store.services.all());
  const oldTasks = byRef(store.tasks.all());
  const fileServiceIds = store.services.fileIds();
  const fileTaskIds = store.tasks.fileIds();

  // Ids after the change, by reference, for dependsOn; a reference missing here is gone.
  const serviceIds = new Map<string, string>();
  for (const [ref, s] of oldServices) if (!fileServiceIds.has(s.id)) serviceIds.set(ref, s.id);
  for (const [ref] of services) serviceIds.set(ref, oldServices.get(ref)?.id ?? newId(`service:${ref}`));
  const taskIds = new Map<string, string>();
  for (const [ref, t] of oldTasks) if (!fileTaskIds.has(t.id)) taskIds.set(ref, t.id);
  for (const [ref] of tasks) taskIds.set(ref, oldTasks.get(ref)?.id ?? newId(`task:${ref}`));

  const deps = new Map<string, TaskNode>();
  for (const [ref, t] of oldTasks) if (taskIds.has(ref)) deps.set(t.id, { reference: ref, dependsOn: t.dependsOn });
  for (const [i, [ref, f]] of tasks.entries()) {
    const field = `automations_file.tasks.${ref}.depends_on`;
    const dependsOn = f.dependsOn.map((d, j) => {
      const task = taskIds.get(d);
      const service = serviceIds.get(d);
      if (task && service) throw invalidArgument(`${field}[${j}]`, `${quote(d)} names both a task and a service: rename one of them`);
      if (!task && !service) throw invalidArgument(`${field}[${j}]`, `${quote(d)} is not a task or service of this file or environment`);
      return (task ?? service)!;
    });
    wantedTasks[i]!.dependsOn = dependsOn;
    deps.set(taskIds.get(ref)!, { reference: ref, dependsOn });
  }
  checkAcyclic("automations_file.tasks", deps);

  const goneServices = [...oldServices.values()].filter((s) => !serviceIds.has(s.metadata!.reference));
  const goneTasks = [...oldTasks.values()].filter((t) => !taskIds.has(t.metadata!.reference));
  const goneRefs = new Map([...goneServices, ...goneTasks].map((x) => [x.id, x.metadata!.reference]));
  // Only tasks made with CreateTask can still depend on what goes: the file's resolve to what stays.
  for (const t of deps.values()) {
    const lost = t.dependsOn.filter((d) => goneRefs.has(d)).map((d) => goneRefs.get(d));
    if (lost.length) throw failedPrecondition(`task ${t.reference} (not from the file) depends on ${lost.join(", ")}, which the file no longer has: change or delete that task first`);
  }

  // All checked: write.
  const updatedServiceIds: string[] = [];
  const updatedTaskIds: string[] = [];
  for (const [i, [ref]] of services.entries()) {
    const old = oldServices.get(ref);
    const s = old ? clone(ServiceSchema, old) : store.services.fresh(serviceIds.get(ref)!, op, creator);
    const metaBefore = create(ServiceSchema, { metadata: clone(ServiceSchema, s).metadata });
    Object.assign(s.metadata!, wantedServices[i]!.metadata);
    const metaChanged = !equals(ServiceSchema, metaBefore, create(ServiceSchema, { metadata: s.metadata }));
    const specChanged = setServiceSpec(s, wantedServices[i]!.spec);
    // Named again while it was being deleted: it stays (stopped).
    const revived = old?.spec?.desiredPhase === ServicePhase.DELETED;
    if (revived) s.spec!.desiredPhase = ServicePhase.STOPPED;
    // Unchanged, and the file's already (not one made by CreateService that the file takes over).
    if (old && !metaChanged && !specChanged && !revived && fileServiceIds.has(s.id)) continue;
    if (old) store.services.touchSpec(s, op, specChanged);
    else op.created.push(s.id);
    store.services.save(s, true);
    op.emit(old ? "service.updated" : "service.created", { serviceId: s.id, reference: ref });
    updatedServiceIds.push(s.id);
  }
  for (const s of goneServices) store.services.remove(s, false, op);
  for (const [i, [ref]] of tasks.entries()) {
    const wanted = wantedTasks[i]!;
    const old = oldTasks.get(ref);
    const t = old ? clone(TaskSchema, old) : create(TaskSchema, { id: taskIds.get(ref)!, environmentId: op.environmentId, metadata: { createdAt: timestampFromMs(op.now), creator } });
    Object.assign(t.metadata!, wanted.metadata);
    t.spec = wanted.spec;
    t.dependsOn = wanted.dependsOn;
    if (old && equals(TaskSchema, old, t) && fileTaskIds.has(t.id)) continue;
    if (!old) op.created.push(t.id);
    store.tasks.save(t, true);
    op.emit(old ? "task.updated" : "task.created", { taskId: t.id, reference: ref });
    updatedTaskIds.push(t.id);
  }
  for (const t of goneTasks) store.tasks.remove(t, op);
  return { updatedServiceIds, updatedTaskIds };
}
