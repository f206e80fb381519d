/**
 * Broadcasts: a key message (its approved version) to an audience (lists and/or a saved segment),
 * with a channel policy, quiet hours, a standing footer, and a schedule (now, at a time, daily or
 * weekly).
 *
 * Life of a broadcast:
 *   draft ──send──▶ sending ──(every row final)──▶ completed
 *     │               │  ▲
 *     │             pause resume           any of draft, scheduled, recurring, sending, paused ──cancel──▶ cancelled
 *     │               ▼  │
 *     │             paused
 *     ├──send at──▶ scheduled ──(the time comes: the broadcasts job)──▶ sending
 *     └──daily / weekly──▶ recurring ──(each occurrence: a new broadcast, parent_id = this one)──▶ sending
 *
 * Fan-out (`fanOut`) freezes the recipients: one INSERT … SELECT from the recipients query
 * (audience.ts) into the outbox — content NULL (the dispatcher asks render.ts at send time), the
 * language resolved in SQL, not_before from quiet hours, priority 3, purpose 'updates' — in one
 * transaction with the broadcast's move to 'sending'. Nothing is loaded into this process, whatever
 * the audience size. The outbox's unique (broadcast_id, contact_id) makes each pair at most one row.
 *
 * Pause moves the broadcast's queued rows to 'held', a status the dispatcher's claim never takes;
 * resume moves them back; cancel moves queued and held rows to 'cancelled'. Rows already claimed by
 * a dispatcher (status 'sending', about two seconds of sending) finish.
 */
import { z } from 'zod';
import type { Config } from '../config.js';
import type { Database, Knex } from '../db/orm.js';
import { toDate, toDateOrNull, toInt } from '../db/values.js';
import { HttpError, notFound } from '../http/errors.js';
import { audit, type Actor } from '../staff/audit.js';
import { dialectOf, getSegment } from '../contacts/segments/index.js';
import { CHANNEL_POLICIES, column, recipientsQuery, type ChannelPolicy, type RecipientSpec } from './audience.js';
import { getVersion, personOf, usableVersion, type MessageVersion } from './messages.js';
import { isTimeZone, nextLocalTime, parseQuietHours, type QuietHours } from './quiet.js';

export const RECURRENCES = ['none', 'daily', 'weekly'] as const;
export type Recurrence = (typeof RECURRENCES)[number];
export const BROADCAST_STATUSES = ['draft', 'scheduled', 'recurring', 'sending', 'paused', 'completed', 'cancelled'] as const;
export type BroadcastStatus = (typeof BROADCAST_STATUSES)[number];
/** Outbox statuses of a broadcast row that is not final yet. */
export const PENDING = ['queued', 'sending', 'held'];

const hhmm = z.string().trim().regex(/^([01]\d|2[0-3]):[0-5]\d$/, { message: 'must be a time such as 20:00' });
const footer = z
  .record(z.string().regex(/^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$/, { message: 'keys must be language codes such as es, en' }), z.string().trim().max(300, { message: 'must be at most 300 characters' }))
  .transform((r) => Object.fromEntries(Object.entries(r).filter(([, v]) => v !== '')));

export const broadcastInput = z
  .object({
    name: z.string().trim().min(1).max(200),
    messageId: z.number().int().positive(),
    lists: z.array(z.number().int().positive()).max(50).default([]),
    segmentId: z.number().int().positive().nullable().optional(),
    channelPolicy: z.enum(CHANNEL_POLICIES).default('whatsapp_then_sms'),
    excludeRecentHours: z.number().int().min(1).max(24 * 30).nullable().optional(),
    /** null: no quiet hours; absent: the QUIET_HOURS setting. */
    quietHours: z.object({ start: hhmm, end: hhmm }).refine((q) => q.start !== q.end, { message: 'start and end must differ', path: ['end'] }).nullable().optional(),
    footer: footer.nullable().optional(),
    recurrence: z.enum(RECURRENCES).default('none'),
  })
  .refine((b) => b.lists.length > 0 || (b.segmentId !== undefined && b.segmentId !== null), { message: 'choose at least one list or a segment', path: ['lists'] });
