/**
 * What erasing a contact does to their surveys (called by the contacts domain inside its erasure
 * transaction, see src/contacts/hooks.ts): open sessions are cancelled; the engine state, context
 * and parameters are dropped; free-text answers (and calculations that are not numbers) are
 * blanked. Choices, numbers and dates stay, unlinked from any name or number, so the results'
 * figures survive.
 */
import type { Knex } from '../db/orm.js';

export async function eraseSurveyData(trx: Knex, contactId: number, at: Date): Promise<void> {
  const sessions = trx('survey_sessions').where('contact_id', contactId).select('id');
  await trx('survey_answers')
    .whereIn('session_id', sessions.clone())
    .where((q) => q.where('type', 'text').orWhere((c) => c.where('type', 'calculate').whereNull('value_number')))
    .update({ value_text: null });
  await trx('survey_sessions')
    .where('contact_id', contactId)
    .whereIn('status', ['active', 'waiting'])
    .update({ status: 'cancelled', end_reason: 'erased', finished_at: at });
  await trx('survey_sessions').where('contact_id', contactId).update({ state: null, context: null, params: null });
}
