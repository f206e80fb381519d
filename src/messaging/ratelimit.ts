/**
 * Rate limits for the dispatcher.
 *
 * `RateLimiter`: one per channel (WhatsApp 80 messages/s by default; SMS providers count segments).
 * Two rules together:
 *   - `acquire(cost)`: a token bucket refilled continuously at `ratePerSecond` with a small burst (a
 *     tenth of a second's worth), so that sends are spread evenly through each second rather than
 *     fired in one clump. Waiters are served first come, first served.
 *   - `admit(cost)`, called right before the request leaves: a sliding window over the times
 *     requests actually left, so that no one-second window, wherever it starts, ever holds more than
 *     `ratePerSecond` tokens — whatever happened between the bucket and the request (a database
 *     check, a slow event loop) and although a bucket on its own allows rate + burst in a second
 *     that starts full. It returns 0 and records the send, or the milliseconds to wait.
 * `pause(ms)` holds every waiter (a provider said "too fast" or rejected the credentials) and
 * empties the bucket.
 *
 * `PairLimiter`: WhatsApp's pair rate (about one message per 6 s to the same person, with some
 * burst allowed): a small bucket per recipient, kept only while it is not full.
 */

export interface RateLimiterOptions {
  /** Tokens per second (SMS: segments per second). */
  ratePerSecond: number;
  /** Bucket capacity; default a tenth of a second's worth, at least 1. */
  burst?: number;
  /** Clock in milliseconds (tests). */
  now?: () => number;
}

/** The one-second window, with its margin. */
const WINDOW_MS = 1_003;

/** The largest window the limiter tracks exactly; above this rate only the token bucket applies. */
const MAX_WINDOW_TOKENS = 100_000;

export class RateLimitClosedError extends Error {
  constructor() {
    super('rate limiter closed');
    this.name = 'RateLimitClosedError';
  }
}

interface Waiter {
  cost: number;
  priority: number;
  resolve: () => void;
  reject: (e: Error) => void;
}

export class RateLimiter {
  readonly ratePerSecond: number;
  readonly capacity: number;
  private tokens: number;
  private last: number;
  private readonly now: () => number;
  /** Send times (admit) of the last `window.length` tokens, oldest at `pos`. */
  private readonly window: Float64Array | null;
  private pos = 0;
  private queue: Waiter[] = [];
  private head = 0;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  /** No token is released before this time (ms, same clock as `now`). */
  pausedUntil = 0;
  /** Tokens released so far. */
  released = 0;

  constructor(opts: RateLimiterOptions) {
    if (!(opts.ratePerSecond > 0)) throw new Error('ratePerSecond must be positive');
    this.ratePerSecond = opts.ratePerSecond;
    this.capacity = Math.max(1, opts.burst ?? Math.floor(opts.ratePerSecond / 10));
    this.now = opts.now ?? (() => performance.now());
    this.tokens = this.capacity;
    this.last = this.now();
    const w = Math.floor(opts.ratePerSecond);
    this.window = w >= 1 && w <= MAX_WINDOW_TOKENS ? new Float64Array(w).fill(-Infinity) : null;
  }

  /** Milliseconds until the bucket holds `cost` tokens (0: now). */
  waitFor(cost: number, now = this.now()): number {
    this.refill(now);
    let wait = Math.max(0, this.pausedUntil - now);
    // A cost above the capacity waits for a full bucket and then goes into debt.
    const need = Math.min(cost, this.capacity);
    if (this.tokens < need) wait = Math.max(wait, ((need - this.tokens) * 1000) / this.ratePerSecond);
    return wait;
  }

  /**
   * The last word before a request leaves: records `cost` tokens as sent now and returns 0 if the
   * last second holds room for them, else returns the milliseconds until it does (call again then).
   */
  admit(cost = 1): number {
    if (!this.window) return 0;
    const now = this.now();
    const n = this.window.length;
    const k = Math.min(cost, n);
    // A few milliseconds of margin (0.3% of the rate at most): timers fire on whole milliseconds, and
    // a busy machine can pause the process between this check and the request leaving.
    const wait = this.window[(this.pos + k - 1) % n] + WINDOW_MS - now;
    if (wait > 0) return wait;
    for (let i = 0; i < k; i++) {
      this.window[this.pos] = now;
      this.pos = (this.pos + 1) % n;
    }
    return 0;
  }

  /** Takes `cost` tokens if they are available now and nobody is waiting before us. */
  tryTake(cost = 1): boolean {
    if (this.closed || this.head < this.queue.length) return false;
    const now = this.now();
    if (this.waitFor(cost, now) > 0) return false;
    this.take(cost);
    return true;
  }