export type BroadcastInput = z.input<typeof broadcastInput>;
export const broadcastPatch = z.object({
  name: z.string().trim().min(1).max(200).optional(),
  messageId: z.number().int().positive().optional(),
  lists: z.array(z.number().int().positive()).max(50).optional(),
  segmentId: z.number().int().positive().nullable().optional(),
  channelPolicy: z.enum(CHANNEL_POLICIES).optional(),
  excludeRecentHours: z.number().int().min(1).max(24 * 30).nullable().optional(),
  quietHours: z.object({ start: hhmm, end: hhmm }).refine((q) => q.start !== q.end, { message: 'start and end must differ', path: ['end'] }).nullable().optional(),
  footer: footer.nullable().optional(),
  recurrence: z.enum(RECURRENCES).optional(),
});

export interface Broadcast {
  id: number;
  name: string;
  messageId: number;
  messageVersionId: number;
  messageKey?: string;
  messageTitle?: string;
  messageVersion?: number;
  lists: number[];
  segmentId: number | null;
  audienceQuery: string | null;
  channelPolicy: ChannelPolicy;
  excludeRecentHours: number | null;
  quietHours: QuietHours | null;
  footer: Record<string, string> | null;
  status: BroadcastStatus;
  sendAt: string | null;
  recurrence: Recurrence;
  nextRunAt: string | null;
  parentId: number | null;
  recipients: number | null;
  preview: Record<string, unknown> | null;
  createdById: number | null;
  createdByLabel: string | null;
  createdAt: string;
  updatedAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  pausedAt: string | null;
  cancelledAt: string | null;
}

const parseJson = <T>(v: unknown, fallback: T): T => (v === null || v === undefined || v === '' ? fallback : typeof v === 'string' ? (JSON.parse(v) as T) : (v as T));
const iso = (v: unknown) => toDateOrNull(v)?.toISOString() ?? null;

export function readBroadcast(r: Record<string, unknown>): Broadcast {
  return {
    id: toInt(r.id),
    name: String(r.name),
    messageId: toInt(r.message_id),
    messageVersionId: toInt(r.message_version_id),
    ...(r.message_key !== undefined ? { messageKey: String(r.message_key), messageTitle: String(r.message_title), messageVersion: toInt(r.message_version) } : {}),
    lists: parseJson<number[]>(r.lists, []),
    segmentId: r.segment_id === null || r.segment_id === undefined ? null : toInt(r.segment_id),
    audienceQuery: (r.audience_query as string | null) ?? null,
    channelPolicy: String(r.channel_policy) as ChannelPolicy,
    excludeRecentHours: r.exclude_recent_hours === null || r.exclude_recent_hours === undefined ? null : toInt(r.exclude_recent_hours),
    quietHours: parseQuietHours(r.quiet_start as string | null, r.quiet_end as string | null),
    footer: parseJson<Record<string, string> | null>(r.footer, null),
    status: String(r.status) as BroadcastStatus,
    sendAt: iso(r.send_at),
    recurrence: String(r.recurrence) as Recurrence,
    nextRunAt: iso(r.next_run_at),
    parentId: r.parent_id === null || r.parent_id === undefined ? null : toInt(r.parent_id),
    recipients: r.recipients === null || r.recipients === undefined ? null : toInt(r.recipients),
    preview: parseJson<Record<string, unknown> | null>(r.preview, null),
    createdById: r.created_by_id === null || r.created_by_id === undefined ? null : toInt(r.created_by_id),
    createdByLabel: (r.created_by_label as string | null) ?? null,
    createdAt: toDate(r.created_at).toISOString(),
    updatedAt: toDate(r.updated_at).toISOString(),
    startedAt: iso(r.started_at),
    finishedAt: iso(r.finished_at),
    pausedAt: iso(r.paused_at),
    cancelledAt: iso(r.cancelled_at),
  };
}

function withMessage(knex: Knex) {
  return knex('broadcasts as b')
    .join('key_messages as m', 'm.id', 'b.message_id')
    .join('key_message_versions as v', 'v.id', 'b.message_version_id')
    .select('b.*', 'm.key as message_key', 'm.title as message_title', 'v.version as message_version');
}

