/** The shell: sign-in when signed out, otherwise the header, navigation and the routed page. */
import { useComputed } from "@preact/signals";
import { useEffect } from "preact/hooks";
import { api } from "./api/clients";
import { clearSession, session } from "./api/session";
import { Admin } from "./pages/Admin";
import { Capsule } from "./pages/Capsule";
import { DevEnvironment, DevEnvironments } from "./pages/DevEnvironments";
import { Home } from "./pages/Home";
import { Project } from "./pages/Project";
import { SignIn } from "./pages/SignIn";
import { location$, onLinkClick, routeOf } from "./router";

export function App() {
  const route = useComputed(() => routeOf(location$.value));
  useEffect(() => {
    document.addEventListener("click", onLinkClick);
    return () => document.removeEventListener("click", onLinkClick);
  }, []);
  if (!session.value) return <SignIn />;
  const r = route.value;
  const current = (page: string) => (r.page === page || (page === "home" && (r.page === "project" || r.page === "capsule")) ? "page" : undefined);
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href="/">
          edgeplane
        </a>
        <nav aria-label="Main">
          <a href="/" aria-current={current("home")}>
            Projects
          </a>
          <a href="/dev" aria-current={current("dev") ?? (r.page === "dev-environment" ? "page" : undefined)}>
            Dev environments
          </a>
          <a href="/admin" aria-current={current("admin")}>
            Administration
          </a>
        </nav>
        <div class="who">
          <span>{session.value.who}</span>
          <button type="button" class="secondary" onClick={signOut}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main">
        {r.page === "home" && <Home />}
        {r.page === "project" && <Project project={r.project} />}
        {r.page === "capsule" && <Capsule key={`${r.project}/${r.capsule}`} project={r.project} capsule={r.capsule} environment={r.environment} />}
        {r.page === "dev" && <DevEnvironments />}
        {r.page === "dev-environment" && <DevEnvironment key={r.id} id={r.id} />}
        {r.page === "admin" && <Admin />}
        {r.page === "not-found" && (
          <p>
            No page here. <a href="/">Go to projects</a>.
          </p>
        )}
      </main>
    </>
  );
}

async function signOut() {
  try {
    // Logout revokes the session on the server at once; forget it here even if that fails.
    await api.auth.logout({});
  } finally {
    clearSession("You signed out.");
  }
}
