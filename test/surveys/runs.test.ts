/**
 * Survey runs: audiences (lists, segment queries, ids, narrowing each other; consent and medium),
 * quiet hours, schedules, a start interrupted and carried on, and reminders held back at night.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testServices } from '../helpers/services.js';
import { createList, subscribe } from '../../src/contacts/lists.js';
import { createRun, getRun, launchRun, previewAudience, quietUntil } from '../../src/surveys/runs.js';
import { runSurveyTimers } from '../../src/surveys/timers.js';
import { SYSTEM } from '../../src/staff/audit.js';
import { toDate, toInt } from '../../src/db/values.js';
import { makeContact } from './helpers.js';

let s: Awaited<ReturnType<typeof testServices>>;
beforeAll(async () => {
  s = await testServices({ DEFAULT_TIMEZONE: 'America/Lima' });
});
afterAll(() => s?.close());

const sessionsOf = (runId: number) => s.db.knex('survey_sessions').where('run_id', runId).orderBy('contact_id');

describe('quiet hours', () => {
  const lima = 'America/Lima'; // UTC-5, no daylight saving
  it.each([
    ['2026-11-23T02:00:00Z', { start: '21:00', end: '08:00' }, '2026-11-23T13:00:00.000Z'], // 21:00 in Lima: wait until 08:00
    ['2026-11-23T10:30:00Z', { start: '21:00', end: '08:00' }, '2026-11-23T13:00:00.000Z'], // 05:30
    ['2026-11-23T15:00:00Z', { start: '21:00', end: '08:00' }, null], // 10:00: fine
    ['2026-11-23T17:30:00Z', { start: '12:00', end: '14:00' }, '2026-11-23T19:00:00.000Z'], // 12:30 lunch
    ['2026-11-23T19:00:00Z', { start: '12:00', end: '14:00' }, null], // 14:00 sharp: over
  ])('at %s with %j: %s', (now, quiet, until) => {
    expect(quietUntil(new Date(now), quiet, lima)?.toISOString() ?? null).toBe(until);
  });
});

describe('audiences', () => {
  it('lists and a segment query narrow each other; only consenting contacts reachable on the medium are included', async () => {
    const list = await createList(s.db.knex, { key: 'noticias', name: 'Noticias', defaultLanguage: 'es' });
    const es = await makeContact(s, { language: 'es', medium: 'sms' });
    const en = await makeContact(s, { language: 'en', medium: 'whatsapp' });
    const both = await makeContact(s, { language: 'en', both: true });
    const noConsent = await makeContact(s, { language: 'en', consent: false });
    const notOnList = await makeContact(s, { language: 'en' });
    for (const c of [es, en, both, noConsent]) await subscribe(s.db.knex, { listId: list.id, contactId: c.id, channel: 'sms', consentId: null });
    expect(await previewAudience(s.db.knex, { lists: ['noticias'] }, 'auto')).toEqual({ count: 3, inSession: 0 });
    expect(await previewAudience(s.db.knex, { lists: ['noticias'], query: 'language = "en"' }, 'auto')).toEqual({ count: 2, inSession: 0 });
    expect(await previewAudience(s.db.knex, { lists: ['noticias'] }, 'sms')).toEqual({ count: 2, inSession: 0 });

    const { run } = await createRun(s, SYSTEM, { survey: 'needs-assessment', name: 'Lista', audience: { lists: [list.id], query: 'language = "en"' } });
    const rows = await sessionsOf(run.id);
    expect(rows.map((r) => [toInt(r.contact_id), r.medium, r.language])).toEqual([
      [en.id, 'whatsapp', 'en'],
      [both.id, 'whatsapp', 'en'], // WhatsApp where the contact has it
    ]);
    expect(rows.map((r) => r.contact_id)).not.toContain(notOnList.id);
    // The first question went to the address chosen, as buttons on WhatsApp.
    const out = await s.db.knex('outbox').whereIn('contact_id', [en.id, both.id]).where('purpose', 'surveys');
    expect(out.map((o) => [o.channel, toInt(o.address_id) > 0, JSON.parse(typeof o.content === 'string' ? o.content : JSON.stringify(o.content)).type])).toEqual([
      ['whatsapp', true, 'buttons'],
      ['whatsapp', true, 'buttons'],
    ]);
  });

  it('asks the language of contacts whose language the survey does not have, in the default language otherwise', async () => {
    const fr = await makeContact(s, { language: 'fr' });
    const regional = await makeContact(s, { language: 'es-PE' });
    const { run } = await createRun(s, SYSTEM, { survey: 'needs-assessment', name: 'Idiomas', audience: { contactIds: [fr.id, regional.id] } });
    const rows = await sessionsOf(run.id);
    expect(rows.map((r) => [r.language, Boolean(r.ask_language), r.current_question])).toEqual([
      ['es', true, '~language'],
      ['es', false, '~consent'],
    ]);
    const noAsk = await makeContact(s, { language: 'fr' });
    const second = await createRun(s, SYSTEM, { survey: 'needs-assessment', name: 'Sin pregunta', audience: { contactIds: [noAsk.id] }, askLanguage: false });
    expect((await sessionsOf(second.run.id))[0]).toMatchObject({ language: 'es', current_question: '~consent' });
  });
});

describe('timing', () => {
  it('a run in quiet hours queues its first questions for when they end', async () => {
    const c = await makeContact(s);
    // Quiet all day but one minute: whatever the time now, it is quiet.
    const now = new Date();
    const lima = new Date(now.getTime() - 5 * 3_600_000);
    const hh = (d: Date) => `${String(d.getUTCHours()).padStart(2, '0')}:${String(d.getUTCMinutes()).padStart(2, '0')}`;
    const start = hh(new Date(lima.getTime() - 60_000));
    const end = hh(new Date(lima.getTime() + 2 * 3_600_000));
    await createRun(s, SYSTEM, { survey: 'needs-assessment', name: 'Noche', audience: { contactIds: [c.id] }, quietHours: { start, end } });
    const out = await s.db.knex('outbox').where({ contact_id: c.id, purpose: 'surveys' }).first();
    const wait = toDate(out.not_before).getTime() - now.getTime();
    expect(wait).toBeGreaterThan(1.9 * 3_600_000);
    expect(wait).toBeLessThan(2.1 * 3_600_000);
  });

  it('a scheduled run waits, then the timers start it', async () => {
    const c = await makeContact(s);
    const at = new Date(Date.now() + 3_600_000);
    const { run, started } = await createRun(s, SYSTEM, { survey: 'needs-assessment', name: 'Luego', audience: { contactIds: [c.id] }, scheduledAt: at });
    expect(started).toBeNull();
    expect(run.status).toBe('scheduled');
    expect(await sessionsOf(run.id)).toHaveLength(0);
    await runSurveyTimers(s, new Date(Date.now() + 10 * 60_000));
    expect((await getRun(s.db.knex, run.id)).status).toBe('scheduled');
    expect((await runSurveyTimers(s, new Date(at.getTime() + 60_000))).runsStarted).toBe(1);
    expect((await getRun(s.db.knex, run.id)).status).toBe('running');
    expect(await sessionsOf(run.id)).toHaveLength(1);
  });

  it('a start interrupted after the sessions were created carries on, without sending anything twice', async () => {
    const a = await makeContact(s);
    const b = await makeContact(s);
    const { run } = await createRun(s, SYSTEM, { survey: 'needs-assessment', name: 'Corte', audience: { contactIds: [a.id, b.id] }, scheduledAt: new Date(Date.now() + 3_600_000) });
    // As if the process died after creating the sessions and queueing one batch of one.
    await s.db.knex('survey_runs').where('id', run.id).update({ status: 'starting' });
    await launchRun(s, run.id, { batchSize: 1 });
    expect((await getRun(s.db.knex, run.id)).status).toBe('running');
    await s.db.knex('survey_runs').where('id', run.id).update({ status: 'starting' });
    const again = await launchRun(s, run.id, { batchSize: 1 });
    expect(again).toMatchObject({ sessions: 2, active: 0, queued: 0 });
    const out = await s.db.knex('outbox').whereIn('contact_id', [a.id, b.id]).where('purpose', 'surveys');
    expect(out).toHaveLength(2);
  });

  it('a reminder due in the run’s quiet hours is held until they end', async () => {
    const c = await makeContact(s);
    const { run } = await createRun(s, SYSTEM, { survey: 'needs-assessment', name: 'Recordar', audience: { contactIds: [c.id] }, reminderHours: 1, quietHours: { start: '21:00', end: '08:00' } });
    const session = (await sessionsOf(run.id))[0];
    const night = new Date('2027-03-01T03:00:00Z'); // 22:00 in Lima
    await s.db.knex('survey_sessions').where('id', session.id).update({ next_reminder_at: new Date(night.getTime() - 60_000), expires_at: new Date(night.getTime() + 86_400_000) });
    const before = await s.db.knex('outbox').where('contact_id', c.id).count({ n: '*' });
    await runSurveyTimers(s, night);
    expect(await s.db.knex('outbox').where('contact_id', c.id).count({ n: '*' })).toEqual(before);
    const held = await s.db.knex('survey_sessions').where('id', session.id).first('next_reminder_at');
    expect(toDate(held.next_reminder_at).toISOString()).toBe('2027-03-01T13:00:00.000Z'); // 08:00 in Lima
  });
});
