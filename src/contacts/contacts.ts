/**
 * Contacts: create, read, update (rectify), search; addresses (phone numbers normalised to E.164
 * with the configured default country, and WhatsApp username ids); typed custom field values.
 * Every function that shows or changes personal data is called by the API/console, which audits.
 */
import { z } from 'zod';
import type { Knex } from '../db/orm.js';
import { toBool, toDate, toDateOrNull, toInt } from '../db/values.js';
import { HttpError } from '../http/errors.js';
import { normalisePhone } from './addresses.js';
import { fieldDefinitions, parseFields, validateFieldValues, type FieldValue } from './fields.js';

export const CONTACT_STATUSES = ['active', 'stopped', 'blocked'] as const;
export type ContactStatus = (typeof CONTACT_STATUSES)[number];

export const languageTag = z
  .string()
  .trim()
  .regex(/^[a-zA-Z]{2,3}(-[A-Za-z0-9]{2,8})*$/, { message: 'must be a BCP 47 language code such as es, en, pt-BR' })
  .transform((s) => {
    const [base, ...rest] = s.split('-');
    return [base.toLowerCase(), ...rest.map((p) => (p.length === 2 ? p.toUpperCase() : p))].join('-');
  });

export const timeZone = z
  .string()
  .trim()
  .refine(
    (tz) => {
      try {
        new Intl.DateTimeFormat('en', { timeZone: tz });
        return tz.length <= 64;
      } catch {
        return false;
      }
    },
    { message: 'must be an IANA time zone such as America/Lima' },
  );

export const addressInputSchema = z.object({
  /** whatsapp or sms */
  medium: z.enum(['whatsapp', 'sms']),
  /** phone (default) or wa_user (WhatsApp username user: Meta's user_id, no phone number) */
  kind: z.enum(['phone', 'wa_user']).default('phone'),
  address: z.string().trim().min(1).max(64),
});
export type AddressInput = z.input<typeof addressInputSchema>;

export const newContactSchema = z.object({
  name: z.string().trim().max(200).nullable().optional(),
  language: languageTag.nullable().optional(),
  timezone: timeZone.nullable().optional(),
  status: z.enum(CONTACT_STATUSES).default('active'),
  fields: z.record(z.string(), z.unknown()).optional(),
  addresses: z.array(addressInputSchema).max(10).default([]),
});
export type NewContact = z.input<typeof newContactSchema>;

export const updateContactSchema = z.object({
  name: z.string().trim().max(200).nullable().optional(),
  language: languageTag.nullable().optional(),
  timezone: timeZone.nullable().optional(),
  fields: z.record(z.string(), z.unknown()).optional(),
});
export type ContactUpdate = z.input<typeof updateContactSchema>;

export interface Address {
  id: number;
  medium: 'whatsapp' | 'sms';
  kind: 'phone' | 'wa_user';
  address: string;
  optedOut: boolean;
  lastInboundAt: string | null;
  createdAt: string;
}

export interface Contact {
  id: number;
  name: string | null;
  language: string | null;
  timezone: string | null;
  status: ContactStatus;
  fields: Record<string, FieldValue>;
  lastSeenAt: string | null;
  stoppedAt: string | null;
  erasedAt: string | null;
  createdAt: string;
  updatedAt: string;
  addresses: Address[];
}

const WA_USER_ID = /^[A-Za-z]{2}\.[A-Za-z0-9]{4,60}$/;

/** Normalises one address: E.164 for phones, Meta's user id as given for wa_user. Errors name the reason. */
export function normaliseAddress(input: AddressInput, defaultCountry: string): { ok: true; value: z.output<typeof addressInputSchema> } | { ok: false; reason: string } {
  const a = addressInputSchema.parse(input);
  if (a.kind === 'wa_user') {
    if (a.medium !== 'whatsapp') return { ok: false, reason: 'a WhatsApp user id is only an address on whatsapp' };
    if (!WA_USER_ID.test(a.address)) return { ok: false, reason: 'a WhatsApp user id looks like US.13491208655302741918' };
    return { ok: true, value: a };
  }
  const p = normalisePhone(a.address, defaultCountry);
  if (!p.ok) return { ok: false, reason: p.reason };
  return { ok: true, value: { ...a, address: p.e164 } };
}

