/**
 * The Skaffold session of an environment (proto.SkaffoldService), kept in its EnvironmentDO's
 * SQLite storage: the event log, the folded State (with the auto triggers) and, per rollout
 * of a capsule here, how far its Skaffold deploy and status-check events have got.
 *
 * The State is stored, not re-folded from the log: Execute and the auto triggers change it
 * without logging an event (as in Skaffold), so the log alone cannot rebuild it. Each change
 * writes the state and its log entry in one transaction, so the two never disagree, and
 * GetState is one row read however long the log grows. An intent no runner has taken yet is
 * kept too, and waits for one.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  type Event,
  EventSchema,
  type Intent,
  IntentSchema,
  type LogEntry,
  LogEntrySchema,
  MetadataSchema,
  type State,
  StateSchema,
} from "../../../proto/gen/skaffold/v1/skaffold_pb";
import { invalidArgument } from "../../../workers/core/errors";
import type { RolloutSummary } from "../../rollout/rollout";
import {
  applyIntent,
  type AutoTriggers,
  autoTrigger,
  fold,
  initialState,
  type Phase,
  problemOf,
  resetOnTrigger,
  type RolloutPhase,
  rolloutEvents,
  setAutoTrigger,
} from "./state";

/**
 * Auto triggers of a new session: on, as `skaffold dev` starts by default, so the runner's
 * dev loop reacts to file changes until a client turns a phase to manual.
 */
const DEFAULT_AUTO = { build: true, sync: true, deploy: true };

/** The phases an Execute asks the dev loop for (proto.Intent's flags). */
export type IntentFlags = Pick<Intent, "build" | "sync" | "deploy" | "devloop">;

/**
 * Where State says that an intent waits for a runner: `metadata.additional` is Skaffold's
 * free-form map, and State has no other place for a message.
 */
export const PENDING_INTENT = "pendingIntent";

/** One log entry: its sequence number and the proto.LogEntry. */
export interface SkaffoldLogRow {
  seq: number;
  entry: LogEntry;
}

export class SkaffoldSession {
  private readonly sql: SqlStorage;

  constructor(private readonly storage: DurableObjectStorage) {
    this.sql = storage.sql;
  }

  /** The current State. */
  state(): State {
    const row = this.sql.exec<{ state: ArrayBuffer }>("SELECT state FROM skaffold_state").toArray()[0];
    return row ? fromBinary(StateSchema, new Uint8Array(row.state)) : initialState(DEFAULT_AUTO);
  }

  private save(state: State): void {
    this.sql.exec(
      "INSERT INTO skaffold_state (singleton, state) VALUES (1, ?1) ON CONFLICT DO UPDATE SET state = ?1",
      toBinary(StateSchema, state),
    );
  }

  /**
   * Handle (a proto.Event): folds the event into State and appends it to the log,
   * stamped with the server's time and entry text. Refuses (invalid_argument) an event that
   * cannot be folded. Returns the entry's sequence number.
   */
  handle(event: Event, now = Date.now()): number {
    const bad = problemOf(event);
    if (bad) throw invalidArgument(bad.field, bad.problem);
    return this.storage.transactionSync(() => this.append(event, now));
  }

  private append(event: Event, now: number): number {
    const { state, entry } = fold(this.state(), event);
    const bytes = toBinary(LogEntrySchema, create(LogEntrySchema, { timestamp: timestampFromMs(now), event, entry }));
    const { seq } = this.sql.exec<{ seq: number }>("INSERT INTO skaffold_log (entry) VALUES (?) RETURNING seq", bytes).one();
    this.save(state);
    return seq;
  }

  /** Log entries after `after`, oldest first, at most `limit`. */
  after(after: number, limit = 500): SkaffoldLogRow[] {
    return this.sql
      .exec<{ seq: number; entry: ArrayBuffer }>("SELECT seq, entry FROM skaffold_log WHERE seq > ? ORDER BY seq LIMIT ?", after, limit)
      .toArray()
      .map((r) => ({ seq: r.seq, entry: fromBinary(LogEntrySchema, new Uint8Array(r.entry)) }));
  }

  /** What an Execute (a proto.Intent) asks for; undefined for nothing (a no-op, as in Skaffold). */
  intentOf(intent: Intent | undefined): IntentFlags | undefined {
    if (!intent) return undefined;
    const { build, sync, deploy, devloop } = intent;
    return build || sync || deploy || devloop ? { build, sync, deploy, devloop } : undefined;
  }

