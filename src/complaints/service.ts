/**
 * Complaints: opening a case (from any source), finding the cases a staff member may see, the status
 * workflow, assignment, priority and service levels, notes, closing the loop with the person, CSV
 * export and counts.
 *
 * Sensitive cases (a sensitive category, or marked so by staff) exist only for holders of
 * `complaints.sensitive` (the focal_point role): every query here goes through `scope()`, which
 * removes them for anyone else, so that a list, a search, an export, a count or a code typed into
 * a URL gives exactly what it would give if the case did not exist (404, not 403). Their narrative,
 * resolution and notes are sealed (crypto.ts), and every read of one is audited under an opaque
 * reference, so that not even the audit log names them to an admin.
 *
 * Complaints are known outside the database by their random code only; numeric ids stay inside.
 */
import { stringify } from 'csv-stringify/sync';
import { z } from 'zod';
import type { Database, Knex } from '../db/orm.js';
import { toBool, toDate, toDateOrNull, toInt } from '../db/values.js';
import { HttpError, notFound } from '../http/errors.js';
import { enqueue } from '../messaging/outbox.js';
import { wording } from '../messaging/texts.js';
import { hasConsent, recordConsent, type ConsentInput } from '../contacts/consent.js';
import { audit, type Actor } from '../staff/audit.js';
import { ROLE_PERMISSIONS, type Permission, type Role } from '../staff/roles.js';
import { openForDisplay, restrictedRef, sealOrNull, unsealOrNull } from './crypto.js';
import {
  CATEGORIES, DEFAULT_PRIORITY, OPEN_STATUSES, PRIORITIES, SOURCES, STATUSES, TRANSITIONS, currentSla, dueAt, isSensitiveCategory, newCode, normaliseCode,
  slaState, type Category, type Priority, type SlaHours, type SlaState, type Source, type Status,
} from './model.js';
import { suggestsSensitive } from './suggest.js';

// ------------------------------------------------------------------------------------ who sees

export interface Viewer {
  actor: Actor;
  permissions: readonly Permission[];
}

export const seesSensitive = (v: Pick<Viewer, 'permissions'>): boolean => v.permissions.includes('complaints.sensitive');

/** Restricts a query on `complaints as c` to what the viewer may see. */
export function scope<T extends Knex.QueryBuilder>(q: T, v: Pick<Viewer, 'permissions'>): T {
  if (!seesSensitive(v)) q.where('c.sensitive', false);
  return q;
}

const NOT_FOUND = 'No complaint has this code';

/** Audits an action on a case: by code, or under an opaque reference when the case is sensitive. */
export async function auditCase(db: Database, actor: Actor, action: string, c: { code: string; sensitive: boolean }, detail?: Record<string, unknown>): Promise<void> {
  if (c.sensitive) await audit(db, actor, { action, entityType: 'restricted', entityId: restrictedRef('complaint', c.code), detail });
  else await audit(db, actor, { action, entityType: 'complaint', entityId: c.code, detail });
}

export const auditRefOf = (c: { code: string; sensitive: boolean }) =>
  c.sensitive ? { entityType: 'restricted', entityId: restrictedRef('complaint', c.code) } : { entityType: 'complaint', entityId: c.code };

const ctxOf = (code: string, field: string) => `complaint:${code}:${field}`;

// ---------------------------------------------------------------------------------- opening

export interface OpenComplaintInput {
  source: Source;
  category: Category;
  /** Forces the case sensitive (a sensitive category always is). */
  sensitive?: boolean;
  narrative?: string | null;
  /** The person, when they agreed to be known with this case; null or absent: anonymous. */
  contactId?: number | null;
  /** The address to answer on (the one they wrote from). */
  addressId?: number | null;
  /** Keyed hash of the address that filed it, for STATUS (see intake.ts); never the address itself. */
  requesterHash?: string | null;
  /** They asked for an answer (needs contactId and `consent.followup`). */
  wantsAnswer?: boolean;
  replyMedium?: 'whatsapp' | 'sms' | null;
  language?: string | null;
  priority?: Priority;
  receivedAt?: Date;
  /** Where it came from, without personal data: "pdm:session:12", "web", "hotline". */
  sourceRef?: string | null;
  /** The staff user who entered it (hotline), if any. */
  createdBy?: { id: number | null; label: string; type: Actor['type'] } | null;
  /**
   * Consent to be contacted about this case (purpose complaint_followup), recorded in the ledger in
   * the same transaction. Without it no answer is ever sent, whatever `wantsAnswer` says.
   */
  consent?: { followup: boolean } & Omit<ConsentInput, 'contactId' | 'purpose' | 'action'>;
  /** Service levels (default: the process's settings, see configureComplaints). */
  sla?: SlaHours;
}