function readAddress(r: Record<string, unknown>): Address {
  return {
    id: toInt(r.id),
    medium: r.channel as Address['medium'],
    kind: r.kind as Address['kind'],
    address: String(r.address),
    optedOut: toBool(r.opted_out),
    lastInboundAt: toDateOrNull(r.last_inbound_at)?.toISOString() ?? null,
    createdAt: toDate(r.created_at).toISOString(),
  };
}

function readContact(r: Record<string, unknown>, addresses: Address[]): Contact {
  return {
    id: toInt(r.id),
    name: (r.name as string | null) ?? null,
    language: (r.language as string | null) ?? null,
    timezone: (r.timezone as string | null) ?? null,
    status: r.status as ContactStatus,
    fields: parseFields(r.fields),
    lastSeenAt: toDateOrNull(r.last_seen_at)?.toISOString() ?? null,
    stoppedAt: toDateOrNull(r.stopped_at)?.toISOString() ?? null,
    erasedAt: toDateOrNull(r.erased_at)?.toISOString() ?? null,
    createdAt: toDate(r.created_at).toISOString(),
    updatedAt: toDate(r.updated_at).toISOString(),
    addresses,
  };
}

export async function getContact(knex: Knex, id: number): Promise<Contact | null> {
  const row = await knex('contacts').where('id', id).first();
  if (!row) return null;
  const addresses = (await knex('contact_addresses').where('contact_id', id).orderBy('id')).map(readAddress);
  return readContact(row, addresses);
}

export async function requireContact(knex: Knex, id: number): Promise<Contact> {
  const c = await getContact(knex, id);
  if (!c) throw new HttpError(404, 'not_found', 'No such contact');
  return c;
}

function invalid(details: Record<string, string>): HttpError {
  return new HttpError(400, 'validation_failed', 'The request is not valid', details);
}

/** Creates a contact with its addresses and field values, all or nothing. */
export async function createContact(knex: Knex, defaultCountry: string, input: NewContact): Promise<Contact> {
  const parsed = newContactSchema.safeParse(input);
  if (!parsed.success) throw invalid(Object.fromEntries(parsed.error.issues.map((i) => [i.path.join('.') || '(root)', i.message])));
  const c = parsed.data;
  const errors: Record<string, string> = {};
  const addresses: z.output<typeof addressInputSchema>[] = [];
  c.addresses.forEach((a, i) => {
    const n = normaliseAddress(a, defaultCountry);
    if (n.ok) addresses.push(n.value);
    else errors[`addresses.${i}.address`] = n.reason;
  });
  const defs = await fieldDefinitions(knex);
  const fv = validateFieldValues(defs, c.fields ?? {});
  if (!fv.ok) Object.assign(errors, fv.errors);
  if (Object.keys(errors).length) throw invalid(errors);
  const values = fv.ok ? Object.fromEntries(Object.entries(fv.values).filter(([, v]) => v !== null)) : {};
  const id = await knex.transaction(async (trx) => {
    for (const [i, a] of addresses.entries()) {
      const taken = await trx('contact_addresses').where({ channel: a.medium, address: a.address }).first('contact_id');
      if (taken) throw new HttpError(409, 'conflict', 'An address already belongs to another contact', { [`addresses.${i}.address`]: `already the address of contact ${taken.contact_id}` });
    }
    const now = new Date();
    const [row] = await trx('contacts')
      .insert({
        name: c.name || null,
        language: c.language ?? null,
        timezone: c.timezone ?? null,
        status: c.status,
        fields: Object.keys(values).length ? JSON.stringify(values) : null,
        stopped_at: c.status === 'stopped' ? now : null,
        created_at: now,
        updated_at: now,
      })
      .returning('id');
    const contactId = toInt(typeof row === 'object' ? (row as { id: unknown }).id : row);
    for (const a of addresses) {
      await trx('contact_addresses').insert({ contact_id: contactId, channel: a.medium, kind: a.kind, address: a.address, created_at: now });
    }
    return contactId;
  });
  return (await getContact(knex, id))!;
}