export async function findBroadcast(knex: Knex, id: number): Promise<Broadcast | null> {
  const r = await withMessage(knex).where('b.id', id).first();
  return r ? readBroadcast(r) : null;
}

export async function getBroadcast(knex: Knex, id: number): Promise<Broadcast> {
  const b = await findBroadcast(knex, id);
  if (!b) throw notFound('There is no such broadcast');
  return b;
}

export async function listBroadcasts(knex: Knex, opts: { status?: BroadcastStatus; parentId?: number; limit?: number; offset?: number } = {}): Promise<{ data: Broadcast[]; total: number }> {
  const limit = Math.min(Math.max(opts.limit ?? 50, 1), 200);
  const base = knex('broadcasts as b');
  if (opts.status) base.where('b.status', opts.status);
  if (opts.parentId) base.where('b.parent_id', opts.parentId);
  const [{ n }] = await base.clone().count({ n: '*' });
  const ids = (await base.clone().select('b.id').orderBy('b.id', 'desc').limit(limit).offset(opts.offset ?? 0)).map((r: Record<string, unknown>) => toInt(r.id));
  const rows = ids.length ? await withMessage(knex).whereIn('b.id', ids).orderBy('b.id', 'desc') : [];
  return { data: rows.map(readBroadcast), total: toInt(n) };
}

/** Checks that the lists and segment exist; throws 400 naming the field. */
async function checkAudience(knex: Knex, lists: number[], segmentId: number | null | undefined): Promise<void> {
  if (lists.length) {
    const found = new Set((await knex('lists').whereIn('id', lists).whereNull('archived_at').select('id')).map((r: Record<string, unknown>) => toInt(r.id)));
    const missing = lists.filter((l) => !found.has(l));
    if (missing.length) throw new HttpError(400, 'validation_failed', 'The broadcast is not valid', { lists: `there is no active list with id ${missing.join(', ')}` });
  }
  if (segmentId) {
    try {
      await getSegment(knex, segmentId);
    } catch {
      throw new HttpError(400, 'validation_failed', 'The broadcast is not valid', { segmentId: `there is no segment with id ${segmentId}` });
    }
  }
}

export async function createBroadcast(db: Database, config: Config, actor: Actor, input: BroadcastInput): Promise<Broadcast> {
  const data = broadcastInput.parse(input);
  const { version } = await usableVersion(db.knex, data.messageId);
  await checkAudience(db.knex, data.lists, data.segmentId);
  const quiet = data.quietHours === undefined ? config.QUIET_HOURS : data.quietHours;
  const now = new Date();
  const [row] = await db
    .knex('broadcasts')
    .insert({
      name: data.name,
      message_id: data.messageId,
      message_version_id: version.id,
      lists: JSON.stringify(data.lists),
      segment_id: data.segmentId ?? null,
      channel_policy: data.channelPolicy,
      exclude_recent_hours: data.excludeRecentHours ?? null,
      quiet_start: quiet?.start ?? null,
      quiet_end: quiet?.end ?? null,
      footer: data.footer && Object.keys(data.footer).length ? JSON.stringify(data.footer) : null,
      status: 'draft',
      recurrence: data.recurrence,
      created_by_id: await personOf(db.knex, actor),
      created_by_label: actor.label.slice(0, 254),
      created_at: now,
      updated_at: now,
    })
    .returning('id');
  const id = toInt(typeof row === 'object' ? row.id : row);
  await audit(db, actor, { action: 'broadcast.create', entityType: 'broadcast', entityId: id, detail: { messageId: data.messageId, version: version.version, lists: data.lists.length, segment: data.segmentId ?? null } });
  return getBroadcast(db.knex, id);
}

