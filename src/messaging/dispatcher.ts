/**
 * The dispatcher: one long-lived loop per process that sends the outbox.
 *
 *   claim      due rows ('queued', not_before passed) in priority order — replies 1, surveys 2,
 *              broadcasts 3, oldest first — in batches, marking them 'sending' with this process's
 *              name and the time (dispatcher-sql.ts: FOR UPDATE SKIP LOCKED on PostgreSQL);
 *   prepare    per batch, in a few set-based queries: the contacts, their consents and addresses;
 *              skip whoever is not active or lacks consent for the row's purpose; render broadcast
 *              content (dispatcher-render.ts); choose the channel (dispatcher-route.ts);
 *   send       each message after the channel's rate limiter gives its tokens (an SMS costs one per
 *              segment; replies are served before surveys before broadcasts), then with bounded
 *              concurrency (at most DISPATCH_CONCURRENCY messages between their last check and the
 *              provider's answer; the adapters open as many connections, so a checked request never
 *              queues for one), a last check of the contact (below), and the one-second rate window,
 *              through the channel adapter; messages to one contact go one after the other;
 *   record     results in batches, one write per batch (dispatcher-sql.ts `writeResults`: one UPDATE on
 *              PostgreSQL, one transaction on SQLite).
 *
 * Who may receive what (checked when the batch is prepared, and again right before each request):
 *   - the contact is active, not erased, and holds consent (consent_state granted) for the row's
 *     purpose; a 'reply' needs no consent beyond being active;
 *   - a stopped contact gets only 'reply' rows enqueued at or after its stopped_at: answers to what
 *     the person wrote after stopping (the STOP confirmation itself, a HELP answer). A blocked or
 *     erased contact gets nothing.
 * The STOP race: a row claimed before a STOP is stored and sent after it. The last check runs after
 * every wait (the rate limiter, a free slot), immediately before the provider request (batched: one
 * query for the requests that reach it within a few milliseconds of each other; checked again if
 * the one-second rate window then made the request wait), so a STOP stored before that check stops
 * the message.
 * What remains is a request that passed the check before the STOP was stored: it is already on its
 * way to the provider (written to its own connection at once: the adapters' pools have a
 * connection for every request the dispatcher may have going) when the STOP lands — sent before
 * the STOP, not after. Closing even that would need the STOP to wait for requests in flight (a row lock held
 * across the HTTP call), which would stall inbound webhooks behind provider latency.
 *
 * Errors (as the adapters classify them, src/channels/types.ts):
 *   throttled      the channel pauses (Retry-After, else 1 s doubling to 60 s while it lasts); the row
 *                  is queued again without counting an attempt;
 *   transient      retried with exponential backoff and jitter (10 s, 20 s, 40 s, …) until
 *                  DISPATCH_MAX_ATTEMPTS attempts, then failed;
 *   permanent      failed;
 *   opted_out      the address is stopped on that channel (contacts' stopOnChannel), and the row failed;
 *   window_closed  queued again for SMS when the contact has an SMS route and SMS_FALLBACK is on,
 *                  else failed;
 *   auth           the channel pauses for a minute, the row stays queued, an alert is logged (channel and
 *                  code only).
 *
 * Crash safety: a claim is renewed while its process lives. A row whose claim was not renewed for
 * DISPATCH_CLAIM_TIMEOUT_SECONDS belonged to a dead process: it is queued again and marked
 * `possible_duplicate` (checked at start-up and then periodically). Only rows claimed and not yet
 * recorded can be sent twice — at most the rows this process holds at once (about two seconds of
 * sending at the channels' rates; at least DISPATCH_CONCURRENCY, at most two batches and
 * DISPATCH_CONCURRENCY more: `maxHeld`).
 *
 * Stopping (`stop()`): no new claims; rows not yet sent are given back untouched; requests already
 * sent to a provider finish and are recorded.
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Config } from '../config.js';
import type { ChannelAdapter, ProviderError, SendResult } from '../channels/types.js';
import { measureSms, renderSms } from '../channels/sms.js';
import { stopOnChannel } from '../contacts/stop.js';
import type { Database } from '../db/orm.js';
import { toBool, toDateOrNull, toInt } from '../db/values.js';
import { errorForLog, type Logger } from '../log.js';
import { adaptersFrom, chooseRoute, smsRoute, type Adapters, type RouteAddress, type RouteInput } from './dispatcher-route.js';
import { rendererFor } from './dispatcher-render.js';
import { batchRows, changedContactRows, claimBatch, lastInboundRows, recoverStaleClaims, releaseClaims, renewClaims, writeResults, type ClaimedRow, type RowResult } from './dispatcher-sql.js';
import { PairLimiter, RateLimitClosedError, RateLimiter } from './ratelimit.js';
import { applyEarlyStatuses, purgeEarlyStatuses } from './status.js';
import type { ChannelName, OutboundContent } from './types.js';

export { registerBroadcastRenderer, unregisterBroadcastRenderer, setBroadcastRendererResolver, type BroadcastRenderer, type RenderTarget } from './dispatcher-render.js';

export interface DispatcherOptions {
  db: Database;
  config: Config;
  log: Logger;
  /** Every channel adapter this process may send through (the simulator included). */
  adapters: readonly ChannelAdapter[];
  concurrency?: number;
  batchSize?: number;
  maxAttempts?: number;
  claimTimeoutMs?: number;
  /** How often an idle dispatcher looks for due rows (default 200 ms). */
  pollMs?: number;
  /** Results are written at least this often (default 20 ms) or every 500 results. */
  flushMs?: number;
  /** First transient retry delay; doubles each attempt (default 10 s). */
  retryBaseMs?: number;
  /** First throttle pause; doubles while throttling lasts, up to 60 s (default 1 s). */
  throttleBaseMs?: number;
  /** How long a channel pauses after an auth error (default 60 s). */
  authPauseMs?: number;
  /** WhatsApp's pair rate: burst and interval per recipient (default 10 at once, then one per 6 s); false: off. */
  pairRate?: { burst: number; intervalMs: number } | false;
  /** Rate per channel, overriding the settings (tests, benchmarks). */
  rates?: Partial<Record<ChannelName, number>>;
  /** This process's name in claimed_by (default host:pid:random). */
  claimer?: string;
}