/**
 * Rectifies a contact: name, language, time zone, field values (a value of null removes it; fields
 * not mentioned keep their value). Returns the contact and the names of what changed (for the audit).
 */
export async function updateContact(knex: Knex, id: number, input: ContactUpdate): Promise<{ contact: Contact; changed: string[] }> {
  const parsed = updateContactSchema.safeParse(input);
  if (!parsed.success) throw invalid(Object.fromEntries(parsed.error.issues.map((i) => [i.path.join('.') || '(root)', i.message])));
  const u = parsed.data;
  const current = await requireContact(knex, id);
  if (current.erasedAt) throw new HttpError(409, 'conflict', 'This contact was erased; nothing can be added to it');
  const patch: Record<string, unknown> = {};
  const changed: string[] = [];
  if (u.name !== undefined) { patch.name = u.name || null; changed.push('name'); }
  if (u.language !== undefined) { patch.language = u.language; changed.push('language'); }
  if (u.timezone !== undefined) { patch.timezone = u.timezone; changed.push('timezone'); }
  if (u.fields !== undefined) {
    const fv = validateFieldValues(await fieldDefinitions(knex), u.fields);
    if (!fv.ok) throw invalid(fv.errors);
    const next: Record<string, FieldValue> = { ...current.fields };
    for (const [k, v] of Object.entries(fv.values)) {
      if (v === null) delete next[k];
      else next[k] = v;
      changed.push(`fields.${k}`);
    }
    patch.fields = Object.keys(next).length ? JSON.stringify(next) : null;
  }
  if (Object.keys(patch).length) await knex('contacts').where('id', id).update({ ...patch, updated_at: new Date() });
  return { contact: (await getContact(knex, id))!, changed };
}

/** Adds an address to a contact (a number is normalised; one already used by another contact is refused). */
export async function addAddress(knex: Knex, defaultCountry: string, contactId: number, input: AddressInput): Promise<Address> {
  const contact = await requireContact(knex, contactId);
  if (contact.erasedAt) throw new HttpError(409, 'conflict', 'This contact was erased; nothing can be added to it');
  const parsed = addressInputSchema.safeParse(input);
  if (!parsed.success) throw invalid(Object.fromEntries(parsed.error.issues.map((i) => [i.path.join('.') || '(root)', i.message])));
  const n = normaliseAddress(parsed.data, defaultCountry);
  if (!n.ok) throw invalid({ address: n.reason });
  const taken = await knex('contact_addresses').where({ channel: n.value.medium, address: n.value.address }).first('contact_id');
  if (taken) {
    if (toInt(taken.contact_id) === contactId) throw new HttpError(409, 'conflict', 'The contact already has this address', { address: 'already on this contact' });
    throw new HttpError(409, 'conflict', 'The address belongs to another contact', { address: `already the address of contact ${taken.contact_id}` });
  }
  const [row] = await knex('contact_addresses')
    .insert({ contact_id: contactId, channel: n.value.medium, kind: n.value.kind, address: n.value.address, created_at: new Date() })
    .returning('id');
  const id = toInt(typeof row === 'object' ? (row as { id: unknown }).id : row);
  return readAddress(await knex('contact_addresses').where('id', id).first());
}

export async function removeAddress(knex: Knex, contactId: number, addressId: number): Promise<void> {
  const n = await knex('contact_addresses').where({ id: addressId, contact_id: contactId }).delete();
  if (!n) throw new HttpError(404, 'not_found', 'No such address on this contact');
}

export interface ContactSearch {
  /** A phone number (any format), a WhatsApp user id, or part of a name. */
  q?: string;
  status?: ContactStatus;
  listId?: number;
  /** id of the last contact of the previous page (newest first). */
  before?: number;
  limit?: number;
}

export interface ContactSummary {
  id: number;
  name: string | null;
  language: string | null;
  status: ContactStatus;
  addresses: { medium: string; address: string; optedOut: boolean }[];
  lastSeenAt: string | null;
  createdAt: string;
}