/** Changes a broadcast that has not started; a change of message takes that message's approved version. */
export async function updateBroadcast(db: Database, actor: Actor, id: number, input: z.input<typeof broadcastPatch>): Promise<Broadcast> {
  const data = broadcastPatch.parse(input);
  const b = await getBroadcast(db.knex, id);
  if (b.status !== 'draft') throw new HttpError(409, 'conflict', `The broadcast is ${b.status}: only a draft can be changed`);
  const changes: Record<string, unknown> = { updated_at: new Date(), preview: null };
  if (data.name !== undefined) changes.name = data.name;
  if (data.messageId !== undefined) {
    const { version } = await usableVersion(db.knex, data.messageId);
    changes.message_id = data.messageId;
    changes.message_version_id = version.id;
  }
  const lists = data.lists ?? b.lists;
  const segmentId = data.segmentId !== undefined ? data.segmentId : b.segmentId;
  if (lists.length === 0 && !segmentId) throw new HttpError(400, 'validation_failed', 'The broadcast is not valid', { lists: 'choose at least one list or a segment' });
  await checkAudience(db.knex, lists, segmentId);
  if (data.lists !== undefined) changes.lists = JSON.stringify(data.lists);
  if (data.segmentId !== undefined) changes.segment_id = data.segmentId;
  if (data.channelPolicy !== undefined) changes.channel_policy = data.channelPolicy;
  if (data.excludeRecentHours !== undefined) changes.exclude_recent_hours = data.excludeRecentHours;
  if (data.quietHours !== undefined) {
    changes.quiet_start = data.quietHours?.start ?? null;
    changes.quiet_end = data.quietHours?.end ?? null;
  }
  if (data.footer !== undefined) changes.footer = data.footer && Object.keys(data.footer).length ? JSON.stringify(data.footer) : null;
  if (data.recurrence !== undefined) changes.recurrence = data.recurrence;
  await db.knex('broadcasts').where({ id, status: 'draft' }).update(changes);
  await audit(db, actor, { action: 'broadcast.update', entityType: 'broadcast', entityId: id, detail: { changed: Object.keys(data) } });
  return getBroadcast(db.knex, id);
}

/** The recipients query for a broadcast at `now` (the preview's and the fan-out's common source). */
export async function recipientsOf(knex: Knex, config: Config, b: Broadcast, version: Pick<MessageVersion, 'variants'>, now: Date) {
  const spec: RecipientSpec = {
    broadcastId: b.id,
    lists: b.lists,
    segmentId: b.segmentId,
    policy: b.channelPolicy,
    excludeRecentHours: b.excludeRecentHours,
    quiet: b.quietHours,
    languages: Object.keys(version.variants),
    defaultLanguage: config.DEFAULT_LANGUAGE,
    defaultTimezone: config.DEFAULT_TIMEZONE,
    now,
  };
  return recipientsQuery(knex, spec);
}

/** The version a broadcast sends, refusing one that is not (or no longer) approved. */
async function sendableVersion(knex: Knex, b: Broadcast): Promise<MessageVersion> {
  const v = await getVersion(knex, b.messageVersionId);
  if (v.status !== 'approved' && v.status !== 'superseded') throw new HttpError(409, 'message_not_approved', 'The broadcast\'s message version is not approved');
  const m = await knex('key_messages').where('id', b.messageId).first('archived_at');
  if (m?.archived_at) throw new HttpError(409, 'message_archived', 'The broadcast\'s key message is archived');
  return v;
}

function rowsOf(result: unknown): Record<string, unknown>[] {
  if (Array.isArray(result)) return result as Record<string, unknown>[];
  return (result as { rows?: Record<string, unknown>[] })?.rows ?? [];
}

/**
 * Freezes the recipients of a draft or scheduled broadcast into the outbox and marks it sending, in
 * one transaction. Returns how many rows were inserted.
 */
export async function fanOut(db: Pick<Database, 'knex'>, config: Config, id: number, opts: { now?: Date } = {}): Promise<number> {
  const knex = db.knex;
  if (dialectOf(knex) === 'postgresql') return fanOutIn(knex, config, id, opts);
  // SQLite probes the audience's list, consent and address sets in temporary b-trees; kept in memory
  // (a few tens of MB for a million recipients) they are not written to a temporary file and read back.
  await knex.raw('PRAGMA temp_store = MEMORY');
  try {
    return await fanOutIn(knex, config, id, opts);
  } finally {
    await knex.raw('PRAGMA temp_store = DEFAULT');
  }
}

