import { defaults } from "./config";
import { invalidArgument } from "./errors";

/** The longest list search accepted; SQLite refuses LIKE patterns above 50,000 bytes. */
const MAX_SEARCH_CHARS = 256;

/** A LIKE pattern (ESCAPE '\\') matching `search` anywhere, `lower`ed when asked; too long a search is invalid_argument. */
export function searchPattern(field: string, search: string, lower = false): string {
  if (search.length > MAX_SEARCH_CHARS) throw invalidArgument(field, `must be at most ${MAX_SEARCH_CHARS} characters`);
  return `%${(lower ? search.toLowerCase() : search).replace(/[\\%_]/g, "\\$&")}%`;
}

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
