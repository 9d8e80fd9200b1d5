/** Small building blocks every page uses: fields, buttons, errors, status badges, empty states. */
import type { ButtonHTMLAttributes, ComponentChildren, InputHTMLAttributes, SelectHTMLAttributes } from "preact";
import { useCallback, useEffect, useId, useRef, useState } from "preact/hooks";
import { describeError } from "../api/errors";

/** A labelled input. */
export function Field(props: { label: string; hint?: string } & InputHTMLAttributes<HTMLInputElement>) {
  const { label, hint, ...input } = props;
  const id = useId();
  return (
    <div class="field">
      <label for={id}>{label}</label>
      <input id={id} aria-describedby={hint ? `${id}-hint` : undefined} {...input} />
      {hint && (
        <small id={`${id}-hint`} class="hint">
          {hint}
        </small>
      )}
    </div>
  );
}

/** A labelled select. */
export function Select(props: { label: string; options: { value: string; label?: string }[] } & SelectHTMLAttributes<HTMLSelectElement>) {
  const { label, options, ...select } = props;
  const id = useId();
  return (
    <div class="field">
      <label for={id}>{label}</label>
      <select id={id} {...select}>
        {options.map((o) => (
          <option key={o.value} value={o.value}>
            {o.label ?? o.value}
          </option>
        ))}
      </select>
    </div>
  );
}

/** An error as the API said it (code and message), shown where the action was. */
export function ErrorNote({ error }: { error: unknown }) {
  if (!error) return null;
  const { code, message } = describeError(error);
  return (
    <p class="error" role="alert">
      <code>{code}</code> {message}
    </p>
  );
}

export type Tone = "ok" | "progress" | "warn" | "bad" | "neutral";

/** A status in words, coloured by tone (the words carry the meaning, the colour helps). */
export function Status({ tone, children }: { tone: Tone; children: ComponentChildren }) {
  return <span class={`status status-${tone}`}>{children}</span>;
}

/** What an empty list means and what to do next. */
export function Empty({ children }: { children: ComponentChildren }) {
  return <div class="empty">{children}</div>;
}

/** A titled block of a page. */
export function Section(props: { title: string; actions?: ComponentChildren; children: ComponentChildren; id?: string }) {
  const id = useId();
  return (
    <section class="card" aria-labelledby={id} id={props.id}>
      <header class="card-head">
        <h2 id={id}>{props.title}</h2>
        {props.actions && <div class="actions">{props.actions}</div>}
      </header>
      {props.children}
    </section>
  );
}

/** Loading, loaded or failed data from `load`, with `reload`; reloads when `deps` change. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]) {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(true);
  const generation = useRef(0);
  const reload = useCallback(async () => {
    const mine = ++generation.current;
    setLoading(true);
    try {
      const value = await load();
      if (mine === generation.current) {
        setData(value);
        setError(null);
      }
    } catch (err) {
      if (mine === generation.current) setError(err);
    } finally {
      if (mine === generation.current) setLoading(false);
    }
    // `load` is a new closure on every render; what it reads is what the caller lists in `deps`.
  }, deps);
  useEffect(() => {
    void reload();
  }, [reload]);
  return { data, error, loading, reload };
}

/** Runs an action, tracking whether it is busy and how it failed. */
export function useAction<A extends unknown[]>(run: (...args: A) => Promise<unknown>) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const go = async (...args: A) => {
    setBusy(true);
    setError(null);
    try {
      await run(...args);
      return true;
    } catch (err) {
      setError(err);
      return false;
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, run: go, clear: () => setError(null) };
}

/** A submit button that says when its work is under way. */
export function Submit({ busy, children, ...rest }: { busy: boolean; children: ComponentChildren } & ButtonHTMLAttributes<HTMLButtonElement>) {
  return (
    <button type="submit" disabled={busy} aria-busy={busy} {...rest}>
      {busy ? "Working…" : children}
    </button>
  );
}

/** Time since `ms`, e.g. "3m" or "2h". */
export function age(ms: number | undefined, now = Date.now()): string {
  if (!ms) return "—";
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}
