/**
 * Addresses: how a contact is reached on a medium. Phone numbers are normalised to E.164 with
 * libphonenumber-js and the configured default country; WhatsApp username users (no phone
 * number, only Meta's user_id) keep that id.
 */
import { parsePhoneNumberFromString, type CountryCode } from 'libphonenumber-js/max';
import type { Knex } from '../db/orm.js';
import { toInt } from '../db/values.js';
import type { Medium } from '../messaging/types.js';
import { audit, SYSTEM } from '../staff/audit.js';

export type PhoneResult = { ok: true; e164: string } | { ok: false; reason: string };

/** "+51 987 654 321", "0051987654321", "987654321" (with country PE) → "+51987654321". */
export function normalisePhone(raw: string, defaultCountry: string): PhoneResult {
  const input = String(raw ?? '').trim();
  if (!input) return { ok: false, reason: 'the number is empty' };
  if (/[a-z]/i.test(input.replace(/\s*(ext\.?|x)\s*\d+$/i, ''))) return { ok: false, reason: 'the number contains letters' };
  let candidate = input.replace(/[\s().\-\/]/g, '');
  if (candidate.startsWith('00')) candidate = '+' + candidate.slice(2);
  const parsed = parsePhoneNumberFromString(candidate, defaultCountry as CountryCode);
  if (!parsed) return { ok: false, reason: 'not a phone number' };
  if (!parsed.isPossible()) {
    const len = parsed.nationalNumber.length;
    return { ok: false, reason: `the number has ${len} digits, which is not possible for ${parsed.country ?? 'country code +' + parsed.countryCallingCode}` };
  }
  if (!parsed.isValid()) return { ok: false, reason: `not a valid number for ${parsed.country ?? 'country code +' + parsed.countryCallingCode}` };
  return { ok: true, e164: parsed.number };
}

/** WhatsApp sends wa_id as digits without "+". */
export function waIdToE164(waId: string): string {
  return waId.startsWith('+') ? waId : '+' + waId;
}

export interface AddressRef {
  medium: Medium;
  kind: 'phone' | 'wa_user';
  address: string;
}

export interface FoundContact {
  contactId: number;
  addressId: number;
  status: 'active' | 'stopped' | 'blocked';
  language: string | null;
  isNew: boolean;
}

/**
 * The contact behind an address, created (with its address) when unknown. A WhatsApp sender
 * whose number already has an SMS address joins that contact, so one person is one contact.
 */
export async function findOrCreateContact(knex: Knex, ref: AddressRef, opts: { now?: Date } = {}): Promise<FoundContact> {
  const now = opts.now ?? new Date();
  const find = () =>
    knex('contact_addresses as a')
      .join('contacts as c', 'c.id', 'a.contact_id')
      .where('a.channel', ref.medium)
      .where('a.address', ref.address)
      .first('a.id as address_id', 'c.id as contact_id', 'c.status', 'c.language');
  const row = await find();
  if (row) {
    return { contactId: toInt(row.contact_id), addressId: toInt(row.address_id), status: row.status, language: row.language ?? null, isNew: false };
  }
  return knex.transaction(async (trx) => {
    // The same person may already be known on the other medium under the same phone number.
    let contactId: number | undefined;
    let status: FoundContact['status'] = 'active';
    let language: string | null = null;
    if (ref.kind === 'phone') {
      const sibling = await trx('contact_addresses as a')
        .join('contacts as c', 'c.id', 'a.contact_id')
        .where('a.address', ref.address)
        .whereNull('c.erased_at')
        .first('c.id', 'c.status', 'c.language');
      if (sibling) {
        contactId = toInt(sibling.id);
        status = sibling.status;
        language = sibling.language ?? null;
      }
    }
    const isNew = contactId === undefined;
    if (contactId === undefined) {
      const [inserted] = await trx('contacts').insert({ status: 'active', created_at: now, updated_at: now }).returning('id');
      contactId = toInt(typeof inserted === 'object' ? inserted.id : inserted);
    }
    const inserted = await trx('contact_addresses')
      .insert({ contact_id: contactId, channel: ref.medium, kind: ref.kind, address: ref.address, created_at: now })
      .onConflict(['channel', 'address'])
      .ignore()
      .returning('id');
    if (inserted.length === 0) {
      // Another request created it between our read and write: use theirs.
      const again = await trx('contact_addresses as a').join('contacts as c', 'c.id', 'a.contact_id').where('a.channel', ref.medium).where('a.address', ref.address).first('a.id as address_id', 'c.id as contact_id', 'c.status', 'c.language');
      if (isNew) await trx('contacts').where('id', contactId).delete();
      return { contactId: toInt(again.contact_id), addressId: toInt(again.address_id), status: again.status, language: again.language ?? null, isNew: false };
    }
    const addressId = toInt(typeof inserted[0] === 'object' ? (inserted[0] as { id: unknown }).id : inserted[0]);
    return { contactId, addressId, status, language, isNew };
  });
}

