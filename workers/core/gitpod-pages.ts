/**
 * Gitpod list pages, for every gitpod.v1 list: a page size of 0 means the default, above the
 * maximum is refused (defaults.gitpod.pageSize). The token is opaque to clients: base64url of
 * a JSON cursor, saying where the previous page ended in the terms of its list.
 */
import type { HandlerContext } from "@connectrpc/connect";
import { defaults } from "./config";
import { invalidArgument } from "./errors";

/** The `pagination` of a Gitpod list request (gitpod.v1.PaginationRequest). */
export interface PageRequest {
  pageSize?: number;
  token?: string;
}

/**
 * The page a list request asks for: its size, and the cursor of its token (null on the first
 * page), which must be an object `isCursor` accepts. Gitpod's Stainless SDKs send `token` and
 * `pageSize` as query parameters of the POST (auto-pagination only changes `?token=` and sends
 * the body again as it was), so those win over the body's.
 */
export function gitpodPage<C extends object>(
  ctx: HandlerContext,
  p: PageRequest | undefined,
  isCursor: (c: { [K in keyof C]?: unknown }) => boolean,
): { size: number; cursor: C | null } {
  const query = new URL(ctx.url).searchParams;
  const { default: fallback, max } = defaults.gitpod.pageSize;
  const size = query.has("pageSize") ? Number(query.get("pageSize")) : (p?.pageSize ?? 0);
  if (!Number.isInteger(size) || size < 0 || size > max) throw invalidArgument("pagination.page_size", `must be 0 (the default, ${fallback}) to ${max}`);
  return { size: size || fallback, cursor: decodeCursor(query.get("token") ?? p?.token ?? "", isCursor) };
}

/** The token of the page that starts at `cursor`. */
export const pageToken = (cursor: object) => btoa(JSON.stringify(cursor)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

function decodeCursor<C extends object>(token: string, isCursor: (c: { [K in keyof C]?: unknown }) => boolean): C | null {
  if (!token) return null;
  try {
    const c: unknown = JSON.parse(atob(token.replace(/-/g, "+").replace(/_/g, "/")));
    if (typeof c === "object" && c !== null && isCursor(c)) return c as C;
  } catch {
    // Refused below, as a token that decodes to something else is.
  }
  throw invalidArgument("pagination.token", "is not a page token of this list: pass the next_token of the previous page");
}
