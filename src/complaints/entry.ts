/**
 * Complaints that do not arrive by message: entered by a hotline operator (console and API), and
 * sent through the public web form (no sign-in; rate-limited per client address).
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { Config } from '../config.js';
import { findOrCreateContact, normalisePhone } from '../contacts/addresses.js';
import type { Database, Knex } from '../db/orm.js';
import { toInt } from '../db/values.js';
import { HttpError } from '../http/errors.js';
import { CATEGORIES, PRIORITIES, slaFromConfig } from './model.js';
import { auditCase, openComplaint, type OpenedComplaint, type Viewer } from './service.js';

const lang = z.string().regex(/^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$/, { message: 'must be a language code such as es or en' });

export const staffEntryBase = z
  .object({
    source: z.enum(['phone', 'in_person', 'staff', 'web', 'whatsapp', 'sms']).default('phone'),
    category: z.enum(CATEGORIES),
    narrative: z.string().trim().min(1, { message: 'is required: what the person told' }).max(10_000),
    /** The person asked not to be known with this case. */
    anonymous: z.boolean().default(false),
    /** An existing contact… */
    contactId: z.coerce.number().int().positive().optional(),
    /** …or their number (found or created as a contact). */
    phone: z.string().trim().max(40).optional(),
    medium: z.enum(['sms', 'whatsapp']).default('sms'),
    name: z.string().trim().max(200).optional(),
    wantsAnswer: z.boolean().default(false),
    replyMedium: z.enum(['sms', 'whatsapp']).optional(),
    /** The person agreed, to the operator, to be contacted about this case. */
    followupConsent: z.boolean().default(false),
    language: lang.optional(),
    priority: z.enum(PRIORITIES).optional(),
    /** Mark sensitive although the category is not (the person asked for it to be handled as such). */
    sensitive: z.boolean().default(false),
  });

/** Checks across fields, on the raw input, so that they are reported together with the per-field ones. */
function staffEntryCross(v: Record<string, unknown>): [string, string][] {
  const out: [string, string][] = [];
  const anonymous = v.anonymous === true;
  if (anonymous && (v.contactId || v.phone || v.name)) out.push(['anonymous', 'an anonymous complaint takes no contact, number or name']);
  if (anonymous && v.wantsAnswer === true) out.push(['wantsAnswer', 'an anonymous complaint cannot be answered']);
  if (!anonymous && !v.contactId && !v.phone) out.push(['phone', 'give the person’s number (or a contactId), or make it anonymous']);
  if (v.wantsAnswer === true && v.followupConsent !== true) out.push(['followupConsent', 'an answer needs the person’s consent to be contacted about this case']);
  return out;
}
export const staffEntrySchema = staffEntryBase;
export type StaffEntry = z.input<typeof staffEntrySchema>;

/** Parses with the schema and the cross-field checks together: every problem is reported at once, and nothing is saved. */
function validate<T extends z.ZodType>(schema: T, cross: (v: Record<string, unknown>) => [string, string][], input: unknown): z.output<T> {
  const details: Record<string, string> = {};
  const parsed = schema.safeParse(input);
  if (!parsed.success) for (const i of parsed.error.issues) details[i.path.map(String).join('.') || 'complaint'] ??= i.message;
  for (const [k, m] of cross((input ?? {}) as Record<string, unknown>)) details[k] ??= m;
  if (Object.keys(details).length || !parsed.success) throw new HttpError(400, 'validation_failed', 'The complaint is not valid', details);
  return parsed.data;
}

async function contactFor(trx: Knex, config: Config, body: { contactId?: number; phone?: string; medium: 'sms' | 'whatsapp'; name?: string }): Promise<{ contactId: number; addressId: number | null }> {
  if (body.contactId) {
    const c = await trx('contacts').where('id', body.contactId).whereNull('erased_at').first('id');
    if (!c) throw new HttpError(400, 'validation_failed', 'The complaint is not valid', { contactId: 'no contact with this id' });
    const a = await trx('contact_addresses').where({ contact_id: body.contactId, channel: body.medium }).orderBy('id').first('id');
    return { contactId: body.contactId, addressId: a ? toInt(a.id) : null };
  }
  const phone = normalisePhone(body.phone ?? '', config.DEFAULT_COUNTRY);
  if (!phone.ok) throw new HttpError(400, 'validation_failed', 'The complaint is not valid', { phone: phone.reason });
  const found = await findOrCreateContact(trx, { medium: body.medium, kind: 'phone', address: phone.e164 });
  if (body.name) await trx('contacts').where('id', found.contactId).whereNull('name').update({ name: body.name, updated_at: new Date() });
  return { contactId: found.contactId, addressId: found.addressId };
}

