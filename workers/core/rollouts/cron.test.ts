import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { checkCronSchedule, CronSyntaxError, nextFireTime, parseCron } from "./cron";

const range = (from: number, to: number, step = 1) => Array.from({ length: Math.floor((to - from) / step) + 1 }, (_, i) => from + i * step);

/** Why `expression` is refused. */
function refusal(expression: string): string {
  try {
    parseCron(expression);
  } catch (err) {
    expect(err).toBeInstanceOf(CronSyntaxError);
    return (err as Error).message;
  }
  throw new Error(`"${expression}" was accepted`);
}

describe("parseCron", () => {
  it("expands *, values, lists, ranges and steps", () => {
    expect(parseCron("*/15 * * * *")).toEqual({
      minutes: [0, 15, 30, 45],
      hours: range(0, 23),
      daysOfMonth: range(1, 31),
      months: range(1, 12),
      daysOfWeek: range(0, 6),
    });
    expect(parseCron("0 3 * * 1-5")).toMatchObject({ minutes: [0], hours: [3], daysOfWeek: [1, 2, 3, 4, 5] });
    expect(parseCron("5,10-12,50-59/5 0-23/6 1,15 */3 *")).toMatchObject({
      minutes: [5, 10, 11, 12, 50, 55],
      hours: [0, 6, 12, 18],
      daysOfMonth: [1, 15],
      months: [1, 4, 7, 10],
    });
    // `a/n` runs from a to the field's maximum.
    expect(parseCron("10/20 * * * *").minutes).toEqual([10, 30, 50]);
  });

  it("accepts what is syntactically fine even if it never fires", () => {
    expect(parseCron("0 0 31 2 *")).toMatchObject({ daysOfMonth: [31], months: [2] });
  });

  it("treats 7 as Sunday, accepts names in any case, and surrounding or repeated spaces", () => {
    expect(parseCron("0 0 * * 7").daysOfWeek).toEqual([0]);
    expect(parseCron("0 0 * * 5-7").daysOfWeek).toEqual([0, 5, 6]);
    expect(parseCron("0 0 * jan,Jun-AUG mon-fri")).toMatchObject({ months: [1, 6, 7, 8], daysOfWeek: [1, 2, 3, 4, 5] });
    expect(parseCron("  0   12 * * SUN ").daysOfWeek).toEqual([0]);
  });

  it("expands the macros", () => {
    expect(parseCron("@hourly")).toEqual(parseCron("0 * * * *"));
    expect(parseCron("@daily")).toEqual(parseCron("0 0 * * *"));
    expect(parseCron("@midnight")).toEqual(parseCron("0 0 * * *"));
    expect(parseCron("@weekly")).toEqual(parseCron("0 0 * * 0"));
    expect(parseCron("@monthly")).toEqual(parseCron("0 0 1 * *"));
    expect(parseCron("@yearly")).toEqual(parseCron("0 0 1 1 *"));
    expect(parseCron("@ANNUALLY")).toEqual(parseCron("0 0 1 1 *"));
  });

  it("refuses values out of each field's range", () => {
    expect(refusal("61 * * * *")).toBe("minute 61 is out of range 0-59");
    expect(refusal("* 24 * * *")).toBe("hour 24 is out of range 0-23");
    expect(refusal("* * 0 * *")).toBe("day of month 0 is out of range 1-31");
    expect(refusal("* * 32 * *")).toBe("day of month 32 is out of range 1-31");
    expect(refusal("* * * 13 *")).toBe("month 13 is out of range 1-12");
    expect(refusal("* * * 0 *")).toBe("month 0 is out of range 1-12");
    expect(refusal("* * * * 8")).toBe("day of week 8 is out of range 0-7");
    expect(refusal("0-60 * * * *")).toBe("minute 60 is out of range 0-59");
  });

  it("refuses the wrong number of fields", () => {
    expect(refusal("* * *")).toBe("has 3 fields, expected 5: minute hour day-of-month month day-of-week");
    expect(refusal("0 * * * * *")).toMatch(/^has 6 fields/);
    expect(refusal("")).toMatch(/^is empty/);
    expect(refusal("   ")).toMatch(/^is empty/);
  });

  it("refuses malformed fields", () => {
    expect(refusal("*/0 * * * *")).toBe('minute step "0" must be a positive whole number');
    expect(refusal("*/ * * * *")).toBe('minute step "" must be a positive whole number');
    expect(refusal("*/x * * * *")).toMatch(/^minute step "x"/);
    expect(refusal("1/2/3 * * * *")).toMatch(/more than one '\/'/);
    expect(refusal("5-1 * * * *")).toBe('minute range "5-1" starts after it ends');
    expect(refusal("1-2-3 * * * *")).toMatch(/more than one '-'/);
    expect(refusal("1,,2 * * * *")).toMatch(/empty list element/);
    expect(refusal("1, * * * *")).toMatch(/empty list element/);
    expect(refusal("-1 * * * *")).toMatch(/^minute "" is not a number/);
    expect(refusal("a * * * *")).toBe('minute "a" is not a number');
    expect(refusal("* * * FOO *")).toBe('month "FOO" is not a number or a name such as FEB');
    expect(refusal("* * MON * *")).toMatch(/^day of month "MON" is not a number/);
    expect(refusal("1.5 * * * *")).toMatch(/not a number/);
    expect(refusal("? * * * *")).toMatch(/not a number/);
    expect(refusal("@every 5m")).toMatch(/^unknown macro "@every 5m"/);
    expect(refusal("@often")).toMatch(/^unknown macro/);
  });
});

