/**
 * A command's result: the API's own JSON (`toJson` of the response message) for `-o json` and
 * `-o yaml`, a table or a few lines for people otherwise.
 */
import { type DescMessage, type MessageShape, toJson } from "@bufbuild/protobuf";
import { type Timestamp, timestampDate } from "@bufbuild/protobuf/wkt";
import Table from "cli-table3";
import { stringify } from "yaml";
import type { OutputFormat } from "./session";
import { color, say } from "./terminal";

/** Prints `message` as the API's JSON or YAML, or calls `pretty` for `-o pretty`. */
export function printMessage<Desc extends DescMessage>(format: OutputFormat, schema: Desc, message: MessageShape<Desc>, pretty: () => void): void {
  if (format === "pretty") pretty();
  else printJson(format, toJson(schema, message));
}

/** Prints a plain JSON value (for results that are not one API message). */
export function printJson(format: Exclude<OutputFormat, "pretty">, value: unknown): void {
  process.stdout.write(format === "json" ? `${JSON.stringify(value, null, 2)}\n` : stringify(value));
}

/** Prints rows as a borderless table with a header, like kubectl's. */
export function printTable(head: string[], rows: (string | number)[][]): void {
  if (rows.length === 0) {
    say(color.dim("(none)"));
    return;
  }
  const table = new Table({
    head: head.map((h) => color.bold(h.toUpperCase())),
    style: { head: [], border: [], "padding-left": 0, "padding-right": 3 },
    chars: { top: "", "top-mid": "", "top-left": "", "top-right": "", bottom: "", "bottom-mid": "", "bottom-left": "", "bottom-right": "", left: "", "left-mid": "", mid: "", "mid-mid": "", right: "", "right-mid": "", middle: "" },
  });
  table.push(...rows.map((r) => r.map(String)));
  say(table.toString().replace(/[ \t]+$/gm, ""));
}

/** Prints label/value pairs, one a line. */
export function printFields(fields: [string, string | number | undefined][]): void {
  const width = Math.max(...fields.map(([k]) => k.length));
  for (const [k, v] of fields) say(`${color.bold(k.padEnd(width))}  ${v ?? ""}`);
}

/** A timestamp for a table: ISO-8601 to the second, or "-". */
export const when = (t: Timestamp | undefined) => (t ? timestampDate(t).toISOString().replace(/\.\d+Z$/, "Z") : "-");

/** "3m ago" style age of a timestamp. */
export function age(t: Timestamp | undefined, now = Date.now()): string {
  if (!t) return "-";
  const s = Math.max(0, Math.round((now - timestampDate(t).getTime()) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}
