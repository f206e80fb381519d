/**
 * Stopping a contact: every subscription ends, the contact is marked stopped, every consent is
 * withdrawn with a ledger row, queued messages are cancelled and open questions closed — in one
 * transaction. Used by the STOP keyword, a provider's own opt-out signal, and staff.
 *
 * For the dispatcher: a stopped contact gets nothing, except `reply` rows enqueued at or after the
 * contact's `stopped_at` — those answer a message the person sent after stopping (the STOP
 * confirmation itself, a HELP answer, the consent prompt after START). Everything queued before the
 * stop was cancelled here.
 */
import type { Knex } from '../db/orm.js';
import { toInt } from '../db/values.js';
import type { Medium } from '../messaging/types.js';
import { withdrawAll, type ConsentInput } from './consent.js';
import { endSubscriptions } from './lists.js';

export interface StopHow {
  method: ConsentInput['method'];
  channel?: ConsentInput['channel'];
  wording?: ConsentInput['wording'];
  evidence?: ConsentInput['evidence'];
  staffUserId?: number | null;
  /** Why subscriptions end: stop (the person or their provider), staff, erased. */
  reason?: 'stop' | 'staff' | 'erased';
  at?: Date;
}

export interface StopResult {
  listsEnded: number[];
  purposesWithdrawn: string[];
  outboxCancelled: number;
}

/** Stops one contact inside the caller's transaction. A blocked contact stays blocked (and loses its consents too). */
export async function stopContact(trx: Knex, contactId: number, how: StopHow): Promise<StopResult> {
  const at = how.at ?? new Date();
  const listsEnded = await endSubscriptions(trx, contactId, how.reason ?? 'stop', at);
  const purposesWithdrawn = await withdrawAll(trx, contactId, {
    legalBasis: 'consent',
    channel: how.channel ?? null,
    method: how.method,
    wording: how.wording ?? null,
    evidence: how.evidence ?? null,
    staffUserId: how.staffUserId ?? null,
    at,
  });
  await trx('contacts').where('id', contactId).whereNot('status', 'blocked').update({ status: 'stopped', stopped_at: at, updated_at: at });
  const outboxCancelled = await trx('outbox').where({ contact_id: contactId, status: 'queued' }).update({ status: 'cancelled', status_at: at, error_code: 'stopped' });
  await trx('pending_confirmations').where('contact_id', contactId).whereNull('answered_at').update({ answered_at: at, answer: 'cancelled' });
  return { listsEnded, purposesWithdrawn, outboxCancelled };
}

/**
 * A provider's own opt-out signal (Twilio error 21610, WhatsApp 131050): the address is marked
 * opted out; when the contact has no other usable address, the contact is stopped with a consent
 * withdrawal (method `provider`, evidence the signal). Queued messages fixed to this address are
 * cancelled either way. `evidence` names the signal, e.g. "twilio 21610 SM123…" (no personal data).
 */
export async function stopOnChannel(
  knex: Knex,
  medium: Medium,
  address: string,
  evidence: string | { ref: string; at?: Date },
): Promise<{ found: boolean; contactId: number | null; contactStopped: boolean }> {
  const ev = typeof evidence === 'string' ? { ref: evidence } : evidence;
  const at = ev.at ?? new Date();
  const run = async (trx: Knex) => {
    const row = await trx('contact_addresses').where({ channel: medium, address }).first('id', 'contact_id');
    if (!row) return { found: false, contactId: null, contactStopped: false };
    const addressId = toInt(row.id);
    const contactId = toInt(row.contact_id);
    await trx('contact_addresses').where('id', addressId).update({ opted_out: true });
    await trx('outbox').where({ address_id: addressId, status: 'queued' }).update({ status: 'cancelled', status_at: at, error_code: 'opted_out' });
    const other = await trx('contact_addresses').where('contact_id', contactId).whereNot('id', addressId).where('opted_out', false).first('id');
    if (other) return { found: true, contactId, contactStopped: false };
    await stopContact(trx, contactId, { method: 'provider', channel: medium, evidence: { type: 'provider_signal', ref: ev.ref.slice(0, 200) }, reason: 'stop', at });
    return { found: true, contactId, contactStopped: true };
  };
  return (knex as unknown as { isTransaction?: boolean }).isTransaction ? run(knex) : knex.transaction(run);
}
