/**
 * The expiry times of indexed puts with `ttlMs`, earliest first: a binary min-heap of
 * (expiry time, key, revision). An entry is a hint, not a fact: the key may have been written
 * again since (another revision), so whoever pops one checks it against the index. Overwritten
 * keys leave such stale entries behind; `compact` drops them when they outnumber the live ones.
 */
export class ExpiryQueue {
  private times: number[] = [];
  private keys: string[] = [];
  private revisions: number[] = [];

  get size(): number {
    return this.times.length;
  }

  /** The earliest expiry time queued, or undefined when empty. */
  peekTime(): number | undefined {
    return this.times[0];
  }

  push(timeMs: number, key: string, revision: number): void {
    this.times.push(timeMs);
    this.keys.push(key);
    this.revisions.push(revision);
    this.siftUp(this.times.length - 1);
  }

  /** Remove and return the earliest entry. */
  pop(): { timeMs: number; key: string; revision: number } | undefined {
    const count = this.times.length;
    if (count === 0) return undefined;
    const top = { timeMs: this.times[0] as number, key: this.keys[0] as string, revision: this.revisions[0] as number };
    const lastTime = this.times.pop() as number;
    const lastKey = this.keys.pop() as string;
    const lastRevision = this.revisions.pop() as number;
    if (count > 1) {
      this.times[0] = lastTime;
      this.keys[0] = lastKey;
      this.revisions[0] = lastRevision;
      this.siftDown(0);
    }
    return top;
  }

  /** Keep only the entries `keep` accepts (rebuilt in O(n)). */
  compact(keep: (key: string, revision: number) => boolean): void {
    const times: number[] = [];
    const keys: string[] = [];
    const revisions: number[] = [];
    for (let index = 0; index < this.times.length; index++) {
      if (!keep(this.keys[index] as string, this.revisions[index] as number)) continue;
      times.push(this.times[index] as number);
      keys.push(this.keys[index] as string);
      revisions.push(this.revisions[index] as number);
    }
    this.times = times;
    this.keys = keys;
    this.revisions = revisions;
    for (let index = (times.length >> 1) - 1; index >= 0; index--) this.siftDown(index);
  }

  clear(): void {
    this.times = [];
    this.keys = [];
    this.revisions = [];
  }

  private swap(a: number, b: number): void {
    const time = this.times[a] as number;
    this.times[a] = this.times[b] as number;
    this.times[b] = time;
    const key = this.keys[a] as string;
    this.keys[a] = this.keys[b] as string;
    this.keys[b] = key;
    const revision = this.revisions[a] as number;
    this.revisions[a] = this.revisions[b] as number;
    this.revisions[b] = revision;
  }

  private siftUp(index: number): void {
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if ((this.times[parent] as number) <= (this.times[index] as number)) return;
      this.swap(parent, index);
      index = parent;
    }
  }

  private siftDown(index: number): void {
    const count = this.times.length;
    for (;;) {
      const left = 2 * index + 1;
      if (left >= count) return;
      const right = left + 1;
      const smaller = right < count && (this.times[right] as number) < (this.times[left] as number) ? right : left;
      if ((this.times[index] as number) <= (this.times[smaller] as number)) return;
      this.swap(index, smaller);
      index = smaller;
    }
  }
}
