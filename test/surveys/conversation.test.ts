/**
 * The shipped needs assessment end to end, over the simulator and the real inbound pipeline
 * (receive → router → survey session step → outbox), as SMS and as WhatsApp (buttons and
 * lists), with invalid answers, skip logic and every stored answer checked.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testServices } from '../helpers/services.js';
import { createRun } from '../../src/surveys/runs.js';
import { startSession } from '../../src/surveys/sessions.js';
import { SYSTEM } from '../../src/staff/audit.js';
import { toInt } from '../../src/db/values.js';
import { readJson } from '../../src/surveys/versions.js';
import { answersOf, makeContact, maxOutbox, newOutbox, say, sessionOf, textOf, type Said, type TestContact } from './helpers.js';
import type { OutboxRow } from '../../src/messaging/outbox.js';

let s: Awaited<ReturnType<typeof testServices>>;
beforeAll(async () => {
  s = await testServices();
});
afterAll(() => s?.close());

/** Each step: what the person sends, and what the reply must contain. */
type Turn = [Said, (out: OutboxRow[]) => void];

async function conversation(c: TestContact, turns: Turn[]): Promise<void> {
  for (const [said, check] of turns) {
    const r = await say(s, c, said);
    expect(r.route, `route of ${JSON.stringify(said)}`).toBe('survey');
    expect(r.out.length, `replies to ${JSON.stringify(said)}`).toBeGreaterThan(0);
    check(r.out);
  }
}

const hasText = (...parts: string[]) => (out: OutboxRow[]) => {
  const text = out.map((o) => textOf(o.content)).join('\n---\n');
  for (const p of parts) expect(text).toContain(p);
  for (const o of out) {
    expect(o.purpose).toBe('reply');
    expect(o.content?.type).toBe('text');
  }
};

const choiceAnswer = (a: Record<string, unknown>) => ({ type: a.type, value: a.value_text, choices: readJson(a.value_choices), skipped: Boolean(a.skipped) });