export interface DispatchCounts {
  claimed: number;
  sent: number;
  failed: number;
  skipped: number;
  requeued: number;
  released: number;
  recovered: number;
}

interface ContactState {
  status: string;
  stoppedAt: number | null;
  erased: boolean;
  /** The purposes the contact consents to (among those asked about). */
  consents: Pick<ReadonlySet<string>, 'has'>;
}

interface Task {
  row: ClaimedRow;
  adapter: ChannelAdapter;
  address: RouteAddress;
  addresses: RouteAddress[];
  content: OutboundContent;
  language: string | null;
  /** Rate-limit tokens: 1 per WhatsApp message, segments per SMS, 0 for the simulator. */
  cost: number;
  segments: number | null;
}

const FLUSH_SIZE = 500;
const WORKERS_PER_SLOT = 2;
const RECHECK_GATHER_MS = 8;
/** Early statuses (status.ts) are looked for at most this often. */
const EARLY_EVERY_MS = 1_000;
const MAX_THROTTLE_MS = 60_000;

/** Why a row may not go to this contact now, or null when it may. */
export function ineligible(row: Pick<ClaimedRow, 'purpose' | 'createdAt'>, c: ContactState | undefined): string | null {
  if (!c) return 'no_contact';
  if (c.erased) return 'contact_erased';
  if (c.status === 'blocked') return 'contact_blocked';
  if (row.purpose === 'reply') {
    if (c.status === 'active') return null;
    if (c.status === 'stopped' && c.stoppedAt !== null && row.createdAt >= c.stoppedAt) return null;
    return 'contact_stopped';
  }
  if (c.status !== 'active') return 'contact_stopped';
  return c.consents.has(row.purpose) ? null : 'no_consent';
}

/** A binary heap of tasks, replies first (priority, then id). */
class TaskQueue {
  private items: Task[] = [];
  get length(): number {
    return this.items.length;
  }
  private less(a: Task, b: Task): boolean {
    return a.row.priority < b.row.priority || (a.row.priority === b.row.priority && a.row.id < b.row.id);
  }
  push(t: Task): void {
    const a = this.items;
    a.push(t);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(a[i], a[p])) break;
      [a[i], a[p]] = [a[p], a[i]];
      i = p;
    }
  }
  pop(): Task | undefined {
    const a = this.items;
    if (a.length === 0) return undefined;
    const top = a[0];
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.less(a[l], a[m])) m = l;
        if (r < a.length && this.less(a[r], a[m])) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m], a[i]];
        i = m;
      }
    }
    return top;
  }
  drain(): Task[] {
    const out = this.items;
    this.items = [];
    return out;
  }
}

export class Dispatcher {
  readonly claimer: string;
  readonly counts: DispatchCounts = { claimed: 0, sent: 0, failed: 0, skipped: 0, requeued: 0, released: 0, recovered: 0 };
  /** Milliseconds spent waiting for each kind of database work, and how many times (for benchmarks). */
  readonly timings = { claim: 0, claims: 0, prepare: 0, prepares: 0, record: 0, records: 0, recheck: 0, rechecks: 0, stageLimiter: 0, stageCheck: 0, stageSlot: 0, stageSend: 0, sends: 0 };
  private readonly db: Database;
  private readonly log: Logger;
  private readonly adapters: Adapters;
  private readonly limiters = new Map<string, RateLimiter>();
  private readonly pair: PairLimiter | null;
  private readonly concurrency: number;
  private readonly batchSize: number;
  private readonly maxAttempts: number;
  private readonly claimTimeoutMs: number;
  private readonly pollMs: number;
  private readonly flushMs: number;
  private readonly retryBaseMs: number;
  private readonly throttleBaseMs: number;
  private readonly authPauseMs: number;
  /** Rows this process holds: claimed and not yet recorded. */
  private readonly held = new Set<number>();
  private readonly target: number;
  private readonly ready = new TaskQueue();
  private readonly idleWorkers: (() => void)[] = [];
  /** Contacts a worker is sending to, with their next tasks (null: none yet). */
  private readonly busy = new Map<number, Task[] | null>();
  private readonly lowWater: number;
  private readonly minClaim: number;
  private results: RowResult[] = [];
  private lastEarly = 0;
  private toRelease: number[] = [];
  private flushTimer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> = Promise.resolve();
  private maintenanceTimer: NodeJS.Timeout | null = null;
  private lastPurge = 0;
  private maintaining = false;
  private lastReport = { at: 0, sent: 0, failed: 0, skipped: 0, requeued: 0 };
  private readonly throttles = new Map<string, number>();
  private readonly alerted = new Map<string, number>();
  private running = false;
  private stopping = false;
  private loop: Promise<void> | null = null;
  private workers: Promise<void>[] = [];
  private wakeFeeder: (() => void) | null = null;
  private idleWaiters: (() => void)[] = [];
  private readonly recheck: Recheck;
  /** Requests in flight to providers: at most DISPATCH_CONCURRENCY. */
  private readonly slots: Slots;

