/** Parsers of flag values shared by commands; each refuses a bad value as a usage error. */
import { InvalidArgumentError } from "@commander-js/extra-typings";

/** "90", "90s", "5m", "1h30m" → milliseconds. */
export function duration(value: string): number {
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  const parts = [...value.matchAll(/(\d+)(ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join("") !== value) throw new InvalidArgumentError(`"${value}" is not a duration such as 30s, 5m or 1h30m`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
  return parts.reduce((ms, [, n, u]) => ms + Number(n) * unit[u as keyof typeof unit], 0);
}

/** A non-negative integer. */
export function count(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError(`"${value}" is not a non-negative integer`);
  return Number(value);
}

/** A rollout id: a positive integer. */
export function rolloutId(value: string): bigint {
  if (!/^[1-9]\d*$/.test(value)) throw new InvalidArgumentError(`"${value}" is not a rollout id (1, 2, …)`);
  return BigInt(value);
}

/** Collects a repeatable flag's values. */
export const collect = (value: string, previous: string[] = []) => [...previous, value];

/** Collects repeatable KEY=VALUE flags. */
export function keyValues(value: string, previous: [string, string][] = []): [string, string][] {
  const i = value.indexOf("=");
  if (i <= 0) throw new InvalidArgumentError(`"${value}" is not KEY=VALUE`);
  return [...previous, [value.slice(0, i), value.slice(i + 1)]];
}