export interface OpenedComplaint {
  id: number;
  code: string;
  sensitive: boolean;
  priority: Priority;
  dueAt: Date;
  anonymous: boolean;
}

const openSchema = z.object({
  source: z.enum(SOURCES),
  category: z.enum(CATEGORIES),
  narrative: z.string().trim().max(10_000, { message: 'must be at most 10,000 characters' }).nullable().optional(),
  language: z.string().regex(/^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$/).nullable().optional(),
  priority: z.enum(PRIORITIES).optional(),
  replyMedium: z.enum(['whatsapp', 'sms']).nullable().optional(),
  sourceRef: z.string().max(100).nullable().optional(),
});

async function uniqueCode(trx: Knex): Promise<string> {
  for (let i = 0; i < 20; i++) {
    const code = newCode();
    if (!(await trx('complaints').where('code', code).first('id'))) return code;
  }
  throw new Error('could not draw an unused complaint code');
}

/**
 * Opens a complaint inside the caller's transaction (the inbound router, the web form, the console,
 * and other domains — PDM answers call this with source 'pdm'). Validates and throws a 400 naming the
 * field; records the follow-up consent when given; writes the "created" event. Not audited here:
 * staff callers audit (`auditCase`) after their transaction.
 */
export async function openComplaint(trx: Knex, input: OpenComplaintInput): Promise<OpenedComplaint> {
  const parsed = openSchema.safeParse(input);
  if (!parsed.success) {
    const details: Record<string, string> = {};
    for (const issue of parsed.error.issues) details[issue.path.join('.') || 'complaint'] ??= issue.message;
    throw new HttpError(400, 'validation_failed', 'The complaint is not valid', details);
  }
  const contactId = input.contactId ?? null;
  const anonymous = contactId === null;
  const followupConsent = Boolean(input.consent?.followup) && !anonymous;
  const wantsAnswer = Boolean(input.wantsAnswer) && !anonymous;
  if (input.wantsAnswer && anonymous) {
    throw new HttpError(400, 'validation_failed', 'An anonymous complaint cannot be answered', { wantsAnswer: 'needs the person’s contact (not anonymous)' });
  }
  const sensitive = Boolean(input.sensitive) || isSensitiveCategory(input.category);
  const priority = input.priority ?? DEFAULT_PRIORITY[input.category];
  const receivedAt = input.receivedAt ?? new Date();
  const due = dueAt(receivedAt, priority, input.sla ?? currentSla());
  const narrative = input.narrative?.trim() || null;
  const code = await uniqueCode(trx);
  const now = new Date();
  const [row] = await trx('complaints')
    .insert({
      code,
      source: input.source,
      source_ref: input.sourceRef ?? null,
      category: input.category,
      sensitive,
      suggested_sensitive: !sensitive && suggestsSensitive(narrative),
      priority,
      status: 'new',
      contact_id: contactId,
      address_id: anonymous ? null : (input.addressId ?? null),
      requester_hash: input.requesterHash ?? null,
      anonymous,
      wants_answer: wantsAnswer,
      reply_medium: wantsAnswer ? (input.replyMedium ?? null) : null,
      language: input.language ?? null,
      narrative: sensitive ? sealOrNull(narrative, ctxOf(code, 'narrative')) : narrative,
      created_by_id: input.createdBy?.type === 'staff' ? input.createdBy.id : null,
      received_at: receivedAt,
      due_at: due,
      created_at: now,
      updated_at: now,
    })
    .returning('id');
  const id = toInt(typeof row === 'object' ? (row as { id: unknown }).id : row);
  const by = input.createdBy ?? { type: 'contact' as const, id: null, label: anonymous ? 'anonymous' : 'contact' };
  await addEvent(trx, id, { type: 'created', actor: by, to: input.source });
  if (followupConsent && input.consent) {
    const { followup: _f, ...c } = input.consent;
    await recordConsent(trx, { ...c, contactId: contactId!, purpose: 'complaint_followup', action: 'grant' });
    await addEvent(trx, id, { type: 'consent', actor: by, to: 'complaint_followup' });
  }
  return { id, code, sensitive, priority, dueAt: due, anonymous };
}

type EventActor = { type: string; id: number | null; label: string };

async function addEvent(trx: Knex, complaintId: number, e: { type: string; actor: EventActor; from?: string | null; to?: string | null; note?: string | null }, sealFor?: string): Promise<void> {
  await trx('complaint_events').insert({
    complaint_id: complaintId,
    at: new Date(),
    type: e.type,
    actor_type: e.actor.type,
    actor_id: e.actor.id,
    actor_label: e.actor.label.slice(0, 254),
    from_value: e.from ?? null,
    to_value: e.to ?? null,
    note: e.note ? (sealFor ? sealOrNull(e.note, sealFor) : e.note) : null,
  });
}