async function fanOutIn(knex: Knex, config: Config, id: number, opts: { now?: Date }): Promise<number> {
  const now = opts.now ?? new Date();
  const pg = dialectOf(knex) === 'postgresql';
  return knex.transaction(async (trx) => {
    // Taking the broadcast (row-locked until commit on PostgreSQL) makes a second fan-out, a pause
    // or a cancel wait for this one, and find it done.
    const taken = await trx('broadcasts').where('id', id).whereIn('status', ['draft', 'scheduled']).update({ status: 'sending', started_at: now, updated_at: now });
    if (taken !== 1) {
      const b = await trx('broadcasts').where('id', id).first('status');
      if (!b) throw notFound('There is no such broadcast');
      throw new HttpError(409, 'conflict', `The broadcast is ${b.status}: it cannot be sent again`);
    }
    // PostgreSQL, for this transaction only: the audience's list, consent and address sets are all in
    // contact order in their indexes, so merge joins stream the recipients in contact order (and the
    // outbox indexes on contact_id fill in order) where hash joins would first build a table of each
    // set — measured on a million recipients, the insert takes about 0.6 of the time; and what still
    // sorts or hashes gets the memory to do it without temporary files.
    if (pg) {
      await trx.raw("SET LOCAL work_mem = '64MB'");
      await trx.raw('SET LOCAL enable_hashjoin = off');
    }
    const b = readBroadcast({ ...(await trx('broadcasts').where('id', id).first()) });
    const version = await sendableVersion(trx, b);
    const r = await recipientsOf(trx, config, b, version, now);
    const cast = (type: string) => (pg ? `CAST(? AS ${type})` : '?');
    const select = r.query
      .clone()
      .select(
        'c.id',
        trx.raw("'updates'"),
        trx.raw('3'),
        trx.raw(cast('integer'), [id]),
        column(trx, r.language, 'language'),
        r.channel === null ? trx.raw(pg ? 'CAST(NULL AS varchar)' : 'NULL') : trx.raw(cast('varchar'), [r.channel]),
        trx.raw("'queued'"),
        column(trx, r.notBefore, 'not_before'),
        trx.raw(cast('timestamptz'), [now]),
      );
    const { sql, bindings } = select.toSQL();
    const result = await trx.raw(
      `INSERT INTO outbox (contact_id, purpose, priority, broadcast_id, language, channel, status, not_before, created_at) ${sql} ON CONFLICT (broadcast_id, contact_id) DO NOTHING`,
      bindings as unknown[],
    );
    let inserted: number;
    if (pg) inserted = toInt((result as { rowCount?: number }).rowCount);
    else inserted = toInt(rowsOf(await trx.raw('SELECT changes() AS n'))[0]?.n);
    const segment = b.segmentId ? await trx('segments').where('id', b.segmentId).first('query') : null;
    await trx('broadcasts').where('id', id).update({ recipients: inserted, audience_query: segment?.query ?? null, updated_at: now });
    return inserted;
  });
}

/** Sends a draft now: fan-out. */
export async function sendBroadcast(db: Database, config: Config, actor: Actor, id: number, opts: { now?: Date } = {}): Promise<Broadcast> {
  const b = await getBroadcast(db.knex, id);
  if (b.recurrence !== 'none') throw new HttpError(409, 'conflict', 'A recurring broadcast is started with a first time (schedule it)');
  const recipients = await fanOut(db, config, id, opts);
  await audit(db, actor, { action: 'broadcast.send', entityType: 'broadcast', entityId: id, detail: { recipients, version: b.messageVersionId } });
  return getBroadcast(db.knex, id);
}

/**
 * Schedules a draft: at `at` (once), or — for a daily or weekly broadcast — first at `at` and then
 * every day or week at the same local time in the programme's time zone.
 */
