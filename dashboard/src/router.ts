/**
 * Which page is shown: the URL's path, as a signal. Paths are the dashboard's own
 * (`/p/<project>/c/<capsule>`), never the API's (`/environments/…`, `/projects/…`, `/<service>/<method>`),
 * because the Worker answers those before it falls back to the dashboard.
 */
import { signal } from "@preact/signals";

export const location$ = signal(new URL(location.href));

/** Goes to `href` (same origin) without a reload. */
export function navigate(href: string, replace = false): void {
  if (replace) history.replaceState(null, "", href);
  else history.pushState(null, "", href);
  location$.value = new URL(location.href);
  scrollTo(0, 0);
}

addEventListener("popstate", () => (location$.value = new URL(location.href)));

/** A parsed route. */
export type Route =
  | { page: "home" }
  | { page: "project"; project: string }
  | { page: "capsule"; project: string; capsule: string; environment: string | null }
  | { page: "dev" }
  | { page: "dev-environment"; id: string }
  | { page: "admin" }
  | { page: "not-found" };

/** The route of `url`. */
export function routeOf(url: URL): Route {
  const parts = url.pathname.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts.length === 0) return { page: "home" };
  if (parts[0] === "p" && parts.length === 2) return { page: "project", project: parts[1]! };
  if (parts[0] === "p" && parts[2] === "c" && parts.length === 4) {
    return { page: "capsule", project: parts[1]!, capsule: parts[3]!, environment: url.searchParams.get("env") };
  }
  if (parts[0] === "dev" && parts.length === 1) return { page: "dev" };
  if (parts[0] === "dev" && parts.length === 2) return { page: "dev-environment", id: parts[1]! };
  if (parts[0] === "admin" && parts.length === 1) return { page: "admin" };
  return { page: "not-found" };
}

/** Intercepts clicks on same-origin links so they navigate without a reload. */
export function onLinkClick(e: MouseEvent): void {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = e.target instanceof Element ? e.target.closest("a") : null;
  if (!a || a.target || a.origin !== location.origin || a.hasAttribute("download")) return;
  e.preventDefault();
  navigate(a.pathname + a.search + a.hash);
}
