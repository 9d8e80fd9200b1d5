/**
 * Asks edgeplane whether a token someone presented to the runner is a live logs or access
 * token of its environment (`verify-token`, answered by `token-verified`). Answers are kept a
 * minute, so a client following several logs costs one round trip; a refusal is not kept.
 */
import { randomUUID } from "node:crypto";
import type { RunnerMessage, ServerMessage } from "../../proto/frames/runner";

type Verdict = { valid: boolean; kind?: "access" | "logs"; message?: string };

/** How long a valid answer is reused. Tokens live an hour; a revoked one keeps working this long here at most. */
const KEEP_MS = 60_000;
/** An unanswered question is a refusal after this. */
const ANSWER_MS = 10_000;

export class TokenVerifier {
  private readonly asked = new Map<string, (v: Verdict) => void>();
  private readonly known = new Map<string, { verdict: Verdict; until: number }>();

  /** `send` answers false when no connection is open. */
  constructor(private readonly send: (msg: RunnerMessage) => boolean) {}

  async verify(token: string): Promise<Verdict> {
    const cached = this.known.get(token);
    if (cached && cached.until > Date.now()) return cached.verdict;
    const requestId = randomUUID();
    const answer = new Promise<Verdict>((ok) => {
      const timer = setTimeout(() => this.settle(requestId, { valid: false, message: "edgeplane did not answer in time; try again" }), ANSWER_MS);
      this.asked.set(requestId, (v) => {
        clearTimeout(timer);
        ok(v);
      });
    });
    if (!this.send({ type: "verify-token", requestId, token })) this.settle(requestId, { valid: false, message: "the runner is not connected to edgeplane now; try again" });
    const verdict = await answer;
    if (verdict.valid) this.known.set(token, { verdict, until: Date.now() + KEEP_MS });
    return verdict;
  }

  /** `token-verified`. */
  answered(msg: Extract<ServerMessage, { type: "token-verified" }>): void {
    this.settle(msg.requestId, { valid: msg.valid, kind: msg.kind, message: msg.message });
  }

  private settle(requestId: string, verdict: Verdict): void {
    const done = this.asked.get(requestId);
    this.asked.delete(requestId);
    done?.(verdict);
  }
}
