/**
 * Sessions over time: reminders, expiry (partial answers kept), resumption after a pause and after
 * expiry, STOP winning over a session, one active session per contact (others wait), keyword
 * starts, kept answers with consent, completion hooks, and the checks startSession makes.
 */
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testServices } from '../helpers/services.js';
import { ROOT, SURVEYS } from '../../src/paths.js';
import { catalog, configureCatalog } from '../../src/surveys/catalog.js';
import { closeRun, createRun } from '../../src/surveys/runs.js';
import { startSession, RESUME_AFTER_MS } from '../../src/surveys/sessions.js';
import { runSurveyTimers } from '../../src/surveys/timers.js';
import { onComplete, onFinish, type FinishedSession } from '../../src/surveys/hooks.js';
import { SYSTEM } from '../../src/staff/audit.js';
import { toInt } from '../../src/db/values.js';
import { readJson } from '../../src/surveys/versions.js';
import { HttpError } from '../../src/http/errors.js';
import { answersOf, makeContact, maxOutbox, newOutbox, say, sessionOf, textOf } from './helpers.js';

let s: Awaited<ReturnType<typeof testServices>>;
let dir: string;
const H = 3_600_000;

beforeAll(async () => {
  s = await testServices();
  dir = mkdtempSync(join(tmpdir(), 'ayni-surveys-'));
  copyFileSync(join(ROOT, 'surveys', 'needs-assessment.yaml'), join(dir, 'needs-assessment.yaml'));
  writeFileSync(
    join(dir, 'feedback.yaml'),
    `settings:
  id: feedback
  title: { es: Opinión, en: Feedback }
  default_language: es
  languages: [es, en]
  keep_answers: true
  reminder_hours: 2
  expiry_hours: 6
questions:
  - name: score
    type: integer
    label: { es: "Del 1 al 5, ¿qué tan útil fue?", en: "From 1 to 5, how useful was it?" }
    constraint: . >= 1 and . <= 5
    required: true
  - name: why
    type: text
    label: { es: ¿Por qué?, en: Why? }
  - name: case
    type: calculate
    calculation: concat('case-', \${case_id})
  - name: bye
    type: note
    label: { es: Fin., en: End. }
`.replace('  reminder_hours: 2', '  reminder_hours: 2\n  parameters: [case_id]'),
  );
  configureCatalog(dir);
  expect((await catalog()).refused).toEqual([]);
});
afterAll(async () => {
  configureCatalog(SURVEYS);
  rmSync(dir, { recursive: true, force: true });
  await s?.close();
});