/** A complaint entered by staff (hotline, in person). Audited. */
export async function enterComplaint(db: Database, config: Config, v: Viewer, input: StaffEntry): Promise<OpenedComplaint> {
  const body = validate(staffEntryBase, staffEntryCross, input);
  const staffUserId = v.actor.type === 'staff' ? v.actor.id : (v.actor.userId ?? null);
  const opened = await db.knex.transaction(async (trx) => {
    const who = body.anonymous ? null : await contactFor(trx, config, body);
    return openComplaint(trx, {
      source: body.source,
      sourceRef: 'staff-entry',
      category: body.category,
      sensitive: body.sensitive,
      narrative: body.narrative,
      contactId: who?.contactId ?? null,
      addressId: who?.addressId ?? null,
      wantsAnswer: body.wantsAnswer,
      replyMedium: body.wantsAnswer ? (body.replyMedium ?? body.medium) : null,
      language: body.language ?? config.DEFAULT_LANGUAGE,
      priority: body.priority,
      createdBy: { type: v.actor.type, id: v.actor.id, label: v.actor.label },
      sla: slaFromConfig(config),
      consent: who && body.followupConsent
        ? {
            followup: true,
            legalBasis: 'consent',
            channel: body.source === 'phone' ? 'phone' : 'console',
            method: 'operator',
            staffUserId: staffUserId ?? undefined,
            evidence: { type: 'staff', ref: `${v.actor.type} ${v.actor.id ?? ''}`.trim() },
          }
        : undefined,
    });
  });
  await auditCase(db, v.actor, 'complaint.create', opened, { source: body.source, anonymous: opened.anonymous });
  return opened;
}

// ------------------------------------------------------------------------------------ web form

export const webFormSchema = z
  .object({
    category: z.enum(CATEGORIES, { message: 'choose what it is about' }),
    narrative: z.string().trim().min(5, { message: 'tell us what happened' }).max(5000, { message: 'at most 5,000 characters' }),
    /** "anonymous" or "contact": whether they leave a number. */
    identity: z.enum(['anonymous', 'contact'], { message: 'choose whether to leave your number' }),
    phone: z.string().trim().max(40).optional(),
    reply: z.enum(['none', 'sms', 'whatsapp']).default('none'),
    consent: z.literal('yes').optional(),
    language: z.enum(['es', 'en']).default('es'),
  });
function webFormCross(v: Record<string, unknown>): [string, string][] {
  const out: [string, string][] = [];
  if (v.identity === 'contact' && !String(v.phone ?? '').trim()) out.push(['phone', 'write your number, or choose anonymous']);
  if (v.identity === 'contact' && v.reply && v.reply !== 'none' && v.consent !== 'yes') out.push(['consent', 'tick the box so that we may write to you about this']);
  return out;
}
export type WebForm = z.input<typeof webFormSchema>;

/** The client as the rate limit knows it: a hash of its IP address (no address is stored). */
export const clientHash = (ip: string) => createHash('sha256').update(`complaint-form|${ip}`).digest('hex');

/** True when this client may submit now: fewer than COMPLAINTS_FORM_MAX_PER_HOUR accepted submissions in the last hour. */
export async function formAllowed(knex: Knex, config: Pick<Config, 'COMPLAINTS_FORM_MAX_PER_HOUR'>, ip: string, now = new Date()): Promise<boolean> {
  const [r] = await knex('complaint_form_hits').where('client_hash', clientHash(ip)).where('at', '>', new Date(now.getTime() - 3_600_000)).count({ n: '*' });
  return toInt(r.n) < config.COMPLAINTS_FORM_MAX_PER_HOUR;
}

/** Counts an accepted submission (and forgets those older than two hours). */
export async function recordFormHit(knex: Knex, ip: string, now = new Date()): Promise<void> {
  await knex('complaint_form_hits').insert({ client_hash: clientHash(ip), at: now });
  await knex('complaint_form_hits').where('at', '<', new Date(now.getTime() - 2 * 3_600_000)).delete();
}

/** A complaint from the public web form. Returns the code shown to the person. */
export async function submitWebComplaint(db: Database, config: Config, input: WebForm, consentWording: { key: string; version: string }): Promise<OpenedComplaint> {
  const f = validate(webFormSchema, webFormCross, input);
  const wantsAnswer = f.identity === 'contact' && f.reply !== 'none' && f.consent === 'yes';
  const medium = f.reply === 'whatsapp' ? 'whatsapp' : 'sms';
  return db.knex.transaction(async (trx) => {
    let who: { contactId: number; addressId: number | null } | null = null;
    if (f.identity === 'contact') {
      const phone = normalisePhone(f.phone ?? '', config.DEFAULT_COUNTRY);
      if (!phone.ok) throw new HttpError(400, 'validation_failed', 'The complaint is not valid', { phone: phone.reason });
      const found = await findOrCreateContact(trx, { medium, kind: 'phone', address: phone.e164 });
      who = { contactId: found.contactId, addressId: found.addressId };
    }
    return openComplaint(trx, {
      source: 'web',
      sourceRef: 'web-form',
      category: f.category,
      narrative: f.narrative,
      contactId: who?.contactId ?? null,
      addressId: who?.addressId ?? null,
      wantsAnswer,
      replyMedium: wantsAnswer ? medium : null,
      language: f.language,
      sla: slaFromConfig(config),
      consent: who && wantsAnswer
        ? { followup: true, legalBasis: 'consent', channel: 'web', method: 'web_form', wording: { ...consentWording, language: f.language }, evidence: { type: 'staff', ref: 'public web form /feedback (ticked by the person)' } }
        : undefined,
    });
  });
}
