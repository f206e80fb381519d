/**
 * The complaints domain's part in the contacts domain's data-protection rules (registered in
 * src/contacts/hooks.ts). Imports nothing from the contacts domain, so that the registry has no cycle.
 *
 *  - open case: a contact with a complaint that is not closed, an open psychosocial handoff or a
 *    pending follow-up keeps their number and name through retention (we promised an answer);
 *  - erasure: when a contact is erased, their complaints lose the link to them and every text they
 *    gave or that was written about them (narrative, resolution, notes, triage notes, referral notes);
 *    categories, statuses and dates stay, for anonymous figures. Intakes in progress are dropped.
 */
import type { Knex } from '../db/orm.js';

export function complaintContactIds(knex: Knex): Knex.QueryBuilder {
  return knex('complaints').whereNotNull('contact_id').whereNull('closed_at').select('contact_id');
}

export function triageContactIds(knex: Knex): Knex.QueryBuilder {
  return knex('pss_triage')
    .whereNotNull('contact_id')
    .where((w) => w.where('handoff_open', true).orWhere((x) => x.whereNotNull('followup_due_at').whereNull('followup_done_at')))
    .select('contact_id');
}

export async function eraseComplaintData(trx: Knex, contactId: number, at: Date): Promise<void> {
  const ids: number[] = (await trx('complaints').where('contact_id', contactId).pluck('id')).map(Number);
  for (let i = 0; i < ids.length; i += 500) {
    const part = ids.slice(i, i + 500);
    await trx('complaint_events').whereIn('complaint_id', part).update({ note: null });
    await trx('complaints').whereIn('id', part).update({
      contact_id: null, address_id: null, requester_hash: null, narrative: null, resolution: null, wants_answer: false,
      narrative_erased_at: at, updated_at: at,
    });
  }
  await trx('referrals').where('contact_id', contactId).update({ contact_id: null, note: null, updated_at: at });
  const triage: string[] = await trx('pss_triage').where('contact_id', contactId).pluck('id');
  if (triage.length) await trx('referrals').whereIn('triage_id', triage).update({ note: null, updated_at: at });
  await trx('pss_triage').where('contact_id', contactId).update({ contact_id: null, note: null, handoff_open: false });
  await trx('complaint_intakes').where('contact_id', contactId).delete();
}