describe('reminders and expiry', () => {
  it('reminds once after the silence, then expires; partial answers stay; later messages go elsewhere', async () => {
    const c = await makeContact(s);
    const { sessionId } = await startSession(s.db.knex, { surveyKey: 'feedback', contactId: c.id, params: { case_id: 'c7' } });
    await say(s, c, '1'); // consent
    await say(s, c, '4'); // score
    const mark = await maxOutbox(s, c.id);
    // 1 h: nothing yet.
    expect(await runSurveyTimers(s, new Date(Date.now() + 1 * H))).toMatchObject({ reminded: 0, expired: 0 });
    // 2 h: the reminder, the current question again.
    expect(await runSurveyTimers(s, new Date(Date.now() + 2 * H + 60_000))).toMatchObject({ reminded: 1 });
    const reminder = await newOutbox(s, c.id, mark);
    expect(reminder).toHaveLength(1);
    expect(reminder[0]).toMatchObject({ purpose: 'surveys', channel: 'sms' });
    expect(textOf(reminder[0].content)).toBe('Recordatorio:\n¿Por qué?\n\nSALTAR para omitir');
    // Only one reminder (max_reminders 1).
    expect(await runSurveyTimers(s, new Date(Date.now() + 5 * H))).toMatchObject({ reminded: 0, expired: 0 });
    // 6 h: expired.
    expect(await runSurveyTimers(s, new Date(Date.now() + 6 * H + 60_000))).toMatchObject({ expired: 1 });
    const session = await sessionOf(s, c.id);
    expect(session).toMatchObject({ id: sessionId, status: 'expired', end_reason: 'expired', current_question: 'why' });
    const a = await answersOf(s, sessionId);
    expect(a.score.value_number).toBe(4);
    expect(a.case.value_text).toBe('case-c7');
    expect((await say(s, c, 'hola')).route).not.toBe('survey');
  });

  it('a contact who comes back after a pause with something else is shown where they were, without a strike', async () => {
    const c = await makeContact(s);
    const { sessionId } = await startSession(s.db.knex, { surveyKey: 'feedback', contactId: c.id, params: { case_id: 'x' } });
    await say(s, c, '1');
    await s.db.knex('survey_sessions').where('id', sessionId).update({ last_activity_at: new Date(Date.now() - RESUME_AFTER_MS - 60_000) });
    const r = await say(s, c, 'hola, perdón');
    expect(r.route).toBe('survey');
    expect(textOf(r.out[0].content)).toBe('Sigamos donde nos quedamos:\nDel 1 al 5, ¿qué tan útil fue?');
    expect(readJson<{ attempts: number; at: unknown }>((await sessionOf(s, c.id)).state)!.attempts).toBe(0);
    // Right after, the same text is a wrong answer.
    expect(textOf((await say(s, c, 'hola')).out[0].content)).toBe('Responda solo con cifras, sin decimales.\nDel 1 al 5, ¿qué tan útil fue?');
    await say(s, c, '5');
    expect((await answersOf(s, sessionId)).score.value_number).toBe(5);
  });

  it('texting the keyword again resumes an expired session of that run where it stopped', async () => {
    const c = await makeContact(s, { consent: false });
    await createRun(s, SYSTEM, { survey: 'feedback', name: 'Opinión', audience: { contactIds: [c.id] }, keyword: 'opinion' });
    // Without consent to surveys the run did not include them; the keyword lets them ask for it.
    expect(await s.db.knex('survey_sessions').where('contact_id', c.id)).toHaveLength(0);
    const start = await say(s, c, 'OPINIÓN');
    expect(start.route).toBe('survey-start');
    expect(textOf(start.out[0].content)).toContain('Responder es voluntario');
    // It answers their keyword: a reply, which needs no prior consent to be sent.
    expect(start.out[0]).toMatchObject({ purpose: 'reply', priority: 1 });
    await say(s, c, '1');
    await say(s, c, '3');
    await runSurveyTimers(s, new Date(Date.now() + 7 * H));
    expect((await sessionOf(s, c.id)).status).toBe('expired');
    const back = await say(s, c, 'opinion');
    expect(back.route).toBe('survey-resume');
    expect(textOf(back.out[0].content)).toBe('Sigamos donde nos quedamos:\n¿Por qué?\n\nSALTAR para omitir');
    await say(s, c, 'Muy clara');
    const session = await sessionOf(s, c.id);
    expect(session.status).toBe('completed');
    expect((await answersOf(s, toInt(session.id))).why.value_text).toBe('Muy clara');
    // Completed: the keyword does not start it again.
    expect((await say(s, c, 'opinion')).route).not.toMatch(/^survey/);
  });
});

describe('STOP and one session at a time', () => {
  it('STOP wins over an open session; no reminder goes to a stopped contact', async () => {
    const c = await makeContact(s);
    await startSession(s.db.knex, { surveyKey: 'feedback', contactId: c.id, params: { case_id: 'x' } });
    await say(s, c, '1');
    const r = await say(s, c, 'STOP');
    expect(r.route).toBe('stop');
    expect(readJson<{ attempts: number; at: unknown }>((await sessionOf(s, c.id)).state)!.at).toBe(0); // still at the first question
    const mark = await maxOutbox(s, c.id);
    expect(await runSurveyTimers(s, new Date(Date.now() + 3 * H))).toMatchObject({ reminded: 0 });
    expect(await newOutbox(s, c.id, mark)).toEqual([]);
  });

  it('a second survey waits for the first to finish, then starts by itself', async () => {
    const c = await makeContact(s);
    await startSession(s.db.knex, { surveyKey: 'feedback', contactId: c.id, params: { case_id: 'x' } });
    const second = await startSession(s.db.knex, { surveyKey: 'needs-assessment', contactId: c.id });
    expect(second.status).toBe('waiting');
    await say(s, c, '1');
    await say(s, c, '5');
    const last = await say(s, c, 'saltar');
    // The end of the first, then the opening of the second.
    expect(last.out.map((o) => textOf(o.content))).toEqual(['Fin.\n\n¡Gracias por sus respuestas!', expect.stringContaining('Encuesta sobre lo que necesita saber')]);
    expect((await s.db.knex('survey_sessions').where('id', second.sessionId).first()).status).toBe('active');
  });

  it('closing a run cancels its waiting sessions', async () => {
    const c = await makeContact(s);
    await startSession(s.db.knex, { surveyKey: 'feedback', contactId: c.id, params: { case_id: 'x' } });
    const { run } = await createRun(s, SYSTEM, { survey: 'needs-assessment', name: 'Espera', audience: { contactIds: [c.id] } });
    expect((await s.db.knex('survey_sessions').where({ run_id: run.id }).first()).status).toBe('waiting');
    await closeRun(s, SYSTEM, run.id);
    expect((await s.db.knex('survey_sessions').where({ run_id: run.id }).first()).status).toBe('cancelled');
  });
});

