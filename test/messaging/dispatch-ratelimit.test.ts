/**
 * The rate limits (src/messaging/ratelimit.ts) on a controlled clock: never more than the rate in
 * any one-second window wherever it starts, the configured rate on average, segments as tokens,
 * pauses, first come first served; and WhatsApp's pair rate per recipient.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { PairLimiter, RateLimitClosedError, RateLimiter } from '../../src/messaging/ratelimit.js';

beforeEach(() => {
  vi.useFakeTimers({ now: 1_000_000 });
});
afterEach(() => {
  vi.useRealTimers();
});

/** Sends `count` times (each `cost` tokens) as fast as allowed, as the dispatcher does; returns the send times. */
async function drive(l: RateLimiter, count: number, cost = 1, spanMs = 60_000): Promise<number[]> {
  const times: number[] = [];
  const send = async () => {
    await l.acquire(cost);
    for (let wait = l.admit(cost); wait > 0; wait = l.admit(cost)) await new Promise((r) => setTimeout(r, Math.ceil(wait)));
    times.push(Date.now());
  };
  const all = Array.from({ length: count }, send);
  await vi.advanceTimersByTimeAsync(spanMs);
  await Promise.all(all);
  return times;
}

/** The most releases (weighted by cost) in any window [t, t + 1000). */
function maxInAnySecond(times: number[], cost = 1): number {
  let max = 0;
  let j = 0;
  for (let i = 0; i < times.length; i++) {
    while (times[i] - times[j] >= 1000) j++;
    max = Math.max(max, (i - j + 1) * cost);
  }
  return max;
}

describe('RateLimiter', () => {
  it('80/s over 30 s: never more than 80 in any one-second window, 80/s on average, evenly spread', async () => {
    const l = new RateLimiter({ ratePerSecond: 80, now: () => Date.now() });
    const times = await drive(l, 80 * 30, 1, 31_000);
    expect(times).toHaveLength(2400);
    expect(maxInAnySecond(times)).toBeLessThanOrEqual(80);
    const span = (times[times.length - 1] - times[0]) / 1000;
    expect(times.length / span).toBeGreaterThan(79);
    expect(times.length / span).toBeLessThanOrEqual(81);
    // Spread through the second, not fired in one clump: no 100 ms holds more than the burst plus its share.
    expect(maxInWindow(times, 100)).toBeLessThanOrEqual(8 + 8 + 1);
  });

  it('an SMS costs its segments: 30 segments/s means ten 3-segment messages a second', async () => {
    const l = new RateLimiter({ ratePerSecond: 30, now: () => Date.now() });
    const times = await drive(l, 60, 3, 7_000);
    expect(maxInAnySecond(times, 3)).toBeLessThanOrEqual(30);
    const span = (times[times.length - 1] - times[0]) / 1000;
    expect(span).toBeGreaterThanOrEqual(5.5);
    expect(span).toBeLessThan(6.2);
  });

  it('admits no more than the rate in any second when requests bunch up after the bucket (a slow check, a busy process)', async () => {
    const l = new RateLimiter({ ratePerSecond: 50, now: () => Date.now() });
    const times: number[] = [];
    // Tokens taken over 2 s, but every request held until the end of its second before it leaves.
    const all = Array.from({ length: 150 }, async () => {
      await l.acquire();
      await new Promise((r) => setTimeout(r, 1_000 - (Date.now() % 1_000)));
      for (let wait = l.admit(); wait > 0; wait = l.admit()) await new Promise((r) => setTimeout(r, Math.ceil(wait)));
      times.push(Date.now());
    });
    await vi.advanceTimersByTimeAsync(10_000);
    await Promise.all(all);
    expect(times).toHaveLength(150);
    expect(maxInAnySecond(times)).toBeLessThanOrEqual(50);
  });

  it('serves waiters first come, first served', async () => {
    const l = new RateLimiter({ ratePerSecond: 10, burst: 1, now: () => Date.now() });
    const order: number[] = [];
    const all = [1, 2, 3, 4, 5].map((i) => l.acquire(i === 3 ? 2 : 1).then(() => order.push(i)));
    await vi.advanceTimersByTimeAsync(2_000);
    await Promise.all(all);
    expect(order).toEqual([1, 2, 3, 4, 5]);
    expect(l.tryTake()).toBe(true);
  });

  it('a waiter with a lower priority number (a reply) overtakes those waiting with a higher one (a broadcast)', async () => {
    const l = new RateLimiter({ ratePerSecond: 10, burst: 1, now: () => Date.now() });
    const order: string[] = [];
    const all = ['b1', 'b2', 'b3', 'b4'].map((n) => l.acquire(1, 3).then(() => order.push(n)));
    all.push(l.acquire(1, 1).then(() => order.push('reply')));
    all.push(l.acquire(1, 2).then(() => order.push('survey')));
    await vi.advanceTimersByTimeAsync(2_000);
    await Promise.all(all);
    expect(order).toEqual(['b1', 'reply', 'survey', 'b2', 'b3', 'b4']);
  });

  it('pause holds every sender, then resumes at the rate', async () => {
    const l = new RateLimiter({ ratePerSecond: 100, now: () => Date.now() });
    const start = Date.now();
    l.pause(2_000);
    expect(l.tryTake()).toBe(false);
    expect(l.pausedFor()).toBe(2_000);
    const times = await drive(l, 50, 1, 3_000);
    expect(Math.min(...times) - start).toBeGreaterThanOrEqual(2_000);
    expect(maxInAnySecond(times)).toBeLessThanOrEqual(100);
  });

  it('close rejects the waiters', async () => {
    const l = new RateLimiter({ ratePerSecond: 1, now: () => Date.now() });
    await l.acquire();
    const waiting = l.acquire();
    l.close();
    await expect(waiting).rejects.toBeInstanceOf(RateLimitClosedError);
    await expect(l.acquire()).rejects.toBeInstanceOf(RateLimitClosedError);
  });
});

describe('PairLimiter (WhatsApp pair rate)', () => {
  it('allows a burst to one person, then one message per interval; other people are not held', () => {
    const p = new PairLimiter({ burst: 3, intervalMs: 6_000, now: () => Date.now() });
    expect([p.take('a'), p.take('a'), p.take('a')]).toEqual([0, 0, 0]);
    const wait = p.take('a');
    expect(wait).toBe(6_000);
    expect(p.take('b')).toBe(0);
    vi.advanceTimersByTime(6_000);
    expect(p.take('a')).toBe(0);
    expect(p.take('a')).toBeGreaterThan(0);
  });

  it('forgets recipients whose allowance has refilled', () => {
    const p = new PairLimiter({ burst: 2, intervalMs: 1_000, now: () => Date.now() });
    for (let i = 0; i < 100; i++) p.take(`r${i}`);
    expect(p.size).toBe(100);
    vi.advanceTimersByTime(1_000);
    p.prune();
    expect(p.size).toBe(0);
  });
});

function maxInWindow(times: number[], ms: number): number {
  let max = 0;
  let j = 0;
  for (let i = 0; i < times.length; i++) {
    while (times[i] - times[j] >= ms) j++;
    max = Math.max(max, i - j + 1);
  }
  return max;
}
