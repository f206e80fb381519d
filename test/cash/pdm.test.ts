/**
 * PDM scheduling with a given clock: who can be asked (paid or pending transfer, beneficiary not
 * excluded, contact active with cash_programme consent and an address; one person once), the
 * sample (95 % ± 5 % of 50 is 45, chosen at random), the day it starts (CASH_PDM_DAYS, or the
 * distribution's own), monitoring turned off, reminders under the cash_programme purpose, and
 * sessions that expire unanswered.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createContact } from '../../src/contacts/contacts.js';
import { recordConsent } from '../../src/contacts/consent.js';
import { createDistribution } from '../../src/cash/distributions.js';
import { createList } from '../../src/cash/lists.js';
import { addDays, pdmPlan, runPdmScheduler } from '../../src/cash/pdm.js';
import { pdmReport } from '../../src/cash/report.js';
import { sendReminders } from '../../src/surveys/timers.js';
import { expireSessions } from '../../src/surveys/sessions.js';
import { toInt } from '../../src/db/values.js';
import { SYSTEM } from '../../src/staff/audit.js';
import { testServices } from '../helpers/services.js';

let s: Awaited<ReturnType<typeof testServices>>;
const at = (day: string, hour = 14) => new Date(`${day}T${String(hour).padStart(2, '0')}:00:00Z`);
let seq = 0;
let phones = 0;

/** A list of `n` enrolled beneficiaries who can be asked, plus the given others. */
async function listWith(n: number) {
  const list = await createList(s.db, SYSTEM, { name: `List ${++seq}` });
  const now = new Date();
  const add = async (o: { consent?: boolean; status?: string; contact?: number | null } = {}) => {
    let contactId = o.contact;
    if (contactId === undefined) {
      const c = await createContact(s.db.knex, 'PE', { addresses: [{ medium: 'sms', address: `+51987${String(600000 + ++phones)}` }] });
      contactId = c.id;
      if (o.consent !== false) await recordConsent(s.db.knex, { contactId, purpose: 'cash_programme', action: 'grant', method: 'operator', staffUserId: 1 });
    }
    const [row] = await s.db.knex('cash_beneficiaries').insert({ list_id: list.id, contact_id: contactId, status: o.status ?? 'enrolled', source: 'manual', status_at: now, created_at: now, updated_at: now }).returning('id');
    return { beneficiaryId: toInt(typeof row === 'object' ? row.id : row), contactId };
  };
  const ok = [];
  for (let i = 0; i < n; i++) ok.push(await add());
  return { list, ok, add };
}

beforeAll(async () => {
  s = await testServices({ CASH_PDM_DAYS: '7' });
});
afterAll(() => s?.close());

