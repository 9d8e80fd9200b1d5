import { defaults } from "./config";

/** Rig's Pagination{offset, limit, descending}: a limit of 0 or above the maximum means the default. */
export function pageOf(p?: { offset?: number; limit?: number; descending?: boolean }) {
  const { defaultLimit, maxLimit } = defaults.pagination;
  const limit = !p?.limit || p.limit > maxLimit ? defaultLimit : p.limit;
  const offset = p?.offset ?? 0;
  return {
    offset,
    limit,
    descending: p?.descending ?? false,
    /** The page of a list already in memory (one an object returned whole). */
    slice: <T>(rows: T[]): T[] => rows.slice(offset, offset + limit),
  };
}
