/**
 * Delivery statuses from the providers' webhooks, applied to the outbox.
 *
 * A status names the provider's message id (with the channel that carried it: the outbox row's
 * `channel` once sent). Statuses only move a message forward:
 *
 *     queued < sending < sent < delivered < read          failed: final
 *
 * so a `delivered` that arrives after `read` changes nothing, and a replay changes nothing. A
 * `failed` may follow `sent` (WhatsApp reports most failures that way) but not `delivered` or
 * `read`. Each change records the provider's time in `status_at`, and a failure its error code.
 *
 * Two failures do more than mark the row:
 *   - opted out (WhatsApp 131050, Twilio 21610): the address is stopped on that channel
 *     (contacts' `stopOnChannel`: the address is marked opted out, and the contact stopped when it
 *     has no other usable address);
 *   - outside the 24-hour window (WhatsApp 131047, reported after the message was accepted): the
 *     message never reached the person, so the row is queued again for SMS; the dispatcher sends it
 *     by SMS when the contact has an SMS address and SMS_FALLBACK allows, otherwise marks it skipped.
 *
 * The dispatcher records provider ids in batches, a few milliseconds after the provider answered,
 * so a fast status can name an id the outbox does not know yet. Such a status is kept in
 * `outbox_status_early` and applied as soon as the id is recorded (`applyEarlyStatuses`); unclaimed
 * ones (statuses of messages another system sent from the same number) are deleted after an hour.
 */
import type { StatusUpdate } from '../channels/types.js';
import { stopOnChannel } from '../contacts/stop.js';
import type { Database, Knex } from '../db/orm.js';
import { toDate, toInt } from '../db/values.js';
import type { Medium } from './types.js';

export const STATUS_RANK: Record<string, number> = { queued: 0, sending: 1, sent: 2, delivered: 3, read: 4 };

/** The statuses a row may be in for each reported status to apply. */
const APPLIES_TO: Record<StatusUpdate['status'], string[]> = {
  sent: ['sending'],
  delivered: ['sending', 'sent'],
  read: ['sending', 'sent', 'delivered'],
  failed: ['sending', 'sent'],
};

export interface ApplyResult {
  /** Rows that moved. */
  applied: number;
  /** Statuses that changed nothing: replays, out-of-order arrivals, statuses of finished rows. */
  ignored: number;
  /** Statuses whose provider id is not recorded yet, kept for later. */
  early: number;
  /** Rows queued again for SMS after WhatsApp said the 24-hour window had closed. */
  requeued: number;
  /** Addresses stopped because the provider said the person opted out. */
  optedOut: number;
}

export interface ApplyOptions {
  /** Keep statuses for unknown ids in outbox_status_early (default true). */
  keepEarly?: boolean;
  now?: Date;
}

function key(u: { channel: string; providerId: string }): string {
  return `${u.channel}\u0000${u.providerId}`;
}

/** Applies a batch of statuses (one webhook's worth, or more) to the outbox, in one transaction. */
export async function applyStatuses(db: Pick<Database, 'knex'>, updates: readonly StatusUpdate[], opts: ApplyOptions = {}): Promise<ApplyResult> {
  if (updates.length === 0) return { applied: 0, ignored: 0, early: 0, requeued: 0, optedOut: 0 };
  return db.knex.transaction((trx) => applyStatusesIn(trx, updates, opts));
}

/**
 * Like applyStatuses, inside the caller's transaction (the webhooks store a group's messages and
 * apply its statuses in one). Set-based: the non-failure statuses cost one UPDATE per (channel,
 * status, time) in rank order — a webhook group's statuses share their second, so that is about
 * one statement per status kind — plus one read of the ids that moved nothing, to tell a replay
 * from a status that came before its id was recorded. Failures, rare and with side effects, are
 * applied one by one after the others.
 */