const refKey = (medium: string, address: string) => `${medium}\u0000${address}`;

/**
 * findOrCreateContact for many addresses at once (the inbound pipeline's batches), with the same
 * rules: a known address gives its contact; an unknown phone number joins the contact that already
 * has it on the other medium; otherwise a new contact. A handful of queries whatever the number of
 * addresses. Run it inside a transaction (`trx`): the rows it creates are committed with the caller's.
 * Returns the contact of each address, keyed by `${medium}\u0000${address}`.
 */
export async function findOrCreateContacts(trx: Knex, refs: readonly AddressRef[], opts: { now?: Date } = {}): Promise<Map<string, FoundContact>> {
  const now = opts.now ?? new Date();
  const out = new Map<string, FoundContact>();
  const unique = new Map<string, AddressRef>();
  for (const r of refs) unique.set(refKey(r.medium, r.address), r);
  const chunk = <T>(xs: T[], n = 400) => Array.from({ length: Math.ceil(xs.length / n) }, (_, i) => xs.slice(i * n, i * n + n));

  const lookup = async (items: AddressRef[]) => {
    const byMedium = new Map<Medium, string[]>();
    for (const r of items) byMedium.set(r.medium, [...(byMedium.get(r.medium) ?? []), r.address]);
    for (const [medium, addresses] of byMedium) {
      for (const part of chunk(addresses)) {
        const rows = await trx('contact_addresses as a')
          .join('contacts as c', 'c.id', 'a.contact_id')
          .where('a.channel', medium)
          .whereIn('a.address', part)
          .select('a.id as address_id', 'a.address', 'c.id as contact_id', 'c.status', 'c.language');
        for (const row of rows) {
          out.set(refKey(medium, String(row.address)), { contactId: toInt(row.contact_id), addressId: toInt(row.address_id), status: row.status, language: row.language ?? null, isNew: false });
        }
      }
    }
  };
  await lookup([...unique.values()]);
  const missing = [...unique.entries()].filter(([k]) => !out.has(k)).map(([, r]) => r);
  if (missing.length === 0) return out;

  // The same person may already be known on the other medium under the same phone number.
  const siblings = new Map<string, { contactId: number; status: FoundContact['status']; language: string | null }>();
  const phones = [...new Set(missing.filter((r) => r.kind === 'phone').map((r) => r.address))];
  for (const part of chunk(phones)) {
    const rows = await trx('contact_addresses as a')
      .join('contacts as c', 'c.id', 'a.contact_id')
      .whereIn('a.channel', ['whatsapp', 'sms'])
      .whereIn('a.address', part)
      .whereNull('c.erased_at')
      .orderBy('a.id')
      .select('a.address', 'c.id', 'c.status', 'c.language');
    for (const row of rows) if (!siblings.has(String(row.address))) siblings.set(String(row.address), { contactId: toInt(row.id), status: row.status, language: row.language ?? null });
  }

  // New contacts are blank rows, alike: create them together and hand them out in any order.
  const plan = missing.map((r) => ({ ref: r, sibling: r.kind === 'phone' ? siblings.get(r.address) : undefined, contactId: 0 }));
  const fresh = plan.filter((p) => !p.sibling);
  // Two new addresses of one person (the same phone on both media in one batch) share one contact.
  const firstByPhone = new Map<string, (typeof plan)[number]>();
  const needContact = fresh.filter((p) => {
    if (p.ref.kind !== 'phone') return true;
    if (firstByPhone.has(p.ref.address)) return false;
    firstByPhone.set(p.ref.address, p);
    return true;
  });
  const created: number[] = [];
  for (const part of chunk(needContact, 200)) {
    const ids = await trx('contacts').insert(part.map(() => ({ status: 'active', created_at: now, updated_at: now }))).returning('id');
    created.push(...ids.map((x: unknown) => toInt(typeof x === 'object' && x !== null ? (x as { id: unknown }).id : x)));
  }
  needContact.forEach((p, i) => (p.contactId = created[i]));
  for (const p of plan) {
    if (p.sibling) p.contactId = p.sibling.contactId;
    else if (!p.contactId) p.contactId = firstByPhone.get(p.ref.address)!.contactId;
  }

  const inserted = new Map<string, number>();
  for (const part of chunk(plan, 200)) {
    const rows = await trx('contact_addresses')
      .insert(part.map((p) => ({ contact_id: p.contactId, channel: p.ref.medium, kind: p.ref.kind, address: p.ref.address, created_at: now })))
      .onConflict(['channel', 'address'])
      .ignore()
      .returning(['id', 'channel', 'address']);
    for (const row of rows as { id: unknown; channel: string; address: string }[]) inserted.set(refKey(row.channel, row.address), toInt(row.id));
  }
  const lost: AddressRef[] = [];
  for (const p of plan) {
    const k = refKey(p.ref.medium, p.ref.address);
    const addressId = inserted.get(k);
    if (addressId === undefined) {
      lost.push(p.ref);
      continue;
    }
    out.set(k, { contactId: p.contactId, addressId, status: p.sibling?.status ?? 'active', language: p.sibling?.language ?? null, isNew: !p.sibling });
  }
  if (lost.length) {
    // Another process created these addresses between our read and write: use theirs, and drop
    // the contacts made for them that nothing points to.
    await lookup(lost);
    const orphans = created.filter((id) => ![...out.values()].some((f) => f.contactId === id));
    for (const part of chunk(orphans)) await trx('contacts').whereIn('id', part).whereNotExists(trx('contact_addresses').whereRaw('contact_addresses.contact_id = contacts.id')).delete();
  }
  return out;
}

