/**
 * The weekly situation report (the Peru line's, built from the data): messages sent and received,
 * people assisted — in total and by gender, age group and vulnerability — countries and regions,
 * the main topics, feedback and rumours, subscriptions and surveys, and what changed from the week
 * before. Figures only: no contact, number or message appears in it. Test contacts are always left
 * out, and sensitive complaints appear as one anonymous total, so a report can be shown (and stored)
 * for anyone with reports.read.
 */
import type { Knex } from '../db/orm.js';
import { contactsWhoWrote, inboundCounts, outboundCounts } from '../messaging/stats.js';
import { fieldBreakdowns, newContactCount, subscriptionCounts, type FieldBreakdown } from '../contacts/stats.js';
import { surveyCounts } from '../surveys/stats.js';
import { complaintPeriodCounts } from '../complaints/stats.js';
import { topicCounts, type MessageHits, type TopicCount } from '../broadcasts/stats.js';
import { filterFor, pct } from './dashboard.js';
import { addDays, isoWeekLabel, weekOf, type Period } from './period.js';

/** The disaggregations of people assisted, and the contact field keys each is read from (the first that is defined). */
export const BREAKDOWNS: { name: string; keys: string[] }[] = [
  { name: 'gender', keys: ['gender'] },
  { name: 'age_group', keys: ['age_group'] },
  { name: 'vulnerability', keys: ['disability', 'vulnerability'] },
  { name: 'nationality', keys: ['nationality'] },
  { name: 'region', keys: ['region'] },
];

export const INDICATORS = [
  'messages_sent',
  'messages_received',
  'people_assisted',
  'people_reached',
  'new_contacts',
  'new_subscriptions',
  'opt_outs',
  'survey_completions',
  'feedback_received',
  'rumours_reported',
  'faq_answered',
] as const;
export type Indicator = (typeof INDICATORS)[number];

export interface IndicatorRow {
  key: Indicator;
  value: number;
  previous: number;
  change: number;
  /** Change in percent of last week's value; null when last week was 0. */
  changePct: number | null;
  /** A change worth a line in the report: at least 5 and at least a quarter (or from nothing). */
  notable: boolean;
}

export interface Breakdown extends FieldBreakdown {
  name: string;
}

export interface WeeklyReport {
  week: { label: string; from: string; to: string; timezone: string; previousFrom: string; previousTo: string };
  generatedAt: string;
  indicators: IndicatorRow[];
  messages: {
    byChannel: { channel: string; received: number; sent: number; delivered: number; read: number; failed: number; segments: number; deliveredPct: number | null; readPct: number | null }[];
    byPurpose: Record<string, number>;
  };
  /** People assisted (who wrote to the line in the week), by each disaggregation. */
  breakdowns: Breakdown[];
  topics: (TopicCount & { previousFaq: number; previousBroadcast: number })[];
  keyMessages: MessageHits[];
  feedback: {
    received: number;
    byCategory: { category: string; count: number; previous: number }[];
    bySla: Record<string, number>;
    /** Sensitive cases received in the week: one anonymous total. */
    sensitive: number;
    rumours: number;
    /** Key messages answering rumours, and how often they went out. */
    rumourMessages: MessageHits[];
  };
  subscriptions: { byList: { key: string; name: string; joined: number; ended: number; active: number }[]; activeNow: number };
  surveys: { key: string; title: string; started: number; completed: number }[];
}

interface WeekFigures {
  indicators: Record<Indicator, number>;
  inbound: Awaited<ReturnType<typeof inboundCounts>>;
  outbound: Awaited<ReturnType<typeof outboundCounts>>;
  subs: Awaited<ReturnType<typeof subscriptionCounts>>;
  surveys: Awaited<ReturnType<typeof surveyCounts>>;
  complaints: Awaited<ReturnType<typeof complaintPeriodCounts>>;
  topics: Awaited<ReturnType<typeof topicCounts>>;
}

const NO_SENSITIVE = { permissions: [] as const };

