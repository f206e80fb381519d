/**
 * Referrals: the directory of services people can be referred to (organisation, service,
 * eligibility, languages, hours, contact, area, what it helps with), and referral records (which
 * service, the person's consent, when, the follow-up date and the outcome).
 *
 * A referral is made only with the person's consent (IASC: survivor consent before referral). A
 * referral of a sensitive case or of a psychosocial triage is restricted: it exists only for focal
 * points, and its note is sealed. Referral ids are random strings.
 */
import { parse } from 'csv-parse/sync';
import { z } from 'zod';
import type { Database, Knex } from '../db/orm.js';
import { toBool, toDate, toDateOrNull, toInt } from '../db/values.js';
import { HttpError, notFound } from '../http/errors.js';
import { audit, type Actor } from '../staff/audit.js';
import { openForDisplay, restrictedRef, sealOrNull } from './crypto.js';
import { newId } from './pss.js';
import { auditCase, caseRef, recordEvent, seesSensitive, type Viewer } from './service.js';

// ------------------------------------------------------------------------------------ directory

const text = (max: number) => z.string().trim().max(max, { message: `must be at most ${max} characters` });
const optionalText = (max: number) =>
  z.union([text(max), z.null()]).optional().transform((v) => (v === undefined ? undefined : v === null || v === '' ? null : v));

export const serviceInputSchema = z.object({
  organisation: text(200).min(1, { message: 'is required' }),
  name: text(200).min(1, { message: 'is required' }),
  description: optionalText(2000),
  eligibility: optionalText(2000),
  languages: optionalText(100),
  hours: optionalText(200),
  contact: optionalText(300),
  area: optionalText(200),
  kinds: optionalText(200),
  active: z.boolean().optional(),
});
export const serviceUpdateSchema = serviceInputSchema.partial();
export type ServiceInput = z.input<typeof serviceInputSchema>;

export interface ReferralService {
  id: number;
  organisation: string;
  name: string;
  description: string | null;
  eligibility: string | null;
  languages: string | null;
  hours: string | null;
  contact: string | null;
  area: string | null;
  kinds: string | null;
  active: boolean;
  updatedAt: Date;
}

function toService(r: Record<string, unknown>): ReferralService {
  const s = (k: string) => (r[k] as string | null) ?? null;
  return {
    id: toInt(r.id), organisation: String(r.organisation), name: String(r.name), description: s('description'), eligibility: s('eligibility'),
    languages: s('languages'), hours: s('hours'), contact: s('contact'), area: s('area'), kinds: s('kinds'), active: toBool(r.active), updatedAt: toDate(r.updated_at),
  };
}

function invalid(e: z.ZodError, prefix?: string): HttpError {
  const details: Record<string, string> = {};
  for (const i of e.issues) details[[prefix, ...i.path.map(String)].filter(Boolean).join('.') || 'service'] ??= i.message;
  return new HttpError(400, 'validation_failed', 'The request is not valid', details);
}

export async function listServices(knex: Knex, f: { q?: string; active?: boolean } = {}): Promise<ReferralService[]> {
  const q = knex('referral_services').orderBy([{ column: 'organisation' }, { column: 'name' }]).limit(1000);
  if (f.active !== undefined) q.where('active', f.active);
  if (f.q) {
    const like = `%${f.q.toLowerCase().replace(/[\\%_]/g, (m) => '\\' + m)}%`;
    q.where((w) =>
      w.whereRaw("lower(organisation) like ? escape '\\'", [like]).orWhereRaw("lower(name) like ? escape '\\'", [like]).orWhereRaw("lower(coalesce(kinds, '')) like ? escape '\\'", [like]).orWhereRaw("lower(coalesce(area, '')) like ? escape '\\'", [like]),
    );
  }
  return (await q).map(toService);
}

export async function getService(knex: Knex, id: number): Promise<ReferralService> {
  const r = await knex('referral_services').where('id', id).first();
  if (!r) throw notFound('No service with this id');
  return toService(r);
}