const actorOf = (a: Actor): EventActor => ({ type: a.type, id: a.id, label: a.label });

// ---------------------------------------------------------------------------------- reading

export interface Complaint {
  code: string;
  source: string;
  sourceRef: string | null;
  category: Category;
  sensitive: boolean;
  suggestedSensitive: boolean;
  priority: Priority;
  status: Status;
  assignee: { id: number; name: string } | null;
  anonymous: boolean;
  wantsAnswer: boolean;
  replyMedium: string | null;
  language: string | null;
  contactId: number | null;
  receivedAt: Date;
  dueAt: Date;
  sla: SlaState;
  acknowledgedAt: Date | null;
  resolvedAt: Date | null;
  closedAt: Date | null;
  escalatedAt: Date | null;
  ackSentAt: Date | null;
  followupSentAt: Date | null;
  narrativeErasedAt: Date | null;
}

export interface ComplaintDetail extends Complaint {
  narrative: string | null;
  resolution: string | null;
  events: { at: Date; type: string; actor: string; from: string | null; to: string | null; note: string | null }[];
  transitions: Status[];
  /** The audit log's entity for this case (an opaque reference when sensitive). */
  auditRef: { entityType: string; entityId: string };
}

/** Internal row (with the numeric id) for service functions. */
interface Row {
  id: number;
  code: string;
  sensitive: boolean;
  status: Status;
  priority: Priority;
  category: Category;
  contact_id: number | null;
  [k: string]: unknown;
}

function toComplaint(r: Record<string, unknown>, now: Date): Complaint {
  const receivedAt = toDate(r.received_at);
  const due = toDate(r.due_at);
  const resolvedAt = toDateOrNull(r.resolved_at);
  return {
    code: String(r.code),
    source: String(r.source),
    sourceRef: (r.source_ref as string | null) ?? null,
    category: r.category as Category,
    sensitive: toBool(r.sensitive),
    suggestedSensitive: toBool(r.suggested_sensitive),
    priority: r.priority as Priority,
    status: r.status as Status,
    assignee: r.assignee_id === null || r.assignee_id === undefined ? null : { id: toInt(r.assignee_id), name: String(r.assignee_name ?? '') },
    anonymous: toBool(r.anonymous),
    wantsAnswer: toBool(r.wants_answer),
    replyMedium: (r.reply_medium as string | null) ?? null,
    language: (r.language as string | null) ?? null,
    contactId: r.contact_id === null || r.contact_id === undefined ? null : toInt(r.contact_id),
    receivedAt,
    dueAt: due,
    sla: slaState({ status: String(r.status), receivedAt, dueAt: due, resolvedAt }, now),
    acknowledgedAt: toDateOrNull(r.acknowledged_at),
    resolvedAt,
    closedAt: toDateOrNull(r.closed_at),
    escalatedAt: toDateOrNull(r.escalated_at),
    ackSentAt: toDateOrNull(r.ack_sent_at),
    followupSentAt: toDateOrNull(r.followup_sent_at),
    narrativeErasedAt: toDateOrNull(r.narrative_erased_at),
  };
}

function baseQuery(knex: Knex): Knex.QueryBuilder {
  return knex('complaints as c').leftJoin('staff_users as u', 'u.id', 'c.assignee_id').select('c.*', 'u.name as assignee_name');
}

/** The case with this code if the viewer may see it; otherwise 404, the same as for a code nobody used. */
async function findRow(knex: Knex, v: Pick<Viewer, 'permissions'>, rawCode: string): Promise<Row> {
  const code = normaliseCode(rawCode);
  if (!code) throw notFound(NOT_FOUND);
  const r = await scope(baseQuery(knex).where('c.code', code), v).first();
  if (!r) throw notFound(NOT_FOUND);
  return { ...r, id: toInt(r.id), sensitive: toBool(r.sensitive), contact_id: r.contact_id === null ? null : toInt(r.contact_id) } as Row;
}

function narrativeOf(r: Row): { narrative: string | null; resolution: string | null } {
  if (!r.sensitive) return { narrative: (r.narrative as string | null) ?? null, resolution: (r.resolution as string | null) ?? null };
  return { narrative: openForDisplay(r.narrative, ctxOf(r.code, 'narrative')), resolution: openForDisplay(r.resolution, ctxOf(r.code, 'resolution')) };
}

