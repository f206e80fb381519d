/**
 * Psychosocial triage (PSS): a trained person sets green, yellow or red on a conversation (a contact).
 * Keywords in the person's recent messages may suggest a level (suggest.ts); they never set one.
 *
 *   red     immediate human handoff: the contact's next messages go straight to the staff inbox (no
 *           survey, no intake, no automatic reply) until the handoff is closed; the emergency numbers
 *           (PSS_EMERGENCY_NUMBERS) are sent at once; the handoff stays at the top of the PSS page
 *           for the on-duty focal points until someone closes it.
 *   yellow  a referral task with a due date (follow-up), and a referral to a service when the person
 *           consents; the job marks it overdue when the date passes.
 *   green   self-care key messages (psychological first aid) are sent.
 *
 * Mental-health data is restricted like sensitive cases: triage records, their notes (always sealed)
 * and referrals made from them exist only for holders of `complaints.sensitive`; reads are audited
 * under opaque references. The messages sent are blanked from the outbox once final (sla.ts).
 */
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import type { Config } from '../config.js';
import type { Database, Knex } from '../db/orm.js';
import { toBool, toDate, toDateOrNull, toInt } from '../db/values.js';
import { HttpError, notFound } from '../http/errors.js';
import { enqueue } from '../messaging/outbox.js';
import { wording } from '../messaging/texts.js';
import type { RouterStep } from '../messaging/types.js';
import { audit, type Actor } from '../staff/audit.js';
import { openForDisplay, restrictedRef, sealOrNull } from './crypto.js';
import { keepPrivate, seesSensitive, type Viewer } from './service.js';
import { suggestPssLevel } from './suggest.js';

export const PSS_LEVELS = ['green', 'yellow', 'red'] as const;
export type PssLevel = (typeof PSS_LEVELS)[number];

export const newId = () => randomBytes(8).toString('hex').slice(0, 12);
const noteContext = (id: string) => `pss:${id}:note`;

function requireSensitive(v: Pick<Viewer, 'permissions'>): void {
  // The routes already ask for complaints.sensitive; this guards every other caller too.
  if (!seesSensitive(v)) throw notFound('Not found');
}

async function auditTriage(db: Database, actor: Actor, action: string, id: string | null, detail?: Record<string, unknown>): Promise<void> {
  await audit(db, actor, { action, entityType: 'restricted', entityId: id ? restrictedRef('pss', id) : undefined, detail });
}

export const triageInputSchema = z.object({
  contactId: z.coerce.number().int().positive(),
  level: z.enum(PSS_LEVELS),
  note: z.string().trim().max(5000).optional(),
  /** yellow: days until the follow-up (default 3). */
  followupDays: z.coerce.number().int().min(1).max(60).optional(),
  /** yellow: refer to this service now — only with the person's consent. */
  serviceId: z.coerce.number().int().positive().optional(),
  referralConsent: z.boolean().optional(),
  /** Send the level's message (emergency numbers, self-care) now (default true). */
  sendMessage: z.boolean().default(true),
});
export type TriageInput = z.input<typeof triageInputSchema>;

export interface TriageRecord {
  id: string;
  contactId: number | null;
  level: PssLevel;
  suggestedLevel: string | null;
  note: string | null;
  setBy: string | null;
  at: Date;
  handoffOpen: boolean;
  handoffClosedAt: Date | null;
  followupDueAt: Date | null;
  followupDoneAt: Date | null;
  followupOverdue: boolean;
  messageStatus: string | null;
  auditRef: string;
}

function toRecord(r: Record<string, unknown>, now: Date): TriageRecord {
  const id = String(r.id);
  const due = toDateOrNull(r.followup_due_at);
  const done = toDateOrNull(r.followup_done_at);
  return {
    id,
    contactId: r.contact_id === null || r.contact_id === undefined ? null : toInt(r.contact_id),
    level: r.level as PssLevel,
    suggestedLevel: (r.suggested_level as string | null) ?? null,
    note: openForDisplay(r.note, noteContext(id)),
    setBy: (r.set_by_label as string | null) ?? null,
    at: toDate(r.at),
    handoffOpen: toBool(r.handoff_open),
    handoffClosedAt: toDateOrNull(r.handoff_closed_at),
    followupDueAt: due,
    followupDoneAt: done,
    followupOverdue: Boolean(due && !done && due.getTime() < now.getTime()),
    messageStatus: (r.message_status as string | null) ?? null,
    auditRef: restrictedRef('pss', id),
  };
}