export async function createService(db: Database, actor: Actor, input: ServiceInput): Promise<ReferralService> {
  const parsed = serviceInputSchema.safeParse(input);
  if (!parsed.success) throw invalid(parsed.error);
  const d = parsed.data;
  const now = new Date();
  const [row] = await db.knex('referral_services')
    .insert({
      organisation: d.organisation, name: d.name, description: d.description ?? null, eligibility: d.eligibility ?? null, languages: d.languages ?? null,
      hours: d.hours ?? null, contact: d.contact ?? null, area: d.area ?? null, kinds: d.kinds ?? null, active: d.active ?? true, created_at: now, updated_at: now,
    })
    .returning('id');
  const id = toInt(typeof row === 'object' ? (row as { id: unknown }).id : row);
  await audit(db, actor, { action: 'referral_service.create', entityType: 'referral_service', entityId: id });
  return getService(db.knex, id);
}

export async function updateService(db: Database, actor: Actor, id: number, input: z.input<typeof serviceUpdateSchema>): Promise<ReferralService> {
  const parsed = serviceUpdateSchema.safeParse(input);
  if (!parsed.success) throw invalid(parsed.error);
  await getService(db.knex, id);
  const patch: Record<string, unknown> = { updated_at: new Date() };
  for (const [k, v] of Object.entries(parsed.data)) if (v !== undefined) patch[k] = v;
  await db.knex('referral_services').where('id', id).update(patch);
  await audit(db, actor, { action: 'referral_service.update', entityType: 'referral_service', entityId: id, detail: { fields: Object.keys(parsed.data) } });
  return getService(db.knex, id);
}

/**
 * Imports services from CSV (header row: organisation, name, description, eligibility, languages,
 * hours, contact, area, kinds). All rows or none: a bad row is reported with its line and nothing is saved.
 */
export async function importServicesCsv(db: Database, actor: Actor, csv: string): Promise<{ created: number }> {
  let records: Record<string, string>[];
  try {
    records = parse(csv, { columns: (h: string[]) => h.map((c) => c.trim().toLowerCase()), skip_empty_lines: true, trim: true, bom: true });
  } catch (e) {
    throw new HttpError(400, 'validation_failed', 'The CSV cannot be read', { file: (e as Error).message });
  }
  const problems: Record<string, string> = {};
  const rows: z.output<typeof serviceInputSchema>[] = [];
  records.forEach((r, i) => {
    const p = serviceInputSchema.safeParse({ ...r, active: r.active === undefined ? undefined : !['no', 'false', '0'].includes(r.active.toLowerCase()) });
    if (!p.success) for (const issue of p.error.issues) problems[`line ${i + 2}: ${issue.path.join('.')}`] ??= issue.message;
    else rows.push(p.data);
  });
  if (Object.keys(problems).length) throw new HttpError(400, 'validation_failed', 'Some rows are not valid; nothing was imported', problems);
  const now = new Date();
  await db.knex.transaction(async (trx) => {
    for (const d of rows) {
      await trx('referral_services').insert({
        organisation: d.organisation, name: d.name, description: d.description ?? null, eligibility: d.eligibility ?? null, languages: d.languages ?? null,
        hours: d.hours ?? null, contact: d.contact ?? null, area: d.area ?? null, kinds: d.kinds ?? null, active: d.active ?? true, created_at: now, updated_at: now,
      });
    }
  });
  await audit(db, actor, { action: 'referral_service.import', entityType: 'referral_service', detail: { created: rows.length } });
  return { created: rows.length };
}

// ------------------------------------------------------------------------------------ referrals

export const OUTCOMES = ['pending', 'accepted', 'completed', 'declined', 'unreachable'] as const;
export type Outcome = (typeof OUTCOMES)[number];
export const CONSENT_WAYS = ['operator', 'keyword', 'web_form', 'in_person'] as const;

