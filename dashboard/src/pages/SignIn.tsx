/** Sign in, or create an account where the installation allows registering. */
import { useState } from "preact/hooks";
import { publicAuth } from "../api/clients";
import { endedBecause, setSession } from "../api/session";
import { ErrorNote, Field, Submit, useAction, useLoad } from "../ui/kit";

export function SignIn() {
  const config = useLoad(() => publicAuth.getAuthConfig({}), []);
  const [mode, setMode] = useState<"sign-in" | "register">("sign-in");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const submit = useAction(async () => {
    const method = { case: "userPassword" as const, value: { identifier: { identifier: { case: "email" as const, value: email } }, password } };
    if (mode === "register") {
      const reg = await publicAuth.register({ method });
      if (reg.token?.accessToken) return signedIn(reg.token, email);
    }
    const res = await publicAuth.login({ method });
    if (!res.token) throw new Error("the login answer carried no token");
    signedIn(res.token, res.userInfo?.email || email);
  });
  const allowsRegister = config.data?.allowsRegister ?? false;
  const name = config.data?.name || "edgeplane";
  return (
    <main id="main" class="sign-in">
      <form
        class="card"
        aria-labelledby="sign-in-title"
        onSubmit={(e) => {
          e.preventDefault();
          void submit.run();
        }}
      >
        <h1 id="sign-in-title">{mode === "register" ? `Create an account on ${name}` : `Sign in to ${name}`}</h1>
        {endedBecause.value && (
          <p class="notice" role="status">
            {endedBecause.value}
          </p>
        )}
        <Field label="Email" type="email" autocomplete="username" required value={email} onInput={(e) => setEmail(e.currentTarget.value)} />
        <Field
          label="Password"
          type="password"
          autocomplete={mode === "register" ? "new-password" : "current-password"}
          required
          value={password}
          onInput={(e) => setPassword(e.currentTarget.value)}
        />
        <ErrorNote error={submit.error} />
        <Submit busy={submit.busy}>{mode === "register" ? "Create account" : "Sign in"}</Submit>
        {allowsRegister && (
          <p>
            {mode === "register" ? "Have an account? " : "New here? "}
            <button type="button" class="link" onClick={() => (submit.clear(), setMode(mode === "register" ? "sign-in" : "register"))}>
              {mode === "register" ? "Sign in instead" : "Create an account"}
            </button>
          </p>
        )}
        <ErrorNote error={config.error} />
      </form>
    </main>
  );
}

function signedIn(token: { accessToken: string; refreshToken: string }, who: string) {
  endedBecause.value = null;
  setSession({ accessToken: token.accessToken, refreshToken: token.refreshToken, who });
}