/** One case with its narrative and history. Audited (every read). */
export async function getComplaint(db: Database, v: Viewer, code: string, now = new Date()): Promise<ComplaintDetail> {
  const r = await findRow(db.knex, v, code);
  const events = await db.knex('complaint_events').where('complaint_id', r.id).orderBy('id', 'asc');
  const detail: ComplaintDetail = {
    ...toComplaint(r, now),
    ...narrativeOf(r),
    events: events.map((e: Record<string, unknown>) => ({
      at: toDate(e.at),
      type: String(e.type),
      actor: String(e.actor_label ?? e.actor_type),
      from: (e.from_value as string | null) ?? null,
      to: (e.to_value as string | null) ?? null,
      note: r.sensitive ? openForDisplay(e.note, ctxOf(r.code, 'note')) : ((e.note as string | null) ?? null),
    })),
    transitions: [...TRANSITIONS[r.status]],
    auditRef: auditRefOf(r),
  };
  await auditCase(db, v.actor, 'complaint.read', r);
  return detail;
}

export const listQuerySchema = z.object({
  status: z.enum(STATUSES).optional(),
  open: z.enum(['true', 'false']).optional(),
  category: z.enum(CATEGORIES).optional(),
  priority: z.enum(PRIORITIES).optional(),
  source: z.enum(SOURCES).optional(),
  assignee: z.union([z.literal('me'), z.literal('none'), z.coerce.number().int().positive()]).optional(),
  sla: z.enum(['overdue', 'due_soon']).optional(),
  /** Sensitive cases only (true) or none (false); for focal points. */
  sensitive: z.enum(['true', 'false']).optional(),
  /** A code, or words of the narrative (non-sensitive cases: sensitive narratives are sealed). */
  q: z.string().trim().max(100).optional(),
  from: z.coerce.date().optional(),
  to: z.coerce.date().optional(),
  /** The `next` of the previous page. */
  cursor: z.string().regex(/^\d{1,15}_[A-Z0-9]{6,12}$/, { message: 'must be the next value of the previous page' }).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(50),
});
export type ListQuery = z.output<typeof listQuerySchema>;

function filtered(knex: Knex, v: Viewer, f: Omit<ListQuery, 'cursor' | 'limit'>, now: Date, sla: SlaHours): Knex.QueryBuilder {
  const q = scope(baseQuery(knex), v);
  if (f.status) q.where('c.status', f.status);
  if (f.open === 'true') q.whereIn('c.status', OPEN_STATUSES as string[]);
  if (f.open === 'false') q.whereNotIn('c.status', OPEN_STATUSES as string[]);
  if (f.category) q.where('c.category', f.category);
  if (f.priority) q.where('c.priority', f.priority);
  if (f.source) q.where('c.source', f.source);
  if (f.assignee === 'none') q.whereNull('c.assignee_id');
  else if (f.assignee === 'me') q.where('c.assignee_id', v.actor.userId ?? (v.actor.type === 'staff' ? v.actor.id : -1));
  else if (typeof f.assignee === 'number') q.where('c.assignee_id', f.assignee);
  if (f.sensitive === 'true') q.where('c.sensitive', true);
  if (f.sensitive === 'false') q.where('c.sensitive', false);
  if (f.from) q.where('c.received_at', '>=', f.from);
  if (f.to) q.where('c.received_at', '<', f.to);
  if (f.sla === 'overdue') q.whereIn('c.status', OPEN_STATUSES as string[]).where('c.due_at', '<', now);
  if (f.sla === 'due_soon') {
    q.whereIn('c.status', OPEN_STATUSES as string[]).where('c.due_at', '>=', now).where((w) => {
      for (const p of PRIORITIES) w.orWhere((x) => x.where('c.priority', p).where('c.due_at', '<=', new Date(now.getTime() + (sla[p] * 3_600_000) / 4)));
    });
  }
  if (f.q) {
    const code = normaliseCode(f.q);
    const like = `%${f.q.toLowerCase().replace(/[\\%_]/g, (m) => '\\' + m)}%`;
    q.where((w) => {
      if (code) w.orWhere('c.code', code);
      w.orWhere((x) => x.where('c.sensitive', false).whereRaw("lower(c.narrative) like ? escape '\\'", [like]));
    });
  }
  return q;
}