describe('PDM scheduling', () => {
  it('samples 45 of 50 reachable recipients, each person once, on CASH_PDM_DAYS after the distribution', async () => {
    const { list, ok, add } = await listWith(50);
    const noConsent = await add({ consent: false });
    const shared = await add({ contact: ok[0].contactId }); // a second household of the same person
    const noContact = await add({ contact: null });
    const failed = await add();
    const d = await createDistribution(s.db, SYSTEM, { listId: list.id, name: 'Round', date: '2026-01-05', amount: 120, currency: 'PEN', modality: 'card' });
    expect(d.transfers.total).toBe(54);
    await s.db.knex('cash_transfers').where({ distribution_id: d.id, beneficiary_id: failed.beneficiaryId }).update({ status: 'failed' });
    const excluded = await add();
    await s.db.knex('cash_transfers').insert({ distribution_id: d.id, beneficiary_id: excluded.beneficiaryId, amount: 120, status: 'paid', created_at: new Date(), updated_at: new Date() });
    await s.db.knex('cash_beneficiaries').where('id', excluded.beneficiaryId).update({ status: 'excluded', excluded_reason: 'moved away' });

    const plan = await pdmPlan(s.db.knex, s.config, d.id);
    expect(plan).toMatchObject({ population: 50, sampleSize: 45, sampling: 'sample', confidence: 95, margin: 5, days: 7, dueOn: '2026-01-12' });

    expect((await runPdmScheduler(s, { now: at('2026-01-11') })).started).toEqual([]);
    const r = await runPdmScheduler(s, { now: at('2026-01-12') });
    expect(r).toEqual({ started: [d.id], sent: 45, skipped: 0 });
    const rows = await s.db.knex('cash_pdm').where('distribution_id', d.id);
    expect(rows).toHaveLength(45);
    expect(new Set(rows.map((x: any) => toInt(x.contact_id))).size).toBe(45);
    const never = new Set([noConsent.contactId, failed.contactId, excluded.contactId]);
    expect(rows.some((x: any) => never.has(toInt(x.contact_id)) || toInt(x.beneficiary_id) === noContact.beneficiaryId || toInt(x.beneficiary_id) === shared.beneficiaryId)).toBe(false);
    expect(rows.every((x: any) => x.status === 'sent' && x.session_id !== null && x.medium === 'sms')).toBe(true);

    // Each is a survey session of pdm-cash whose messages go out under the cash_programme consent.
    const sessions = await s.db.knex('survey_sessions').whereIn('id', rows.map((x: any) => x.session_id));
    expect(sessions.every((x: any) => x.survey_key === 'pdm-cash' && x.purpose === 'cash_programme' && x.status === 'active' && toInt(x.max_reminders) === 2)).toBe(true);
    const first = await s.db.knex('outbox').whereIn('contact_id', rows.map((x: any) => x.contact_id)).where('purpose', 'cash_programme');
    expect(first).toHaveLength(45);
    expect(toInt((await s.db.knex('cash_distributions').where('id', d.id).first('pdm_sample_size')).pdm_sample_size)).toBe(45);

    // A second run changes nothing.
    expect(await runPdmScheduler(s, { now: at('2026-01-13') })).toEqual({ started: [], sent: 0, skipped: 0 });

    // Reminders a day later, under the same purpose; then the silent sessions expire.
    const reminded = await sendReminders(s, new Date(at('2026-01-12').getTime() + 25 * 3_600_000));
    expect(reminded).toBe(45);
    expect(await s.db.knex('outbox').whereIn('contact_id', rows.map((x: any) => x.contact_id)).where('purpose', 'cash_programme').count({ n: '*' }).then((x) => toInt(x[0].n))).toBe(90);
    const expired = await expireSessions(s, new Date(at('2026-01-12').getTime() + 121 * 3_600_000));
    expect(expired).toBe(45);
    const report = await pdmReport(s.db.knex, s.config, d.id);
    expect(report.response).toMatchObject({ selected: 45, sent: 45, waiting: 0, completed: 0, noAnswer: 45, responseRate: 0 });
  });

  it('follows the distribution’s own days, asks everyone when told to, and not at all when turned off', async () => {
    const a = await listWith(3);
    const own = await createDistribution(s.db, SYSTEM, { listId: a.list.id, name: 'Own days', date: '2026-02-01', amount: 50, currency: 'USD', modality: 'voucher', pdm: { days: 3, sampling: 'all' } });
    const b = await listWith(2);
    const off = await createDistribution(s.db, SYSTEM, { listId: b.list.id, name: 'Off', date: '2026-02-01', amount: 50, currency: 'USD', modality: 'cash', pdm: { enabled: false } });
    expect((await runPdmScheduler(s, { now: at('2026-02-03') })).started).toEqual([]);
    const r = await runPdmScheduler(s, { now: at('2026-02-04') });
    expect(r).toEqual({ started: [own.id], sent: 3, skipped: 0 });
    expect((await runPdmScheduler(s, { now: at('2026-03-01') })).started).toEqual([]);
    expect(toInt((await s.db.knex('cash_pdm').where('distribution_id', off.id).count({ n: '*' }))[0].n)).toBe(0);
    expect(addDays('2026-02-27', 3)).toBe('2026-03-02');
  });

  it('skips, with the reason, a recipient who said STOP between the choice and the start', async () => {
    const a = await listWith(2);
    const d = await createDistribution(s.db, SYSTEM, { listId: a.list.id, name: 'Stop', date: '2026-04-01', amount: 10, currency: 'PEN', modality: 'cash', pdm: { sampling: 'all' } });
    // Chosen, then interrupted before the sessions started (the job ends), then the person stops.
    await s.db.knex('cash_distributions').where('id', d.id).update({ pdm_status: 'starting', pdm_started_at: new Date() });
    for (const x of a.ok) await s.db.knex('cash_pdm').insert({ distribution_id: d.id, beneficiary_id: x.beneficiaryId, contact_id: x.contactId, status: 'selected', selected_at: new Date() });
    await s.db.knex('contacts').where('id', a.ok[0].contactId).update({ status: 'stopped' });
    const r = await runPdmScheduler(s, { now: at('2026-05-01') });
    expect(r).toMatchObject({ started: [], sent: 1, skipped: 1 });
    expect(await s.db.knex('cash_pdm').where({ distribution_id: d.id, contact_id: a.ok[0].contactId }).first('status', 'skip_reason')).toEqual({ status: 'skipped', skip_reason: 'inactive' });
    expect((await s.db.knex('cash_distributions').where('id', d.id).first('pdm_status')).pdm_status).toBe('running');
  });
});
