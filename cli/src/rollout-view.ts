/**
 * What a person sees of a rollout while waiting for it: each stage's steps as they change, one
 * line each, and its instances as a progress bar. Without a terminal (or with NO_COLOR), the
 * same as plain lines: a step's line when it changes, the instance count when it changes.
 */
import { MultiBar, Presets, type SingleBar } from "cli-progress";
import ora, { type Ora } from "ora";
import { type Status, type StepInfo, StepState } from "../../proto/gen/api/v1/capsule/rollout/status_pb";
import { color, fancy, say } from "./terminal";

/** A step of a rollout's status, flattened: which stage, and its info. */
export interface StepLine {
  stage: string;
  info: StepInfo;
}

/** Every step of every stage that has started, in stage order. */
export function stepsOf(status: Status | undefined): StepLine[] {
  const stages = status?.stages;
  const lines: StepLine[] = [];
  const add = (stage: string, infos: (StepInfo | undefined)[]) => {
    for (const info of infos) if (info) lines.push({ stage, info });
  };
  add("configure", (stages?.configure?.steps ?? []).map((s) => (s.step.case ? s.step.value.info : undefined)));
  add("resource creation", (stages?.resourceCreation?.steps ?? []).map((s) => (s.step.case ? s.step.value.info : undefined)));
  add("running", (stages?.running?.steps ?? []).map((s) => (s.step.case ? s.step.value.info : undefined)));
  return lines;
}

/** The running stage's instance counts, once the rollout is running. */
export function instancesOf(status: Status | undefined) {
  for (const s of status?.stages?.running?.steps ?? []) if (s.step.case === "instances") return s.step.value;
  return undefined;
}

const mark = (state: StepState) =>
  state === StepState.DONE ? color.green("✔") : state === StepState.FAILED ? color.red("✖") : color.cyan("•");

export class RolloutView {
  private readonly seen = new Map<string, string>();
  private spinner: Ora | undefined;
  private bars: MultiBar | undefined;
  private bar: SingleBar | undefined;
  private lastCount = "";

  constructor(private readonly quiet = false) {}

  /** A line that stays (above the spinner or the bar). */
  line(text: string): void {
    if (this.quiet) return;
    if (this.bars) this.bars.log(`${text}\n`);
    else if (this.spinner?.isSpinning) {
      this.spinner.clear();
      say(text);
      this.spinner.render();
    } else say(text);
  }

  /** What is being waited for, as a spinner (on a terminal only). */
  waiting(text: string): void {
    if (!fancy || this.bars || this.quiet) return;
    this.spinner ??= ora({ stream: process.stdout, discardStdin: false });
    this.spinner.text = text;
    if (!this.spinner.isSpinning) this.spinner.start();
  }

  /** Shows what changed in `status` since the last call. */
  update(status: Status | undefined, replicas: number): void {
    if (this.quiet) return;
    for (const { stage, info } of stepsOf(status)) {
      const key = `${stage}/${info.name}`;
      const now = `${info.state}|${info.message}`;
      if (this.seen.get(key) === now) continue;
      this.seen.set(key, now);
      // The instances step's counts are the bar's; its line is printed when it ends.
      if (key === "running/instances" && info.state === StepState.ONGOING) continue;
      this.line(`  ${mark(info.state)} ${color.dim(`${stage}:`)} ${info.name}${info.message ? ` — ${info.message}` : ""}`);
      if (info.state === StepState.ONGOING) this.waiting(`${stage}: ${info.message || info.name}`);
    }
    const instances = instancesOf(status);
    if (instances) this.instances(instances.numReady, replicas, instances.numStuck, instances.numWrongVersion);
  }

  private instances(ready: number, total: number, stuck: number, wrongVersion: number): void {
    const detail = [stuck && `${stuck} stuck`, wrongVersion && `${wrongVersion} running another rollout`].filter(Boolean).join(", ");
    if (!fancy) {
      const count = `  instances: ${ready} of ${total} ready${detail ? ` (${detail})` : ""}`;
      if (count !== this.lastCount) say(count);
      this.lastCount = count;
      return;
    }
    this.spinner?.stop();
    if (!this.bars) {
      this.bars = new MultiBar({ stream: process.stdout, format: `  instances [{bar}] {value}/{total} ready {detail}`, hideCursor: true, clearOnComplete: false, barsize: 30 }, Presets.shades_classic);
      this.bar = this.bars.create(total, ready, { detail });
    }
    this.bar?.setTotal(total);
    this.bar?.update(ready, { detail: detail ? color.yellow(detail) : "" });
  }

  /** Ends the animation; lines printed after this stay below it. */
  stop(): void {
    this.spinner?.stop();
    this.bars?.stop();
    this.bars = undefined;
  }
}
