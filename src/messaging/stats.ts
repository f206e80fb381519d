/**
 * Counts of messages over a period, for the dashboard and the weekly report (src/reports/): aggregates
 * only — numbers per channel, status and day, never a message, a number or a contact.
 *
 * Every function takes a half-open period [from, to) and, optionally, a set of contacts to leave out
 * (the console's phone simulator's test contacts), given as a sub-query of contact ids.
 */
import type { Knex } from '../db/orm.js';
import { toInt } from '../db/values.js';

export interface PeriodFilter {
  from: Date;
  to: Date;
  /** A query selecting the ids of contacts to leave out of every count. */
  excludeContacts?: (knex: Knex) => Knex.QueryBuilder;
}

/** Restricts `q` to rows whose `column` (a contact id) is not among the excluded contacts. */
export function withoutContacts(knex: Knex, q: Knex.QueryBuilder, column: string, f: Pick<PeriodFilter, 'excludeContacts'>): Knex.QueryBuilder {
  if (f.excludeContacts) q.where((w) => w.whereNull(column).orWhereNotIn(column, f.excludeContacts!(knex)));
  return q;
}

const isPostgres = (knex: Knex) => (knex as unknown as { client: { dialect?: string } }).client.dialect === 'postgresql';

/** SQL for the whole days between `from` and a timestamp column (0 for the first day of the period). */
export function dayIndex(knex: Knex, column: string, from: Date): Knex.Raw {
  return isPostgres(knex)
    ? knex.raw('floor(extract(epoch from (?? - ?::timestamptz)) / 86400)::int', [column, from.toISOString()])
    : knex.raw('cast((?? - ?) / 86400000 as integer)', [column, from.getTime()]);
}

type Row = Record<string, unknown>;

/**
 * Counts of everyone but the excluded contacts, without testing every row of the period against
 * them: `query` runs once over all the period's rows (a range scan on the time index) and, when some
 * contacts are left out, once more over their rows alone (`only` restricts it through the contact
 * index: a handful of rows), and the second is subtracted from the first, group by group. Exact,
 * since the excluded rows are a subset of all rows and fall in the same groups; distinct counts
 * subtract exactly too, the excluded contacts being a set apart.
 */
export async function countsWithout(
  knex: Knex,
  f: Pick<PeriodFilter, 'excludeContacts'>,
  column: string,
  query: (only: ((q: Knex.QueryBuilder) => void) | null) => Knex.QueryBuilder,
  keys: string[],
  sums: string[],
): Promise<Row[]> {
  const all = (await query(null)) as Row[];
  if (!f.excludeContacts) return all;
  const excluded = (await query((q) => q.whereIn(column, f.excludeContacts!(knex)))) as Row[];
  if (!excluded.length) return all;
  const key = (r: Row) => keys.map((k) => (r[k] === null || r[k] === undefined ? '\u0000' : String(r[k]))).join('\u0001');
  const minus = new Map(excluded.map((r) => [key(r), r]));
  return all.map((r) => {
    const m = minus.get(key(r));
    if (!m) return r;
    const out: Row = { ...r };
    for (const s of sums) out[s] = toInt(r[s]) - toInt(m[s]);
    return out;
  });
}

export const SENT_STATUSES = ['sent', 'delivered', 'read'] as const;
const DELIVERED = new Set(['delivered', 'read']);
const SENT = new Set<string>(SENT_STATUSES);

export interface InboundCounts {
  total: number;
  /** By the channel that carried it: whatsapp, twilio, africastalking, simulator. */
  byChannel: Record<string, number>;
  /** Distinct contacts who wrote. */
  people: number;
  /** Messages per day of the period (index 0 is the day `from` falls in). */
  perDay: number[];
  /** By the router step that handled it: faq, inbox, complaints.intake, surveys.session, … */
  byRoute: Record<string, number>;
}

const days = (f: PeriodFilter) => Math.max(1, Math.ceil((f.to.getTime() - f.from.getTime()) / 86_400_000));

