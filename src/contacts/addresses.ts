/**
 * Addresses: how a contact is reached on a medium. Phone numbers are normalised to E.164 with
 * libphonenumber-js and the configured default country; WhatsApp username users (no phone
 * number, only Meta's user_id) keep that id.
 */
import { parsePhoneNumberFromString, type CountryCode } from 'libphonenumber-js/max';
import type { Knex } from '../db/orm.js';
import { toInt } from '../db/values.js';
import type { Medium } from '../messaging/types.js';

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
