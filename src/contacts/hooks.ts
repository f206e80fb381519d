/**
 * Where other domains plug into the contacts domain's data-protection rules. Add an entry here
 * (a small edit, like src/messaging/steps.ts) when a domain holds cases or personal data of contacts.
 */
import type { Knex } from '../db/orm.js';
import { complaintContactIds, eraseComplaintData, triageContactIds } from '../complaints/contact-hooks.js';
import { eraseSurveyData } from '../surveys/privacy.js';
import { cashOpenCaseContactIds, eraseCashData } from '../cash/contact-hooks.js';

/**
 * "Open case" queries: each returns a query selecting `contact_id` of contacts with a case still
 * open in that domain (an open complaint, a beneficiary in a running distribution…). Retention never
 * erases those contacts' number and name, whatever their consent. Example for complaints:
 *   { domain: 'complaints', contactIds: (knex) => knex('complaints').whereNull('closed_at').select('contact_id') }
 */
export interface OpenCaseQuery {
  domain: string;
  contactIds: (knex: Knex) => Knex.QueryBuilder;
}
export const OPEN_CASE_QUERIES: OpenCaseQuery[] = [
  { domain: 'complaints', contactIds: complaintContactIds },
  { domain: 'psychosocial', contactIds: triageContactIds },
  { domain: 'cash', contactIds: cashOpenCaseContactIds },
];

/**
 * Erasure hooks: called inside the erasure transaction of each contact, so that a domain blanks the
 * personal data it holds about them (free-text answers, complaint narratives), keeping anonymous
 * figures. Use only the transaction given.
 */
export interface ErasureHook {
  domain: string;
  erase: (trx: Knex, contactId: number, at: Date) => Promise<void>;
}
export const ERASURE_HOOKS: ErasureHook[] = [
  { domain: 'complaints', erase: eraseComplaintData },
  { domain: 'surveys', erase: eraseSurveyData },
  { domain: 'cash', erase: eraseCashData },
];