/** Inbound messages received in the period: one grouped pass and one distinct count. */
export async function inboundCounts(knex: Knex, f: PeriodFilter): Promise<InboundCounts> {
  const base = (only: ((q: Knex.QueryBuilder) => void) | null) => {
    const q = knex('inbound_messages').where('received_at', '>=', f.from).where('received_at', '<', f.to);
    only?.(q);
    return q;
  };
  const rows = await countsWithout(
    knex,
    f,
    'contact_id',
    (only) =>
      base(only)
        .select('channel', knex.raw("coalesce(route, 'pending') as route"), dayIndex(knex, 'received_at', f.from).wrap('(', ') as d'))
        .count({ n: '*' })
        .groupByRaw("channel, coalesce(route, 'pending'), 3"),
    ['channel', 'route', 'd'],
    ['n'],
  );
  const out: InboundCounts = { total: 0, byChannel: {}, people: 0, perDay: new Array<number>(days(f)).fill(0), byRoute: {} };
  for (const r of rows) {
    const n = toInt(r.n);
    if (!n) continue;
    out.total += n;
    out.byChannel[String(r.channel)] = (out.byChannel[String(r.channel)] ?? 0) + n;
    out.byRoute[String(r.route)] = (out.byRoute[String(r.route)] ?? 0) + n;
    const d = toInt(r.d);
    if (d >= 0 && d < out.perDay.length) out.perDay[d] += n;
  }
  const [people] = await countsWithout(knex, f, 'contact_id', (only) => base(only).countDistinct({ n: 'contact_id' }), [], ['n']);
  out.people = toInt(people.n);
  return out;
}

export interface ChannelDelivery {
  /** Accepted by the provider (sent, delivered or read). */
  sent: number;
  delivered: number;
  read: number;
  failed: number;
  /** SMS segments of the sent messages. */
  segments: number;
}

export interface OutboundCounts {
  /** Messages created in the period that left (sent, delivered or read). */
  sent: number;
  /** By the channel that carried them: whatsapp, twilio, africastalking, simulator. */
  byChannel: Record<string, ChannelDelivery>;
  /** Still queued or being sent. */
  pending: number;
  /** Skipped (no consent, no usable address, window closed) or cancelled. */
  skipped: number;
  failed: number;
  /** Distinct contacts with at least one message sent. */
  peopleReached: number;
  /** Sent messages by cause: reply, updates (broadcasts), surveys, cash_programme, complaint_followup. */
  byPurpose: Record<string, number>;
  perDay: number[];
}

/** Outbox rows created in the period, by channel and outcome: one grouped pass and one distinct count. */
export async function outboundCounts(knex: Knex, f: PeriodFilter): Promise<OutboundCounts> {
  const base = (only: ((q: Knex.QueryBuilder) => void) | null) => {
    const q = knex('outbox').where('created_at', '>=', f.from).where('created_at', '<', f.to);
    only?.(q);
    return q;
  };
  const rows = await countsWithout(
    knex,
    f,
    'contact_id',
    (only) =>
      base(only)
        .select(knex.raw("coalesce(channel, '') as channel"), 'status', 'purpose', dayIndex(knex, 'created_at', f.from).wrap('(', ') as d'))
        .count({ n: '*' })
        .sum({ segments: 'segments' })
        .groupByRaw("coalesce(channel, ''), status, purpose, 4"),
    ['channel', 'status', 'purpose', 'd'],
    ['n', 'segments'],
  );
  const out: OutboundCounts = { sent: 0, byChannel: {}, pending: 0, skipped: 0, failed: 0, peopleReached: 0, byPurpose: {}, perDay: new Array<number>(days(f)).fill(0) };
  for (const r of rows) {
    const status = String(r.status);
    const n = toInt(r.n);
    if (!n) continue;
    const channel = String(r.channel) || 'none';
    if (status === 'queued' || status === 'sending') {
      out.pending += n;
      continue;
    }
    if (status === 'skipped' || status === 'cancelled') {
      out.skipped += n;
      continue;
    }
    const c = (out.byChannel[channel] ??= { sent: 0, delivered: 0, read: 0, failed: 0, segments: 0 });
    if (status === 'failed') {
      c.failed += n;
      out.failed += n;
      continue;
    }
    if (!SENT.has(status)) continue;
    c.sent += n;
    out.sent += n;
    c.segments += toInt(r.segments);
    if (DELIVERED.has(status)) c.delivered += n;
    if (status === 'read') c.read += n;
    out.byPurpose[String(r.purpose)] = (out.byPurpose[String(r.purpose)] ?? 0) + n;
    const d = toInt(r.d);
    if (d >= 0 && d < out.perDay.length) out.perDay[d] += n;
  }
  const [reached] = await countsWithout(knex, f, 'contact_id', (only) => base(only).whereIn('status', SENT_STATUSES as unknown as string[]).countDistinct({ n: 'contact_id' }), [], ['n']);
  out.peopleReached = toInt(reached.n);
  return out;
}

/** Distinct contacts who wrote in during the period: a sub-query of contact ids (for breakdowns by contact field). */
export function contactsWhoWrote(knex: Knex, f: PeriodFilter): Knex.QueryBuilder {
  return withoutContacts(knex, knex('inbound_messages').where('received_at', '>=', f.from).where('received_at', '<', f.to).whereNotNull('contact_id').distinct('contact_id'), 'contact_id', f);
}
