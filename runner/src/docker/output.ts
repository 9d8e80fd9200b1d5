/**
 * The output of one process the runner started in a developer environment (a service's
 * session, a task step), kept in memory for its log URL: everything so far, then live lines
 * until the process ends. Bounded, because a chatty service runs for days.
 */

/** Characters kept per process; the oldest are dropped first (as a terminal's scrollback). */
const KEEP_CHARS = 1 << 20;

export class ProcessOutput {
  private text = "";
  private dropped = 0;
  private ended = false;
  private readonly followers = new Set<(chunk: string | null) => void>();

  /** Appends output (stdout and stderr interleaved as they came). */
  write(chunk: string): void {
    if (this.ended || !chunk) return;
    this.text += chunk;
    if (this.text.length > KEEP_CHARS) {
      const cut = this.text.length - KEEP_CHARS;
      this.dropped += cut;
      this.text = this.text.slice(cut);
    }
    for (const f of this.followers) f(chunk);
  }

  /** The process ended: followers get the end, nothing more is written. */
  end(note?: string): void {
    if (this.ended) return;
    if (note) this.write(note.endsWith("\n") ? note : `${note}\n`);
    this.ended = true;
    for (const f of this.followers) f(null);
    this.followers.clear();
  }

  get done(): boolean {
    return this.ended;
  }

  /** What is kept now, with a first line saying how much was dropped, if any. */
  snapshot(): string {
    return this.dropped ? `[${this.dropped} earlier characters dropped]\n${this.text}` : this.text;
  }

  /** The last `chars` characters, for messages. */
  tail(chars: number): string {
    return this.text.slice(-chars);
  }

  /**
   * Everything kept, then each new chunk, then null at the end. Returns the unsubscribe
   * function (a reader that leaves early).
   */
  follow(onChunk: (chunk: string | null) => void): () => void {
    const first = this.snapshot();
    if (first) onChunk(first);
    if (this.ended) {
      onChunk(null);
      return () => {};
    }
    this.followers.add(onChunk);
    return () => this.followers.delete(onChunk);
  }
}
