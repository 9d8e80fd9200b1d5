/**
 * Cron schedules as Kubernetes CronJobs accept them (robfig/cron's standard parser): five
 * fields — minute, hour, day of month, month, day of week — each `*`, a value or a range `a-b`,
 * optionally followed by a step `/n` (after a single value `a`, the step runs from a to the
 * field's maximum), or a comma-separated list of those; month and weekday names (`JAN`, `MON`);
 * the macros `@hourly`, `@daily`, `@midnight`, `@weekly`, `@monthly`, `@yearly` and `@annually`.
 * Only syntax and ranges are checked: `0 0 31 2 *` is a valid schedule that never fires, as it
 * is in Kubernetes.
 */
import { invalidArgument, quote } from "../errors";

/** The times a schedule fires at, each field's values sorted; Sunday is 0 (never 7). */
export interface CronSchedule {
  minutes: number[];
  hours: number[];
  daysOfMonth: number[];
  months: number[];
  daysOfWeek: number[];
}

interface FieldSpec {
  key: keyof CronSchedule;
  label: string;
  min: number;
  max: number;
  names?: readonly string[];
}

const MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const WEEKDAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

const FIELDS: readonly FieldSpec[] = [
  { key: "minutes", label: "minute", min: 0, max: 59 },
  { key: "hours", label: "hour", min: 0, max: 23 },
  { key: "daysOfMonth", label: "day of month", min: 1, max: 31 },
  // Names are numbered from the field's minimum: JAN is 1, SUN is 0.
  { key: "months", label: "month", min: 1, max: 12, names: MONTHS },
  { key: "daysOfWeek", label: "day of week", min: 0, max: 7, names: WEEKDAYS },
];

const MACROS: Record<string, string> = {
  "@yearly": "0 0 1 1 *",
  "@annually": "0 0 1 1 *",
  "@monthly": "0 0 1 * *",
  "@weekly": "0 0 * * 0",
  "@daily": "0 0 * * *",
  "@midnight": "0 0 * * *",
  "@hourly": "0 * * * *",
};

/** A schedule that cannot be parsed; the message says which part is wrong and why. */
export class CronSyntaxError extends Error {}

/** Parses a schedule, or throws a CronSyntaxError that explains the problem. */
export function parseCron(expression: string): CronSchedule {
  const trimmed = expression.trim();
  if (!trimmed) throw new CronSyntaxError("is empty: use five fields, e.g. */15 * * * *");
  const text = trimmed.startsWith("@") ? MACROS[trimmed.toLowerCase()] : trimmed;
  if (text === undefined) throw new CronSyntaxError(`unknown macro ${quote(trimmed)}: use one of ${Object.keys(MACROS).join(", ")}`);
  const parts = text.split(/\s+/);
  if (parts.length !== 5) {
    throw new CronSyntaxError(`has ${parts.length} field${parts.length === 1 ? "" : "s"}, expected 5: minute hour day-of-month month day-of-week`);
  }
  const schedule = {} as CronSchedule;
  for (const [i, spec] of FIELDS.entries()) schedule[spec.key] = parseField(parts[i]!, spec);
  schedule.daysOfWeek = [...new Set(schedule.daysOfWeek.map((d) => d % 7))].sort((a, b) => a - b);
  return schedule;
}

/** Checks a schedule for a request field: an invalid one is `invalid_argument` naming it. */
export function checkCronSchedule(field: string, expression: string): CronSchedule {
  try {
    return parseCron(expression);
  } catch (err) {
    if (err instanceof CronSyntaxError) throw invalidArgument(field, `${quote(expression)} ${err.message}`);
    throw err;
  }
}

function parseField(text: string, spec: FieldSpec): number[] {
  const values = new Set<number>();
  for (const item of text.split(",")) {
    if (!item) throw new CronSyntaxError(`${spec.label} ${quote(text)} has an empty list element`);
    const [range, step, extra] = item.split("/");
    if (extra !== undefined) throw new CronSyntaxError(`${spec.label} ${quote(item)} has more than one '/'`);
    let [from, to] = [spec.min, spec.max];
    if (range !== "*") {
      const [a, b, more] = range!.split("-");
      if (more !== undefined) throw new CronSyntaxError(`${spec.label} ${quote(item)} has more than one '-'`);
      from = value(a!, spec);
      // `a/n` runs from a to the maximum; a lone `a` is just a.
      to = b !== undefined ? value(b, spec) : step !== undefined ? spec.max : from;
      if (from > to) throw new CronSyntaxError(`${spec.label} range ${quote(range)} starts after it ends`);
    }
    const by = step === undefined ? 1 : Number(step);
    if (step !== undefined && (!/^\d+$/.test(step) || by < 1)) {
      throw new CronSyntaxError(`${spec.label} step ${quote(step)} must be a positive whole number`);
    }
    for (let v = from; v <= to; v += by) values.add(v);
  }
  return [...values].sort((a, b) => a - b);
}

function value(text: string, spec: FieldSpec): number {
  const named = spec.names?.indexOf(text.toUpperCase()) ?? -1;
  if (named >= 0) return named + spec.min;
  if (!/^\d+$/.test(text)) {
    throw new CronSyntaxError(`${spec.label} ${quote(text)} is not a number${spec.names ? ` or a name such as ${spec.names[1]}` : ""}`);
  }
  const n = Number(text);
  if (n < spec.min || n > spec.max) throw new CronSyntaxError(`${spec.label} ${n} is out of range ${spec.min}-${spec.max}`);
  return n;
}

/**
 * The first time after `afterMs` (exclusive) that the schedule fires, in UTC, as ms since the
 * epoch; null if it never fires within five years (`0 0 31 2 *`). As in cron, when both day of
 * month and day of week are restricted a day matching either fires; a field counts as
 * restricted when it does not list every value.
 */
export function nextFireTime(s: CronSchedule, afterMs: number): number | null {
  const d = new Date(Math.floor(afterMs / 60_000) * 60_000 + 60_000);
  const limit = afterMs + 5 * 366 * 86_400_000;
  const everyDayOfMonth = s.daysOfMonth.length === 31;
  const everyDayOfWeek = s.daysOfWeek.length === 7;
  while (d.getTime() <= limit) {
    if (!s.months.includes(d.getUTCMonth() + 1)) {
      d.setUTCMonth(d.getUTCMonth() + 1, 1);
      d.setUTCHours(0, 0, 0, 0);
      continue;
    }
    const dom = s.daysOfMonth.includes(d.getUTCDate());
    const dow = s.daysOfWeek.includes(d.getUTCDay());
    if (!(everyDayOfMonth || everyDayOfWeek ? dom && dow : dom || dow)) {
      d.setUTCDate(d.getUTCDate() + 1);
      d.setUTCHours(0, 0, 0, 0);
      continue;
    }
    if (!s.hours.includes(d.getUTCHours())) {
      d.setUTCHours(d.getUTCHours() + 1, 0, 0, 0);
      continue;
    }
    if (!s.minutes.includes(d.getUTCMinutes())) {
      d.setUTCMinutes(d.getUTCMinutes() + 1, 0, 0);
      continue;
    }
    return d.getTime();
  }
  return null;
}