describe('the needs assessment over SMS', () => {
  it('runs from the run invitation to the thank-you, re-asking invalid answers, and stores every answer typed', async () => {
    const c = await makeContact(s, { language: 'es', medium: 'sms' });
    const before = await maxOutbox(s, c.id);
    const { started } = await createRun(s, SYSTEM, { survey: 'needs-assessment', name: 'Necesidades nov', audience: { contactIds: [c.id] } });
    expect(started).toMatchObject({ sessions: 1, active: 1, waiting: 0, queued: 1 });
    const [invite] = await newOutbox(s, c.id, before);
    expect(invite).toMatchObject({ purpose: 'surveys', priority: 2, channel: 'sms', language: 'es' });
    expect(textOf(invite.content)).toBe(
      'Ayni: Encuesta sobre lo que necesita saber. Responder es voluntario, toma unos 6 minutos y no afecta la ayuda que recibe. ¿Desea empezar?\n\n1. Empezar\n2. No, gracias\n\nResponda 1-2',
    );

    await conversation(c, [
      ['1', hasText('¿Tiene celular propio?', '1. Propio, con internet', 'Responda 1-4')],
      ['7', hasText('Responda con una cifra del 1 al 4.\n¿Tiene celular propio?')],
      ['compartido', hasText('¿Por qué medio prefiere recibir nuestras noticias?', '6. En persona', 'Responda 1-6')],
      ['Mensaje de texto', hasText('Para presentarnos una queja en privado, ¿qué medio prefiere?')],
      ['4', hasText('¿En qué idioma prefiere recibir los mensajes?')],
      ['1', hasText('¿Qué formatos le sirven mejor?', 'Puede elegir varios, p.ej. 1 3')],
      ['1 y 2', hasText('¿Qué temas son prioridad para usted? Elija hasta 3.', '10. Rutas y viaje')],
      ['1 2 3 4', hasText('Elija hasta 3 temas, por ejemplo 1 3 6.\n¿Qué temas son prioridad para usted?')],
      ['1,3,7', hasText('¿Qué fuentes le inspiran confianza?')],
      ['banana', hasText('No entendimos su respuesta.')],
      ['2 3', hasText('¿Se siente bien informado o informada?', '1. Sí', '2. En parte')],
      ['en parte', hasText('Este mes, ¿le llegaron rumores o noticias falsas?')],
      ['1', hasText('¿Sobre qué tema eran? Puede saltar esta pregunta.', 'SALTAR para omitir')],
      ['Dicen que cierran la frontera', hasText('¿A qué hora prefiere que le escribamos?')],
      ['3', hasText('Para terminar, unas preguntas sobre usted.', '¿Qué edad tiene?')],
      ['5', hasText('Escriba su edad en años, entre 12 y 110.')],
      ['30 años', hasText('¿Con qué género se identifica?')],
      ['mujer', hasText('Ahora 6 preguntas cortas', '¿Tiene dificultad para ver, incluso si usa anteojos?', '1. Ninguna dificultad')],
      ['1', hasText('¿Tiene dificultad para escuchar')],
      ['2', hasText('¿Tiene dificultad para caminar')],
      ['3', hasText('¿Tiene dificultad para recordar')],
      ['1', hasText('¿Tiene dificultad para bañarse')],
      ['1', hasText('En su idioma habitual')],
      ['no puede hacerlo', hasText('¿Qué nacionalidad tiene?')],
      ['venezolana', hasText('¿En qué departamento vive ahora?')],
      ['Lima y Callao', hasText('¡Gracias! Sus respuestas nos ayudan')],
    ]);

    const session = await sessionOf(s, c.id);
    expect(session).toMatchObject({ status: 'completed', medium: 'sms', language: 'es', current_question: null });
    const a = await answersOf(s, toInt(session.id));
    expect(Object.keys(a).sort()).toEqual(
      ['phone_access', 'preferred_channel', 'complaint_channel', 'language', 'format', 'topics', 'trusted_sources', 'feels_informed', 'rumours', 'rumour_topic', 'best_time', 'age', 'age_group', 'gender', 'wg_seeing', 'wg_hearing', 'wg_walking', 'wg_cognition', 'wg_selfcare', 'wg_communication', 'disability', 'nationality', 'location'].sort(),
    );
    expect(choiceAnswer(a.phone_access)).toEqual({ type: 'select_one', value: 'shared', choices: ['shared'], skipped: false });
    expect(choiceAnswer(a.preferred_channel)).toMatchObject({ value: 'sms' });
    expect(choiceAnswer(a.complaint_channel)).toMatchObject({ value: 'in_person' });
    expect(choiceAnswer(a.language)).toMatchObject({ value: 'es' });
    expect(choiceAnswer(a.format)).toEqual({ type: 'select_multiple', value: 'text voice', choices: ['text', 'voice'], skipped: false });
    expect(choiceAnswer(a.topics)).toMatchObject({ choices: ['documents', 'health', 'assistance'] });
    expect(choiceAnswer(a.trusted_sources)).toMatchObject({ choices: ['ngo', 'un'] });
    expect(choiceAnswer(a.feels_informed)).toMatchObject({ value: 'partly' });
    expect(choiceAnswer(a.rumours)).toMatchObject({ value: 'yes' });
    expect(a.rumour_topic).toMatchObject({ type: 'text', value_text: 'Dicen que cierran la frontera', value_number: null });
    expect(choiceAnswer(a.best_time)).toMatchObject({ value: 'evening' });
    expect(a.age).toMatchObject({ type: 'integer', value_number: 30, value_text: null });
    expect(a.age_group).toMatchObject({ type: 'calculate', value_text: '25-59', message_id: null });
    expect(choiceAnswer(a.gender)).toMatchObject({ value: 'female' });
    expect(['wg_seeing', 'wg_hearing', 'wg_walking', 'wg_cognition', 'wg_selfcare', 'wg_communication'].map((q) => a[q].value_text)).toEqual(['none', 'some', 'a_lot', 'none', 'none', 'cannot']);
    expect(a.disability).toMatchObject({ type: 'calculate', value_text: 'yes' });
    expect(choiceAnswer(a.nationality)).toMatchObject({ value: 'VE' });
    expect(choiceAnswer(a.location)).toMatchObject({ value: 'lima' });
    // Each answer points at the message that carried it; without keep_answers the text may be erased by retention.
    const carried = await s.db.knex('inbound_messages').where('id', toInt(a.rumour_topic.message_id)).first('text', 'keep');
    expect(carried.text).toBe('Dicen que cierran la frontera');
    expect(Boolean(carried.keep)).toBe(false);
    // Choice rows for the tallies.
    const rows = await s.db.knex('survey_answer_choices').where('session_id', toInt(session.id)).where('question', 'topics').orderBy('choice').pluck('choice');
    expect(rows).toEqual(['assistance', 'documents', 'health']);
    // The opening "yes" is recorded in the consent ledger with the wording shown.
    const grant = await s.db.knex('consents').where({ contact_id: c.id, purpose: 'surveys', method: 'keyword' }).first();
    expect(grant).toMatchObject({ action: 'grant', wording_key: 'survey-consent', wording_language: 'es', evidence_type: 'inbound_message', channel: 'sms' });
  });
});

