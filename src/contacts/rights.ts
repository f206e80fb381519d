/**
 * Data-subject rights for one contact: access (everything held, as JSON), rectification (see
 * `updateContact`) and erasure. Erasure removes the name, custom fields, addresses and message text,
 * ends subscriptions and withdraws consent; it keeps the contact row (marked erased), the consent
 * ledger and the message rows without their text, so that anonymous figures (counts by day, by
 * channel, by route) survive. Each erased address leaves a keyed hash in `erasure_tombstones`.
 */
import type { Database, Knex } from '../db/orm.js';
import { toBool, toDate, toDateOrNull, toInt } from '../db/values.js';
import { HttpError } from '../http/errors.js';
import { readOutboxRow } from '../messaging/outbox.js';
import { audit, type Actor } from '../staff/audit.js';
import { consentHistory, currentConsents, withdrawAll } from './consent.js';
import { requireContact } from './contacts.js';
import { listFields } from './fields.js';
import { ERASURE_HOOKS } from './hooks.js';
import { SUBJECT_ACCESS_HOOKS } from './access-hooks.js';
import { endSubscriptions, subscriptionsOf } from './lists.js';
import { addTombstones } from './pseudonyms.js';

/** Everything held about one contact (subject access request). Audited. */
export async function exportContactData(db: Database, actor: Actor, contactId: number): Promise<Record<string, unknown>> {
  const { knex } = db;
  const contact = await requireContact(knex, contactId);
  const labels = Object.fromEntries((await listFields(knex)).map((f) => [f.key, f.label]));
  const inbound = await knex('inbound_messages').where('contact_id', contactId).orderBy('id');
  const outbox = await knex('outbox').where('contact_id', contactId).orderBy('id');
  const pending = await knex('pending_confirmations').where('contact_id', contactId).orderBy('id');
  const domains: Record<string, unknown> = {};
  for (const hook of SUBJECT_ACCESS_HOOKS) domains[hook.domain] = await hook.collect(knex, contactId);
  const data = {
    exportedAt: new Date().toISOString(),
    contact,
    fieldLabels: labels,
    consents: { current: await currentConsents(knex, contactId), history: await consentHistory(knex, contactId) },
    subscriptions: await subscriptionsOf(knex, contactId),
    questions: pending.map((p: Record<string, unknown>) => ({
      id: toInt(p.id), kind: p.kind, listId: p.list_id === null ? null : toInt(p.list_id), channel: p.channel, language: p.language,
      wordingKey: p.wording_key, wordingVersion: p.wording_version, askedAt: toDate(p.created_at).toISOString(),
      expiresAt: toDate(p.expires_at).toISOString(), answer: p.answer ?? null, answeredAt: toDateOrNull(p.answered_at)?.toISOString() ?? null,
    })),
    inboundMessages: inbound.map((m: Record<string, unknown>) => ({
      id: toInt(m.id), channel: m.channel, kind: m.kind, text: m.text ?? null, payload: m.payload ?? null, keep: toBool(m.keep),
      receivedAt: toDate(m.received_at).toISOString(), route: m.route ?? null, textErasedAt: toDateOrNull(m.text_erased_at)?.toISOString() ?? null,
    })),
    outbox: outbox.map((r: Record<string, unknown>) => {
      const o = readOutboxRow(r);
      return { id: o.id, purpose: o.purpose, status: o.status, channel: o.channel, language: o.language, content: o.content, broadcastId: o.broadcastId, createdAt: toDate(r.created_at).toISOString(), statusAt: toDateOrNull(r.status_at)?.toISOString() ?? null };
    }),
    domains,
  };
  await audit(db, actor, { action: 'contact.export', entityType: 'contact', entityId: contactId, detail: { inbound: inbound.length, outbox: outbox.length } });
  return data;
}

export interface ErasureResult {
  addresses: number;
  messages: number;
  purposesWithdrawn: number;
}

/**
 * Erases one contact's personal data inside the caller's transaction (used by `eraseContact` and by
 * the retention job). Not audited here: the callers are.
 */
export async function eraseContactData(
  trx: Knex,
  contactId: number,
  how: { at?: Date; staffUserId?: number | null; evidenceRef: string },
): Promise<ErasureResult> {
  const at = how.at ?? new Date();
  const addresses: string[] = await trx('contact_addresses').where('contact_id', contactId).pluck('address');
  await addTombstones(trx, addresses, at);
  await endSubscriptions(trx, contactId, 'erased', at);
  const withdrawn = await withdrawAll(trx, contactId, {
    legalBasis: 'consent', channel: 'console', method: 'operator', evidence: { type: 'staff', ref: how.evidenceRef.slice(0, 200) }, staffUserId: how.staffUserId ?? null, at,
  });
  await trx('pending_confirmations').where('contact_id', contactId).whereNull('answered_at').update({ answered_at: at, answer: 'cancelled' });
  await trx('outbox').where({ contact_id: contactId, status: 'queued' }).update({ status: 'cancelled', status_at: at, error_code: 'erased' });
  await trx('outbox').where('contact_id', contactId).update({ content: null, address_id: null });
  const messages = await trx('inbound_messages').where('contact_id', contactId).whereNotNull('text').update({ text: null, payload: null, text_erased_at: at });
  await trx('contact_addresses').where('contact_id', contactId).delete();
  for (const hook of ERASURE_HOOKS) await hook.erase(trx, contactId, at);
  const contact = await trx('contacts').where('id', contactId).first('status', 'stopped_at');
  await trx('contacts').where('id', contactId).update({
    name: null, fields: null, timezone: null, status: contact?.status === 'blocked' ? 'blocked' : 'stopped',
    stopped_at: contact?.stopped_at ?? at, erased_at: at, updated_at: at,
  });
  return { addresses: addresses.length, messages, purposesWithdrawn: withdrawn.length };
}

/** Erases a contact at a staff member's request (right to erasure). Audited; an erased contact cannot be erased again. */
export async function eraseContact(db: Database, actor: Actor, contactId: number): Promise<ErasureResult> {
  const contact = await requireContact(db.knex, contactId);
  if (contact.erasedAt) throw new HttpError(409, 'conflict', 'This contact was already erased');
  const staffUserId = actor.type === 'staff' ? actor.id : (actor.userId ?? null);
  const result = await db.knex.transaction((trx) =>
    eraseContactData(trx, contactId, { staffUserId, evidenceRef: `erasure requested; ${actor.type} ${actor.id ?? 'system'}` }),
  );
  await audit(db, actor, { action: 'contact.erase', entityType: 'contact', entityId: contactId, detail: { ...result } });
  return result;
}
