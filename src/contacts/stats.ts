/**
 * Counts of contacts and subscriptions over a period, for the dashboard and the weekly report
 * (src/reports/): aggregates only, never a contact. Breakdowns by a contact field count values of
 * that field among a given set of contacts, with the contacts who have no value as "not recorded".
 */
import type { Knex } from '../db/orm.js';
import { toInt } from '../db/values.js';
import { dayIndex, withoutContacts, type PeriodFilter } from '../messaging/stats.js';

export interface SubscriptionCounts {
  /** Subscriptions that started in the period (a re-join counts again). */
  joined: number;
  /** Distinct contacts who joined a list. */
  joinedPeople: number;
  /** Subscriptions that ended in the period, by reason: stop (STOP), leave, staff, erased. */
  ended: Record<string, number>;
  /** Ended by the person (STOP or leaving a list). */
  optOuts: number;
  /** By list: joined and ended in the period, and active now. */
  byList: { id: number; key: string; name: string; joined: number; ended: number; active: number }[];
  /** Subscriptions active now (all lists). */
  activeNow: number;
  joinedPerDay: number[];
}

export async function subscriptionCounts(knex: Knex, f: PeriodFilter): Promise<SubscriptionCounts> {
  const joinedQ = () => withoutContacts(knex, knex('subscriptions').where('joined_at', '>=', f.from).where('joined_at', '<', f.to), 'contact_id', f);
  const endedQ = () => withoutContacts(knex, knex('subscriptions').where('ended_at', '>=', f.from).where('ended_at', '<', f.to), 'contact_id', f);
  const activeQ = () => withoutContacts(knex, knex('subscriptions').where('status', 'active'), 'contact_id', f);

  const [joined] = await joinedQ().count({ n: '*' });
  const [people] = await joinedQ().countDistinct({ n: 'contact_id' });
  const endedRows = (await endedQ().select('ended_reason').count({ n: '*' }).groupBy('ended_reason')) as Record<string, unknown>[];
  const ended: Record<string, number> = {};
  for (const r of endedRows) ended[String(r.ended_reason ?? 'unknown')] = toInt(r.n);

  const perList = new Map<number, { joined: number; ended: number; active: number }>();
  const bump = (id: number, k: 'joined' | 'ended' | 'active', n: number) => {
    const e = perList.get(id) ?? { joined: 0, ended: 0, active: 0 };
    e[k] += n;
    perList.set(id, e);
  };
  for (const r of (await joinedQ().select('list_id').count({ n: '*' }).groupBy('list_id')) as Record<string, unknown>[]) bump(toInt(r.list_id), 'joined', toInt(r.n));
  for (const r of (await endedQ().select('list_id').count({ n: '*' }).groupBy('list_id')) as Record<string, unknown>[]) bump(toInt(r.list_id), 'ended', toInt(r.n));
  let activeNow = 0;
  for (const r of (await activeQ().select('list_id').count({ n: '*' }).groupBy('list_id')) as Record<string, unknown>[]) {
    bump(toInt(r.list_id), 'active', toInt(r.n));
    activeNow += toInt(r.n);
  }
  const lists = perList.size ? ((await knex('lists').whereIn('id', [...perList.keys()]).select('id', 'key', 'name')) as Record<string, unknown>[]) : [];
  const byList = lists
    .map((l) => ({ id: toInt(l.id), key: String(l.key), name: String(l.name), ...perList.get(toInt(l.id))! }))
    .sort((a, b) => b.active - a.active || b.joined - a.joined || a.name.localeCompare(b.name));

  const days = Math.max(1, Math.ceil((f.to.getTime() - f.from.getTime()) / 86_400_000));
  const joinedPerDay = new Array<number>(days).fill(0);
  for (const r of (await joinedQ().select(dayIndex(knex, 'joined_at', f.from).wrap('(', ') as d')).count({ n: '*' }).groupByRaw('1')) as Record<string, unknown>[]) {
    const d = toInt(r.d);
    if (d >= 0 && d < days) joinedPerDay[d] += toInt(r.n);
  }
  return {
    joined: toInt(joined.n),
    joinedPeople: toInt(people.n),
    ended,
    optOuts: (ended.stop ?? 0) + (ended.leave ?? 0),
    byList,
    activeNow,
    joinedPerDay,
  };
}

/** Contacts first seen (created) in the period. */
export async function newContactCount(knex: Knex, f: PeriodFilter): Promise<number> {
  const [r] = await withoutContacts(knex, knex('contacts').where('created_at', '>=', f.from).where('created_at', '<', f.to), 'id', f).count({ n: '*' });
  return toInt(r.n);
}

export interface FieldBreakdown {
  key: string;
  /** Whether a contact field with this key is defined (contact fields page). */
  defined: boolean;
  /** Value → number of contacts, most common first. */
  values: { value: string; count: number }[];
  /** Contacts in the set with no value for the field. */
  notRecorded: number;
  total: number;
}

const FIELD_KEY = /^[a-z][a-z0-9_]{0,63}$/;

/**
 * How the contacts selected by `contactIds` (a sub-query of contact ids) spread over the values of
 * the contact field `key` (e.g. gender, age_group, nationality, region). Text values are grouped
 * case-insensitively, as written the first time.
 */
export async function fieldBreakdown(knex: Knex, key: string, contactIds: Knex.QueryBuilder): Promise<FieldBreakdown> {
  if (!FIELD_KEY.test(key)) throw new Error(`not a contact field key: ${key}`);
  const defined = Boolean(await knex('contact_fields').where('key', key).first('id'));
  const pg = (knex as unknown as { client: { dialect?: string } }).client.dialect === 'postgresql';
  const value = pg ? knex.raw('(c.fields ->> ?::text)', [key]) : knex.raw('cast(json_extract(c.fields, ?) as text)', [`$."${key}"`]);
  const rows = (await knex
    .from(knex('contacts as c').whereIn('c.id', contactIds).select(value.wrap('(', ') as v')).as('x'))
    .select('x.v')
    .count({ n: '*' })
    .groupBy('x.v')) as Record<string, unknown>[];
  const merged = new Map<string, { value: string; count: number }>();
  let notRecorded = 0;
  let total = 0;
  for (const r of rows) {
    const n = toInt(r.n);
    total += n;
    const v = r.v === null || r.v === undefined ? '' : String(r.v).trim();
    if (!v) {
      notRecorded += n;
      continue;
    }
    const k = v.toLowerCase();
    const e = merged.get(k);
    if (e) e.count += n;
    else merged.set(k, { value: v, count: n });
  }
  const values = [...merged.values()].sort((a, b) => b.count - a.count || a.value.localeCompare(b.value));
  return { key, defined, values, notRecorded, total };
}