/** A page of cases, newest first. Audited (one event with the count). */
export async function listComplaints(db: Database, v: Viewer, f: ListQuery, now = new Date(), sla: SlaHours = currentSla()): Promise<{ data: Complaint[]; next: string | null }> {
  const q = filtered(db.knex, v, f, now, sla).orderBy([{ column: 'c.received_at', order: 'desc' }, { column: 'c.code', order: 'desc' }]).limit(f.limit + 1);
  if (f.cursor) {
    const [ms, code] = f.cursor.split('_');
    const at = new Date(Number(ms));
    q.where((w) => w.where('c.received_at', '<', at).orWhere((x) => x.where('c.received_at', at).where('c.code', '<', code)));
  }
  const rows = await q;
  const page = rows.slice(0, f.limit).map((r: Record<string, unknown>) => toComplaint(r, now));
  const last = page[page.length - 1];
  const next = rows.length > f.limit && last ? `${last.receivedAt.getTime()}_${last.code}` : null;
  await audit(db, v.actor, { action: 'complaint.list', entityType: 'complaint', detail: { results: page.length, searched: Boolean(f.q) } });
  const restricted = rows.slice(0, f.limit).filter((r: Record<string, unknown>) => toBool(r.sensitive));
  for (const r of restricted) await auditCase(db, v.actor, 'complaint.listed', { code: String(r.code), sensitive: true });
  return { data: page, next };
}

export const EXPORT_COLUMNS = [
  'code', 'received_at', 'source', 'category', 'sensitive', 'priority', 'status', 'assignee', 'due_at', 'sla', 'anonymous', 'wants_answer',
  'reply_medium', 'language', 'acknowledged_at', 'resolved_at', 'closed_at', 'escalated_at', 'narrative', 'resolution',
] as const;

/** Every case matching the filters as CSV (UTF-8 with BOM, for spreadsheets). Audited per export, and per sensitive case. */
export async function exportComplaintsCsv(db: Database, v: Viewer, f: Omit<ListQuery, 'cursor' | 'limit'>, now = new Date(), sla: SlaHours = currentSla()): Promise<{ csv: string; rows: number }> {
  const rows: Record<string, unknown>[] = await filtered(db.knex, v, f, now, sla).orderBy([{ column: 'c.received_at', order: 'desc' }, { column: 'c.code', order: 'desc' }]).limit(100_000);
  const iso = (d: Date | null) => (d ? d.toISOString() : '');
  const records = rows.map((raw) => {
    const r = { ...raw, id: toInt(raw.id), sensitive: toBool(raw.sensitive) } as Row;
    const c = toComplaint(r, now);
    const text = narrativeOf(r);
    return [
      c.code, iso(c.receivedAt), c.source, c.category, c.sensitive ? 'yes' : 'no', c.priority, c.status, c.assignee?.name ?? '', iso(c.dueAt), c.sla,
      c.anonymous ? 'yes' : 'no', c.wantsAnswer ? 'yes' : 'no', c.replyMedium ?? '', c.language ?? '', iso(c.acknowledgedAt), iso(c.resolvedAt),
      iso(c.closedAt), iso(c.escalatedAt), text.narrative ?? '', text.resolution ?? '',
    ];
  });
  const csv = '\uFEFF' + stringify([[...EXPORT_COLUMNS], ...records]);
  await audit(db, v.actor, { action: 'complaint.export', entityType: 'complaint', detail: { rows: records.length } });
  for (const r of rows.filter((x) => toBool(x.sensitive))) await auditCase(db, v.actor, 'complaint.exported', { code: String(r.code), sensitive: true });
  return { csv, rows: records.length };
}

export interface ComplaintStats {
  total: number;
  open: number;
  overdue: number;
  byStatus: Record<string, number>;
  byCategory: Record<string, number>;
  byPriority: Record<string, number>;
  /** The anonymous total of sensitive cases, for viewers who cannot see them (no breakdown, no dates). */
  sensitiveTotal: number | null;
}

/** Counts of the cases the viewer may see; everyone else sees sensitive cases only as one anonymous total. */
export async function complaintStats(knex: Knex, v: Viewer, now = new Date()): Promise<ComplaintStats> {
  const group = async (col: string) => {
    const rows = await scope(knex('complaints as c'), v).select(`c.${col} as k`).count({ n: '*' }).groupBy(`c.${col}`);
    return Object.fromEntries(rows.map((r: Record<string, unknown>) => [String(r.k), toInt(r.n)]));
  };
  const byStatus = await group('status');
  const byCategory = await group('category');
  const byPriority = await group('priority');
  const [overdue] = await scope(knex('complaints as c'), v).whereIn('c.status', OPEN_STATUSES as string[]).where('c.due_at', '<', now).count({ n: '*' });
  const total = Object.values(byStatus).reduce((a, b) => a + b, 0);
  const open = OPEN_STATUSES.reduce((a, s) => a + (byStatus[s] ?? 0), 0);
  let sensitiveTotal: number | null = null;
  if (!seesSensitive(v)) {
    const [s] = await knex('complaints').where('sensitive', true).count({ n: '*' });
    sensitiveTotal = toInt(s.n);
  }
  return { total, open, overdue: toInt(overdue.n), byStatus, byCategory, byPriority, sensitiveTotal };
}

