/**
 * The consent ledger. One row per act — a grant or a withdrawal, per contact × purpose — with its
 * legal basis, channel, method, the wording the person was shown (key, version = content hash,
 * language), the evidence (the inbound message, the import and its file, the staff user, the
 * provider's signal), the time and whether a proxy gave it. Rows are only ever inserted: a
 * withdrawal is a new row, and erasure blanks the contact, not this history.
 *
 * `consent_state` is derived from the ledger in the same transaction as each row (the latest act
 * per contact × purpose), so that audiences and the dispatcher read one indexed row.
 */
import { z } from 'zod';
import type { Knex } from '../db/orm.js';
import { toBool, toDate, toInt } from '../db/values.js';
import { HttpError, validationError } from '../http/errors.js';

export const CONSENT_PURPOSES = ['updates', 'surveys', 'cash_programme', 'complaint_followup', 'data_sharing'] as const;
export type ConsentPurpose = (typeof CONSENT_PURPOSES)[number];
export const LEGAL_BASES = ['consent', 'legitimate_interest', 'vital_interest', 'public_interest', 'legal_obligation', 'contract'] as const;
export type LegalBasis = (typeof LEGAL_BASES)[number];
export const CONSENT_METHODS = ['keyword', 'button', 'web_form', 'operator', 'import', 'provider'] as const;
export type ConsentMethod = (typeof CONSENT_METHODS)[number];
export const CONSENT_CHANNELS = ['whatsapp', 'sms', 'web', 'phone', 'import', 'console'] as const;
export const EVIDENCE_TYPES = ['inbound_message', 'import', 'staff', 'provider_signal'] as const;

export const consentInputSchema = z.object({
  contactId: z.number().int().positive(),
  purpose: z.enum(CONSENT_PURPOSES),
  action: z.enum(['grant', 'withdraw']),
  legalBasis: z.enum(LEGAL_BASES).default('consent'),
  channel: z.enum(CONSENT_CHANNELS).nullable().optional(),
  method: z.enum(CONSENT_METHODS),
  /** The wording the person saw: texts.ts `wording()` gives key, version and language. */
  wording: z.object({ key: z.string().min(1).max(64), version: z.string().min(1).max(32), language: z.string().min(2).max(16) }).nullable().optional(),
  /** inbound_message: the message id; import: "import:<id> <file name>"; staff: the staff user id; provider_signal: the provider's code and message id. */
  evidence: z.object({ type: z.enum(EVIDENCE_TYPES), ref: z.string().min(1).max(200) }).nullable().optional(),
  proxy: z.boolean().default(false),
  staffUserId: z.number().int().positive().nullable().optional(),
  at: z.date().optional(),
});
export type ConsentInput = z.input<typeof consentInputSchema>;

export interface ConsentRow {
  id: number;
  contactId: number;
  purpose: ConsentPurpose;
  action: 'grant' | 'withdraw';
  legalBasis: LegalBasis;
  channel: string | null;
  method: ConsentMethod;
  wordingKey: string | null;
  wordingVersion: string | null;
  wordingLanguage: string | null;
  evidenceType: string | null;
  evidenceRef: string | null;
  proxy: boolean;
  staffUserId: number | null;
  at: string;
}

export function readConsentRow(r: Record<string, unknown>): ConsentRow {
  return {
    id: toInt(r.id),
    contactId: toInt(r.contact_id),
    purpose: r.purpose as ConsentPurpose,
    action: r.action as 'grant' | 'withdraw',
    legalBasis: r.legal_basis as LegalBasis,
    channel: (r.channel as string | null) ?? null,
    method: r.method as ConsentMethod,
    wordingKey: (r.wording_key as string | null) ?? null,
    wordingVersion: (r.wording_version as string | null) ?? null,
    wordingLanguage: (r.wording_language as string | null) ?? null,
    evidenceType: (r.evidence_type as string | null) ?? null,
    evidenceRef: (r.evidence_ref as string | null) ?? null,
    proxy: toBool(r.proxy),
    staffUserId: r.staff_user_id === null || r.staff_user_id === undefined ? null : toInt(r.staff_user_id),
    at: toDate(r.at).toISOString(),
  };
}

/**
 * Appends one ledger row and updates `consent_state` in the same transaction. Pass the caller's
 * transaction (`trx`) so the consent is part of the change it justifies (a subscription, an import
 * row); a plain Knex works too and opens its own. Returns the new row's id.
 *
 * A grant must say where it came from: `evidence` is required unless the method is `operator`
 * with a `staffUserId`. An invalid input throws a 400 naming the field.
 */
