/**
 * Possible duplicates among beneficiaries, for staff to resolve before anyone is paid twice.
 *
 * Two records match on the same phone number (E.164), the same household id (compared without case,
 * spaces or dashes) or the same contact. Detection is set-based:
 *  - within a file: one pass with a map per key (the first row with a value is the original; each
 *    later row with the same value is its duplicate);
 *  - against what the lists already hold: one query per 500 values per key, on indexed columns,
 *    over every list that is not archived and every beneficiary not excluded.
 * A committed duplicate is a row of `cash_duplicates` (open), resolved by staff: keep one (the other
 * is excluded, reason "duplicate of #id"), keep both, or exclude both. A beneficiary with an open
 * duplicate cannot be enrolled.
 */
import { z } from 'zod';
import type { Database, Knex } from '../db/orm.js';
import { toDate, toDateOrNull, toInt } from '../db/values.js';
import { HttpError, notFound } from '../http/errors.js';
import { audit, type Actor } from '../staff/audit.js';
import { chunk } from './files.js';
import { DUPLICATE_ACTIONS, type DuplicateAction } from './model.js';

export type MatchKind = 'phone' | 'household_id' | 'contact';

export interface Keys {
  phone: string | null;
  householdKey: string | null;
  contactId?: number | null;
}

export interface FileDuplicate {
  /** Index of the later item. */
  index: number;
  /** Index of the first item with the same value. */
  otherIndex: number;
  match: MatchKind;
}

/** Duplicates within one batch (a file, a set of candidates). Each later item points at the first one with the same value. */
export function findFileDuplicates(items: readonly Keys[]): FileDuplicate[] {
  const out: FileDuplicate[] = [];
  const first = { phone: new Map<string, number>(), household_id: new Map<string, number>(), contact: new Map<number, number>() };
  items.forEach((it, i) => {
    const seen = new Set<number>();
    const check = <K>(map: Map<K, number>, value: K | null | undefined, match: MatchKind) => {
      if (value === null || value === undefined || value === '') return;
      const j = map.get(value);
      if (j === undefined) map.set(value, i);
      else if (!seen.has(j)) {
        seen.add(j);
        out.push({ index: i, otherIndex: j, match });
      }
    };
    check(first.household_id, it.householdKey, 'household_id');
    check(first.phone, it.phone, 'phone');
    check(first.contact, it.contactId, 'contact');
  });
  return out;
}

export interface ExistingMatch {
  index: number;
  beneficiaryId: number;
  listId: number;
  listName: string;
  status: string;
  match: MatchKind;
}

/**
 * Matches of the items against beneficiaries already in lists (not archived, not excluded).
 * `exceptIds`: beneficiaries to ignore (the items themselves once written). At most `perItem` per item.
 */
export async function findExistingMatches(knex: Knex, items: readonly Keys[], opts: { exceptIds?: ReadonlySet<number>; perItem?: number } = {}): Promise<ExistingMatch[]> {
  const perItem = opts.perItem ?? 5;
  const out: ExistingMatch[] = [];
  const counts = new Map<number, number>();
  const pairs = new Set<string>();
  const byValue = {
    phone: new Map<string, number[]>(),
    household_key: new Map<string, number[]>(),
    contact_id: new Map<number, number[]>(),
  };
  items.forEach((it, i) => {
    const add = <K>(m: Map<K, number[]>, v: K | null | undefined) => {
      if (v === null || v === undefined || v === '') return;
      const l = m.get(v);
      if (l) l.push(i);
      else m.set(v, [i]);
    };
    add(byValue.phone, it.phone);
    add(byValue.household_key, it.householdKey);
    add(byValue.contact_id, it.contactId);
  });
  const matchOf: Record<string, MatchKind> = { phone: 'phone', household_key: 'household_id', contact_id: 'contact' };
  for (const column of ['household_key', 'phone', 'contact_id'] as const) {
    const map = byValue[column] as Map<string | number, number[]>;
    for (const part of chunk([...map.keys()], 500)) {
      const rows = await knex('cash_beneficiaries as b')
        .join('cash_lists as l', 'l.id', 'b.list_id')
        .whereNull('l.archived_at')
        .whereNot('b.status', 'excluded')
        .whereIn(`b.${column}`, part)
        .orderBy('b.id')
        .select('b.id', 'b.list_id', 'l.name', 'b.status', `b.${column} as v`);
      for (const r of rows) {
        const id = toInt(r.id);
        if (opts.exceptIds?.has(id)) continue;
        const v = column === 'contact_id' ? toInt(r.v) : String(r.v);
        for (const index of map.get(v) ?? []) {
          const k = `${index}:${id}`;
          if (pairs.has(k) || (counts.get(index) ?? 0) >= perItem) continue;
          pairs.add(k);
          counts.set(index, (counts.get(index) ?? 0) + 1);
          out.push({ index, beneficiaryId: id, listId: toInt(r.list_id), listName: String(r.name), status: String(r.status), match: matchOf[column] });
        }
      }
    }
  }
  return out.sort((a, b) => a.index - b.index || a.beneficiaryId - b.beneficiaryId);
}

