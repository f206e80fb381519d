/**
 * Beneficiary lists and their beneficiaries.
 *
 * A beneficiary is a candidate (proposed), enrolled (will be paid) or excluded (with the reason).
 * Candidates come from subscribers who gave `cash_programme` consent — chosen by a segment, a
 * segment query or their answers to a survey question, previewed, then confirmed by staff — or
 * from an import (import.ts). Staff enrol or exclude them; a beneficiary with an open possible
 * duplicate cannot be enrolled until the duplicate is resolved (duplicates.ts).
 */
import { z } from 'zod';
import type { Database, Knex } from '../db/orm.js';
import { toDate, toInt } from '../db/values.js';
import { HttpError, notFound } from '../http/errors.js';
import { audienceQuery } from '../contacts/segments/service.js';
import { SegmentError } from '../contacts/segments/errors.js';
import { segmentHttpError } from '../contacts/segments/service.js';
import { audit, type Actor } from '../staff/audit.js';
import { findExistingMatches, findFileDuplicates, openDuplicatesOf, recordDuplicates } from './duplicates.js';
import { chunk, insertedId } from './files.js';
import { AGE_GROUPS, BENEFICIARY_STATUSES, GENDERS, householdKey, type BeneficiarySource, type BeneficiaryStatus } from './model.js';

const staffId = (a: Actor): number | null => a.userId ?? (a.type === 'staff' ? a.id : null);

// ------------------------------------------------------------------------------------- lists

export interface CashList {
  id: number;
  name: string;
  description: string | null;
  archivedAt: string | null;
  createdAt: string;
  counts: { candidate: number; enrolled: number; excluded: number; total: number; openDuplicates: number };
}

export const listInputSchema = z.object({
  name: z.string().trim().min(1).max(200),
  description: z.string().trim().max(2000).nullish(),
});
export const listPatchSchema = listInputSchema.partial().extend({ archived: z.boolean().optional() });

async function countsFor(knex: Knex, ids: number[]): Promise<Map<number, CashList['counts']>> {
  const out = new Map<number, CashList['counts']>();
  for (const id of ids) out.set(id, { candidate: 0, enrolled: 0, excluded: 0, total: 0, openDuplicates: 0 });
  if (!ids.length) return out;
  const rows = await knex('cash_beneficiaries').whereIn('list_id', ids).groupBy('list_id', 'status').select('list_id', 'status', knex.raw('count(*) as n'));
  for (const r of rows) {
    const c = out.get(toInt(r.list_id))!;
    const n = toInt(r.n);
    if ((BENEFICIARY_STATUSES as readonly string[]).includes(r.status)) c[r.status as BeneficiaryStatus] = n;
    c.total += n;
  }
  const dups = await knex('cash_duplicates').whereIn('list_id', ids).where('status', 'open').groupBy('list_id').select('list_id', knex.raw('count(*) as n'));
  for (const r of dups) out.get(toInt(r.list_id))!.openDuplicates = toInt(r.n);
  return out;
}

function readList(r: Record<string, unknown>, counts: CashList['counts']): CashList {
  return {
    id: toInt(r.id),
    name: String(r.name),
    description: (r.description as string | null) ?? null,
    archivedAt: r.archived_at ? toDate(r.archived_at).toISOString() : null,
    createdAt: toDate(r.created_at).toISOString(),
    counts,
  };
}

export async function listLists(knex: Knex, opts: { includeArchived?: boolean } = {}): Promise<CashList[]> {
  const q = knex('cash_lists').orderBy('id', 'desc');
  if (!opts.includeArchived) q.whereNull('archived_at');
  const rows = await q;
  const counts = await countsFor(knex, rows.map((r: Record<string, unknown>) => toInt(r.id)));
  return rows.map((r: Record<string, unknown>) => readList(r, counts.get(toInt(r.id))!));
}

export async function getList(knex: Knex, id: number): Promise<CashList> {
  const row = await knex('cash_lists').where('id', id).first();
  if (!row) throw notFound(`There is no beneficiary list ${id}`);
  return readList(row, (await countsFor(knex, [id])).get(id)!);
}