/** What the contact's recent messages suggest (text not yet erased), for the trained person to weigh. */
export async function suggestionFor(knex: Knex, contactId: number, now = new Date()): Promise<'red' | 'yellow' | null> {
  const texts: (string | null)[] = await knex('inbound_messages').where('contact_id', contactId).whereNotNull('text').where('received_at', '>=', new Date(now.getTime() - 7 * 86_400_000)).orderBy('id', 'desc').limit(30).pluck('text');
  return suggestPssLevel(texts);
}

/** Sets a level; red hands the conversation to a human and sends the emergency numbers, yellow schedules a follow-up (and a referral with consent), green sends self-care messages. */
export async function setTriage(db: Database, config: Config, v: Viewer, input: TriageInput): Promise<{ record: TriageRecord; referralId: string | null; warning: string | null }> {
  requireSensitive(v);
  const body = triageInputSchema.parse(input);
  const { knex } = db;
  const contact = await knex('contacts').where('id', body.contactId).whereNull('erased_at').first('id', 'language', 'status');
  if (!contact) throw notFound('No contact with this id');
  if (body.serviceId && body.level !== 'red' && !body.referralConsent) {
    throw new HttpError(400, 'validation_failed', 'A referral needs the person’s consent', { referralConsent: 'ask the person first; refer only if they agree' });
  }
  if (body.serviceId) {
    const service = await knex('referral_services').where({ id: body.serviceId, active: true }).first('id');
    if (!service) throw new HttpError(400, 'validation_failed', 'The service is not in the directory', { serviceId: 'must be an active service of the directory' });
  }
  const now = new Date();
  const id = newId();
  const suggested = await suggestionFor(knex, body.contactId, now);
  let warning: string | null = null;
  let referralId: string | null = null;
  await knex.transaction(async (trx) => {
    // A new level replaces the open handoff and follow-up of earlier ones.
    await trx('pss_triage').where('contact_id', body.contactId).where('handoff_open', true).update({ handoff_open: false, handoff_closed_at: now });
    let messageStatus: string = 'none';
    let outboxId: number | null = null;
    const address = await trx('contact_addresses').where('contact_id', body.contactId).where('opted_out', false).orderBy('last_inbound_at', 'desc').first('id', 'channel');
    const langs = [contact.language as string | null, config.DEFAULT_LANGUAGE];
    const send = async (text: string, language: string) => {
      outboxId = await enqueue(trx, { contactId: body.contactId, purpose: 'reply', content: { type: 'text', text }, language, channel: address?.channel ?? null, addressId: address ? toInt(address.id) : null });
      await keepPrivate(trx, outboxId);
      messageStatus = 'sent';
    };
    if (body.sendMessage) {
      if (!address) messageStatus = 'no_address';
      else if (body.level === 'red') {
        if (config.PSS_EMERGENCY_NUMBERS) {
          const w = wording('pss-emergency', langs, { programme: config.PROGRAMME_NAME, numbers: config.PSS_EMERGENCY_NUMBERS });
          await send(w.text, w.language);
        } else {
          messageStatus = 'no_numbers';
          warning = 'pss.warning.noNumbers';
        }
      } else if (body.level === 'green') {
        const w = wording('pss-selfcare', langs, { programme: config.PROGRAMME_NAME });
        await send(w.text, w.language);
      }
    }
    if (messageStatus === 'no_address') warning = 'pss.warning.noAddress';
    await trx('pss_triage').insert({
      id,
      contact_id: body.contactId,
      level: body.level,
      suggested_level: suggested,
      note: sealOrNull(body.note || null, noteContext(id)),
      set_by_id: v.actor.type === 'staff' ? v.actor.id : (v.actor.userId ?? null),
      set_by_label: v.actor.label,
      at: now,
      handoff_open: body.level === 'red',
      followup_due_at: body.level === 'yellow' ? new Date(now.getTime() + (body.followupDays ?? 3) * 86_400_000) : null,
      message_status: messageStatus,
    });
    if (body.serviceId && body.referralConsent) {
      referralId = newId();
      await trx('referrals').insert({
        id: referralId,
        service_id: body.serviceId,
        complaint_id: null,
        triage_id: id,
        contact_id: body.contactId,
        restricted: true,
        consent: true,
        consent_method: 'operator',
        consent_at: now,
        referred_at: now,
        referred_by_id: v.actor.type === 'staff' ? v.actor.id : (v.actor.userId ?? null),
        due_at: body.level === 'yellow' ? new Date(now.getTime() + (body.followupDays ?? 3) * 86_400_000) : null,
        outcome: 'pending',
        note: null,
        created_at: now,
        updated_at: now,
      });
    }
  });
  await auditTriage(db, v.actor, 'pss.triage', id, { level: body.level, referral: Boolean(referralId) });
  const row = await knex('pss_triage').where('id', id).first();
  return { record: toRecord(row, now), referralId, warning };
}