  constructor(private readonly opts: DispatcherOptions) {
    const c = opts.config;
    this.db = opts.db;
    this.log = opts.log;
    this.adapters = adaptersFrom(opts.adapters, c.SMS_FALLBACK);
    this.concurrency = opts.concurrency ?? c.DISPATCH_CONCURRENCY;
    this.batchSize = opts.batchSize ?? c.DISPATCH_BATCH_SIZE;
    this.maxAttempts = opts.maxAttempts ?? c.DISPATCH_MAX_ATTEMPTS;
    this.claimTimeoutMs = opts.claimTimeoutMs ?? c.DISPATCH_CLAIM_TIMEOUT_SECONDS * 1000;
    this.pollMs = opts.pollMs ?? 200;
    this.flushMs = opts.flushMs ?? 20;
    this.retryBaseMs = opts.retryBaseMs ?? 10_000;
    this.throttleBaseMs = opts.throttleBaseMs ?? 1_000;
    this.authPauseMs = opts.authPauseMs ?? 60_000;
    this.claimer = (opts.claimer ?? `${hostname().slice(0, 40)}:${process.pid}:${randomBytes(4).toString('hex')}`).slice(0, 64);
    const settings: Partial<Record<string, number>> = {
      whatsapp: c.WHATSAPP_RATE_PER_SECOND,
      twilio: c.TWILIO_RATE_PER_SECOND,
      africastalking: c.AFRICASTALKING_RATE_PER_SECOND,
      ...opts.rates,
    };
    let rateSum = 0;
    for (const a of opts.adapters) {
      const rate = settings[a.name] ?? (a.name === 'simulator' ? undefined : a.ratePerSecond);
      if (rate === undefined || !(rate > 0)) continue;
      this.limiters.set(a.name, new RateLimiter({ ratePerSecond: rate }));
      rateSum += rate;
    }
    // Hold about two seconds of sending: enough to keep every request slot busy, little enough that a
    // reply claimed now overtakes a broadcast soon, and that a crash can double only this many.
    this.target = Math.max(this.concurrency, Math.min(2 * this.batchSize + this.concurrency, Math.ceil(rateSum * 2) || Infinity));
    this.minClaim = Math.max(1, Math.min(this.batchSize, this.concurrency, Math.ceil(this.target / 4)));
    this.pair = opts.pairRate === false ? null : new PairLimiter(opts.pairRate ?? { burst: 10, intervalMs: 6_000 });
    this.recheck = new Recheck(this.db, this.timings);
    this.slots = new Slots(this.concurrency);
    this.lowWater = this.batchSize - 1;
  }

  /** The most rows this process holds at once (the bound on duplicates after a crash). */
  get maxHeld(): number {
    return this.target;
  }

  get isRunning(): boolean {
    return this.running;
  }

  /** Starts the loop. Stale claims of dead processes are recovered first. */
  start(): this {
    if (this.running) return this;
    this.running = true;
    this.stopping = false;
    this.loop = this.feed();
    // More workers than request slots: the limiter's wait and the last check do not hold a slot.
    this.workers = Array.from({ length: this.concurrency * WORKERS_PER_SLOT }, () => this.work());
    const every = Math.max(500, Math.min(30_000, Math.floor(this.claimTimeoutMs / 4)));
    this.maintenanceTimer = setInterval(() => void this.maintain(), every);
    this.maintenanceTimer.unref();
    return this;
  }

  /** Resolves the next time nothing is due and nothing is held (every due row sent or re-queued). */
  idle(): Promise<void> {
    return new Promise((resolve) => {
      this.idleWaiters.push(resolve);
      this.wake();
    });
  }

  /** Looks for due rows now instead of at the next poll. */
  wake(): void {
    const w = this.wakeFeeder;
    this.wakeFeeder = null;
    w?.();
  }