export async function createList(db: Database, actor: Actor, input: z.input<typeof listInputSchema>): Promise<CashList> {
  const v = listInputSchema.parse(input);
  const now = new Date();
  const [row] = await db.knex('cash_lists').insert({ name: v.name, description: v.description ?? null, created_by_id: staffId(actor), created_at: now, updated_at: now }).returning('id');
  const id = insertedId(row);
  await audit(db, actor, { action: 'cash.list.create', entityType: 'cash_list', entityId: id });
  return getList(db.knex, id);
}

export async function updateList(db: Database, actor: Actor, id: number, input: z.input<typeof listPatchSchema>): Promise<CashList> {
  const v = listPatchSchema.parse(input);
  await getList(db.knex, id);
  const now = new Date();
  const patch: Record<string, unknown> = { updated_at: now };
  if (v.name !== undefined) patch.name = v.name;
  if (v.description !== undefined) patch.description = v.description ?? null;
  if (v.archived !== undefined) patch.archived_at = v.archived ? now : null;
  await db.knex('cash_lists').where('id', id).update(patch);
  await audit(db, actor, { action: 'cash.list.update', entityType: 'cash_list', entityId: id, detail: { changed: Object.keys(v) } });
  return getList(db.knex, id);
}

async function requireOpenList(knex: Knex, id: number): Promise<CashList> {
  const l = await getList(knex, id);
  if (l.archivedAt) throw new HttpError(409, 'conflict', 'This list is archived');
  return l;
}

// ------------------------------------------------------------------------------- beneficiaries

export interface Beneficiary {
  id: number;
  listId: number;
  contactId: number | null;
  householdId: string | null;
  name: string | null;
  phone: string | null;
  admin1: string | null;
  admin2: string | null;
  admin3: string | null;
  householdSize: number | null;
  vulnerability: string[];
  gender: string | null;
  ageGroup: string | null;
  status: BeneficiaryStatus;
  excludedReason: string | null;
  source: BeneficiarySource;
  importId: number | null;
  importRow: number | null;
  statusAt: string;
  createdAt: string;
}

export function readJsonArray(v: unknown): string[] {
  if (v === null || v === undefined) return [];
  const a = typeof v === 'string' ? (JSON.parse(v) as unknown) : v;
  return Array.isArray(a) ? a.map(String) : [];
}

export function readBeneficiary(r: Record<string, unknown>): Beneficiary {
  const n = (v: unknown) => (v === null || v === undefined ? null : toInt(v));
  return {
    id: toInt(r.id),
    listId: toInt(r.list_id),
    contactId: n(r.contact_id),
    householdId: (r.household_id as string | null) ?? null,
    name: (r.name as string | null) ?? null,
    phone: (r.phone as string | null) ?? null,
    admin1: (r.admin1 as string | null) ?? null,
    admin2: (r.admin2 as string | null) ?? null,
    admin3: (r.admin3 as string | null) ?? null,
    householdSize: n(r.household_size),
    vulnerability: readJsonArray(r.vulnerability),
    gender: (r.gender as string | null) ?? null,
    ageGroup: (r.age_group as string | null) ?? null,
    status: r.status as BeneficiaryStatus,
    excludedReason: (r.excluded_reason as string | null) ?? null,
    source: r.source as BeneficiarySource,
    importId: n(r.import_id),
    importRow: n(r.import_row),
    statusAt: toDate(r.status_at).toISOString(),
    createdAt: toDate(r.created_at).toISOString(),
  };
}

export interface BeneficiaryQuery {
  status?: BeneficiaryStatus;
  /** Part of the name, the household id or the phone number. */
  q?: string;
  admin1?: string;
  /** Only beneficiaries with an open duplicate. */
  duplicates?: boolean;
  before?: number;
  limit?: number;
}