  /**
   * Resolves when `cost` tokens have been taken; rejects with RateLimitClosedError after close().
   * Waiters are served by `priority` (lower first), then first come, first served.
   */
  acquire(cost = 1, priority = 0): Promise<void> {
    if (this.closed) return Promise.reject(new RateLimitClosedError());
    if (this.tryTake(cost)) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      // In order of priority (lower first), then of arrival: a reply overtakes a waiting broadcast.
      const w: Waiter = { cost, priority, resolve, reject };
      let i = this.queue.length;
      while (i > this.head && this.queue[i - 1].priority > priority) i--;
      if (i === this.queue.length) this.queue.push(w);
      else this.queue.splice(i, 0, w);
      if (i === this.head && this.timer) {
        clearTimeout(this.timer);
        this.timer = null;
      }
      if (!this.timer) this.schedule();
    });
  }

  /** Holds every send for `ms` (a provider asked us to slow down) and empties the bucket. */
  pause(ms: number): void {
    const now = this.now();
    this.pausedUntil = Math.max(this.pausedUntil, now + ms);
    this.refill(now);
    this.tokens = Math.min(this.tokens, 0);
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.head < this.queue.length) this.schedule();
  }

  /** Milliseconds the limiter remains paused. */
  pausedFor(): number {
    return Math.max(0, this.pausedUntil - this.now());
  }

  /** Number of callers waiting. */
  get waiting(): number {
    return this.queue.length - this.head;
  }

  /** Rejects every waiter and refuses new ones. */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const waiters = this.queue.slice(this.head);
    this.queue = [];
    this.head = 0;
    for (const w of waiters) w.reject(new RateLimitClosedError());
  }

  private refill(now: number): void {
    if (now > this.last) {
      this.tokens = Math.min(this.capacity, this.tokens + ((now - this.last) * this.ratePerSecond) / 1000);
      this.last = now;
    }
  }

  private take(cost: number): void {
    this.tokens -= cost;
    this.released += cost;
  }

  private schedule(): void {
    const w = this.queue[this.head];
    const wait = this.waitFor(w.cost);
    // Timers fire on whole milliseconds and never early; round up so that a wake-up finds the tokens there.
    this.timer = setTimeout(this.pump, Math.max(1, Math.ceil(wait)));
  }

  private pump = (): void => {
    this.timer = null;
    while (this.head < this.queue.length) {
      const w = this.queue[this.head];
      const now = this.now();
      if (this.waitFor(w.cost, now) > 0) break;
      this.take(w.cost);
      this.head++;
      w.resolve();
    }
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else {
      if (this.head > 1024) {
        this.queue = this.queue.slice(this.head);
        this.head = 0;
      }
      this.schedule();
    }
  };
}

export interface PairLimiterOptions {
  /** Messages allowed at once to one recipient. */
  burst: number;
  /** One more message allowed every this many milliseconds. */
  intervalMs: number;
  now?: () => number;
}

/**
 * A small token bucket per recipient (WhatsApp's pair rate), kept as one number per recipient: the
 * time at which its bucket will be full again (a bucket of `burst` tokens, one token back every
 * `intervalMs`, holds burst − (full − now) / intervalMs tokens). Times are stored as milliseconds
 * since `base`, small whole numbers that V8 keeps in the map without allocating (a broadcast
 * touches one entry per recipient).
 */
export class PairLimiter {
  private readonly full = new Map<string | number, number>();
  private readonly now: () => number;
  private base: number;
  private lastPrune: number;

  constructor(private readonly opts: PairLimiterOptions) {
    this.now = opts.now ?? (() => Date.now());
    this.lastPrune = this.base = this.now();
  }

  /** Takes one message for `key` (the recipient) and returns 0, or returns the milliseconds until one is allowed. */
  take(key: string | number): number {
    const now = this.now();
    if (now - this.lastPrune > 60_000) this.prune(now);
    const { burst, intervalMs } = this.opts;
    const stored = this.full.get(key);
    const full = stored === undefined ? now : Math.max(now, stored + this.base);
    // Taking a token moves the full time one interval later; allowed while the bucket keeps ≥ 0 tokens.
    const over = full + intervalMs - now - burst * intervalMs;
    if (over <= 0) {
      this.full.set(key, full + intervalMs - this.base);
      return 0;
    }
    return Math.ceil(over);
  }

  /** Recipients currently tracked. */
  get size(): number {
    return this.full.size;
  }

  /** Forgets recipients whose bucket has refilled (they are as good as new). */
  prune(now = this.now()): void {
    this.lastPrune = now;
    const since = now - this.base;
    for (const [k, full] of this.full) if (full <= since) this.full.delete(k);
    // Keep the stored numbers small: count from now once the base is a day old.
    if (since > 86_400_000) {
      for (const [k, full] of this.full) this.full.set(k, full - since);
      this.base = now;
    }
  }
}