  /** Stops claiming, gives back what was not sent, lets requests in flight finish and records them. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.stopping = true;
    this.wake();
    await this.loop;
    for (const t of this.ready.drain()) this.toRelease.push(t.row.id);
    for (const l of this.limiters.values()) l.close();
    for (const w of this.idleWorkers.splice(0)) w();
    await Promise.all(this.workers);
    if (this.maintenanceTimer) clearInterval(this.maintenanceTimer);
    this.maintenanceTimer = null;
    await this.flush();
    for (let attempt = 0; this.toRelease.length && attempt < 3; attempt++) {
      const ids = this.toRelease;
      this.toRelease = [];
      try {
        this.counts.released += await releaseClaims(this.db.knex, this.claimer, ids);
        for (const id of ids) this.held.delete(id);
      } catch (err) {
        this.toRelease.push(...ids);
        this.log.error({ err: errorForLog(err) }, 'dispatcher: could not give back claimed rows; they return after the claim timeout');
      }
    }
    this.running = false;
    for (const w of this.idleWaiters.splice(0)) w();
  }

  /** Sends everything due now, then stops. For the CLI and tests. */
  async runUntilIdle(): Promise<DispatchCounts> {
    this.start();
    await this.idle();
    await this.stop();
    return { ...this.counts };
  }

  // ── claiming ────────────────────────────────────────────────────────────────────────────────

  private async feed(): Promise<void> {
    await this.maintain();
    while (!this.stopping) {
      // Keep a batch in reserve, so that the workers never wait for a claim and its preparation.
      const room = this.target - this.held.size;
      if (room < this.minClaim || this.ready.length >= this.batchSize) {
        await this.sleep(50);
        continue;
      }
      const want = Math.min(this.batchSize, room);
      let rows: ClaimedRow[];
      try {
        const t0 = performance.now();
        rows = await claimBatch(this.db, this.claimer, want);
        this.timings.claim += performance.now() - t0;
        this.timings.claims++;
      } catch (err) {
        this.log.error({ err: errorForLog(err) }, 'dispatcher: claiming failed; retrying');
        await this.sleep(1_000);
        continue;
      }
      if (rows.length > 0) {
        this.counts.claimed += rows.length;
        for (const r of rows) this.held.add(r.id);
        try {
          const t0 = performance.now();
          await this.prepare(rows);
          this.timings.prepare += performance.now() - t0;
          this.timings.prepares++;
        } catch (err) {
          // Not sent, so nothing can be doubled: give the rows back for a later try.
          this.log.error({ err: errorForLog(err) }, 'dispatcher: preparing a batch failed; the rows are queued again');
          const at = new Date();
          for (const r of rows) this.finish({ id: r.id, status: 'queued', attempts: r.attempts, notBefore: new Date(Date.now() + 5_000), statusAt: at });
        }
      }
      if (rows.length === 0 && this.held.size === 0 && this.idleWaiters.length) {
        for (const w of this.idleWaiters.splice(0)) w();
      }
      if (rows.length < want) await this.sleep(this.pollMs);
    }
  }

  private sleep(ms: number): Promise<void> {
    if (this.stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.wakeFeeder = null;
        resolve();
      }, ms);
      this.wakeFeeder = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  // ── preparing a batch ───────────────────────────────────────────────────────────────────────

  private async prepare(rows: ClaimedRow[]): Promise<void> {
    const contactIds = [...new Set(rows.map((r) => r.contactId))];
    const purposes = [...new Set(rows.map((r) => r.purpose))];
    const [{ contacts, addresses }, lastChannels] = await Promise.all([loadBatch(this.db, contactIds, purposes), this.loadLastChannels(contactIds)]);
    for (const list of addresses.values()) for (const a of list) a.lastChannel = lastChannels.get(a.id) ?? null;
    const now = Date.now();
    const at = new Date(now);

    // Broadcast content, rendered per broadcast in one call.
    const content = new Map<number, OutboundContent | null>();
    const toRender = new Map<number, ClaimedRow[]>();
    for (const r of rows) {
      if (r.content) content.set(r.id, r.content);
      else if (r.broadcastId !== null && !ineligible(r, contacts.get(r.contactId))) {
        const list = toRender.get(r.broadcastId) ?? [];
        list.push(r);
        toRender.set(r.broadcastId, list);
      }
    }
    for (const [broadcastId, list] of toRender) {
      const renderer = await rendererFor(broadcastId);
      if (!renderer) continue;
      const out = await renderer(list.map((r) => ({ outboxId: r.id, contactId: r.contactId, broadcastId, language: r.language ?? contacts.get(r.contactId)?.language ?? null })));
      list.forEach((r, i) => content.set(r.id, out[i] ?? null));
    }

    for (const r of rows) {
      try {
        this.prepareRow(r, contacts.get(r.contactId), content.get(r.id) ?? null, addresses.get(r.contactId) ?? [], now, at);
      } catch (err) {
        this.log.error({ err: errorForLog(err), outboxId: r.id }, 'dispatcher: could not prepare a message');
        this.finish({ id: r.id, status: 'failed', attempts: r.attempts, errorCode: 'prepare_error', errorDetail: errorText(err), statusAt: at });
      }
    }
    for (const w of this.idleWorkers.splice(0, this.ready.length)) w();
  }