export async function scheduleBroadcast(db: Database, actor: Actor, id: number, at: Date, opts: { now?: Date } = {}): Promise<Broadcast> {
  const now = opts.now ?? new Date();
  if (!(at.getTime() > now.getTime() - 60_000)) throw new HttpError(400, 'validation_failed', 'The broadcast is not valid', { at: 'must be in the future' });
  const b = await getBroadcast(db.knex, id);
  if (b.status !== 'draft') throw new HttpError(409, 'conflict', `The broadcast is ${b.status}: only a draft can be scheduled`);
  await sendableVersion(db.knex, b);
  const recurring = b.recurrence !== 'none';
  const n = await db
    .knex('broadcasts')
    .where({ id, status: 'draft' })
    .update(recurring ? { status: 'recurring', send_at: at, next_run_at: at, updated_at: now } : { status: 'scheduled', send_at: at, updated_at: now });
  if (n !== 1) throw new HttpError(409, 'conflict', 'The broadcast changed meanwhile; reload it');
  await audit(db, actor, { action: 'broadcast.schedule', entityType: 'broadcast', entityId: id, detail: { at: at.toISOString(), recurrence: b.recurrence } });
  return getBroadcast(db.knex, id);
}

export async function pauseBroadcast(db: Database, actor: Actor, id: number, opts: { now?: Date } = {}): Promise<{ broadcast: Broadcast; held: number }> {
  const now = opts.now ?? new Date();
  const held: number = await db.knex.transaction(async (trx): Promise<number> => {
    const n = await trx('broadcasts').where('id', id).whereIn('status', ['sending', 'scheduled', 'recurring']).update({ status: 'paused', paused_at: now, updated_at: now });
    if (n !== 1) throw await stateError(trx, id, 'paused');
    return trx('outbox').where({ broadcast_id: id, status: 'queued' }).update({ status: 'held' });
  });
  await audit(db, actor, { action: 'broadcast.pause', entityType: 'broadcast', entityId: id, detail: { held } });
  return { broadcast: await getBroadcast(db.knex, id), held };
}

export async function resumeBroadcast(db: Database, actor: Actor, id: number, opts: { now?: Date } = {}): Promise<{ broadcast: Broadcast; released: number }> {
  const now = opts.now ?? new Date();
  const released: number = await db.knex.transaction(async (trx): Promise<number> => {
    const b = await trx('broadcasts').where('id', id).first();
    if (!b) throw notFound('There is no such broadcast');
    if (b.status !== 'paused') throw new HttpError(409, 'conflict', `The broadcast is ${b.status}: only a paused broadcast can be resumed`);
    // Where it goes back to: sending once fanned out; else recurring or scheduled.
    const next = b.started_at ? 'sending' : b.recurrence !== 'none' ? 'recurring' : b.send_at ? 'scheduled' : 'draft';
    await trx('broadcasts').where({ id, status: 'paused' }).update({ status: next, paused_at: null, updated_at: now });
    return trx('outbox').where({ broadcast_id: id, status: 'held' }).update({ status: 'queued' });
  });
  await audit(db, actor, { action: 'broadcast.resume', entityType: 'broadcast', entityId: id, detail: { released } });
  return { broadcast: await getBroadcast(db.knex, id), released };
}

export async function cancelBroadcast(db: Database, actor: Actor, id: number, opts: { now?: Date } = {}): Promise<{ broadcast: Broadcast; cancelled: number }> {
  const now = opts.now ?? new Date();
  const cancelled: number = await db.knex.transaction(async (trx): Promise<number> => {
    const n = await trx('broadcasts').where('id', id).whereIn('status', ['draft', 'scheduled', 'recurring', 'sending', 'paused']).update({ status: 'cancelled', cancelled_at: now, next_run_at: null, updated_at: now });
    if (n !== 1) throw await stateError(trx, id, 'cancelled');
    return trx('outbox').where('broadcast_id', id).whereIn('status', ['queued', 'held']).update({ status: 'cancelled', status_at: now, error_code: 'broadcast_cancelled' });
  });
  await audit(db, actor, { action: 'broadcast.cancel', entityType: 'broadcast', entityId: id, detail: { cancelled } });
  return { broadcast: await getBroadcast(db.knex, id), cancelled };
}