describe("checkCronSchedule", () => {
  it("returns the schedule of a valid expression", () => {
    expect(checkCronSchedule("schedule", "0 3 * * 1-5").hours).toEqual([3]);
  });

  it("refuses an invalid one as invalid_argument naming the field and the expression", () => {
    try {
      checkCronSchedule("changes[2].add_cron_job.schedule", "61 * * * *");
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code).toBe(Code.InvalidArgument);
      expect((err as ConnectError).rawMessage).toBe('changes[2].add_cron_job.schedule: "61 * * * *" minute 61 is out of range 0-59');
    }
  });
});

describe("nextFireTime", () => {
  const at = (iso: string) => Date.parse(iso);
  const next = (expr: string, after: string) => {
    const t = nextFireTime(parseCron(expr), at(after));
    return t === null ? null : new Date(t).toISOString();
  };

  it("finds the next minute, hour, day and month that match, strictly after the given time", () => {
    expect(next("* * * * *", "2026-01-01T00:00:00Z")).toBe("2026-01-01T00:01:00.000Z");
    expect(next("* * * * *", "2026-01-01T00:00:30Z")).toBe("2026-01-01T00:01:00.000Z");
    expect(next("*/15 * * * *", "2026-01-01T10:16:00Z")).toBe("2026-01-01T10:30:00.000Z");
    expect(next("30 2 * * *", "2026-01-01T03:00:00Z")).toBe("2026-01-02T02:30:00.000Z");
    expect(next("0 0 1 * *", "2026-01-31T12:00:00Z")).toBe("2026-02-01T00:00:00.000Z");
    expect(next("@yearly", "2026-06-01T00:00:00Z")).toBe("2027-01-01T00:00:00.000Z");
    expect(next("0 12 * DEC *", "2026-01-01T00:00:00Z")).toBe("2026-12-01T12:00:00.000Z");
  });

  it("treats day of month and day of week as either-or when both are restricted", () => {
    // 2026-03-02 is a Monday; the 15th comes later.
    expect(next("0 0 15 * MON", "2026-03-01T00:00:00Z")).toBe("2026-03-02T00:00:00.000Z");
    expect(next("0 0 * * MON", "2026-03-03T00:00:00Z")).toBe("2026-03-09T00:00:00.000Z");
    expect(next("0 0 29 2 *", "2026-03-01T00:00:00Z")).toBe("2028-02-29T00:00:00.000Z");
  });

  it("answers null for a schedule that never fires", () => {
    expect(next("0 0 31 2 *", "2026-01-01T00:00:00Z")).toBeNull();
  });
});