/** Triage records, newest first (open handoffs and due follow-ups can be filtered). Audited. */
export async function listTriage(db: Database, v: Viewer, f: { contactId?: number; open?: boolean; limit?: number; before?: string } = {}, now = new Date()): Promise<TriageRecord[]> {
  requireSensitive(v);
  const q = db.knex('pss_triage').orderBy([{ column: 'at', order: 'desc' }, { column: 'id', order: 'desc' }]).limit(Math.min(f.limit ?? 50, 200));
  if (f.contactId) q.where('contact_id', f.contactId);
  if (f.open) q.where((w) => w.where('handoff_open', true).orWhere((x) => x.whereNotNull('followup_due_at').whereNull('followup_done_at')));
  if (f.before) {
    const [ms, id] = f.before.split('_');
    const at = new Date(Number(ms));
    q.where((w) => w.where('at', '<', at).orWhere((x) => x.where('at', at).where('id', '<', id)));
  }
  const rows = await q;
  const records = rows.map((r: Record<string, unknown>) => toRecord(r, now));
  await auditTriage(db, v.actor, 'pss.list', null, { results: records.length, contact: f.contactId ? true : undefined });
  return records;
}

export async function getTriage(db: Database, v: Viewer, id: string, now = new Date()): Promise<TriageRecord> {
  requireSensitive(v);
  const row = await db.knex('pss_triage').where('id', id).first();
  if (!row) throw notFound('Not found');
  await auditTriage(db, v.actor, 'pss.read', id);
  return toRecord(row, now);
}

/** Closes a red handoff (the person's messages go through the usual router again). */
export async function closeHandoff(db: Database, v: Viewer, id: string): Promise<void> {
  requireSensitive(v);
  const n = await db.knex('pss_triage').where({ id, handoff_open: true }).update({ handoff_open: false, handoff_closed_at: new Date() });
  if (!n) throw notFound('No open handoff with this id');
  await auditTriage(db, v.actor, 'pss.handoff_close', id);
}

/** Marks a yellow follow-up done. */
export async function followupDone(db: Database, v: Viewer, id: string): Promise<void> {
  requireSensitive(v);
  const n = await db.knex('pss_triage').where({ id }).whereNotNull('followup_due_at').whereNull('followup_done_at').update({ followup_done_at: new Date() });
  if (!n) throw notFound('No pending follow-up with this id');
  await auditTriage(db, v.actor, 'pss.followup_done', id);
}

/** Counts for the console banner: open handoffs and overdue follow-ups (focal points only). */
export async function pssAlerts(knex: Knex, now = new Date()): Promise<{ handoffs: number; overdue: number }> {
  const [h] = await knex('pss_triage').where('handoff_open', true).count({ n: '*' });
  const [o] = await knex('pss_triage').whereNotNull('followup_due_at').whereNull('followup_done_at').where('followup_due_at', '<', now).count({ n: '*' });
  return { handoffs: toInt(h.n), overdue: toInt(o.n) };
}

/**
 * Router step (session stage, first): while a red handoff is open, the person's messages go to the
 * staff inbox — no survey, intake or automatic reply answers them (STOP and the other global words
 * still work: they run before).
 */
export const pssHandoffStep: RouterStep = async (ctx) => {
  const open = await ctx.services.db.knex('pss_triage').where({ contact_id: ctx.contact.id, handoff_open: true }).first('id');
  return open ? 'inbox' : null;
};