async function figures(knex: Knex, p: Period, now: Date): Promise<WeekFigures> {
  const f = filterFor(p, false);
  const inbound = await inboundCounts(knex, f);
  const outbound = await outboundCounts(knex, f);
  const subs = await subscriptionCounts(knex, f);
  const surveys = await surveyCounts(knex, f);
  const complaints = await complaintPeriodCounts(knex, NO_SENSITIVE, f, now);
  const topics = await topicCounts(knex, f);
  const received = complaints.received + (complaints.sensitiveTotal ?? 0);
  return {
    indicators: {
      messages_sent: outbound.sent,
      messages_received: inbound.total,
      people_assisted: inbound.people,
      people_reached: outbound.peopleReached,
      new_contacts: await newContactCount(knex, f),
      new_subscriptions: subs.joined,
      opt_outs: subs.optOuts,
      survey_completions: surveys.completed,
      feedback_received: received,
      rumours_reported: complaints.rumours,
      faq_answered: topics.faqAnswered,
    },
    inbound,
    outbound,
    subs,
    surveys,
    complaints,
    topics,
  };
}

function indicatorRow(key: Indicator, value: number, previous: number): IndicatorRow {
  const change = value - previous;
  const changePct = previous > 0 ? Math.round((100 * change) / previous) : null;
  const notable = Math.abs(change) >= 5 && (previous === 0 || Math.abs(change) * 4 >= previous);
  return { key, value, previous, change, changePct, notable };
}

/** The report of the Monday-to-Sunday week containing `date` (YYYY-MM-DD, in `timezone`). */
export async function weeklyReport(knex: Knex, date: string, timezone: string, now = new Date()): Promise<WeeklyReport> {
  const week = weekOf(date, timezone);
  const previous = weekOf(addDays(week.fromDate, -7), timezone);
  const cur = await figures(knex, week, now);
  const prev = await figures(knex, previous, now);

  const people = contactsWhoWrote(knex, filterFor(week, false));
  const candidates = await fieldBreakdowns(knex, BREAKDOWNS.flatMap((b) => b.keys), people);
  const byKey = new Map(candidates.map((c) => [c.key, c]));
  const breakdowns: Breakdown[] = BREAKDOWNS.map((b) => {
    const options = b.keys.map((k) => byKey.get(k)!);
    const chosen = options.find((o) => o.defined || o.values.length) ?? options[0];
    return { name: b.name, ...chosen };
  });

  const channels = new Set([...Object.keys(cur.outbound.byChannel), ...Object.keys(cur.inbound.byChannel)]);
  const byChannel = [...channels].sort().map((channel) => {
    const o = cur.outbound.byChannel[channel] ?? { sent: 0, delivered: 0, read: 0, failed: 0, segments: 0 };
    return { channel, received: cur.inbound.byChannel[channel] ?? 0, ...o, deliveredPct: pct(o.delivered, o.sent + o.failed), readPct: pct(o.read, o.delivered) };
  });

  const prevTopics = new Map(prev.topics.topics.map((t) => [t.topic, t]));
  const categories = new Set([...Object.keys(cur.complaints.byCategory), ...Object.keys(prev.complaints.byCategory)]);
  return {
    week: { label: isoWeekLabel(week.fromDate), from: week.fromDate, to: week.toDate, timezone, previousFrom: previous.fromDate, previousTo: previous.toDate },
    generatedAt: now.toISOString(),
    indicators: INDICATORS.map((k) => indicatorRow(k, cur.indicators[k], prev.indicators[k])),
    messages: { byChannel, byPurpose: cur.outbound.byPurpose },
    breakdowns,
    topics: cur.topics.topics.map((t) => ({ ...t, previousFaq: prevTopics.get(t.topic)?.faq ?? 0, previousBroadcast: prevTopics.get(t.topic)?.broadcast ?? 0 })),
    keyMessages: cur.topics.messages,
    feedback: {
      received: cur.indicators.feedback_received,
      byCategory: [...categories]
        .map((category) => ({ category, count: cur.complaints.byCategory[category] ?? 0, previous: prev.complaints.byCategory[category] ?? 0 }))
        .filter((c) => c.count || c.previous)
        .sort((a, b) => b.count - a.count || a.category.localeCompare(b.category)),
      bySla: cur.complaints.bySla,
      sensitive: cur.complaints.sensitiveTotal ?? 0,
      rumours: cur.complaints.rumours,
      rumourMessages: cur.topics.rumours,
    },
    subscriptions: { byList: cur.subs.byList.map(({ key, name, joined, ended, active }) => ({ key, name, joined, ended, active })), activeNow: cur.subs.activeNow },
    surveys: cur.surveys.bySurvey,
  };
}