export async function recordConsent(trx: Knex, input: ConsentInput): Promise<number> {
  const parsed = consentInputSchema.safeParse(input);
  if (!parsed.success) throw validationError(parsed.error, 'consent');
  const c = parsed.data;
  if (c.action === 'grant' && !c.evidence && !(c.method === 'operator' && c.staffUserId)) {
    throw new HttpError(400, 'validation_failed', 'A consent grant needs evidence', { 'consent.evidence': 'say what shows the person agreed (inbound message, import file, staff user)' });
  }
  const at = c.at ?? new Date();
  const write = async (t: Knex): Promise<number> => {
    const [row] = await t('consents')
      .insert({
        contact_id: c.contactId,
        purpose: c.purpose,
        action: c.action,
        legal_basis: c.legalBasis,
        channel: c.channel ?? null,
        method: c.method,
        wording_key: c.wording?.key ?? null,
        wording_version: c.wording?.version ?? null,
        wording_language: c.wording?.language ?? null,
        evidence_type: c.evidence?.type ?? null,
        evidence_ref: c.evidence?.ref ?? null,
        proxy: c.proxy,
        staff_user_id: c.staffUserId ?? null,
        at,
      })
      .returning('id');
    const id = toInt(typeof row === 'object' ? (row as { id: unknown }).id : row);
    // The state follows the latest act; a back-dated row (an import stating an earlier date) does not override a newer one.
    const state = await t('consent_state').where({ contact_id: c.contactId, purpose: c.purpose }).first('at', 'consent_id');
    if (!state || toDate(state.at).getTime() <= at.getTime()) {
      await t('consent_state')
        .insert({ contact_id: c.contactId, purpose: c.purpose, granted: c.action === 'grant', consent_id: id, at })
        .onConflict(['contact_id', 'purpose'])
        .merge(['granted', 'consent_id', 'at']);
    }
    return id;
  };
  return isTransaction(trx) ? write(trx) : trx.transaction(write);
}

function isTransaction(k: Knex): boolean {
  return Boolean((k as unknown as { isTransaction?: boolean }).isTransaction);
}

export interface CurrentConsent {
  purpose: ConsentPurpose;
  granted: boolean;
  at: string;
  consentId: number;
  legalBasis: LegalBasis;
  method: ConsentMethod;
  channel: string | null;
  wordingKey: string | null;
  wordingVersion: string | null;
  wordingLanguage: string | null;
}

/** The current state per purpose for one contact (purposes never asked are absent). */
export async function currentConsents(knex: Knex, contactId: number): Promise<CurrentConsent[]> {
  const rows = await knex('consent_state as s')
    .join('consents as c', 'c.id', 's.consent_id')
    .where('s.contact_id', contactId)
    .orderBy('s.purpose')
    .select('s.purpose', 's.granted', 's.at', 's.consent_id', 'c.legal_basis', 'c.method', 'c.channel', 'c.wording_key', 'c.wording_version', 'c.wording_language');
  return rows.map((r: Record<string, unknown>) => ({
    purpose: r.purpose as ConsentPurpose,
    granted: toBool(r.granted),
    at: toDate(r.at).toISOString(),
    consentId: toInt(r.consent_id),
    legalBasis: r.legal_basis as LegalBasis,
    method: r.method as ConsentMethod,
    channel: (r.channel as string | null) ?? null,
    wordingKey: (r.wording_key as string | null) ?? null,
    wordingVersion: (r.wording_version as string | null) ?? null,
    wordingLanguage: (r.wording_language as string | null) ?? null,
  }));
}

/** True when the contact's latest act for this purpose is a grant. (The contact's status is checked separately.) */
export async function hasConsent(knex: Knex, contactId: number, purpose: ConsentPurpose | string): Promise<boolean> {
  const row = await knex('consent_state').where({ contact_id: contactId, purpose }).first('granted');
  return row ? toBool(row.granted) : false;
}

/** The whole ledger for one contact, oldest first. */
export async function consentHistory(knex: Knex, contactId: number): Promise<ConsentRow[]> {
  return (await knex('consents').where('contact_id', contactId).orderBy([{ column: 'at', order: 'asc' }, { column: 'id', order: 'asc' }])).map(readConsentRow);
}

/**
 * Withdraws every purpose currently granted (STOP, a provider opt-out, erasure): one withdrawal row
 * per purpose. Returns the purposes withdrawn.
 */
export async function withdrawAll(
  trx: Knex,
  contactId: number,
  how: Omit<ConsentInput, 'contactId' | 'purpose' | 'action'>,
): Promise<ConsentPurpose[]> {
  const granted = await trx('consent_state').where({ contact_id: contactId }).where('granted', true).pluck('purpose');
  for (const purpose of granted) await recordConsent(trx, { ...how, contactId, purpose, action: 'withdraw' });
  return granted as ConsentPurpose[];
}