  private prepareRow(r: ClaimedRow, c: (ContactState & { language: string | null }) | undefined, body: OutboundContent | null, addrs: RouteAddress[], now: number, at: Date): void {
    {
      const why = ineligible(r, c);
      if (why) {
        this.finish({ id: r.id, status: 'skipped', attempts: r.attempts, errorCode: why, statusAt: at });
        return;
      }
      if (!body) {
        this.finish({ id: r.id, status: 'failed', attempts: r.attempts, errorCode: 'no_content', errorDetail: 'the message has no content and no renderer gave any', statusAt: at });
        return;
      }
      const route = chooseRoute(this.adapters, { channel: r.channel, addressId: r.addressId, content: body, addresses: addrs, now });
      if (!route.ok) {
        this.finish({ id: r.id, status: 'skipped', attempts: r.attempts, errorCode: route.reason, statusAt: at });
        return;
      }
      const language = r.language ?? c?.language ?? null;
      let cost = route.adapter.name === 'simulator' ? 0 : 1;
      let segments: number | null = null;
      if (route.adapter.medium === 'sms' && route.adapter.name !== 'simulator') {
        segments = measureSms(renderSms(body, language)).segments;
        cost = segments;
      }
      this.ready.push({ row: r, adapter: route.adapter, address: route.address, addresses: addrs, content: body, language, cost, segments });
    }
  }

  /** The channel each address last wrote through: it tells simulator addresses and the SMS provider. */
  private async loadLastChannels(contactIds: number[]): Promise<Map<number, ChannelName>> {
    const out = new Map<number, ChannelName>();
    if (this.adapters.simulatorOnly) return out;
    const rows = await lastInboundRows(this.db, contactIds);
    const newest = new Map<number, number>();
    for (const r of rows as Record<string, unknown>[]) {
      const id = toInt(r.address_id);
      const n = toInt(r.last);
      if ((newest.get(id) ?? -1) < n) {
        newest.set(id, n);
        out.set(id, r.channel as ChannelName);
      }
    }
    return out;
  }

  // ── sending ─────────────────────────────────────────────────────────────────────────────────

  /** The next task once one is ready (a worker takes a ready task without calling this). */
  private async nextTask(): Promise<Task | null> {
    for (;;) {
      const t = this.ready.pop();
      if (t) return t;
      if (this.stopping) return null;
      await new Promise<void>((resolve) => this.idleWorkers.push(resolve));
    }
  }

  /**
   * One of DISPATCH_CONCURRENCY workers. Messages to one contact go one after the other, in the
   * order taken (a survey's text and then its question must not overtake each other): a task whose
   * contact is busy waits for the worker already sending to that contact.
   */
  private async work(): Promise<void> {
    for (;;) {
      let task: Task | undefined = this.ready.pop() ?? (await this.nextTask()) ?? undefined;
      if (!task) return;
      if (this.ready.length === this.lowWater) this.wake();
      const contactId = task.row.contactId;
      if (this.busy.has(contactId)) {
        const waiting = this.busy.get(contactId);
        if (waiting) waiting.push(task);
        else this.busy.set(contactId, [task]);
        continue;
      }
      this.busy.set(contactId, null);
      while (task) {
        try {
          await this.send(task);
        } catch (err) {
          // A bug here must not lose the row: queue it again.
          this.log.error({ err: errorForLog(err), outboxId: task.row.id }, 'dispatcher: unexpected error while sending');
          this.finish({ id: task.row.id, status: 'queued', attempts: task.row.attempts, notBefore: new Date(Date.now() + 5_000), statusAt: new Date() });
        }
        task = this.busy.get(contactId)?.shift();
      }
      this.busy.delete(contactId);
    }
  }