// ---------------------------------------------------------------------------------- changing

export const statusChangeSchema = z.object({
  status: z.enum(STATUSES),
  note: z.string().trim().max(5000).optional(),
  /** Required to resolve: what was done; sent to the person when they asked for an answer. */
  resolution: z.string().trim().max(1000).optional(),
});

/** Moves a case along the workflow; resolving sends the resolution to the person when they asked for an answer and consented. */
export async function changeStatus(
  db: Database,
  v: Viewer,
  code: string,
  input: z.input<typeof statusChangeSchema>,
  opts: { programme: string; defaultLanguage: string },
): Promise<{ status: Status; followup: 'sent' | 'not_requested' | 'no_consent' | 'no_contact' | null }> {
  const body = statusChangeSchema.parse(input);
  const r = await findRow(db.knex, v, code);
  const allowed = TRANSITIONS[r.status];
  if (!allowed.includes(body.status)) {
    throw new HttpError(409, 'invalid_transition', `A ${r.status} case cannot move to ${body.status}`, { status: allowed.length ? `must be one of ${allowed.join(', ')}` : 'a closed case cannot change' });
  }
  if (body.status === 'resolved' && !body.resolution) {
    throw new HttpError(400, 'validation_failed', 'Resolving a case needs its resolution', { resolution: 'say what was done (it is sent to the person if they asked for an answer)' });
  }
  if (body.status === 'closed' && !['resolved'].includes(r.status) && !body.note) {
    throw new HttpError(400, 'validation_failed', 'Closing an unresolved case needs a note', { note: 'say why it is closed without resolution (duplicate, not a complaint…)' });
  }
  const now = new Date();
  const sealFor = r.sensitive ? ctxOf(r.code, 'note') : undefined;
  let followup: 'sent' | 'not_requested' | 'no_consent' | 'no_contact' | null = null;
  await db.knex.transaction(async (trx) => {
    const patch: Record<string, unknown> = { status: body.status, updated_at: now };
    if (body.status === 'acknowledged' && !r.acknowledged_at) patch.acknowledged_at = now;
    if (body.status === 'resolved') {
      patch.resolved_at = now;
      patch.resolution = r.sensitive ? sealOrNull(body.resolution!, ctxOf(r.code, 'resolution')) : body.resolution;
    }
    if (body.status === 'closed') patch.closed_at = now;
    if (body.status === 'in_progress' && (r.status === 'resolved')) patch.resolved_at = null;
    if (!r.acknowledged_at && body.status !== 'new') patch.acknowledged_at ??= now;
    const n = await trx('complaints').where({ id: r.id, status: r.status }).update(patch);
    if (!n) throw new HttpError(409, 'conflict', 'The case changed meanwhile; reload it and try again');
    await addEvent(trx, r.id, { type: 'status', actor: actorOf(v.actor), from: r.status, to: body.status, note: body.note ?? null }, sealFor);
    if (body.status === 'resolved') followup = await sendFollowup(trx, r, body.resolution!, opts, now);
  });
  await auditCase(db, v.actor, 'complaint.status', r, { from: r.status, to: body.status, followup });
  return { status: body.status, followup };
}

/** Enqueues the resolution for the person, if they asked for an answer and their consent stands. */
async function sendFollowup(trx: Knex, r: Row, resolution: string, opts: { programme: string; defaultLanguage: string }, now: Date): Promise<'sent' | 'not_requested' | 'no_consent' | 'no_contact'> {
  const system = { type: 'system', id: null, label: 'system' };
  if (!toBool(r.wants_answer)) return 'not_requested';
  if (r.contact_id === null) {
    await addEvent(trx, r.id, { type: 'followup', actor: system, to: 'no_contact' });
    return 'no_contact';
  }
  if (!(await hasConsent(trx, r.contact_id, 'complaint_followup'))) {
    await addEvent(trx, r.id, { type: 'followup', actor: system, to: 'no_consent' });
    return 'no_consent';
  }
  const medium = (r.reply_medium as string | null) ?? null;
  let addressId: number | null = null;
  let channel: string | null = null;
  if (medium) {
    const preferred = r.address_id !== null && r.address_id !== undefined
      ? await trx('contact_addresses').where({ id: toInt(r.address_id), contact_id: r.contact_id, channel: medium }).first('id')
      : undefined;
    const any = preferred ?? (await trx('contact_addresses').where({ contact_id: r.contact_id, channel: medium, opted_out: false }).orderBy('id').first('id'));
    if (any) {
      addressId = toInt(any.id);
      channel = medium;
    }
  }
  const w = wording('complaint-resolution', [r.language as string | null, opts.defaultLanguage], { programme: opts.programme, code: r.code, resolution });
  const outboxId = await enqueue(trx, { contactId: r.contact_id, purpose: 'complaint_followup', priority: 1, content: { type: 'text', text: w.text }, language: w.language, channel, addressId });
  await keepPrivate(trx, outboxId);
  await trx('complaints').where('id', r.id).update({ followup_sent_at: now });
  await addEvent(trx, r.id, { type: 'followup', actor: system, to: 'sent' });
  return 'sent';
}