/** A list's beneficiaries, newest first, paged by id (`next` is the `before` of the next page). */
export async function listBeneficiaries(knex: Knex, listId: number, opts: BeneficiaryQuery = {}): Promise<{ data: (Beneficiary & { openDuplicates: number[] })[]; next: number | null }> {
  const limit = Math.min(Math.max(opts.limit ?? 50, 1), 500);
  const q = knex('cash_beneficiaries').where('list_id', listId).orderBy('id', 'desc').limit(limit);
  if (opts.status) q.where('status', opts.status);
  if (opts.admin1) q.where('admin1', opts.admin1);
  if (opts.before) q.where('id', '<', opts.before);
  if (opts.q && opts.q.trim()) {
    const term = opts.q.trim().slice(0, 100);
    const like = `%${term.toLowerCase().replace(/[\\%_]/g, (c) => '\\' + c)}%`;
    const digits = term.replace(/\D/g, '');
    q.where((w) => {
      w.whereRaw("lower(name) like ? escape '\\'", [like]).orWhere('household_key', householdKey(term));
      if (digits.length >= 6) w.orWhere('phone', 'like', `%${digits}%`);
    });
  }
  if (opts.duplicates) {
    q.whereExists(function (this: Knex.QueryBuilder) {
      this.select(knex.raw('1')).from('cash_duplicates as d').where('d.status', 'open').where((w) => w.whereRaw('d.beneficiary_id = cash_beneficiaries.id').orWhereRaw('d.other_id = cash_beneficiaries.id'));
    });
  }
  const rows = (await q).map(readBeneficiary);
  const dups = await openDuplicatesOf(knex, rows.map((b) => b.id));
  return { data: rows.map((b) => ({ ...b, openDuplicates: dups.get(b.id) ?? [] })), next: rows.length === limit ? rows[rows.length - 1].id : null };
}

export async function getBeneficiary(knex: Knex, id: number): Promise<Beneficiary & { openDuplicates: number[] }> {
  const row = await knex('cash_beneficiaries').where('id', id).first();
  if (!row) throw notFound(`There is no beneficiary ${id}`);
  const b = readBeneficiary(row);
  return { ...b, openDuplicates: (await openDuplicatesOf(knex, [id])).get(id) ?? [] };
}

export const beneficiaryPatchSchema = z
  .object({
    householdId: z.string().trim().max(64).nullish(),
    name: z.string().trim().max(200).nullish(),
    admin1: z.string().trim().max(100).nullish(),
    admin2: z.string().trim().max(100).nullish(),
    admin3: z.string().trim().max(100).nullish(),
    householdSize: z.number().int().min(1).max(50).nullish(),
    vulnerability: z.array(z.string().trim().min(1).max(64)).max(20).optional(),
    gender: z.enum(GENDERS).nullish(),
    ageGroup: z.enum(AGE_GROUPS).nullish(),
  })
  .strict();

/** Rectifies a beneficiary's household details. Audited (fields named, values not). */
export async function updateBeneficiary(db: Database, actor: Actor, id: number, input: z.input<typeof beneficiaryPatchSchema>): Promise<Beneficiary & { openDuplicates: number[] }> {
  const v = beneficiaryPatchSchema.parse(input);
  const current = await getBeneficiary(db.knex, id);
  const patch: Record<string, unknown> = { updated_at: new Date() };
  const cols: Record<string, string> = { householdId: 'household_id', name: 'name', admin1: 'admin1', admin2: 'admin2', admin3: 'admin3', householdSize: 'household_size', gender: 'gender', ageGroup: 'age_group' };
  for (const [k, col] of Object.entries(cols)) {
    const val = (v as Record<string, unknown>)[k];
    if (val !== undefined) patch[col] = val === '' ? null : val;
  }
  if (v.householdId !== undefined) patch.household_key = v.householdId ? householdKey(v.householdId) : null;
  if (v.vulnerability !== undefined) patch.vulnerability = JSON.stringify(v.vulnerability);
  await db.knex('cash_beneficiaries').where('id', id).update(patch);
  await audit(db, actor, { action: 'cash.beneficiary.update', entityType: 'cash_beneficiary', entityId: id, detail: { listId: current.listId, changed: Object.keys(v) } });
  return getBeneficiary(db.knex, id);
}

export const statusChangeSchema = z
  .object({
    status: z.enum(['enrolled', 'excluded', 'candidate']),
    /** Beneficiaries by id… */
    ids: z.array(z.number().int().positive()).min(1).max(10_000).optional(),
    /** …or every beneficiary of the list that has this status now. */
    from: z.enum(BENEFICIARY_STATUSES).optional(),
    reason: z.string().trim().max(300).optional(),
  })
  .strict()
  .refine((v) => Boolean(v.ids?.length) !== Boolean(v.from), { message: 'give either ids or from (all beneficiaries with that status)', path: ['ids'] })
  .refine((v) => v.status !== 'excluded' || Boolean(v.reason), { message: 'say why they are excluded', path: ['reason'] });