export async function applyStatusesIn(trx: Knex, updates: readonly StatusUpdate[], opts: ApplyOptions = {}): Promise<ApplyResult> {
  const result: ApplyResult = { applied: 0, ignored: 0, early: 0, requeued: 0, optedOut: 0 };
  if (updates.length === 0) return result;
  const now = opts.now ?? new Date();

  // One update per (message, status), lowest rank first so that a batch holding sent, read and
  // delivered for one message ends at read whatever its order.
  const seen = new Set<string>();
  const unique: StatusUpdate[] = [];
  for (const u of updates) {
    if (!u || !u.providerId || !(u.status in APPLIES_TO)) {
      result.ignored++;
      continue;
    }
    const k = key(u) + '\u0000' + u.status;
    if (seen.has(k)) {
      result.ignored++;
      continue;
    }
    seen.add(k);
    unique.push(u);
  }
  const rank = (s: StatusUpdate['status']) => (s === 'failed' ? 5 : STATUS_RANK[s]);
  unique.sort((a, b) => rank(a.status) - rank(b.status));

  // Forward moves, grouped by (status, channel, time) in rank order.
  const groups = new Map<string, StatusUpdate[]>();
  for (const u of unique) {
    if (u.status === 'failed') continue;
    const g = `${u.status}\u0000${u.channel}\u0000${u.at.getTime()}`;
    const list = groups.get(g);
    if (list) list.push(u);
    else groups.set(g, [u]);
  }
  const moved = new Set<string>();
  for (const list of groups.values()) {
    const { status, channel, at } = list[0];
    for (let i = 0; i < list.length; i += 500) {
      const rows: { provider_id: unknown }[] = await trx('outbox')
        .where('channel', channel)
        .whereIn('provider_id', list.slice(i, i + 500).map((u) => u.providerId))
        .whereIn('status', APPLIES_TO[status])
        .update({ status, status_at: at })
        .returning(['provider_id']);
      for (const r of rows) moved.add(key({ channel, providerId: String(r.provider_id) }) + '\u0000' + status);
      result.applied += rows.length;
    }
  }

  // Failures, one by one (they may requeue a row or stop an address).
  const stops: { medium: Medium; address: string; evidence: string; at: Date }[] = [];
  const stillOpen: StatusUpdate[] = [];
  for (const u of unique) {
    if (u.status !== 'failed') {
      if (!moved.has(key(u) + '\u0000' + u.status)) stillOpen.push(u);
      continue;
    }
    const code = (u.error?.code ?? 'failed').slice(0, 32);
    const detail = u.error?.detail?.slice(0, 300) ?? null;
    if (u.error?.class === 'window_closed') {
      // It never reached the person: send it again, by SMS (see the module comment).
      const n = await trx('outbox')
        .where({ provider_id: u.providerId, channel: u.channel, status: 'sent' })
        .update({ status: 'queued', channel: 'sms', provider_id: null, address_id: null, not_before: null, claimed_by: null, claimed_at: null, error_code: code, error_detail: detail, status_at: u.at });
      if (n > 0) {
        result.requeued += n;
        result.applied += n;
        continue;
      }
    }
    const rows = await trx('outbox')
      .where({ provider_id: u.providerId, channel: u.channel })
      .whereIn('status', APPLIES_TO.failed)
      .update({ status: 'failed', status_at: u.at, error_code: code, error_detail: detail })
      .returning(['id', 'address_id']);
    if (rows.length === 0) {
      stillOpen.push(u);
      continue;
    }
    result.applied += rows.length;
    if (u.error?.class === 'opted_out') {
      for (const r of rows as { address_id: unknown }[]) {
        if (r.address_id === null || r.address_id === undefined) continue;
        const a = await trx('contact_addresses').where('id', toInt(r.address_id)).first('channel', 'address');
        if (a) stops.push({ medium: a.channel as Medium, address: String(a.address), evidence: `${u.channel} ${code} ${u.providerId}`, at: u.at });
      }
    }
  }

  // What moved nothing: a replay or an out-of-order arrival (the id is known), or a status that
  // came before the dispatcher recorded the id (kept for later).
  if (stillOpen.length) {
    const known = new Set<string>();
    const ids = [...new Set(stillOpen.map((u) => u.providerId))];
    for (let i = 0; i < ids.length; i += 500) {
      const rows = await trx('outbox').whereIn('provider_id', ids.slice(i, i + 500)).select('provider_id', 'channel');
      for (const r of rows) known.add(key({ channel: String(r.channel), providerId: String(r.provider_id) }));
    }
    const early: Record<string, unknown>[] = [];
    for (const u of stillOpen) {
      if (known.has(key(u)) || opts.keepEarly === false) {
        result.ignored++;
        continue;
      }
      early.push({
        channel: u.channel,
        provider_id: u.providerId.slice(0, 200),
        status: u.status,
        at: u.at,
        error_class: u.error?.class ?? null,
        error_code: u.error?.code?.slice(0, 32) ?? null,
        error_detail: u.error?.detail?.slice(0, 300) ?? null,
        received_at: now,
      });
      result.early++;
    }
    for (let i = 0; i < early.length; i += 200) await trx('outbox_status_early').insert(early.slice(i, i + 200));
  }
  for (const s of stops) {
    await stopOnChannel(trx, s.medium, s.address, { ref: s.evidence, at: s.at });
    result.optedOut++;
  }
  return result;
}

function earlyToUpdate(r: Record<string, unknown>): StatusUpdate {
  const u: StatusUpdate = { channel: r.channel as StatusUpdate['channel'], providerId: String(r.provider_id), status: r.status as StatusUpdate['status'], at: toDate(r.at) };
  if (r.error_code !== null && r.error_code !== undefined) {
    u.error = { class: (r.error_class ?? 'permanent') as NonNullable<StatusUpdate['error']>['class'], code: String(r.error_code), detail: String(r.error_detail ?? '') };
  }
  return u;
}

/**
 * Applies the kept statuses whose provider id the outbox now knows, and forgets them. The
 * dispatcher calls it after recording a batch of sends. Returns how many rows moved.
 */
export async function applyEarlyStatuses(db: Pick<Database, 'knex'>): Promise<number> {
  const rows = await db
    .knex('outbox_status_early as e')
    .whereExists((q) => q.select(db.knex.raw('1')).from('outbox as o').whereRaw('o.provider_id = e.provider_id'))
    .orderBy('e.id')
    .limit(5000)
    .select('e.*');
  if (rows.length === 0) return 0;
  const r = await applyStatuses(db, rows.map(earlyToUpdate), { keepEarly: false });
  await db.knex('outbox_status_early').whereIn('id', rows.map((x: { id: unknown }) => toInt(x.id))).delete();
  return r.applied;
}

/** Deletes early statuses nobody claimed within `maxAgeMs` (default an hour). Returns how many. */
export async function purgeEarlyStatuses(knex: Knex, maxAgeMs = 3_600_000, now = new Date()): Promise<number> {
  return knex('outbox_status_early').where('received_at', '<', new Date(now.getTime() - maxAgeMs)).delete();
}
