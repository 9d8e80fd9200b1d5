import { defaults } from "../config";

/** Rig's Pagination{offset, limit, descending}: a limit of 0 or above the maximum means the default. */
export function pageOf(p?: { offset?: number; limit?: number; descending?: boolean }) {
  const { defaultLimit, maxLimit } = defaults.pagination;
  const limit = !p?.limit || p.limit > maxLimit ? defaultLimit : p.limit;
  return { offset: p?.offset ?? 0, limit, descending: p?.descending ?? false };
}
