/**
 * The cash domain's part in the contacts domain's data-protection rules (registered in
 * src/contacts/hooks.ts and src/contacts/access-hooks.ts). Imports nothing from the contacts domain,
 * so that the registries have no cycle.
 *
 *  - open case: an enrolled beneficiary of a list that is not archived keeps their number and name
 *    through retention (they are in a programme that pays them and checks it reached them);
 *  - erasure: the person's beneficiary records lose the link to them, their name, number and
 *    household id, vulnerability criteria and the free answers; admin areas, statuses, amounts and
 *    the PDM indicators stay, for anonymous figures;
 *  - subject access: their beneficiary records, transfers and PDM answers (nothing when none) — but not
 *    whether they said they were asked to pay: that is a sensitive case's matter, for focal points only.
 */
import type { Knex } from '../db/orm.js';
import { toDateOrNull, toInt } from '../db/values.js';

export function cashOpenCaseContactIds(knex: Knex): Knex.QueryBuilder {
  return knex('cash_beneficiaries as b')
    .join('cash_lists as l', 'l.id', 'b.list_id')
    .whereNull('l.archived_at')
    .where('b.status', 'enrolled')
    .whereNotNull('b.contact_id')
    .select('b.contact_id');
}

export async function eraseCashData(trx: Knex, contactId: number, at: Date): Promise<void> {
  await trx('cash_beneficiaries').where('contact_id', contactId).update({
    contact_id: null, name: null, phone: null, household_id: null, household_key: null, vulnerability: null, erased_at: at, updated_at: at,
  });
  await trx('cash_pdm').where('contact_id', contactId).update({ contact_id: null, address_id: null });
}

export async function cashSubjectAccess(knex: Knex, contactId: number): Promise<unknown> {
  const beneficiaries = await knex('cash_beneficiaries as b')
    .join('cash_lists as l', 'l.id', 'b.list_id')
    .where('b.contact_id', contactId)
    .orderBy('b.id')
    .select('b.id', 'l.name as list', 'b.household_id', 'b.name', 'b.phone', 'b.admin1', 'b.admin2', 'b.admin3', 'b.household_size', 'b.vulnerability', 'b.gender', 'b.age_group', 'b.status', 'b.excluded_reason', 'b.source', 'b.created_at');
  const ids = beneficiaries.map((b: Record<string, unknown>) => toInt(b.id));
  const transfers = ids.length
    ? await knex('cash_transfers as t').join('cash_distributions as d', 'd.id', 't.distribution_id').whereIn('t.beneficiary_id', ids).orderBy('t.id')
        .select('t.beneficiary_id', 'd.name as distribution', 'd.date', 't.amount', 'd.currency', 'd.modality', 't.status', 't.paid_on')
    : [];
  const pdm = await knex('cash_pdm as p').join('cash_distributions as d', 'd.id', 'p.distribution_id').where('p.contact_id', contactId).orderBy('p.id')
    .select('d.name as distribution', 'p.status', 'p.finished_at', 'p.received', 'p.amount_told', 'p.on_time', 'p.problems', 'p.felt_safe', 'p.respected', 'p.spending', 'p.needs_met', 'p.household_size', 'p.rcsi', 'p.knows_complaint', 'p.satisfaction', 'p.preferred_modality');
  // Nothing held: nothing to say (the export leaves the domain out).
  if (!beneficiaries.length && !pdm.length) return undefined;
  const json = (v: unknown) => (typeof v === 'string' ? JSON.parse(v) : v ?? null);
  return {
    beneficiaries: beneficiaries.map((b: Record<string, unknown>) => ({ ...b, id: toInt(b.id), vulnerability: json(b.vulnerability), created_at: toDateOrNull(b.created_at)?.toISOString() ?? null })),
    transfers: transfers.map((t: Record<string, unknown>) => ({ ...t, amount: Number(t.amount) })),
    pdm: pdm.map((p: Record<string, unknown>) => ({ ...p, problems: json(p.problems), spending: json(p.spending), finished_at: toDateOrNull(p.finished_at)?.toISOString() ?? null })),
  };
}
