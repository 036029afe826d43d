/**
 * Which of the view's hosts changed, in order, so that a standing filter-and-weigh pass
 * (scheduler/standing-pass.ts) can catch up by looking at those hosts only. A reader keeps
 * a position; `since(position)` gives the providers changed after it, or null when it
 * cannot tell (everything may have changed, or the log was cut), and the reader starts
 * over. Heartbeats are not logged: liveness is checked at each decision.
 */
export class HostChanges {
  private entries: string[] = [];
  /** The position of entries[0]. */
  private base = 0;

  constructor(private readonly limit = 65_536) {}

  /** Where a reader that is up to date with the view stands now. */
  get position(): number {
    return this.base + this.entries.length;
  }

  /** A host's fields changed in place. */
  note(providerId: string): void {
    if (this.entries.length >= this.limit) this.everything();
    this.entries.push(providerId);
  }

  /** Any host may have changed (a full load, new aggregate data): every reader starts over. */
  everything(): void {
    this.base = this.position + 1;
    this.entries = [];
  }

  /** The providers changed after `position` (repeats included), or null: start over. */
  since(position: number): readonly string[] | null {
    if (position < this.base || position > this.position) return null;
    return this.entries.slice(position - this.base);
  }
}