  private async send(task: Task): Promise<void> {
    const { row, adapter, address } = task;
    const limiter = this.limiters.get(adapter.name);
    if (limiter) {
      const paused = limiter.pausedFor();
      if (paused > 2_000) return this.requeue(row, Date.now() + paused);
    }
    if (this.pair && adapter.name === 'whatsapp') {
      // Keyed by the address's id (one per WhatsApp number or user): cheaper than the text in a large map.
      const wait = this.pair.take(address.id);
      if (wait > 0) return this.requeue(row, Date.now() + wait);
    }
    const t0 = performance.now();
    // Tokens at hand are taken without a wait (tryTake yields to anyone already waiting).
    if (limiter && task.cost > 0 && !limiter.tryTake(task.cost)) {
      try {
        await limiter.acquire(task.cost, row.priority);
      } catch (err) {
        if (err instanceof RateLimitClosedError) {
          this.toRelease.push(row.id);
          return;
        }
        throw err;
      }
    }
    // A request slot (at most DISPATCH_CONCURRENCY messages between their last check and the
    // provider's answer); the last check; then the hard bound on the rate: `admit` records the request
    // as leaving now (nothing is awaited between it and the request) and refuses while the last second
    // is full. A wait long enough for a STOP to land is followed by another check.
    const t1 = performance.now();
    const slot = this.slots.acquire();
    if (slot) await slot;
    const queued = performance.now();
    let res: SendResult;
    try {
      if (this.stopping) {
        // Not sent yet: give it back rather than start a new request while stopping.
        this.toRelease.push(row.id);
        return;
      }
      // The channel may have been paused (throttled, refused credentials) while this one waited.
      const paused = limiter?.pausedFor() ?? 0;
      if (paused > 2_000) return this.requeue(row, Date.now() + paused);
      if (paused > 0) await new Promise((r) => setTimeout(r, Math.ceil(paused)));
      if (this.refused(row, recheckVerdict(row, await this.recheck.check(row.contactId)))) return;
      const t3 = performance.now();
      this.timings.stageLimiter += t1 - t0;
      this.timings.stageSlot += queued - t1;
      this.timings.stageCheck += t3 - queued;
      if (limiter && task.cost > 0) {
        for (let rechecks = 0; ; ) {
          const wait = limiter.admit(task.cost);
          if (wait <= 0) break;
          await new Promise((r) => setTimeout(r, Math.ceil(wait)));
          if (wait >= RECHECK_GATHER_MS && rechecks < 2) {
            rechecks++;
            if (this.refused(row, recheckVerdict(row, await this.recheck.check(row.contactId)))) return;
          }
        }
      }
      const t4 = performance.now();
      try {
        res = await adapter.send({ to: address.address, toKind: address.kind, content: task.content, language: task.language, callbackData: String(row.id) });
      } catch (err) {
        res = { ok: false, error: { class: 'transient', code: 'exception', detail: `the adapter failed: ${errorText(err)}`.slice(0, 300) } };
      }
      this.timings.stageSend += performance.now() - t4;
      this.timings.sends++;
    } finally {
      this.slots.release();
    }
    const at = new Date();
    if (res.ok) {
      this.throttles.delete(adapter.name);
      this.finish({ id: row.id, status: 'sent', providerId: res.providerId, segments: res.segments ?? task.segments, channel: adapter.name, addressId: address.id, attempts: row.attempts + 1, statusAt: at });
      return;
    }
    await this.failed(task, res.error, at);
  }

  private async failed(task: Task, e: ProviderError, at: Date): Promise<void> {
    const { row, adapter, address } = task;
    const base = { id: row.id, channel: adapter.name, addressId: address.id, errorCode: e.code.slice(0, 32), errorDetail: e.detail?.slice(0, 300) ?? null, statusAt: at };
    const attempts = row.attempts + 1;
    switch (e.class) {
      case 'throttled': {
        // Requests already in flight come back throttled too: only the first of them escalates the pause.
        const limiter = this.limiters.get(adapter.name);
        let pause = limiter?.pausedFor() ?? 0;
        if (pause <= 0 || (e.retryAfterMs ?? 0) > pause) {
          const n = (this.throttles.get(adapter.name) ?? 0) + 1;
          this.throttles.set(adapter.name, n);
          pause = Math.min(MAX_THROTTLE_MS, e.retryAfterMs ?? this.throttleBaseMs * 2 ** (n - 1));
          limiter?.pause(pause);
        }
        this.finish({ ...base, channel: null, status: 'queued', attempts: row.attempts, notBefore: new Date(at.getTime() + pause) });
        return;
      }
      case 'transient': {
        if (attempts >= this.maxAttempts) {
          this.finish({ ...base, status: 'failed', attempts });
          return;
        }
        const delay = this.retryBaseMs * 2 ** (attempts - 1) * (0.8 + Math.random() * 0.4);
        this.finish({ ...base, channel: null, status: 'queued', attempts, notBefore: new Date(at.getTime() + delay) });
        return;
      }
      case 'opted_out': {
        try {
          await stopOnChannel(this.db.knex, address.medium, address.address, { ref: `${adapter.name} ${e.code} outbox:${row.id}`, at });
        } catch (err) {
          this.log.error({ err: errorForLog(err), outboxId: row.id }, 'dispatcher: could not record a provider opt-out');
        }
        this.finish({ ...base, status: 'failed', attempts });
        return;
      }
      case 'window_closed': {
        const input: RouteInput = { channel: row.channel, addressId: row.addressId, content: task.content, addresses: task.addresses, now: at.getTime() };
        const sms = address.medium === 'whatsapp' ? smsRoute(this.adapters, input) : { ok: false as const };
        if (sms.ok) this.finish({ ...base, status: 'queued', channel: 'sms', addressId: null, attempts, notBefore: null });
        else this.finish({ ...base, status: 'failed', attempts });
        return;
      }
      case 'auth': {
        const limiter = this.limiters.get(adapter.name);
        if ((limiter?.pausedFor() ?? 0) < this.authPauseMs / 2) limiter?.pause(this.authPauseMs);
        const last = this.alerted.get(adapter.name) ?? 0;
        if (at.getTime() - last > this.authPauseMs) {
          this.alerted.set(adapter.name, at.getTime());
          this.log.error({ alert: true, channel: adapter.name, code: e.code }, 'dispatcher: the provider refused our credentials; the channel is paused and its messages stay queued');
        }
        this.finish({ ...base, channel: null, status: 'queued', attempts: row.attempts, notBefore: new Date(at.getTime() + this.authPauseMs) });
        return;
      }
      default: {
        this.finish({ ...base, status: 'failed', attempts });
      }
    }
  }

