/**
 * Counts of contacts and subscriptions over a period, for the dashboard and the weekly report
 * (src/reports/): aggregates only, never a contact. Breakdowns by a contact field count values of
 * that field among a given set of contacts, with the contacts who have no value as "not recorded".
 */
import type { Knex } from '../db/orm.js';
import { toInt } from '../db/values.js';
import { countsWithout, dayIndex, type PeriodFilter } from '../messaging/stats.js';

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
  const on = (column: 'joined_at' | 'ended_at') => (only: ((q: Knex.QueryBuilder) => void) | null) => {
    const q = knex('subscriptions').where(column, '>=', f.from).where(column, '<', f.to);
    only?.(q);
    return q;
  };
  const joinedRows = await countsWithout(knex, f, 'contact_id', (only) => on('joined_at')(only).select('list_id', dayIndex(knex, 'joined_at', f.from).wrap('(', ') as d')).count({ n: '*' }).groupByRaw('list_id, 2'), ['list_id', 'd'], ['n']);
  const [people] = await countsWithout(knex, f, 'contact_id', (only) => on('joined_at')(only).countDistinct({ n: 'contact_id' }), [], ['n']);
  const endedRows = await countsWithout(knex, f, 'contact_id', (only) => on('ended_at')(only).select('list_id', 'ended_reason').count({ n: '*' }).groupBy('list_id', 'ended_reason'), ['list_id', 'ended_reason'], ['n']);
  const activeRows = await countsWithout(
    knex,
    f,
    'contact_id',
    (only) => {
      const q = knex('subscriptions').where('status', 'active');
      only?.(q);
      return q.select('list_id').count({ n: '*' }).groupBy('list_id');
    },
    ['list_id'],
    ['n'],
  );

  const days = Math.max(1, Math.ceil((f.to.getTime() - f.from.getTime()) / 86_400_000));
  const joinedPerDay = new Array<number>(days).fill(0);
  const perList = new Map<number, { joined: number; ended: number; active: number }>();
  const bump = (id: number, k: 'joined' | 'ended' | 'active', n: number) => {
    const e = perList.get(id) ?? { joined: 0, ended: 0, active: 0 };
    e[k] += n;
    perList.set(id, e);
  };
  let joined = 0;
  for (const r of joinedRows) {
    const n = toInt(r.n);
    if (!n) continue;
    joined += n;
    bump(toInt(r.list_id), 'joined', n);
    const d = toInt(r.d);
    if (d >= 0 && d < days) joinedPerDay[d] += n;
  }
  const ended: Record<string, number> = {};
  for (const r of endedRows) {
    const n = toInt(r.n);
    if (!n) continue;
    const reason = String(r.ended_reason ?? 'unknown');
    ended[reason] = (ended[reason] ?? 0) + n;
    bump(toInt(r.list_id), 'ended', n);
  }
  let activeNow = 0;
  for (const r of activeRows) {
    const n = toInt(r.n);
    if (!n) continue;
    activeNow += n;
    bump(toInt(r.list_id), 'active', n);
  }
  const lists = perList.size ? ((await knex('lists').whereIn('id', [...perList.keys()]).select('id', 'key', 'name')) as Record<string, unknown>[]) : [];
  const byList = lists
    .map((l) => ({ id: toInt(l.id), key: String(l.key), name: String(l.name), ...perList.get(toInt(l.id))! }))
    .sort((a, b) => b.active - a.active || b.joined - a.joined || a.name.localeCompare(b.name));
  return { joined, joinedPeople: toInt(people.n), ended, optOuts: (ended.stop ?? 0) + (ended.leave ?? 0), byList, activeNow, joinedPerDay };
}

/** Contacts first seen (created) in the period. */
export async function newContactCount(knex: Knex, f: PeriodFilter): Promise<number> {
  const [r] = await countsWithout(
    knex,
    f,
    'id',
    (only) => {
      const q = knex('contacts').where('created_at', '>=', f.from).where('created_at', '<', f.to);
      only?.(q);
      return q.count({ n: '*' });
    },
    [],
    ['n'],
  );
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
 * each contact field in `keys` (e.g. gender, age_group, nationality, region): one grouped pass over
 * those contacts for all the fields. Text values are grouped case-insensitively, as first written.
 */
export async function fieldBreakdowns(knex: Knex, keys: readonly string[], contactIds: Knex.QueryBuilder): Promise<FieldBreakdown[]> {
  for (const key of keys) if (!FIELD_KEY.test(key)) throw new Error(`not a contact field key: ${key}`);
  if (!keys.length) return [];
  const defined = new Set(((await knex('contact_fields').whereIn('key', [...keys]).pluck('key')) as string[]).map(String));
  const pg = (knex as unknown as { client: { dialect?: string } }).client.dialect === 'postgresql';
  const value = (key: string) => (pg ? knex.raw('(c.fields ->> ?::text)', [key]) : knex.raw('cast(json_extract(c.fields, ?) as text)', [`$."${key}"`]));
  const cols = keys.map((_, i) => `v${i}`);
  const inner = knex('contacts as c').whereIn('c.id', contactIds).select(keys.map((k, i) => value(k).wrap('(', `) as v${i}`)));
  const rows = (await knex.from(inner.as('x')).select(cols.map((c) => `x.${c}`)).count({ n: '*' }).groupBy(cols.map((c) => `x.${c}`))) as Record<string, unknown>[];
  return keys.map((key, i) => {
    const merged = new Map<string, { value: string; count: number }>();
    let notRecorded = 0;
    let total = 0;
    for (const r of rows) {
      const n = toInt(r.n);
      total += n;
      const raw = r[cols[i]];
      const v = raw === null || raw === undefined ? '' : String(raw).trim();
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
    return { key, defined: defined.has(key), values, notRecorded, total };
  });
}

/** One field's breakdown (see fieldBreakdowns). */
export async function fieldBreakdown(knex: Knex, key: string, contactIds: Knex.QueryBuilder): Promise<FieldBreakdown> {
  return (await fieldBreakdowns(knex, [key], contactIds))[0];
}
