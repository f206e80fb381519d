/**
 * What the line talked about over a period, for the dashboard and the weekly report (src/reports/):
 * the key-message topics of broadcast messages sent, the questions the FAQ answered (by topic and by
 * key message), and the rumours the bank answers. Aggregates only.
 *
 * `recordFaqHit` is called by the FAQ stage (faq.ts) each time it answers a question: one row in
 * faq_hits, with the entry, its key message and the contact (for leaving test contacts out).
 */
import type { Knex } from '../db/orm.js';
import { toInt } from '../db/values.js';
import { SENT_STATUSES, countsWithout, type PeriodFilter } from '../messaging/stats.js';

export async function recordFaqHit(knex: Knex, hit: { entryId: number; messageId: number; contactId: number | null; at: Date }): Promise<void> {
  await knex('faq_hits').insert({ entry_id: hit.entryId, message_id: hit.messageId, contact_id: hit.contactId, at: hit.at });
}

export interface TopicCount {
  topic: string;
  /** Broadcast messages sent on this topic. */
  broadcast: number;
  /** Questions the FAQ answered with a key message on this topic. */
  faq: number;
}

export interface MessageHits {
  key: string;
  title: string;
  topic: string;
  /** The rumour the key message answers, as staff described it (not what a person wrote). */
  rumour: string | null;
  faq: number;
  broadcast: number;
}

export interface TopicCounts {
  topics: TopicCount[];
  /** FAQ questions answered in the period. */
  faqAnswered: number;
  /** Key messages most asked about or sent, most first (at most 10). */
  messages: MessageHits[];
  /** Key messages that answer a rumour, with how often each went out in the period. */
  rumours: MessageHits[];
  /** Broadcasts that started sending in the period. */
  broadcastsStarted: number;
}

export async function topicCounts(knex: Knex, f: PeriodFilter): Promise<TopicCounts> {
  const faqRows = await countsWithout(
    knex,
    f,
    'h.contact_id',
    (only) => {
      const q = knex('faq_hits as h').where('h.at', '>=', f.from).where('h.at', '<', f.to);
      only?.(q);
      return q.select('h.message_id').count({ n: '*' }).groupBy('h.message_id');
    },
    ['message_id'],
    ['n'],
  );
  const sentRows = await countsWithout(
    knex,
    f,
    'o.contact_id',
    (only) => {
      const q = knex('outbox as o')
        .join('broadcasts as b', 'b.id', 'o.broadcast_id')
        .where('o.created_at', '>=', f.from)
        .where('o.created_at', '<', f.to)
        .whereNotNull('o.broadcast_id')
        .whereIn('o.status', SENT_STATUSES as unknown as string[]);
      only?.(q);
      return q.select('b.message_id').count({ n: '*' }).groupBy('b.message_id');
    },
    ['message_id'],
    ['n'],
  );

  const per = new Map<number, { faq: number; broadcast: number }>();
  let faqAnswered = 0;
  for (const r of faqRows) {
    if (!toInt(r.n)) continue;
    const id = toInt(r.message_id);
    per.set(id, { faq: toInt(r.n), broadcast: 0 });
    faqAnswered += toInt(r.n);
  }
  for (const r of sentRows) {
    if (!toInt(r.n)) continue;
    const id = toInt(r.message_id);
    const e = per.get(id) ?? { faq: 0, broadcast: 0 };
    e.broadcast += toInt(r.n);
    per.set(id, e);
  }
  const messages: MessageHits[] = [];
  if (per.size) {
    const rows = (await knex('key_messages').whereIn('id', [...per.keys()]).select('id', 'key', 'title', 'topic', 'rumour')) as Record<string, unknown>[];
    for (const r of rows) {
      const c = per.get(toInt(r.id))!;
      messages.push({ key: String(r.key), title: String(r.title), topic: String(r.topic), rumour: (r.rumour as string | null) || null, faq: c.faq, broadcast: c.broadcast });
    }
  }
  const byTopic = new Map<string, TopicCount>();
  for (const m of messages) {
    const t = byTopic.get(m.topic) ?? { topic: m.topic, broadcast: 0, faq: 0 };
    t.faq += m.faq;
    t.broadcast += m.broadcast;
    byTopic.set(m.topic, t);
  }
  const order = (a: { faq: number; broadcast: number }, b: { faq: number; broadcast: number }) => b.faq - a.faq || b.broadcast - a.broadcast;
  const [started] = await knex('broadcasts').where('started_at', '>=', f.from).where('started_at', '<', f.to).count({ n: '*' });
  return {
    topics: [...byTopic.values()].sort((a, b) => order(a, b) || a.topic.localeCompare(b.topic)),
    faqAnswered,
    messages: [...messages].sort((a, b) => order(a, b) || a.title.localeCompare(b.title)).slice(0, 10),
    rumours: messages.filter((m) => m.rumour).sort((a, b) => order(a, b) || a.title.localeCompare(b.title)),
    broadcastsStarted: toInt(started.n),
  };
}