/** Records duplicate pairs (open) for beneficiaries just written. */
export async function recordDuplicates(
  trx: Knex,
  listId: number,
  pairs: readonly { beneficiaryId: number; otherId: number; match: MatchKind; scope: 'file' | 'existing' }[],
  now: Date,
): Promise<number> {
  for (const part of chunk(pairs, 200)) {
    await trx('cash_duplicates').insert(
      part.map((p) => ({ list_id: listId, beneficiary_id: p.beneficiaryId, other_id: p.otherId, match: p.match, scope: p.scope, status: 'open', created_at: now })),
    );
  }
  return pairs.length;
}

// ------------------------------------------------------------------------------- reading

export interface DuplicateSide {
  id: number;
  listId: number;
  listName: string;
  householdId: string | null;
  name: string | null;
  phone: string | null;
  admin1: string | null;
  status: string;
}

export interface Duplicate {
  id: number;
  listId: number;
  match: MatchKind;
  scope: 'file' | 'existing';
  status: 'open' | 'kept_one' | 'kept_both' | 'excluded';
  keptId: number | null;
  beneficiary: DuplicateSide;
  other: DuplicateSide;
  createdAt: string;
  resolvedAt: string | null;
}

const side = (r: Record<string, unknown>, p: string): DuplicateSide => ({
  id: toInt(r[`${p}_id`]),
  listId: toInt(r[`${p}_list_id`]),
  listName: String(r[`${p}_list_name`]),
  householdId: (r[`${p}_household_id`] as string | null) ?? null,
  name: (r[`${p}_name`] as string | null) ?? null,
  phone: (r[`${p}_phone`] as string | null) ?? null,
  admin1: (r[`${p}_admin1`] as string | null) ?? null,
  status: String(r[`${p}_status`]),
});

function duplicateQuery(knex: Knex): Knex.QueryBuilder {
  const cols = (alias: string, p: string) => [
    `${alias}.id as ${p}_id`, `${alias}.list_id as ${p}_list_id`, `${alias}.household_id as ${p}_household_id`, `${alias}.name as ${p}_name`,
    `${alias}.phone as ${p}_phone`, `${alias}.admin1 as ${p}_admin1`, `${alias}.status as ${p}_status`,
  ];
  return knex('cash_duplicates as d')
    .join('cash_beneficiaries as a', 'a.id', 'd.beneficiary_id')
    .join('cash_beneficiaries as o', 'o.id', 'd.other_id')
    .join('cash_lists as la', 'la.id', 'a.list_id')
    .join('cash_lists as lo', 'lo.id', 'o.list_id')
    .select('d.*', 'la.name as a_list_name', 'lo.name as o_list_name', ...cols('a', 'a'), ...cols('o', 'o'));
}

function readDuplicate(r: Record<string, unknown>): Duplicate {
  return {
    id: toInt(r.id),
    listId: toInt(r.list_id),
    match: r.match as MatchKind,
    scope: r.scope as Duplicate['scope'],
    status: r.status as Duplicate['status'],
    keptId: r.kept_id === null || r.kept_id === undefined ? null : toInt(r.kept_id),
    beneficiary: side(r, 'a'),
    other: side(r, 'o'),
    createdAt: toDate(r.created_at).toISOString(),
    resolvedAt: toDateOrNull(r.resolved_at)?.toISOString() ?? null,
  };
}

/** A list's duplicates (open first by default), newest first, paged by id. */
export async function listDuplicates(knex: Knex, listId: number, opts: { status?: 'open' | 'resolved'; before?: number; limit?: number } = {}): Promise<{ data: Duplicate[]; next: number | null; open: number }> {
  const limit = Math.min(Math.max(opts.limit ?? 50, 1), 500);
  const q = duplicateQuery(knex).where('d.list_id', listId).orderBy('d.id', 'desc').limit(limit);
  if (opts.status === 'open') q.where('d.status', 'open');
  if (opts.status === 'resolved') q.whereNot('d.status', 'open');
  if (opts.before) q.where('d.id', '<', opts.before);
  const data = (await q).map(readDuplicate);
  const [{ n }] = await knex('cash_duplicates').where({ list_id: listId, status: 'open' }).count({ n: '*' });
  return { data, next: data.length === limit ? data[data.length - 1].id : null, open: toInt(n) };
}