describe('kept answers, hooks and checks', () => {
  it('with keep_answers and the person’s yes, the messages that carried answers are kept; hooks get the values and context', async () => {
    const seen: FinishedSession[] = [];
    const off1 = onComplete('feedback', async (f) => void seen.push(f));
    const off2 = onFinish('feedback', async (f) => void seen.push({ ...f, reason: `finish:${f.status}` }));
    try {
      const c = await makeContact(s, { language: 'en' });
      const { sessionId } = await startSession(s.db.knex, { surveyKey: 'feedback', contactId: c.id, params: { case_id: 'k1' }, context: { complaintId: 42 } });
      const open = await s.db.knex('outbox').where('contact_id', c.id).orderBy('id', 'desc').first('content');
      expect(readJson<{ text: string }>(open.content)!.text).toContain('If you agree, we will keep the text of your answers.');
      await say(s, c, 'yes');
      await say(s, c, '2');
      await say(s, c, 'Too long to read');
      const a = await answersOf(s, sessionId);
      const kept = await s.db.knex('inbound_messages').whereIn('id', [toInt(a.score.message_id), toInt(a.why.message_id)]).pluck('keep');
      expect(kept.map(Boolean)).toEqual([true, true]);
      expect(seen).toHaveLength(2);
      expect(seen[0]).toMatchObject({ sessionId, surveyKey: 'feedback', status: 'completed', reason: null, contactId: c.id, language: 'en', context: { complaintId: 42 }, values: { score: 2, why: 'Too long to read', case: 'case-k1' } });
      expect(seen[1].reason).toBe('finish:completed');
    } finally {
      off1();
      off2();
    }
  });

  it('startSession refuses a contact without consent, a stopped contact and an unknown survey', async () => {
    const no = await makeContact(s, { consent: false });
    await expect(startSession(s.db.knex, { surveyKey: 'feedback', contactId: no.id })).rejects.toMatchObject({ status: 409, code: 'no_consent' });
    const stopped = await makeContact(s);
    await s.db.knex('contacts').where('id', stopped.id).update({ status: 'stopped' });
    await expect(startSession(s.db.knex, { surveyKey: 'feedback', contactId: stopped.id })).rejects.toMatchObject({ status: 409, code: 'contact_inactive' });
    await expect(startSession(s.db.knex, { surveyKey: 'nope', contactId: no.id })).rejects.toBeInstanceOf(HttpError);
    expect(await s.db.knex('survey_sessions').whereIn('contact_id', [no.id, stopped.id])).toHaveLength(0);
  });

  it('a run includes each contact once, however often it is started', async () => {
    const c = await makeContact(s);
    const { run } = await createRun(s, SYSTEM, { survey: 'needs-assessment', name: 'Una vez', audience: { contactIds: [c.id] } });
    const again = await startSession(s.db.knex, { surveyKey: 'needs-assessment', contactId: c.id, runId: run.id });
    expect(again.created).toBe(false);
    expect(await s.db.knex('survey_sessions').where({ run_id: run.id })).toHaveLength(1);
  });

  it('erasing a contact blanks their free text and cancels their sessions; figures stay', async () => {
    const { ERASURE_HOOKS } = await import('../../src/contacts/hooks.js');
    const c = await makeContact(s);
    const { sessionId } = await startSession(s.db.knex, { surveyKey: 'feedback', contactId: c.id, params: { case_id: 'z' } });
    await say(s, c, '1');
    await say(s, c, '3');
    await say(s, c, 'Mi vecina Rosa me ayudó');
    const hook = ERASURE_HOOKS.find((h) => h.domain === 'surveys')!;
    await s.db.knex.transaction((trx) => hook.erase(trx, c.id, new Date()));
    const a = await answersOf(s, sessionId);
    expect(a.why.value_text).toBeNull();
    expect(a.score.value_number).toBe(3);
    expect((await sessionOf(s, c.id)).state).toBeNull();
  });
});