describe('the needs assessment over WhatsApp', () => {
  it('asks the language with buttons, uses lists and buttons, takes text where several answers are allowed, and skips', async () => {
    const c = await makeContact(s, { language: null, medium: 'whatsapp' });
    const before = await maxOutbox(s, c.id);
    const started = await startSession(s.db.knex, { surveyKey: 'needs-assessment', contactId: c.id });
    expect(started).toMatchObject({ status: 'active', created: true });
    const [first] = await newOutbox(s, c.id, before);
    expect(first).toMatchObject({ channel: 'whatsapp', purpose: 'surveys' });
    expect(first.content).toEqual({
      type: 'buttons',
      text: 'Elija su idioma / Choose your language',
      buttons: [{ id: 'sv:~language:1', title: 'Español' }, { id: 'sv:~language:2', title: 'English' }],
    });

    const type = (t: string) => (out: OutboxRow[]) => expect(out.map((o) => o.content?.type)).toEqual([t]);
    const rows = (n: number) => (out: OutboxRow[]) => {
      const last = out[out.length - 1].content!;
      expect(last.type).toBe('list');
      expect((last as { rows: unknown[] }).rows).toHaveLength(n);
    };
    const tap = (q: string, n: number, title = ''): Said => ({ payload: `sv:${q}:${n}`, title });
    await conversation(c, [
      [tap('~language', 2, 'English'), (out) => expect(out[0].content).toMatchObject({ type: 'buttons', text: expect.stringContaining('Answering is voluntary'), buttons: [{ id: 'sv:~consent:1', title: 'Yes, start' }, { id: 'sv:~consent:2', title: 'No, thanks' }] })],
      [tap('~consent', 1, 'Yes, start'), (out) => expect(out[0].content).toMatchObject({ type: 'list', text: 'Do you have your own phone?', button: 'Choose', rows: [{ id: 'sv:phone_access:1', title: 'Own, with internet' }, {}, {}, {}] })],
      [tap('phone_access', 1), rows(6)],
      [tap('preferred_channel', 1), rows(4)],
      [tap('complaint_channel', 3), rows(6)],
      [tap('language', 2), (out) => expect(out[0].content).toEqual({ type: 'text', text: 'Which formats suit you best?\n\n1. Text\n2. Voice note\n3. Picture\n4. Video\n\nYou can choose several, e.g. 1 3' })],
      ['1 and 3', type('text')],
      ['Health, work', type('text')],
      ['1', (out) => expect(out[0].content).toMatchObject({ type: 'buttons', text: 'Do you feel well informed?', buttons: [{ title: 'Yes' }, { title: 'Partly' }, { title: 'No' }] })],
      [tap('feels_informed', 1), type('buttons')],
      [tap('rumours', 2), (out) => expect(out[0].content).toMatchObject({ type: 'buttons', text: 'When do you prefer us to write to you?' })],
      [tap('best_time', 1), (out) => expect(out[0].content).toEqual({ type: 'text', text: 'Finally, a few questions about you. They help us leave nobody out.\n\nHow old are you?\n\nSKIP to skip' })],
      ['SKIP', (out) => expect(out[0].content).toMatchObject({ type: 'list', text: 'Which gender do you identify with?', rows: [{}, {}, {}, { title: 'Prefer not to say' }] })],
      [tap('gender', 4), (out) => expect(out[0].content).toMatchObject({ type: 'list', text: expect.stringMatching(/^Now 6 short questions.*\n\nDo you have difficulty seeing/s) })],
      [tap('wg_seeing', 1), rows(4)],
      [tap('wg_hearing', 1), rows(4)],
      [tap('wg_walking', 2), rows(4)],
      [tap('wg_cognition', 1), rows(4)],
      [tap('wg_selfcare', 1), rows(4)],
      [tap('wg_communication', 1), rows(6)],
      [tap('nationality', 6), rows(8)],
      [tap('location', 8), (out) => expect(out[0].content).toEqual({ type: 'text', text: 'Thank you! Your answers help us give you the help and the information you need.' })],
    ]);

    const session = await sessionOf(s, c.id);
    expect(session).toMatchObject({ status: 'completed', medium: 'whatsapp', language: 'en' });
    const a = await answersOf(s, toInt(session.id));
    expect(a.format.value_text).toBe('text image');
    expect(a.topics.value_text).toBe('health work');
    expect(a.rumours.value_text).toBe('no');
    expect(a.rumour_topic).toBeUndefined(); // not relevant: never asked, nothing stored
    expect(a.age).toMatchObject({ skipped: expect.anything(), value_number: null });
    expect(Boolean(a.age.skipped)).toBe(true);
    expect(a.age_group).toBeUndefined(); // empty calculation: no row
    expect(a.wg_walking.value_text).toBe('some');
    expect(a.disability.value_text).toBe('no');
    expect(a.nationality.value_text).toBe('other');
    expect(a.location.value_text).toBe('other');
    const grant = await s.db.knex('consents').where({ contact_id: c.id, purpose: 'surveys', method: 'button' }).first();
    expect(grant).toMatchObject({ action: 'grant', wording_key: 'survey-consent', wording_language: 'en', channel: 'whatsapp' });
  });

  it('a tap on an old button re-asks the current question without counting it as a mistake', async () => {
    const c = await makeContact(s, { language: 'es', medium: 'whatsapp' });
    await startSession(s.db.knex, { surveyKey: 'needs-assessment', contactId: c.id });
    await say(s, c, { payload: 'sv:~consent:1', title: 'Empezar' });
    const r = await say(s, c, { payload: 'sv:~consent:1', title: 'Empezar' });
    expect(r.out[0].content).toMatchObject({ type: 'list', text: 'Esa respuesta era para una pregunta anterior.\n¿Tiene celular propio?' });
    const session = await sessionOf(s, c.id);
    expect(readJson<{ attempts: number }>(session.state)!.attempts).toBe(0);
  });

  it('declining the opening question ends the session politely and stores nothing', async () => {
    const c = await makeContact(s, { language: 'es', medium: 'whatsapp' });
    await startSession(s.db.knex, { surveyKey: 'needs-assessment', contactId: c.id });
    const r = await say(s, c, { payload: 'sv:~consent:2', title: 'No, gracias' });
    expect(textOf(r.out[0].content)).toBe('Entendido, no le haremos las preguntas de esta encuesta. Gracias.');
    const session = await sessionOf(s, c.id);
    expect(session).toMatchObject({ status: 'ended', end_reason: 'declined' });
    expect(await answersOf(s, toInt(session.id))).toEqual({});
    // The next message is not taken as an answer.
    expect((await say(s, c, 'hola')).route).toBe('inbox');
  });
});