/**
 * Contacts newest first, a page at a time (keyset on id, so page 500 costs what page 1 does).
 * A query that reads as a phone number matches the normalised number exactly, or as the end of a
 * number when it is only digits; otherwise it matches part of the name. Erased contacts are left out.
 */
export async function searchContacts(knex: Knex, defaultCountry: string, s: ContactSearch): Promise<{ data: ContactSummary[]; next: number | null }> {
  const limit = Math.min(Math.max(s.limit ?? 50, 1), 200);
  const q = knex('contacts as c').whereNull('c.erased_at').orderBy('c.id', 'desc').limit(limit).select('c.id', 'c.name', 'c.language', 'c.status', 'c.last_seen_at', 'c.created_at');
  if (s.status) q.where('c.status', s.status);
  if (s.before) q.where('c.id', '<', s.before);
  if (s.listId) q.whereIn('c.id', knex('subscriptions').where({ list_id: s.listId, status: 'active' }).select('contact_id'));
  const text = (s.q ?? '').trim();
  if (text) {
    const digits = text.replace(/[\s().\-\/]/g, '');
    if (/^\+?\d{4,}$/.test(digits)) {
      const phone = normalisePhone(text, defaultCountry);
      const matches = knex('contact_addresses').select('contact_id');
      if (phone.ok) matches.where('address', phone.e164).orWhere('address', 'like', `%${digits.replace(/^\+/, '')}`);
      else matches.where('address', 'like', `%${digits.replace(/^\+/, '')}`);
      q.whereIn('c.id', matches);
    } else if (WA_USER_ID.test(text)) {
      q.whereIn('c.id', knex('contact_addresses').whereIn('channel', ['whatsapp', 'sms']).where('address', text).select('contact_id'));
    } else {
      const pattern = `%${text.toLowerCase().replace(/[\\%_]/g, (m) => '\\' + m)}%`;
      q.whereRaw("lower(c.name) like ? escape '\\'", [pattern]);
    }
  }
  const rows = await q;
  const ids = rows.map((r: Record<string, unknown>) => toInt(r.id));
  const addrs = ids.length ? await knex('contact_addresses').whereIn('contact_id', ids).orderBy('id').select('contact_id', 'channel', 'address', 'opted_out') : [];
  const byContact = new Map<number, ContactSummary['addresses']>();
  for (const a of addrs) {
    const list = byContact.get(toInt(a.contact_id)) ?? [];
    list.push({ medium: a.channel, address: a.address, optedOut: toBool(a.opted_out) });
    byContact.set(toInt(a.contact_id), list);
  }
  const data = rows.map((r: Record<string, unknown>) => ({
    id: toInt(r.id),
    name: (r.name as string | null) ?? null,
    language: (r.language as string | null) ?? null,
    status: r.status as ContactStatus,
    addresses: byContact.get(toInt(r.id)) ?? [],
    lastSeenAt: toDateOrNull(r.last_seen_at)?.toISOString() ?? null,
    createdAt: toDate(r.created_at).toISOString(),
  }));
  return { data, next: data.length === limit ? data[data.length - 1].id : null };
}

/**
 * What other domains may put in a message to this contact: name, language and custom fields, as
 * `{{name}}`, `{{language}}`, `{{fields.region}}`. Null for an unknown or erased contact.
 */
export async function contactTemplateData(knex: Knex, contactId: number): Promise<{ name: string | null; language: string | null; timezone: string | null; fields: Record<string, FieldValue> } | null> {
  const row = await knex('contacts').where('id', contactId).first('name', 'language', 'timezone', 'fields', 'erased_at');
  if (!row || row.erased_at) return null;
  return { name: row.name ?? null, language: row.language ?? null, timezone: row.timezone ?? null, fields: parseFields(row.fields) };
}

/** Sets the contact's language (a JOIN keyword's language, or a language switch). */
export async function setContactLanguage(knex: Knex, contactId: number, language: string): Promise<void> {
  await knex('contacts').where('id', contactId).update({ language, updated_at: new Date() });
}