  /** The last check's verdict: false when the row may leave now; otherwise records why not (skipped) or queues it again. */
  private refused(row: ClaimedRow, why: string | null): boolean {
    if (why === null) return false;
    if (why === 'retry') this.requeue(row, Date.now() + 1_000);
    else this.finish({ id: row.id, status: 'skipped', attempts: row.attempts, errorCode: why, statusAt: new Date() });
    return true;
  }

  private requeue(row: ClaimedRow, notBefore: number): void {
    this.finish({ id: row.id, status: 'queued', attempts: row.attempts, notBefore: new Date(notBefore), statusAt: new Date() });
  }

  // ── recording ───────────────────────────────────────────────────────────────────────────────

  private finish(r: RowResult): void {
    this.results.push(r);
    if (this.results.length >= FLUSH_SIZE) void this.flush();
    else if (!this.flushTimer) {
      this.flushTimer = setTimeout(() => void this.flush(), this.flushMs);
    }
  }

  /** Writes the buffered results (one statement per flush; flushes run one at a time). */
  flush(): Promise<void> {
    if (this.flushTimer) {
      clearTimeout(this.flushTimer);
      this.flushTimer = null;
    }
    this.flushing = this.flushing.then(() => this.flushNow());
    return this.flushing;
  }

  private async flushNow(): Promise<void> {
    if (this.results.length === 0) return;
    const batch = this.results;
    this.results = [];
    try {
      const t0 = performance.now();
      await writeResults(this.db, this.claimer, batch);
      this.timings.record += performance.now() - t0;
      this.timings.records++;
    } catch (err) {
      this.log.error({ err: errorForLog(err), rows: batch.length }, 'dispatcher: recording results failed; retrying');
      this.results = batch.concat(this.results);
      if (!this.flushTimer) this.flushTimer = setTimeout(() => void this.flush(), 1_000);
      return;
    }
    let sentAny = false;
    for (const r of batch) {
      this.held.delete(r.id);
      if (r.status === 'sent') {
        this.counts.sent++;
        sentAny = true;
      } else if (r.status === 'failed') this.counts.failed++;
      else if (r.status === 'skipped') this.counts.skipped++;
      else this.counts.requeued++;
    }
    if (sentAny && Date.now() - this.lastEarly >= EARLY_EVERY_MS) {
      this.lastEarly = Date.now();
      try {
        await applyEarlyStatuses(this.db);
      } catch (err) {
        this.log.warn({ err: errorForLog(err) }, 'dispatcher: applying early statuses failed');
      }
    }
    if (this.held.size < this.target) this.wake();
  }

  // ── claims of dead processes ────────────────────────────────────────────────────────────────

  private async maintain(): Promise<void> {
    if (this.maintaining) return;
    this.maintaining = true;
    const now = Date.now();
    try {
      this.report(now);
      if (this.held.size > 0) await renewClaims(this.db.knex, this.claimer, new Date(now));
      const recovered = await recoverStaleClaims(this.db.knex, new Date(now - this.claimTimeoutMs));
      if (recovered > 0) {
        this.counts.recovered += recovered;
        this.log.warn({ rows: recovered }, 'dispatcher: re-queued rows claimed by a process that stopped renewing its claim (marked possible_duplicate)');
        this.wake();
      }
      if (now - this.lastPurge > 600_000) {
        this.lastPurge = now;
        await purgeEarlyStatuses(this.db.knex);
      }
    } catch (err) {
      this.log.error({ err: errorForLog(err) }, 'dispatcher: claim maintenance failed');
    } finally {
      this.maintaining = false;
    }
  }

  /** A line a minute while there is traffic: counts only. */
  private report(now: number): void {
    if (now - this.lastReport.at < 60_000) return;
    const c = this.counts;
    const delta = { sent: c.sent - this.lastReport.sent, failed: c.failed - this.lastReport.failed, skipped: c.skipped - this.lastReport.skipped, requeued: c.requeued - this.lastReport.requeued };
    if (this.lastReport.at > 0 && (delta.sent || delta.failed || delta.skipped || delta.requeued)) this.log.info({ ...delta, seconds: Math.round((now - this.lastReport.at) / 1000) }, 'dispatcher: messages since the last report');
    this.lastReport = { at: now, sent: c.sent, failed: c.failed, skipped: c.skipped, requeued: c.requeued };
  }
}

// ── the last check before a request ─────────────────────────────────────────────────────────

/**
 * The contacts of a batch in one query: status, stop time, erasure, language, the purposes (among
 * those of the batch) they currently consent to, and their addresses.
 */
