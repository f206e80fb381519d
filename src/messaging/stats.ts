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

export const SENT_STATUSES = ['sent', 'delivered', 'read'] as const;
const DELIVERED = new Set(['delivered', 'read']);

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

/** Inbound messages received in the period. */
export async function inboundCounts(knex: Knex, f: PeriodFilter): Promise<InboundCounts> {
  const base = () => withoutContacts(knex, knex('inbound_messages').where('received_at', '>=', f.from).where('received_at', '<', f.to), 'contact_id', f);
  const byChannelRows = await base().select('channel').count({ n: '*' }).groupBy('channel');
  const byRouteRows = await base().select(knex.raw("coalesce(route, 'pending') as route")).count({ n: '*' }).groupBy(knex.raw("coalesce(route, 'pending')"));
  const [people] = await base().countDistinct({ n: 'contact_id' });
  const perDayRows = await base().select(dayIndex(knex, 'received_at', f.from).wrap('(', ') as d')).count({ n: '*' }).groupByRaw('1');
  const byChannel: Record<string, number> = {};
  let total = 0;
  for (const r of byChannelRows as Record<string, unknown>[]) {
    byChannel[String(r.channel)] = toInt(r.n);
    total += toInt(r.n);
  }
  const byRoute: Record<string, number> = {};
  for (const r of byRouteRows as Record<string, unknown>[]) byRoute[String(r.route)] = toInt(r.n);
  const perDay = new Array<number>(days(f)).fill(0);
  for (const r of perDayRows as Record<string, unknown>[]) {
    const d = toInt(r.d);
    if (d >= 0 && d < perDay.length) perDay[d] += toInt(r.n);
  }
  return { total, byChannel, people: toInt(people.n), perDay, byRoute };
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

/** Outbox rows created in the period, by channel and outcome. */
export async function outboundCounts(knex: Knex, f: PeriodFilter): Promise<OutboundCounts> {
  const base = () => withoutContacts(knex, knex('outbox').where('created_at', '>=', f.from).where('created_at', '<', f.to), 'contact_id', f);
  const rows = (await base()
    .select(knex.raw("coalesce(channel, '') as channel"), 'status')
    .count({ n: '*' })
    .sum({ segments: 'segments' })
    .groupByRaw("coalesce(channel, ''), status")) as Record<string, unknown>[];
  const out: OutboundCounts = { sent: 0, byChannel: {}, pending: 0, skipped: 0, failed: 0, peopleReached: 0, byPurpose: {}, perDay: new Array<number>(days(f)).fill(0) };
  for (const r of rows) {
    const status = String(r.status);
    const n = toInt(r.n);
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
    c.sent += n;
    out.sent += n;
    c.segments += toInt(r.segments);
    if (DELIVERED.has(status)) c.delivered += n;
    if (status === 'read') c.read += n;
  }
  const [reached] = await base().whereIn('status', SENT_STATUSES as unknown as string[]).countDistinct({ n: 'contact_id' });
  out.peopleReached = toInt(reached.n);
  const purposes = await base().whereIn('status', SENT_STATUSES as unknown as string[]).select('purpose').count({ n: '*' }).groupBy('purpose');
  for (const r of purposes as Record<string, unknown>[]) out.byPurpose[String(r.purpose)] = toInt(r.n);
  const perDay = await base().whereIn('status', SENT_STATUSES as unknown as string[]).select(dayIndex(knex, 'created_at', f.from).wrap('(', ') as d')).count({ n: '*' }).groupByRaw('1');
  for (const r of perDay as Record<string, unknown>[]) {
    const d = toInt(r.d);
    if (d >= 0 && d < out.perDay.length) out.perDay[d] += toInt(r.n);
  }
  return out;
}

/** Distinct contacts who wrote in during the period: a sub-query of contact ids (for breakdowns by contact field). */
export function contactsWhoWrote(knex: Knex, f: PeriodFilter): Knex.QueryBuilder {
  return withoutContacts(knex, knex('inbound_messages').where('received_at', '>=', f.from).where('received_at', '<', f.to).whereNotNull('contact_id').distinct('contact_id'), 'contact_id', f);
}
