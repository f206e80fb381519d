/**
 * The dashboard's figures for a period: messages in and out by channel, delivered and read rates,
 * people reached, new subscribers and opt-outs, survey completions, complaints by category and
 * service-level state, and the topics and rumours of the period. Aggregates only, read through each
 * domain's counting functions (src/<domain>/stats.ts); test contacts of the phone simulator are left
 * out unless asked for.
 */
import type { Knex } from '../db/orm.js';
import { inboundCounts, outboundCounts, type InboundCounts, type OutboundCounts, type PeriodFilter } from '../messaging/stats.js';
import { newContactCount, subscriptionCounts, type SubscriptionCounts } from '../contacts/stats.js';
import { surveyCounts, type SurveyCounts } from '../surveys/stats.js';
import { complaintPeriodCounts, type ComplaintPeriodCounts } from '../complaints/stats.js';
import { topicCounts, type TopicCounts } from '../broadcasts/stats.js';
import type { Permission } from '../staff/roles.js';
import { simulatorContactIds, testContactCount } from '../simulator/contacts.js';
import type { Period } from './period.js';

export interface Rates {
  /** Delivered (or read) of those sent or failed, in percent; null when nothing was sent. */
  delivered: number | null;
  /** Read of those delivered, in percent (WhatsApp reports reads; SMS never does). */
  read: number | null;
}

export interface DashboardFigures {
  period: { from: string; to: string; days: string[]; timezone: string };
  includeTest: boolean;
  /** Test contacts of the phone simulator (left out of every figure unless includeTest). */
  testContacts: number;
  inbound: InboundCounts;
  outbound: OutboundCounts;
  rates: Rates & { byChannel: Record<string, Rates> };
  newContacts: number;
  subscriptions: SubscriptionCounts;
  surveys: SurveyCounts;
  complaints: ComplaintPeriodCounts;
  topics: TopicCounts;
}

export const pct = (part: number, whole: number): number | null => (whole > 0 ? Math.round((1000 * part) / whole) / 10 : null);

export function ratesOf(c: { sent: number; delivered: number; read: number; failed: number }): Rates {
  return { delivered: pct(c.delivered, c.sent + c.failed), read: pct(c.read, c.delivered) };
}

export function filterFor(period: Pick<Period, 'from' | 'to'>, includeTest: boolean): PeriodFilter {
  return { from: period.from, to: period.to, ...(includeTest ? {} : { excludeContacts: simulatorContactIds }) };
}

export async function dashboardFigures(knex: Knex, viewer: { permissions: readonly Permission[] }, period: Period, opts: { includeTest?: boolean; now?: Date } = {}): Promise<DashboardFigures> {
  const includeTest = Boolean(opts.includeTest);
  const f = filterFor(period, includeTest);
  const inbound = await inboundCounts(knex, f);
  const outbound = await outboundCounts(knex, f);
  const total = Object.values(outbound.byChannel).reduce((a, c) => ({ sent: a.sent + c.sent, delivered: a.delivered + c.delivered, read: a.read + c.read, failed: a.failed + c.failed }), { sent: 0, delivered: 0, read: 0, failed: 0 });
  const byChannel: Record<string, Rates> = {};
  for (const [ch, c] of Object.entries(outbound.byChannel)) byChannel[ch] = ratesOf(c);
  return {
    period: { from: period.fromDate, to: period.toDate, days: period.days, timezone: period.timezone },
    includeTest,
    testContacts: await testContactCount(knex),
    inbound,
    outbound,
    rates: { ...ratesOf(total), byChannel },
    newContacts: await newContactCount(knex, f),
    subscriptions: await subscriptionCounts(knex, f),
    surveys: await surveyCounts(knex, f),
    complaints: await complaintPeriodCounts(knex, viewer, f, opts.now),
    topics: await topicCounts(knex, f),
  };
}