export async function getDuplicate(knex: Knex, id: number): Promise<Duplicate> {
  const row = await duplicateQuery(knex).where('d.id', id).first();
  if (!row) throw notFound(`There is no duplicate ${id}`);
  return readDuplicate(row);
}

/** Open duplicates involving these beneficiaries: beneficiary id → duplicate ids. */
export async function openDuplicatesOf(knex: Knex, ids: readonly number[]): Promise<Map<number, number[]>> {
  const out = new Map<number, number[]>();
  for (const part of chunk(ids, 400)) {
    const rows = await knex('cash_duplicates')
      .where('status', 'open')
      .where((w) => w.whereIn('beneficiary_id', part).orWhereIn('other_id', part))
      .select('id', 'beneficiary_id', 'other_id');
    for (const r of rows) {
      for (const b of [toInt(r.beneficiary_id), toInt(r.other_id)]) {
        if (!part.includes(b)) continue;
        out.set(b, [...(out.get(b) ?? []), toInt(r.id)]);
      }
    }
  }
  return out;
}

// ------------------------------------------------------------------------------- resolving

export const resolveSchema = z
  .object({
    action: z.enum(DUPLICATE_ACTIONS),
    /** keep_one: the beneficiary to keep (one of the pair). */
    keep: z.coerce.number().int().positive().optional(),
    /** exclude_both / keep_one: why (stored as the exclusion reason). */
    reason: z.string().trim().max(300).optional(),
  })
  .refine((v) => v.action !== 'keep_one' || v.keep !== undefined, { message: 'say which beneficiary to keep', path: ['keep'] });

/** Resolves one duplicate pair; excluded beneficiaries get the reason. Audited. */
export async function resolveDuplicate(db: Database, actor: Actor, id: number, input: { action: DuplicateAction; keep?: number; reason?: string }, now = new Date()): Promise<Duplicate> {
  const d = await getDuplicate(db.knex, id);
  if (d.status !== 'open') throw new HttpError(409, 'conflict', 'This duplicate was already resolved', { status: d.status });
  const pair = [d.beneficiary.id, d.other.id];
  if (input.action === 'keep_one' && !pair.includes(input.keep ?? -1)) {
    throw new HttpError(400, 'validation_failed', 'The request is not valid', { keep: `must be ${pair[0]} or ${pair[1]}` });
  }
  const userId = actor.userId ?? (actor.type === 'staff' ? actor.id : null);
  await db.knex.transaction(async (trx) => {
    const exclude = async (bid: number, reason: string) =>
      trx('cash_beneficiaries').where('id', bid).update({ status: 'excluded', excluded_reason: reason.slice(0, 300), status_at: now, updated_at: now });
    let status: Duplicate['status'] = 'kept_both';
    if (input.action === 'keep_one') {
      const drop = pair.find((p) => p !== input.keep)!;
      await exclude(drop, input.reason || `duplicate of #${input.keep}`);
      status = 'kept_one';
      // Other open duplicates of the excluded record are moot.
      await trx('cash_duplicates')
        .where('status', 'open')
        .whereNot('id', id)
        .where((w) => w.where('beneficiary_id', drop).orWhere('other_id', drop))
        .update({ status: 'excluded', resolved_by_id: userId, resolved_at: now });
    } else if (input.action === 'exclude_both') {
      for (const b of pair) await exclude(b, input.reason || 'duplicate: both records excluded');
      status = 'excluded';
      await trx('cash_duplicates')
        .where('status', 'open')
        .whereNot('id', id)
        .where((w) => w.whereIn('beneficiary_id', pair).orWhereIn('other_id', pair))
        .update({ status: 'excluded', resolved_by_id: userId, resolved_at: now });
    }
    const changed = await trx('cash_duplicates').where({ id, status: 'open' }).update({ status, kept_id: input.action === 'keep_one' ? input.keep : null, resolved_by_id: userId, resolved_at: now });
    if (!changed) throw new HttpError(409, 'conflict', 'This duplicate was already resolved');
  });
  await audit(db, actor, { action: 'cash.duplicate.resolve', entityType: 'cash_duplicate', entityId: id, detail: { action: input.action, listId: d.listId, kept: input.keep ?? null } });
  return getDuplicate(db.knex, id);
}