export const referralInputSchema = z.object({
  serviceId: z.coerce.number().int().positive(),
  /** The person agreed to be referred: required, and must be true. */
  consent: z.literal(true, { message: 'the person must agree to be referred (consent: true)' }),
  consentMethod: z.enum(CONSENT_WAYS).default('operator'),
  dueDays: z.coerce.number().int().min(1).max(90).optional(),
  note: z.string().trim().max(2000).optional(),
});

export const referralUpdateSchema = z.object({
  outcome: z.enum(OUTCOMES),
  note: z.string().trim().max(2000).optional(),
});

export interface Referral {
  id: string;
  service: { id: number; organisation: string; name: string };
  complaintCode: string | null;
  triageId: string | null;
  contactId: number | null;
  restricted: boolean;
  consent: boolean;
  consentMethod: string;
  consentAt: Date;
  referredAt: Date;
  dueAt: Date | null;
  outcome: Outcome;
  outcomeAt: Date | null;
  note: string | null;
}

const referralNoteContext = (id: string) => `referral:${id}:note`;

function toReferral(r: Record<string, unknown>): Referral {
  const id = String(r.id);
  const restricted = toBool(r.restricted);
  return {
    id,
    service: { id: toInt(r.service_id), organisation: String(r.organisation), name: String(r.service_name) },
    complaintCode: (r.complaint_code as string | null) ?? null,
    triageId: (r.triage_id as string | null) ?? null,
    contactId: r.contact_id === null || r.contact_id === undefined ? null : toInt(r.contact_id),
    restricted,
    consent: toBool(r.consent),
    consentMethod: String(r.consent_method),
    consentAt: toDate(r.consent_at),
    referredAt: toDate(r.referred_at),
    dueAt: toDateOrNull(r.due_at),
    outcome: r.outcome as Outcome,
    outcomeAt: toDateOrNull(r.outcome_at),
    note: restricted ? openForDisplay(r.note, referralNoteContext(id)) : ((r.note as string | null) ?? null),
  };
}

function referralQuery(knex: Knex, v: Pick<Viewer, 'permissions'>): Knex.QueryBuilder {
  const q = knex('referrals as r')
    .join('referral_services as s', 's.id', 'r.service_id')
    .leftJoin('complaints as c', 'c.id', 'r.complaint_id')
    .select('r.*', 's.organisation', 's.name as service_name', 'c.code as complaint_code');
  if (!seesSensitive(v)) q.where('r.restricted', false);
  return q;
}

async function auditReferral(db: Database, actor: Actor, action: string, r: { id: string; restricted: boolean }, detail?: Record<string, unknown>): Promise<void> {
  if (r.restricted) await audit(db, actor, { action, entityType: 'restricted', entityId: restrictedRef('referral', r.id), detail });
  else await audit(db, actor, { action, entityType: 'referral', entityId: r.id, detail });
}

/** Refers the person of a case to a service, with their consent. The case moves to "referred" when it was open. */
export async function referComplaint(db: Database, v: Viewer, code: string, input: z.input<typeof referralInputSchema>): Promise<Referral> {
  const c = await caseRef(db.knex, v, code);
  const parsed = referralInputSchema.safeParse(input);
  if (!parsed.success) throw invalid(parsed.error);
  const body = parsed.data;
  const service = await db.knex('referral_services').where({ id: body.serviceId, active: true }).first('id', 'organisation', 'name');
  if (!service) throw new HttpError(400, 'validation_failed', 'The service is not in the directory', { serviceId: 'must be an active service of the directory' });
  const now = new Date();
  const id = newId();
  await db.knex.transaction(async (trx) => {
    await trx('referrals').insert({
      id,
      service_id: body.serviceId,
      complaint_id: c.id,
      triage_id: null,
      contact_id: c.contactId,
      restricted: c.sensitive,
      consent: true,
      consent_method: body.consentMethod,
      consent_at: now,
      referred_at: now,
      referred_by_id: v.actor.type === 'staff' ? v.actor.id : (v.actor.userId ?? null),
      due_at: body.dueDays ? new Date(now.getTime() + body.dueDays * 86_400_000) : null,
      outcome: 'pending',
      note: c.sensitive ? sealOrNull(body.note || null, referralNoteContext(id)) : body.note || null,
      created_at: now,
      updated_at: now,
    });
    await recordEvent(trx, c, v.actor, 'referred', `${service.organisation} — ${service.name}`.slice(0, 64));
    const moved = await trx('complaints').where('id', c.id).whereIn('status', ['new', 'acknowledged', 'in_progress']).update({ status: 'referred', updated_at: now });
    if (moved) await recordEvent(trx, c, v.actor, 'status', 'referred');
  });
  await auditCase(db, v.actor, 'complaint.refer', c, { serviceId: body.serviceId });
  return getReferral(db, v, id, { audit: false });
}