/** What `changeAddress` did. */
export type AddressChangeOutcome = 'moved' | 'unknown' | 'already' | 'taken';

/**
 * A provider says a person's address changed (WhatsApp: a new phone number or user id). The
 * contact keeps everything — consent, subscriptions, open conversations, the 24-hour window — on
 * the new address: the address row is moved. Nothing moves when the old address is unknown here,
 * when the contact already has the new one, or when another contact has it (that person wrote from
 * the new number before the notice came: staff decide whether they are one person). Audited with
 * the contact's id, never the numbers.
 */
export async function changeAddress(trx: Knex, change: { medium: Medium; from: string; to: string; toKind: 'phone' | 'wa_user'; at: Date }): Promise<AddressChangeOutcome> {
  const old = await trx('contact_addresses').where({ channel: change.medium, address: change.from }).first('id', 'contact_id');
  if (!old) return 'unknown';
  const holder = await trx('contact_addresses').where({ channel: change.medium, address: change.to }).first('contact_id');
  if (holder) return toInt(holder.contact_id) === toInt(old.contact_id) ? 'already' : 'taken';
  await trx('contact_addresses').where('id', old.id).update({ address: change.to, kind: change.toKind });
  await audit({ knex: trx }, SYSTEM, { action: 'contacts.address_changed', entityType: 'contact', entityId: toInt(old.contact_id), detail: { medium: change.medium, kind: change.toKind, reportedAt: change.at.toISOString() } });
  return 'moved';
}