/** Marks an outbox row whose content must be blanked once it is final (it names a case). */
export async function keepPrivate(trx: Knex, outboxId: number): Promise<void> {
  await trx('private_outbox').insert({ outbox_id: outboxId, created_at: new Date() }).onConflict('outbox_id').ignore();
}

/** Staff who may be assigned a case: active, with complaints.manage; for a sensitive case, complaints.sensitive too. */
export async function assignableStaff(knex: Knex, sensitive: boolean): Promise<{ id: number; name: string; role: Role }[]> {
  const roles = (Object.entries(ROLE_PERMISSIONS) as [Role, readonly Permission[]][])
    .filter(([, p]) => p.includes('complaints.manage') && (!sensitive || p.includes('complaints.sensitive')))
    .map(([r]) => r);
  const rows = await knex('staff_users').where('active', true).whereIn('role', roles).orderBy('name').select('id', 'name', 'role');
  return rows.map((r: Record<string, unknown>) => ({ id: toInt(r.id), name: String(r.name), role: r.role as Role }));
}

export async function assignComplaint(db: Database, v: Viewer, code: string, assigneeId: number | null): Promise<void> {
  const r = await findRow(db.knex, v, code);
  if (assigneeId !== null) {
    const ok = (await assignableStaff(db.knex, r.sensitive)).some((s) => s.id === assigneeId);
    if (!ok) {
      throw new HttpError(400, 'validation_failed', 'This staff user cannot take the case', { assigneeId: r.sensitive ? 'must be an active focal point' : 'must be an active staff user who handles complaints' });
    }
  }
  const from = r.assignee_id === null || r.assignee_id === undefined ? null : String(r.assignee_id);
  await db.knex.transaction(async (trx) => {
    await trx('complaints').where('id', r.id).update({ assignee_id: assigneeId, updated_at: new Date() });
    await addEvent(trx, r.id, { type: 'assigned', actor: actorOf(v.actor), from, to: assigneeId === null ? null : String(assigneeId) });
  });
  await auditCase(db, v.actor, 'complaint.assign', r, { assigneeId });
}

export async function setPriority(db: Database, v: Viewer, code: string, priority: Priority, sla: SlaHours = currentSla()): Promise<Date> {
  const r = await findRow(db.knex, v, code);
  const due = dueAt(toDate(r.received_at), priority, sla);
  await db.knex.transaction(async (trx) => {
    // A new deadline still in the future re-arms the escalation.
    const patch: Record<string, unknown> = { priority, due_at: due, updated_at: new Date() };
    if (due.getTime() > Date.now()) patch.escalated_at = null;
    await trx('complaints').where('id', r.id).update(patch);
    await addEvent(trx, r.id, { type: 'priority', actor: actorOf(v.actor), from: r.priority, to: priority });
  });
  await auditCase(db, v.actor, 'complaint.priority', r, { from: r.priority, to: priority });
  return due;
}

export async function addNote(db: Database, v: Viewer, code: string, note: string): Promise<void> {
  const text = note.trim();
  if (!text) throw new HttpError(400, 'validation_failed', 'The note is empty', { note: 'write something' });
  if (text.length > 5000) throw new HttpError(400, 'validation_failed', 'The note is too long', { note: 'must be at most 5,000 characters' });
  const r = await findRow(db.knex, v, code);
  await db.knex.transaction((trx) => addEvent(trx, r.id, { type: 'note', actor: actorOf(v.actor), note: text }, r.sensitive ? ctxOf(r.code, 'note') : undefined));
  await auditCase(db, v.actor, 'complaint.note', r);
}

/**
 * Marks a case sensitive (anyone who handles complaints: it then leaves their view for good) or
 * not (focal points only, and only when its category is not a sensitive one). The narrative,
 * resolution and notes are sealed or opened in the same transaction.
 */