export async function getReferral(db: Database, v: Viewer, id: string, opts: { audit?: boolean } = {}): Promise<Referral> {
  const r = await referralQuery(db.knex, v).where('r.id', id).first();
  if (!r) throw notFound('No referral with this id');
  const ref = toReferral(r);
  if (opts.audit !== false) await auditReferral(db, v.actor, 'referral.read', ref);
  return ref;
}

export async function listReferrals(db: Database, v: Viewer, f: { complaintCode?: string; triageId?: string; outcome?: Outcome; serviceId?: number; limit?: number; before?: string } = {}): Promise<{ data: Referral[]; next: string | null }> {
  const limit = Math.min(f.limit ?? 50, 500);
  const q = referralQuery(db.knex, v).orderBy([{ column: 'r.referred_at', order: 'desc' }, { column: 'r.id', order: 'desc' }]).limit(limit + 1);
  if (f.complaintCode) q.where('c.code', f.complaintCode);
  if (f.triageId) q.where('r.triage_id', f.triageId);
  if (f.outcome) q.where('r.outcome', f.outcome);
  if (f.serviceId) q.where('r.service_id', f.serviceId);
  if (f.before) {
    const [ms, id] = f.before.split('_');
    const at = new Date(Number(ms));
    q.where((w) => w.where('r.referred_at', '<', at).orWhere((x) => x.where('r.referred_at', at).where('r.id', '<', id)));
  }
  const rows = await q;
  const data = rows.slice(0, limit).map(toReferral);
  const last = data[data.length - 1];
  await audit(db, v.actor, { action: 'referral.list', entityType: 'referral', detail: { results: data.length } });
  return { data, next: rows.length > limit && last ? `${last.referredAt.getTime()}_${last.id}` : null };
}

export async function updateReferral(db: Database, v: Viewer, id: string, input: z.input<typeof referralUpdateSchema>): Promise<Referral> {
  const parsed = referralUpdateSchema.safeParse(input);
  if (!parsed.success) throw invalid(parsed.error);
  const current = await getReferral(db, v, id, { audit: false });
  const now = new Date();
  const patch: Record<string, unknown> = { outcome: parsed.data.outcome, outcome_at: now, updated_at: now };
  if (parsed.data.note !== undefined) patch.note = current.restricted ? sealOrNull(parsed.data.note || null, referralNoteContext(id)) : parsed.data.note || null;
  await db.knex.transaction(async (trx) => {
    await trx('referrals').where('id', id).update(patch);
    const c = await trx('referrals as r').join('complaints as c', 'c.id', 'r.complaint_id').where('r.id', id).first('c.id', 'c.code', 'c.sensitive');
    if (c) await recordEvent(trx, { id: toInt(c.id), code: String(c.code), sensitive: toBool(c.sensitive) }, v.actor, 'referral_outcome', parsed.data.outcome);
  });
  await auditReferral(db, v.actor, 'referral.update', current, { outcome: parsed.data.outcome });
  return getReferral(db, v, id, { audit: false });
}
