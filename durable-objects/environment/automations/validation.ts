/** Checks of automation fields shared by services, tasks and the automations file; each refusal names its field. */
import { create } from "@bufbuild/protobuf";
import type { Duration } from "@bufbuild/protobuf/wkt";
import {
  type AutomationTrigger,
  AutomationTriggerSchema,
  type EnvironmentVariableItem,
  type RunsOn,
  ServiceRole,
} from "../../../proto/gen/gitpod/v1/environment_automation_pb";
import { invalidArgument, quote } from "../../../workers/core/errors";

const REFERENCE = /^[a-zA-Z0-9_-]{1,128}$/;

export function checkReference(field: string, v: string): void {
  if (!REFERENCE.test(v)) throw invalidArgument(field, v ? `${quote(v)} must be 1-128 letters, digits, '_' or '-'` : "is required");
}

/** A renamed item's new name (`metadata.name` of an update): absent, or 1-128 characters. */
export function checkNewName(name: string | undefined): void {
  if (name !== undefined && !name) throw invalidArgument("metadata.name", "must not be empty");
  if (name !== undefined && name.length > 128) throw invalidArgument("metadata.name", "must be at most 128 characters");
}

export function checkRunsOn(field: string, r: RunsOn | undefined): void {
  if (r?.target.case === "docker" && !r.target.value.image) throw invalidArgument(`${field}.docker.image`, "is required");
}

export function checkEnv(field: string, env: EnvironmentVariableItem[]): void {
  env.forEach((e, i) => {
    if (!e.name) throw invalidArgument(`${field}[${i}].name`, "is required");
  });
}

export function checkReadiness(field: string, d: Duration | undefined): void {
  if (d && (d.seconds < 0n || d.seconds > 86_400n || (d.seconds === 86_400n && d.nanos > 0))) {
    throw invalidArgument(field, "must be between 0s and 86400s");
  }
}

export function checkRole(role: ServiceRole | undefined): void {
  if (role !== undefined && !(role in ServiceRole)) throw invalidArgument("metadata.role", `${role} is not a ServiceRole`);
}

/** Trigger names of the file format (the members of AutomationTrigger). */
const TRIGGERS = ["manual", "postMachineStart", "postEnvironmentStart", "postDevcontainerStart", "prebuild", "beforeSnapshot"] as const;
export type TriggerKind = (typeof TRIGGERS)[number];

export function checkTriggers(field: string, triggers: AutomationTrigger[], forTask: boolean): void {
  triggers.forEach((t, i) => {
    if (!t.trigger.case) throw invalidArgument(`${field}[${i}]`, "names no trigger");
    if (t.trigger.case === "beforeSnapshot" && !forTask) throw invalidArgument(`${field}[${i}]`, "beforeSnapshot triggers tasks only");
  });
}

/** The file's trigger strings as AutomationTrigger messages. */
export function fileTriggers(field: string, names: string[], forTask: boolean): AutomationTrigger[] {
  return names.map((name, i) => {
    const known = TRIGGERS.find((t) => t === name);
    if (!known || (known === "beforeSnapshot" && !forTask)) {
      const allowed = TRIGGERS.filter((t) => forTask || t !== "beforeSnapshot").join(", ");
      throw invalidArgument(`${field}[${i}]`, `${quote(name)} is not a trigger: use one of ${allowed}`);
    }
    return create(AutomationTriggerSchema, { trigger: { case: known, value: true } });
  });
}

/** The file's role names. */
export const ROLES: Record<string, ServiceRole> = {
  "": ServiceRole.UNSPECIFIED,
  default: ServiceRole.DEFAULT,
  editor: ServiceRole.EDITOR,
  "ai-agent": ServiceRole.AI_AGENT,
};