async function loadBatch(
  db: Database,
  ids: readonly number[],
  purposes: readonly string[],
): Promise<{ contacts: Map<number, ContactState & { language: string | null }>; addresses: Map<number, RouteAddress[]> }> {
  const rows = await batchRows(db, ids, purposes);
  const contacts = new Map<number, ContactState & { language: string | null; consents: Set<string> }>();
  const addresses = new Map<number, RouteAddress[]>();
  for (const r of rows as Record<string, unknown>[]) {
    const id = toInt(r.id);
    let c = contacts.get(id);
    let list = addresses.get(id);
    if (!c || !list) {
      c = { status: String(r.status), stoppedAt: toDateOrNull(r.stopped_at)?.getTime() ?? null, erased: r.erased_at !== null && r.erased_at !== undefined, consents: new Set<string>(), language: (r.language as string | null) ?? null };
      contacts.set(id, c);
      list = [];
      addresses.set(id, list);
    }
    if (r.purpose !== null && r.purpose !== undefined) c.consents.add(String(r.purpose));
    if (r.address_id !== null && r.address_id !== undefined) {
      const addressId = toInt(r.address_id);
      if (!list.some((a) => a.id === addressId)) {
        list.push({
          id: addressId,
          medium: r.channel as RouteAddress['medium'],
          kind: r.kind === 'wa_user' ? 'wa_user' : 'phone',
          address: String(r.address),
          optedOut: toBool(r.opted_out),
          lastInboundAt: toDateOrNull(r.last_inbound_at)?.getTime() ?? null,
          lastChannel: null,
        });
      }
    }
  }
  return { contacts, addresses };
}

/** A counting semaphore. */
class Slots {
  private free: number;
  private readonly waiting: (() => void)[] = [];
  private head = 0;
  constructor(size: number) {
    this.free = size;
  }
  acquire(): Promise<void> | void {
    if (this.free > 0) {
      this.free--;
      return;
    }
    return new Promise<void>((resolve) => this.waiting.push(resolve));
  }
  release(): void {
    if (this.head < this.waiting.length) {
      const next = this.waiting[this.head++];
      if (this.head > 1024) {
        this.waiting.splice(0, this.head);
        this.head = 0;
      }
      next();
    } else this.free++;
  }
}

/** What the last check found: the contacts that may have changed, or null when the check failed. */
type Changes = ReadonlyMap<number, ContactState> | null;

/** Why a row may not leave now (null: it may), given the last check's findings; 'retry' when it could not be checked. */
function recheckVerdict(row: Pick<ClaimedRow, 'contactId' | 'purpose' | 'createdAt'>, changes: Changes): string | null {
  if (changes === null) return 'retry';
  const c = changes.get(row.contactId);
  return c ? ineligible(row, c) : null;
}

/**
 * Checks rows again right before their requests, batching the rows that reach this point within a
 * few milliseconds of each other into one query; every row of a batch waits on the same promise.
 */
class Recheck {
  private ids: number[] = [];
  private batch: Promise<Changes> | null = null;
  private resolve: ((c: Changes) => void) | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly db: Database,
    private readonly timings: { recheck: number; rechecks: number },
  ) {}

  /** Resolves with the batch's findings once the query that includes this contact has run. */
  check(contactId: number): Promise<Changes> {
    let batch = this.batch;
    if (!batch) {
      // Gather the requests of the next few milliseconds into one query: the check still runs
      // after their wait and right before they leave.
      batch = this.batch = new Promise<Changes>((resolve) => (this.resolve = resolve));
      this.timer = setTimeout(this.run, RECHECK_GATHER_MS);
    }
    this.ids.push(contactId);
    if (this.ids.length >= 256) this.run();
    return batch;
  }

  private readonly run = (): void => {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const ids = this.ids;
    const resolve = this.resolve!;
    this.ids = [];
    this.batch = null;
    this.resolve = null;
    if (ids.length > 0) void this.query(ids).then(resolve);
  };

  private async query(ids: number[]): Promise<Changes> {
    try {
      const t0 = performance.now();
      // The batch was prepared moments ago with active, consenting contacts: ask only for what may
      // have changed since (not active any more, erased, a consent withdrawn), which is usually nothing.
      const changed = await changedContactRows(this.db, [...new Set(ids)]);
      this.timings.recheck += performance.now() - t0;
      this.timings.rechecks++;
      const states = new Map<number, ContactState>();
      const withdrawn = new Map<number, Set<string>>();
      for (const r of changed as Record<string, unknown>[]) {
        const id = toInt(r.id);
        let w = withdrawn.get(id);
        if (!w) {
          const gone = (w = new Set<string>());
          withdrawn.set(id, gone);
          // A purpose's consent was there when the batch was prepared; it counts unless withdrawn since.
          states.set(id, { status: String(r.status), stoppedAt: toDateOrNull(r.stopped_at)?.getTime() ?? null, erased: r.erased_at !== null && r.erased_at !== undefined, consents: { has: (purpose) => !gone.has(purpose) } });
        }
        if (r.purpose !== null && r.purpose !== undefined) w.add(String(r.purpose));
      }
      return states;
    } catch {
      return null;
    }
  }
}

/** An error as the outbox's error_detail records it: its kind and scrubbed message (errorForLog). */
function errorText(err: unknown): string {
  const e = errorForLog(err);
  return (e.message ? `${e.type}: ${e.message}` : e.type).slice(0, 300);
}

/** Starts a dispatcher (main.ts). */
export function startDispatcher(opts: DispatcherOptions): Dispatcher {
  return new Dispatcher(opts).start();
}
