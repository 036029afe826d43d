/** A set that remembers at most `capacity` keys, forgetting the oldest first. */
export class RecentSet<K> {
  private readonly keys = new Set<K>();

  constructor(private readonly capacity: number) {}

  add(key: K): void {
    this.keys.delete(key);
    this.keys.add(key);
    if (this.keys.size > this.capacity) this.keys.delete(this.keys.values().next().value as K);
  }

  has(key: K): boolean {
    return this.keys.has(key);
  }

  get size(): number {
    return this.keys.size;
  }
}
