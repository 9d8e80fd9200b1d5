/** Deploy: image, replicas, environment variables, command and arguments, with a dry run that shows the result. */
import { type MessageInitShape, toJsonString } from "@bufbuild/protobuf";
import { useState } from "preact/hooks";
import type { ChangeSchema } from "../../../proto/gen/api/v1/capsule/change_pb";
import { RolloutConfigSchema, type Rollout } from "../../../proto/gen/api/v1/capsule/rollout_pb";
import { api } from "../api/clients";
import { ErrorNote, Field, Section, useAction } from "../ui/kit";
import type { CapsuleScope } from "./scope";

type ChangeInit = MessageInitShape<typeof ChangeSchema>;

/** The Changes the form asks for; blank fields change nothing. */
export function changesOf(form: { image: string; replicas: string; env: string; command: string; args: string }): ChangeInit[] {
  const changes: ChangeInit[] = [];
  if (form.image.trim()) changes.push({ field: { case: "addImage", value: { image: form.image.trim() } } });
  if (form.replicas.trim()) changes.push({ field: { case: "replicas", value: Number(form.replicas) } });
  for (const line of form.env.split("\n")) {
    const t = line.trim();
    if (!t) continue;
    const eq = t.indexOf("=");
    if (eq <= 0) throw new Error(`environment variable “${t}”: write NAME=value`);
    changes.push({ field: { case: "setEnvironmentVariable", value: { name: t.slice(0, eq), value: t.slice(eq + 1) } } });
  }
  if (form.command.trim() || form.args.trim()) {
    const args = form.args.split("\n").filter((a) => a.length > 0);
    changes.push({ field: { case: "commandArguments", value: { command: form.command.trim(), args } } });
  }
  return changes;
}

export function Deploy({ scope, current }: { scope: CapsuleScope; current: Rollout | undefined }) {
  const [form, setForm] = useState({ image: "", replicas: "", env: "", command: "", args: "", message: "" });
  const [preview, setPreview] = useState<{ config: string; resources: [string, string][] } | null>(null);
  const [deployed, setDeployed] = useState<bigint | null>(null);
  const set = (k: keyof typeof form) => (e: { currentTarget: { value: string } }) => setForm({ ...form, [k]: e.currentTarget.value });
  const request = (dryRun: boolean) => ({
    projectId: scope.project,
    capsuleId: scope.capsule,
    environmentId: scope.environment,
    message: form.message,
    dryRun,
    changes: changesOf(form),
  });
  const dry = useAction(async () => {
    const res = await api.capsules.deploy(request(true));
    setPreview({
      config: res.rolloutConfig ? toJsonString(RolloutConfigSchema, res.rolloutConfig, { prettySpaces: 2 }) : "{}",
      resources: Object.entries(res.resourceYaml),
    });
  });
  const deploy = useAction(async () => {
    const res = await api.capsules.deploy(request(false));
    setDeployed(res.rolloutId);
    setPreview(null);
  });
  const busy = dry.busy || deploy.busy;
  const envId = "deploy-env";
  const argsId = "deploy-args";
  return (
    <Section title="Deploy">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void deploy.run();
        }}
      >
        <Field label="Image" placeholder={current?.config?.imageId || "nginx:1.27"} value={form.image} onInput={set("image")} />
        <Field label="Replicas" type="number" min={0} placeholder={String(current?.config?.replicas ?? 1)} value={form.replicas} onInput={set("replicas")} />
        <div class="field">
          <label for={envId}>Environment variables</label>
          <textarea id={envId} rows={3} placeholder="NAME=value, one per line" value={form.env} onInput={set("env")} />
        </div>
        <Field label="Command" placeholder="leave empty for the image's" value={form.command} onInput={set("command")} />
        <div class="field">
          <label for={argsId}>Arguments</label>
          <textarea id={argsId} rows={2} placeholder="one per line" value={form.args} onInput={set("args")} />
        </div>
        <Field label="Message" placeholder="what this deploy changes" value={form.message} onInput={set("message")} />
        <div class="row">
          <button type="button" class="secondary" disabled={busy} onClick={() => void dry.run()}>
            {dry.busy ? "Working…" : "Dry run"}
          </button>
          <button type="submit" disabled={busy} aria-busy={deploy.busy}>
            {deploy.busy ? "Deploying…" : "Deploy"}
          </button>
        </div>
      </form>
      <ErrorNote error={dry.error ?? deploy.error} />
      {deployed !== null && !deploy.error && (
        <p role="status" class="notice">
          Rollout #{String(deployed)} started.
        </p>
      )}
      {preview && (
        <section class="preview" aria-label="Dry run result">
          <h3>Resulting configuration (dry run, nothing deployed)</h3>
          <pre data-testid="dry-run-config">{preview.config}</pre>
          {preview.resources.map(([name, yaml]) => (
            <details key={name}>
              <summary>{name}</summary>
              <pre>{yaml}</pre>
            </details>
          ))}
        </section>
      )}
    </Section>
  );
}