export async function setSensitive(db: Database, v: Viewer, code: string, sensitive: boolean): Promise<{ visible: boolean }> {
  const r = await findRow(db.knex, v, code);
  if (r.sensitive === sensitive) return { visible: true };
  if (!sensitive) {
    if (!seesSensitive(v)) throw notFound(NOT_FOUND); // unreachable: they cannot see it
    if (isSensitiveCategory(r.category)) {
      throw new HttpError(409, 'conflict', 'A case of a sensitive category stays sensitive', { sensitive: `change the category from ${r.category} first` });
    }
  }
  const convert = (text: unknown, field: string): string | null => {
    if (text === null || text === undefined) return null;
    return sensitive ? sealOrNull(String(text), ctxOf(r.code, field)) : unsealOrNull(String(text), ctxOf(r.code, field));
  };
  await db.knex.transaction(async (trx) => {
    await trx('complaints').where('id', r.id).update({
      sensitive,
      suggested_sensitive: false,
      narrative: convert(r.narrative, 'narrative'),
      resolution: convert(r.resolution, 'resolution'),
      updated_at: new Date(),
    });
    const notes = await trx('complaint_events').where('complaint_id', r.id).whereNotNull('note').select('id', 'note');
    for (const n of notes) await trx('complaint_events').where('id', n.id).update({ note: convert(n.note, 'note') });
    // If someone who could not see it marked it, unassign them unless they are a focal point.
    if (sensitive && r.assignee_id !== null && r.assignee_id !== undefined) {
      const ok = (await assignableStaff(trx, true)).some((s) => s.id === toInt(r.assignee_id));
      if (!ok) await trx('complaints').where('id', r.id).update({ assignee_id: null });
    }
    await addEvent(trx, r.id, { type: 'sensitive', actor: actorOf(v.actor), from: String(r.sensitive), to: String(sensitive) });
  });
  // Audited under the reference it has from now on (the marking itself is not a secret to the one who did it).
  await auditCase(db, v.actor, sensitive ? 'complaint.mark_sensitive' : 'complaint.unmark_sensitive', { code: r.code, sensitive: true });
  return { visible: sensitive ? seesSensitive(v) : true };
}

export const categorySchema = z.object({ category: z.enum(CATEGORIES) });

/** Re-codes a case. A sensitive category makes it sensitive; leaving one needs a focal point (who can see it). */
export async function setCategory(db: Database, v: Viewer, code: string, category: Category): Promise<{ visible: boolean }> {
  const r = await findRow(db.knex, v, code);
  if (r.category === category) return { visible: true };
  if (isSensitiveCategory(category) && !r.sensitive) {
    await db.knex.transaction(async (trx) => {
      await trx('complaints').where('id', r.id).update({ category, updated_at: new Date() });
      await addEvent(trx, r.id, { type: 'category', actor: actorOf(v.actor), from: r.category, to: category });
    });
    return setSensitive(db, v, code, true);
  }
  await db.knex.transaction(async (trx) => {
    await trx('complaints').where('id', r.id).update({ category, updated_at: new Date() });
    await addEvent(trx, r.id, { type: 'category', actor: actorOf(v.actor), from: r.category, to: category }, r.sensitive ? ctxOf(r.code, 'note') : undefined);
  });
  await auditCase(db, v.actor, 'complaint.category', r, { from: r.category, to: category });
  return { visible: true };
}

/** The audit events about one case (reads included), newest first. */
export async function caseAccessLog(db: Database, v: Viewer, code: string): Promise<{ at: Date; actor: string; action: string }[]> {
  const r = await findRow(db.knex, v, code);
  const ref = auditRefOf(r);
  const rows = await db.knex('audit_events').where({ entity_type: ref.entityType, entity_id: ref.entityId }).orderBy('id', 'desc').limit(200);
  return rows.map((e: Record<string, unknown>) => ({ at: toDate(e.at), actor: String(e.actor_label ?? e.actor_type), action: String(e.action) }));
}

/** Internal: a visible case's numeric id and sensitivity (for referrals). */
export async function caseRef(knex: Knex, v: Pick<Viewer, 'permissions'>, code: string): Promise<{ id: number; code: string; sensitive: boolean; contactId: number | null }> {
  const r = await findRow(knex, v, code);
  return { id: r.id, code: r.code, sensitive: r.sensitive, contactId: r.contact_id };
}

/** Internal: records an event on a case from another part of the domain (referrals). */
export async function recordEvent(trx: Knex, c: { id: number; code: string; sensitive: boolean }, actor: Actor, type: string, to: string | null, note?: string | null): Promise<void> {
  await addEvent(trx, c.id, { type, actor: actorOf(actor), to, note: note ?? null }, c.sensitive ? ctxOf(c.code, 'note') : undefined);
}
