/**
 * Group commit for webhooks: what concurrent webhook requests parsed (messages and statuses) is
 * stored together, in one transaction. A group is written once the event loop has read every
 * request that had arrived (setImmediate, not a timer) and, on PostgreSQL, also takes whatever
 * arrived while the previous group was being written. A request waits only for its own group; at
 * low load a group is one request, at high load it is everything that arrived meanwhile, so the
 * number of transactions (and queries) grows much slower than the number of requests.
 *
 * If a group fails (a bad row, a deadlock), each of its requests is retried alone, so one request's
 * failure is never another's.
 */
import type { AddressChange, StatusUpdate } from './types.js';
import { changeAddress } from '../contacts/addresses.js';
import type { ParsedInbound, RouterServices } from '../messaging/types.js';
import { storeInboundIn } from '../messaging/inbound.js';
import { applyStatusesIn } from '../messaging/status.js';

export interface IngestOutcome {
  stored: number[];
  duplicates: number;
  statuses: number;
  /** Address changes applied (a person's address moved to its new value). */
  addressesMoved: number;
}

interface Job {
  messages: readonly ParsedInbound[];
  statuses: readonly StatusUpdate[];
  changes: readonly AddressChange[];
  resolve: (o: IngestOutcome) => void;
  reject: (e: unknown) => void;
}

export interface IngestOptions {
  /** Most messages + statuses written in one group (default 1,000). */
  maxGroup?: number;
  /** Called with the ids of newly stored messages (the inbound worker routes them). */
  onStored?: (ids: number[]) => void;
}

export class Ingest {
  private queue: Job[] = [];
  private running = false;
  /** Groups written and events in them, for the benchmark and the logs. */
  groups = 0;
  events = 0;

  constructor(
    private readonly services: RouterServices,
    private readonly opts: IngestOptions = {},
  ) {}

  submit(messages: readonly ParsedInbound[], statuses: readonly StatusUpdate[], changes: readonly AddressChange[] = []): Promise<IngestOutcome> {
    if (messages.length === 0 && statuses.length === 0 && changes.length === 0) return Promise.resolve({ stored: [], duplicates: 0, statuses: 0, addressesMoved: 0 });
    return new Promise((resolve, reject) => {
      this.queue.push({ messages, statuses, changes, resolve, reject });
      if (!this.running) {
        // Start writing once this turn of the event loop has read every request that had arrived:
        // they make the first group (no timer; SQLite's driver is synchronous, so nothing would
        // arrive while a group is written otherwise).
        this.running = true;
        setImmediate(() => void this.drain());
      }
    });
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      const max = this.opts.maxGroup ?? 1000;
      while (this.queue.length) {
        let size = 0;
        let n = 0;
        while (n < this.queue.length && (n === 0 || size + this.queue[n].messages.length + this.queue[n].statuses.length <= max)) {
          size += this.queue[n].messages.length + this.queue[n].statuses.length;
          n++;
        }
        const group = this.queue.splice(0, n);
        try {
          const outcomes = await this.write(group);
          group.forEach((j, i) => j.resolve(outcomes[i]));
        } catch {
          for (const j of group) {
            try {
              j.resolve((await this.write([j]))[0]);
            } catch (err) {
              j.reject(err);
            }
          }
        }
      }
    } finally {
      this.running = false;
    }
  }

  private async write(group: Job[]): Promise<IngestOutcome[]> {
    const messages = group.flatMap((j) => j.messages);
    const statuses = group.flatMap((j) => j.statuses);
    // One transaction for the group: address changes (rare; before the messages, which may come
    // from a new address already), its messages, then its statuses.
    const moved = new Map<Job, number>();
    const ids = await this.services.db.knex.transaction(async (trx) => {
      for (const j of group) {
        for (const c of j.changes) if ((await changeAddress(trx, c)) === 'moved') moved.set(j, (moved.get(j) ?? 0) + 1);
      }
      const stored = messages.length ? await storeInboundIn(trx, messages) : [];
      if (statuses.length) await applyStatusesIn(trx, statuses);
      return stored;
    });
    this.groups++;
    this.events += messages.length + statuses.length;
    const fresh = ids.filter((id): id is number => id !== null);
    if (fresh.length) this.opts.onStored?.(fresh);
    let at = 0;
    return group.map((j) => {
      const mine = ids.slice(at, at + j.messages.length);
      at += j.messages.length;
      const stored = mine.filter((id): id is number => id !== null);
      return { stored, duplicates: mine.length - stored.length, statuses: j.statuses.length, addressesMoved: moved.get(j) ?? 0 };
    });
  }
}