export interface StatusChangeResult {
  changed: number;
  /** Left as they were, and why. */
  refused: { id: number; reason: string }[];
}

/**
 * Enrols, excludes (with a reason) or returns to candidate a set of beneficiaries of one list.
 * Enrolment refuses beneficiaries with an open duplicate. Audited with the counts.
 */
export async function changeStatus(db: Database, actor: Actor, listId: number, input: z.input<typeof statusChangeSchema>, now = new Date()): Promise<StatusChangeResult> {
  const v = statusChangeSchema.parse(input);
  await requireOpenList(db.knex, listId);
  const refused: StatusChangeResult['refused'] = [];
  let changed = 0;
  await db.knex.transaction(async (trx) => {
    const q = trx('cash_beneficiaries').where('list_id', listId).orderBy('id');
    if (v.ids) q.whereIn('id', v.ids);
    if (v.from) q.where('status', v.from);
    const rows: { id: number; status: string }[] = (await q.select('id', 'status')).map((r: Record<string, unknown>) => ({ id: toInt(r.id), status: String(r.status) }));
    if (v.ids) {
      const found = new Set(rows.map((r) => r.id));
      for (const id of v.ids) if (!found.has(id)) refused.push({ id, reason: 'not a beneficiary of this list' });
    }
    let targets = rows.filter((r) => r.status !== v.status).map((r) => r.id);
    if (v.status === 'enrolled') {
      const dups = await openDuplicatesOf(trx, targets);
      for (const id of targets) if (dups.has(id)) refused.push({ id, reason: `open duplicate ${dups.get(id)!.map((d) => `#${d}`).join(', ')}: resolve it first` });
      targets = targets.filter((id) => !dups.has(id));
    }
    for (const part of chunk(targets, 500)) {
      changed += await trx('cash_beneficiaries')
        .whereIn('id', part)
        .update({ status: v.status, excluded_reason: v.status === 'excluded' ? v.reason : null, status_at: now, updated_at: now });
    }
  });
  await audit(db, actor, { action: `cash.beneficiary.${v.status === 'enrolled' ? 'enrol' : v.status === 'excluded' ? 'exclude' : 'reset'}`, entityType: 'cash_list', entityId: listId, detail: { changed, refused: refused.length } });
  return { changed, refused };
}

// ---------------------------------------------------------------------------------- candidates

export const candidateSpecSchema = z
  .object({
    /** A saved segment (id or key). */
    segment: z.union([z.number().int().positive(), z.string().trim().min(1).max(64)]).optional(),
    /** A segment query, such as fields.region = "Tumbes". */
    query: z.string().trim().max(10_000).optional(),
    /** Contacts whose answer to a survey's choice question is one of these choices. */
    survey: z
      .object({
        key: z.string().trim().min(1).max(64),
        question: z.string().trim().min(1).max(64),
        choices: z.array(z.string().trim().min(1).max(200)).min(1).max(50),
      })
      .strict()
      .optional(),
  })
  .strict()
  .refine((v) => v.segment !== undefined || Boolean(v.query) || v.survey !== undefined, { message: 'choose candidates by a segment, a query or survey answers', path: ['segment'] });
export type CandidateSpec = z.input<typeof candidateSpecSchema>;

/**
 * The contacts a spec selects: active, not erased, with `cash_programme` consent granted, not
 * already in the list. `contacts as c`, no columns chosen.
 */
async function candidateQuery(knex: Knex, listId: number, raw: CandidateSpec): Promise<{ query: Knex.QueryBuilder }> {
  const spec = candidateSpecSchema.parse(raw);
  let qb: Knex.QueryBuilder;
  try {
    ({ query: qb } = await audienceQuery(knex, { segment: spec.segment, query: spec.query, purpose: 'cash_programme' }));
  } catch (e) {
    if (e instanceof SegmentError) throw segmentHttpError(e);
    throw e;
  }
  if (spec.survey) {
    const s = spec.survey;
    // Read-only: the sessions whose stored choice for this question is one of the chosen ones.
    qb.whereIn('c.id', function (this: Knex.QueryBuilder) {
      this.select('ss.contact_id')
        .from('survey_answer_choices as ch')
        .join('survey_sessions as ss', 'ss.id', 'ch.session_id')
        .where('ch.survey_key', s.key)
        .where('ch.question', s.question)
        .whereIn('ch.choice', s.choices);
    });
  }
  qb.whereNotExists(function (this: Knex.QueryBuilder) {
    this.select(knex.raw('1')).from('cash_beneficiaries as b0').where('b0.list_id', listId).whereRaw('b0.contact_id = c.id');
  });
  return { query: qb }; // wrapped: a bare builder is thenable and would run when awaited
}

function phoneExpr(knex: Knex): Knex.Raw {
  return knex.raw("(select min(a.address) from ?? as a where a.contact_id = c.id and a.kind = 'phone')", ['contact_addresses']);
}

export interface CandidatePreview {
  /** Contacts that would become candidates. */
  count: number;
  /** Of those, how many look like a beneficiary already in a list (same contact or number), or like another candidate of this batch. */
  possibleDuplicates: number;
}

export async function previewCandidates(knex: Knex, listId: number, spec: CandidateSpec): Promise<CandidatePreview> {
  await getList(knex, listId);
  const { query: q } = await candidateQuery(knex, listId, spec);
  const rows = await q.select('c.id', phoneExpr(knex).wrap('', ' as phone')).orderBy('c.id');
  const items = rows.map((r: Record<string, unknown>) => ({ phone: (r.phone as string | null) ?? null, householdKey: null, contactId: toInt(r.id) }));
  const flagged = new Set<number>();
  for (const d of findFileDuplicates(items)) flagged.add(d.index);
  for (const m of await findExistingMatches(knex, items)) flagged.add(m.index);
  return { count: rows.length, possibleDuplicates: flagged.size };
}

export interface AddedCandidates {
  added: number;
  duplicates: number;
}

/** Adds the selected contacts to the list as candidates (source segment or survey), recording possible duplicates. Audited. */
export async function addCandidates(db: Database, actor: Actor, listId: number, spec: CandidateSpec, now = new Date()): Promise<AddedCandidates> {
  const parsed = candidateSpecSchema.parse(spec);
  await requireOpenList(db.knex, listId);
  const source: BeneficiarySource = parsed.survey ? 'survey' : 'segment';
  const result = await db.knex.transaction(async (trx) => {
    const { query: q } = await candidateQuery(trx, listId, parsed);
    const rows = await q.select('c.id', 'c.name', phoneExpr(trx).wrap('', ' as phone')).orderBy('c.id');
    const items: { contactId: number; name: string | null; phone: string | null; householdKey: null }[] = rows.map((r: Record<string, unknown>) => ({ contactId: toInt(r.id), name: (r.name as string | null) ?? null, phone: (r.phone as string | null) ?? null, householdKey: null }));
    const existing = await findExistingMatches(trx, items);
    const ids: number[] = [];
    for (const part of chunk(items, 200)) {
      const inserted = await trx('cash_beneficiaries')
        .insert(part.map((it) => ({ list_id: listId, contact_id: it.contactId, name: it.name, phone: it.phone, status: 'candidate', source, status_at: now, created_at: now, updated_at: now })))
        .returning('id');
      ids.push(...inserted.map(insertedId));
    }
    const pairs = [
      ...findFileDuplicates(items).map((d) => ({ beneficiaryId: ids[d.index], otherId: ids[d.otherIndex], match: d.match, scope: 'file' as const })),
      ...existing.map((m) => ({ beneficiaryId: ids[m.index], otherId: m.beneficiaryId, match: m.match, scope: 'existing' as const })),
    ];
    await recordDuplicates(trx, listId, pairs, now);
    return { added: ids.length, duplicates: pairs.length };
  });
  await audit(db, actor, { action: 'cash.candidates.add', entityType: 'cash_list', entityId: listId, detail: { source, added: result.added, duplicates: result.duplicates } });
  return result;
}