  /**
   * A runner took `intent`: State changes as Skaffold's Execute changes it before its dev loop
   * runs the intent, and no intent waits any more.
   */
  delivered(intent: IntentFlags): void {
    this.storage.transactionSync(() => {
      const state = applyIntent(this.state(), create(IntentSchema, intent));
      if (state.metadata) delete state.metadata.additional[PENDING_INTENT];
      this.save(state);
      this.sql.exec("DELETE FROM skaffold_pending_intent");
    });
  }

  /**
   * No runner took `intent`: it waits, together with any intent already waiting, and State
   * says so (`why`) under `metadata.additional.pendingIntent`. Nothing else in State changes,
   * since nothing has happened yet.
   */
  pend(intent: IntentFlags, why: string): void {
    this.storage.transactionSync(() => {
      const before = this.pending();
      const merged = Object.fromEntries((["build", "sync", "deploy", "devloop"] as const).map((k) => [k, intent[k] || !!before?.[k]])) as IntentFlags;
      this.sql.exec(
        "INSERT INTO skaffold_pending_intent (singleton, intent) VALUES (1, ?1) ON CONFLICT DO UPDATE SET intent = ?1",
        toBinary(IntentSchema, create(IntentSchema, merged)),
      );
      const state = this.state();
      state.metadata ??= create(MetadataSchema);
      const phases = (Object.keys(merged) as (keyof IntentFlags)[]).filter((k) => merged[k]);
      state.metadata.additional[PENDING_INTENT] = `${phases.join(", ")} asked for and waiting: ${why}`;
      this.save(state);
    });
  }

  /** The intent waiting for a runner, if any. */
  pending(): IntentFlags | undefined {
    const row = this.sql.exec<{ intent: ArrayBuffer }>("SELECT intent FROM skaffold_pending_intent").toArray()[0];
    return row ? this.intentOf(fromBinary(IntentSchema, new Uint8Array(row.intent))) : undefined;
  }

  /**
   * AutoBuild, AutoSync, AutoDeploy: sets the phase's auto trigger, and nothing else (see
   * `triggered`). A value that changes nothing is refused with already_exists, as Skaffold
   * does (HTTP 409 on its gateway).
   */
  setAutoTrigger(phase: Phase, enabled: boolean): AutoTriggers {
    this.storage.transactionSync(() => {
      const state = this.state();
      // Skaffold's words, which its clients may show.
      if (autoTrigger(state, phase) === enabled) throw new ConnectError(`auto ${phase} is already set to ${enabled}`, Code.AlreadyExists);
      this.save(setAutoTrigger(state, phase, enabled));
    });
    return this.autoTriggers();
  }

  /** A runner learnt that `phase`'s trigger was turned on, so the phase runs: State resets it as Skaffold does. */
  triggered(phase: Phase): void {
    this.storage.transactionSync(() => this.save(resetOnTrigger(this.state(), phase)));
  }

  /** The auto triggers as State holds them. */
  autoTriggers(): AutoTriggers {
    const s = this.state();
    return { build: autoTrigger(s, "build"), sync: autoTrigger(s, "sync"), deploy: autoTrigger(s, "deploy") };
  }

  /**
   * A rollout of a capsule in the environment moved: logs the Skaffold deploy and status-check
   * events of its move (none when it did not get anywhere new). Returns how many were logged.
   */
  onRollout(summary: RolloutSummary, now = Date.now()): number {
    const { projectId, capsuleId, rolloutId } = summary;
    return this.storage.transactionSync(() => {
      const phase = this.sql
        .exec<{ phase: RolloutPhase }>("SELECT phase FROM skaffold_rollouts WHERE project_id = ? AND capsule_id = ? AND rollout_id = ?", projectId, capsuleId, rolloutId)
        .toArray()[0]?.phase;
      const next = rolloutEvents(phase, summary);
      for (const e of next.events) this.append(create(EventSchema, e), now);
      // Ended rows stay (one per rollout, like the object's rollouts table): a late report about an ended rollout logs nothing.
      if (next.phase !== phase) {
        this.sql.exec(
          "INSERT INTO skaffold_rollouts (project_id, capsule_id, rollout_id, phase) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO UPDATE SET phase = ?4",
          projectId,
          capsuleId,
          rolloutId,
          next.phase,
        );
      }
      return next.events.length;
    });
  }
}