async function stateError(knex: Knex, id: number, to: string): Promise<HttpError> {
  const b = await knex('broadcasts').where('id', id).first('status');
  if (!b) return notFound('There is no such broadcast');
  return new HttpError(409, 'conflict', `The broadcast is ${b.status}: it cannot be ${to}`);
}

// ------------------------------------------------------------------------------------ stats

export interface BroadcastStats {
  total: number;
  queued: number;
  held: number;
  sent: number;
  delivered: number;
  read: number;
  failed: number;
  skipped: number;
  cancelled: number;
  failedBy: Record<string, number>;
  skippedBy: Record<string, number>;
  byChannel: Record<string, Record<string, number>>;
  byLanguage: Record<string, Record<string, number>>;
}

/** Outbox rows that reached each stage: sent counts delivered and read ones too; delivered counts read. */
function bump(s: Record<string, number>, status: string, n: number): void {
  const add = (k: string) => (s[k] = (s[k] ?? 0) + n);
  add('total');
  if (status === 'queued' || status === 'sending') add('queued');
  else if (status === 'held') add('held');
  else if (status === 'sent' || status === 'delivered' || status === 'read') {
    add('sent');
    if (status !== 'sent') add('delivered');
    if (status === 'read') add('read');
  } else add(status);
}

export async function broadcastStats(knex: Knex, id: number): Promise<BroadcastStats> {
  const rows = await knex('outbox').where('broadcast_id', id).groupBy('status', 'channel', 'language', 'error_code').select('status', 'channel', 'language', 'error_code').count({ n: '*' });
  const s: BroadcastStats = { total: 0, queued: 0, held: 0, sent: 0, delivered: 0, read: 0, failed: 0, skipped: 0, cancelled: 0, failedBy: {}, skippedBy: {}, byChannel: {}, byLanguage: {} };
  for (const r of rows as Record<string, unknown>[]) {
    const n = toInt(r.n);
    const status = String(r.status);
    bump(s as unknown as Record<string, number>, status, n);
    const reason = (r.error_code as string | null) ?? 'unknown';
    if (status === 'failed') s.failedBy[reason] = (s.failedBy[reason] ?? 0) + n;
    if (status === 'skipped') s.skippedBy[reason] = (s.skippedBy[reason] ?? 0) + n;
    bump((s.byChannel[(r.channel as string | null) ?? 'not yet chosen'] ??= {}), status, n);
    bump((s.byLanguage[(r.language as string | null) ?? 'unknown'] ??= {}), status, n);
  }
  return s;
}

/** With the stats just read: marks a sending broadcast with no row left to send completed. Returns it, updated. */
export async function completeIfDone(knex: Knex, b: Broadcast, s: BroadcastStats, now = new Date()): Promise<Broadcast> {
  if (b.status !== 'sending' || s.queued + s.held > 0) return b;
  const n = await knex('broadcasts').where({ id: b.id, status: 'sending' }).update({ status: 'completed', finished_at: now, updated_at: now });
  return n === 1 ? { ...b, status: 'completed', finishedAt: now.toISOString() } : b;
}

/** Marks sending broadcasts whose rows are all final as completed; returns how many. */
export async function completeFinished(knex: Knex, now = new Date()): Promise<number> {
  const sending = (await knex('broadcasts').where('status', 'sending').select('id')).map((r: Record<string, unknown>) => toInt(r.id));
  let done = 0;
  for (const id of sending) {
    const pending = await knex('outbox').where('broadcast_id', id).whereIn('status', PENDING).first('id');
    if (pending) continue;
    done += await knex('broadcasts').where({ id, status: 'sending' }).update({ status: 'completed', finished_at: now, updated_at: now });
  }
  return done;
}

// ------------------------------------------------------------------------- the broadcasts job

