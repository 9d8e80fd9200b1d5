/**
 * The signed-in session: access and refresh tokens kept in localStorage so a reload stays
 * signed in, refreshed when the API answers `unauthenticated`, dropped on sign-out or when
 * the refresh is refused (an expired or revoked session).
 */
import { signal } from "@preact/signals";

export interface Session {
  accessToken: string;
  refreshToken: string;
  /** Shown in the header: the user's email or other identifier. */
  who: string;
}

const storageKey = "edgeplane.session";

function load(): Session | null {
  try {
    const raw = localStorage.getItem(storageKey);
    if (!raw) return null;
    const v: unknown = JSON.parse(raw);
    if (v && typeof v === "object" && "accessToken" in v && "refreshToken" in v && "who" in v) {
      const { accessToken, refreshToken, who } = v;
      if (typeof accessToken === "string" && typeof refreshToken === "string" && typeof who === "string") return { accessToken, refreshToken, who };
    }
  } catch {
    // Unreadable storage: start signed out.
  }
  return null;
}

/** The current session; null when signed out. */
export const session = signal<Session | null>(load());

/** Why the last session ended, shown on the sign-in page (cleared when shown and dismissed). */
export const endedBecause = signal<string | null>(null);

/** Stores a new session (sign-in, register, token refresh). */
export function setSession(next: Session): void {
  session.value = next;
  localStorage.setItem(storageKey, JSON.stringify(next));
}

/** Forgets the session, with `reason` for the sign-in page when it ended on its own. */
export function clearSession(reason: string | null = null): void {
  session.value = null;
  endedBecause.value = reason;
  localStorage.removeItem(storageKey);
}

// Another tab signing in or out changes this tab too.
addEventListener("storage", (e) => {
  if (e.key === storageKey) session.value = load();
});
