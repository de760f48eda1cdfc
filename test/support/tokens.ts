// A write budget for reconciler unit tests: counts take() calls and hands out a token only when told
// (grant), so a test can change the cache while a reconcile waits for its token.
export class FakeTokens {
  /** take() calls so far. */
  taken = 0;
  private readonly waiting: (() => void)[] = [];
  private readonly auto: boolean;

  /** auto: every take() is granted at once. */
  constructor(o: { auto?: boolean } = {}) {
    this.auto = o.auto ?? false;
  }

  /** The priority of every take() so far. */
  readonly priorities: ('high' | 'low')[] = [];

  /** Every priority waits in the one line here (the real bucket's lines are tested in queue.test.ts). */
  take(priority: 'high' | 'low' = 'high'): Promise<void> {
    this.taken++;
    this.priorities.push(priority);
    if (this.auto) return Promise.resolve();
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** Gives the oldest waiter its token. */
  grant(): void {
    const next = this.waiting.shift();
    if (!next) throw new Error('nobody waits for a token');
    next();
  }

  get waiters(): number {
    return this.waiting.length;
  }
}