/** The next occurrence of a recurring broadcast after `after`, at the local time of its first one. */
export function nextOccurrence(b: Pick<Broadcast, 'recurrence' | 'sendAt'>, after: Date, timezone: string): Date {
  const first = new Date(b.sendAt!);
  const tz = isTimeZone(timezone) ? timezone : 'UTC';
  const local = new Intl.DateTimeFormat('en-GB', { timeZone: tz, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(first);
  const step = b.recurrence === 'weekly' ? 7 : 1;
  return nextLocalTime(after, tz, local, step, first);
}

/** Creates the occurrence of a recurring broadcast due at `at` (a draft copy with parent_id) and fans it out. */
async function runOccurrence(db: Database, config: Config, parent: Broadcast, now: Date): Promise<{ id: number; recipients: number } | null> {
  const next = nextOccurrence(parent, now, config.DEFAULT_TIMEZONE);
  // Advance first, conditionally: of several processes, only one takes this occurrence.
  const taken = await db.knex('broadcasts').where({ id: parent.id, status: 'recurring' }).where('next_run_at', new Date(parent.nextRunAt!)).update({ next_run_at: next, updated_at: now });
  if (taken !== 1) return null;
  let version: MessageVersion;
  try {
    version = (await usableVersion(db.knex, parent.messageId)).version; // occurrences take the latest approved version
  } catch {
    return null; // archived or no approved version: nothing to send this time
  }
  const [row] = await db
    .knex('broadcasts')
    .insert({
      name: `${parent.name} · ${now.toISOString().slice(0, 10)}`.slice(0, 200),
      message_id: parent.messageId,
      message_version_id: version.id,
      lists: JSON.stringify(parent.lists),
      segment_id: parent.segmentId,
      channel_policy: parent.channelPolicy,
      exclude_recent_hours: parent.excludeRecentHours,
      quiet_start: parent.quietHours?.start ?? null,
      quiet_end: parent.quietHours?.end ?? null,
      footer: parent.footer ? JSON.stringify(parent.footer) : null,
      status: 'draft',
      recurrence: 'none',
      parent_id: parent.id,
      created_by_id: parent.createdById,
      created_by_label: parent.createdByLabel,
      created_at: now,
      updated_at: now,
    })
    .returning('id');
  const id = toInt(typeof row === 'object' ? row.id : row);
  const recipients = await fanOut(db, config, id, { now });
  return { id, recipients };
}

export interface DueResult {
  started: number[];
  occurrences: number[];
  completed: number;
  failed: number;
}

/**
 * The broadcasts job (every 30 seconds): starts scheduled broadcasts whose time has come, creates and
 * starts the due occurrences of recurring ones, and marks finished broadcasts completed.
 */
export async function runDueBroadcasts(db: Database, config: Config, log?: { error: (o: object, m: string) => void }, now = new Date()): Promise<DueResult> {
  const result: DueResult = { started: [], occurrences: [], completed: 0, failed: 0 };
  const due = await db.knex('broadcasts').where('status', 'scheduled').where('send_at', '<=', now).orderBy('send_at').select('id');
  for (const r of due) {
    const id = toInt(r.id);
    try {
      const recipients = await fanOut(db, config, id, { now });
      result.started.push(id);
      await audit(db, { type: 'system', id: null, label: 'scheduler', role: 'system' }, { action: 'broadcast.send', entityType: 'broadcast', entityId: id, detail: { recipients, scheduled: true } });
    } catch (err) {
      result.failed++;
      log?.error({ broadcastId: id, err: err instanceof Error ? err.message : String(err) }, 'broadcasts: a scheduled broadcast could not start');
    }
  }
  const recurring = (await withMessage(db.knex).where('b.status', 'recurring').where('b.next_run_at', '<=', now)).map(readBroadcast);
  for (const parent of recurring) {
    try {
      const occ = await runOccurrence(db, config, parent, now);
      if (occ) {
        result.occurrences.push(occ.id);
        await audit(db, { type: 'system', id: null, label: 'scheduler', role: 'system' }, { action: 'broadcast.send', entityType: 'broadcast', entityId: occ.id, detail: { recipients: occ.recipients, parent: parent.id } });
      }
    } catch (err) {
      result.failed++;
      log?.error({ broadcastId: parent.id, err: err instanceof Error ? err.message : String(err) }, 'broadcasts: an occurrence of a recurring broadcast could not start');
    }
  }
  result.completed = await completeFinished(db.knex, now);
  return result;
}
