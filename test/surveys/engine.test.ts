/**
 * The engine alone — no database, no channel: definition + state + input → state + messages + events.
 */
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadSurveyFile } from '../../src/surveys/catalog.js';
import { compileSurvey, type CompiledSurvey } from '../../src/surveys/definition.js';
import { choicePayload, initialState, step, type EngineInput, type QuestionMessage, type StepResult } from '../../src/surveys/engine.js';
import { loadYamlSurvey } from '../../src/surveys/yaml.js';
import { parseDate, parseDecimal, parseInteger, parseMany, parseOne } from '../../src/surveys/answers.js';
import { normaliseAnswer } from '../../src/surveys/definition.js';
import { ROOT } from '../../src/paths.js';

const now = new Date('2026-11-22T15:00:00Z');

let na: CompiledSurvey;
beforeAll(async () => {
  na = compileSurvey(await loadSurveyFile(join(ROOT, 'surveys', 'needs-assessment.yaml')));
});

/** A conversation: start, then each input in turn; returns every result. */
function talk(survey: CompiledSurvey, inputs: (string | { payload: string })[], start: Partial<Extract<EngineInput, { type: 'start' }>> = {}, lang: string | null = 'es'): StepResult[] {
  const out: StepResult[] = [step(survey, initialState(survey, now, lang), { type: 'start', language: lang, ...start }, { now })];
  for (const i of inputs) {
    const prev = out[out.length - 1].state;
    out.push(step(survey, prev, typeof i === 'string' ? { type: 'answer', text: i } : { type: 'answer', text: null, payload: i.payload }, { now }));
  }
  return out;
}

const lastQuestion = (r: StepResult) => r.messages.filter((m): m is QuestionMessage => m.kind === 'question').pop();

const mini = (questions: string, settings = '') =>
  compileSurvey(
    loadYamlSurvey(
      `settings:
  id: t
  title: T
  default_language: es
  languages: [es, en]
  consent_question: false
${settings}
questions:
${questions}
choices:
  yn:
    - { name: "yes", label: { es: Sí, en: "Yes" } }
    - { name: "no", label: { es: "No", en: "No" } }
  topics:
    - { name: health, label: { es: Salud, en: Health } }
    - { name: work, label: { es: Trabajo, en: Work } }
    - { name: school, label: { es: Escuela, en: School } }
    - { name: housing, label: { es: Vivienda, en: Housing } }
`,
      't.yaml',
    ),
  );

describe('opening', () => {
  it('asks for consent first: voluntary, how long, no effect on help; declining ends the session', () => {
    const [start, no] = talk(na, ['2']);
    const q = lastQuestion(start)!;
    expect(q).toMatchObject({ name: '~consent', qtype: 'consent', consent: { minutes: 6, keep: false }, choices: [{ key: 'yes', label: 'Empezar' }, { key: 'no', label: 'No, gracias' }] });
    expect(no.state).toMatchObject({ status: 'ended', endReason: 'declined', consent: false });
    expect(no.events).toEqual([{ type: 'consent', granted: false }, { type: 'ended', reason: 'declined' }]);
    expect(no.messages).toEqual([{ kind: 'end', reason: 'declined', text: null, lang: 'es' }]);
  });

  it.each(['1', 'si', 'Sí', 'SI', 'empezar', 'ok', 'yes'])('"%s" accepts', (text) => {
    const [, r] = talk(na, [text]);
    expect(r.state.consent).toBe(true);
    expect(lastQuestion(r)!.name).toBe('phone_access');
  });

  it('asks the language first when the contact has none the survey speaks', () => {
    const [start, chosen] = talk(na, ['2'], { askLanguage: true }, null);
    expect(lastQuestion(start)).toMatchObject({ name: '~language', text: 'Elija su idioma / Choose your language', choices: [{ key: 'es', label: 'Español' }, { key: 'en', label: 'English' }] });
    expect(chosen.state.lang).toBe('en');
    expect(chosen.events[0]).toEqual({ type: 'language', lang: 'en' });
    expect(lastQuestion(chosen)).toMatchObject({ name: '~consent', lang: 'en', choices: [{ label: 'Yes, start' }, { label: 'No, thanks' }] });
    // By name and by button too.
    expect(talk(na, ['english'], { askLanguage: true }, null)[1].state.lang).toBe('en');
    expect(talk(na, [{ payload: choicePayload('~language', 1) }], { askLanguage: true }, null)[1].state.lang).toBe('es');
  });

  it('does not ask the language of a contact whose language the survey has', () => {
    expect(lastQuestion(talk(na, [], { askLanguage: true }, 'en')[0])!.name).toBe('~consent');
  });
});

describe('choices', () => {
  const one = () => mini(`  - name: q
    type: select_one
    label: { es: ¿Tiene teléfono?, en: Phone? }
    choices:
      - { name: own, label: { es: Propio, en: Own } }
      - { name: shared, label: { es: Compartido, en: Shared } }
      - { name: unsure, label: { es: No sé, en: Not sure } }
    required: true`);

  it.each([
    ['2', 'shared'],
    ['2.', 'shared'],
    [' 2) ', 'shared'],
    ['opcion 2', 'shared'],
    ['COMPARTIDO', 'shared'],
    ['compartido!', 'shared'],
    ['no se', 'unsure'],
    ['No Sé', 'unsure'],
    ['Not sure', 'unsure'], // a label in the other language
    ['compar', 'shared'], // a unique beginning
    ['2 compartido', 'shared'],
  ])('select_one "%s" → %s', (text, key) => {
    const r = talk(one(), [text]);
    expect(r[1].events).toContainEqual({ type: 'answered', name: 'q', value: key });
  });

  it.each([
    ['7', 'Responda con una cifra del 1 al 3.'],
    ['1 2', 'Elija solo una.'],
    ['banana', 'No entendimos su respuesta.'],
    ['2 propio', 'No entendimos su respuesta.'],
  ])('select_one "%s" is asked again with "%s"', (text, error) => {
    const r = talk(one(), [text]);
    expect(r[1].state.values.q).toBeUndefined();
    expect(lastQuestion(r[1])).toMatchObject({ name: 'q', error });
    expect(r[1].events).toContainEqual(expect.objectContaining({ type: 'invalid', name: 'q' }));
  });

  const many = () => mini(`  - name: t
    type: select_multiple
    label: { es: Temas, en: Topics }
    choices: topics
    required: true`);

  it.each([
    ['1 3', ['health', 'school']],
    ['1,3', ['health', 'school']],
    ['1, 3', ['health', 'school']],
    ['1 y 3', ['health', 'school']],
    ['1 and 3', ['health', 'school']],
    ['1 e 3', ['health', 'school']],
    ['1 et 3', ['health', 'school']],
    ['1;3;3', ['health', 'school']],
    ['13', ['health', 'school']],
    ['salud y trabajo', ['health', 'work']],
    ['Salud, VIVIENDA', ['health', 'housing']],
    ['4', ['housing']],
  ])('select_multiple "%s" → %j', (text, keys) => {
    const r = talk(many(), [text]);
    expect(r[1].events).toContainEqual({ type: 'answered', name: 't', value: keys });
  });

  it('select_multiple refuses an option out of range', () => {
    const r = talk(many(), ['1 9']);
    expect(lastQuestion(r[1])).toMatchObject({ error: 'Responda con una cifra del 1 al 4.' });
  });

  it('a WhatsApp button or list row answers by its id; an old button is not taken for the current question', () => {
    const s = one();
    expect(talk(s, [{ payload: choicePayload('q', 3) }])[1].events).toContainEqual({ type: 'answered', name: 'q', value: 'unsure' });
    const stale = talk(s, [{ payload: choicePayload('other_question', 1) }])[1];
    expect(lastQuestion(stale)).toMatchObject({ name: 'q', error: 'Esa respuesta era para una pregunta anterior.' });
    expect(stale.state.attempts).toBe(0);
  });
});

describe('validation and attempts', () => {
  const survey = () =>
    mini(
      `  - name: age
    type: integer
    label: { es: Edad, en: Age }
    constraint: . >= 12 and . <= 110
    constraint_message: { es: Entre 12 y 110, en: Between 12 and 110 }
  - name: name
    type: text
    label: { es: Nombre, en: Name }
    required: true
  - name: end
    type: note
    label: { es: Fin, en: End }`,
      '  max_attempts: 2',
    );

  it('re-asks with the constraint message, then skips an optional question after max_attempts', () => {
    const [, first, second] = talk(survey(), ['200', '5']);
    expect(lastQuestion(first)).toMatchObject({ name: 'age', error: 'Entre 12 y 110' });
    expect(second.events).toContainEqual({ type: 'skipped', name: 'age', reason: 'attempts', value: null });
    expect(lastQuestion(second)).toMatchObject({ name: 'name', error: null });
  });

  it('ends the session after max_attempts on a required question', () => {
    const r = talk(survey(), ['30', 'saltar', 'skip']);
    expect(lastQuestion(r[2])).toMatchObject({ name: 'name', error: 'Esta pregunta necesita una respuesta.' });
    expect(r[3].state).toMatchObject({ status: 'ended', endReason: 'attempts' });
    expect(r[3].messages).toEqual([{ kind: 'end', reason: 'attempts', text: null, lang: 'es' }]);
  });

  it.each(['SKIP', 'saltar', 'Pular', 'passer', 'omitir'])('"%s" skips an optional question', (word) => {
    const r = talk(survey(), [word]);
    expect(r[1].events).toContainEqual({ type: 'skipped', name: 'age', reason: 'skip', value: null });
    expect(lastQuestion(r[1])!.name).toBe('name');
  });

  it('a valid answer resets the attempts; notes are said on the way; the end carries the closing text', () => {
    const r = talk(survey(), ['200', '30', 'Ana']);
    expect(r[2].state.attempts).toBe(0);
    expect(r[3].messages).toEqual([
      { kind: 'note', name: 'end', text: 'Fin', lang: 'es' },
      { kind: 'end', reason: 'completed', text: null, lang: 'es' },
    ]);
    expect(r[3].state).toMatchObject({ status: 'completed', values: { age: 30, name: 'Ana' } });
  });
});

describe('the needs assessment', () => {
  it('skips the rumour topic unless rumours were heard, computes the age group and the WG disability flag', () => {
    const base = ['1', '1', '1', '1', '1', '1', '1 3 5', '2', '1'];
    const heard = talk(na, [...base, '1']);
    expect(lastQuestion(heard[heard.length - 1])!.name).toBe('rumour_topic');
    const notHeard = talk(na, [...base, '2']);
    expect(lastQuestion(notHeard[notHeard.length - 1])!.name).toBe('best_time');
    const rest = talk(na, [...base, '2', '1', '16', '1', '1', '1', '3', '1', '1', '1', '1', '1']);
    const end = rest[rest.length - 1];
    expect(end.state.status).toBe('completed');
    expect(end.state.values).toMatchObject({ age: 16, age_group: '12-17', wg_walking: 'a_lot', disability: 'yes', nationality: 'VE', location: 'lima', topics: ['documents', 'health', 'school'] });
    expect(end.state.values.rumour_topic).toBeUndefined();
    expect(end.messages.pop()).toMatchObject({ kind: 'end', reason: 'completed', text: expect.stringContaining('¡Gracias!') });
  });

  it('limits priority topics to three with its own message', () => {
    const r = talk(na, ['1', '1', '1', '1', '1', '1', '1 2 3 4']);
    expect(lastQuestion(r[r.length - 1])).toMatchObject({ name: 'topics', error: 'Elija hasta 3 temas, por ejemplo 1 3 6.' });
  });

  it('the WG disability flag stays empty until the last WG question is answered', () => {
    const r = talk(na, ['1', '1']);
    expect(r[2].state.values.disability).toBeUndefined();
  });

  it('repeats the question waited for, with a reminder or resumption line, without changing the state', () => {
    const [, r] = talk(na, ['1']);
    const again = step(na, r.state, { type: 'repeat', reason: 'reminder' }, { now });
    expect(again.state).toEqual(r.state);
    expect(again.messages).toEqual([expect.objectContaining({ name: 'phone_access', prefix: 'reminder' })]);
  });

  it('is deterministic: the same inputs give the same state and messages', () => {
    const inputs = ['1', '2', 'banana', '3', '1', '1', '2', '1 y 4'];
    expect(JSON.stringify(talk(na, inputs))).toBe(JSON.stringify(talk(na, inputs)));
  });
});

describe('parameters and labels with answers', () => {
  it('fills parameters given at start and shows answers in labels by their choice label', () => {
    const s = compileSurvey(
      loadYamlSurvey(
        `settings:
  id: pdm
  title: PDM
  default_language: es
  languages: [es]
  consent_question: false
  parameters: [amount]
questions:
  - name: received
    type: select_one
    label: ¿Recibió \${amount} soles?
    choices: [{ name: "yes", label: Sí }, { name: "no", label: "No" }]
  - name: note
    type: note
    label: Usted respondió \${received}.
`,
        'pdm.yaml',
      ),
    );
    const r = talk(s, ['1'], { params: { amount: 300 } });
    expect(lastQuestion(r[0])!.text).toBe('¿Recibió 300 soles?');
    expect(r[1].messages[0]).toMatchObject({ kind: 'note', text: 'Usted respondió Sí.' });
  });
});

describe('reading typed answers', () => {
  it.each([
    ['25', 25],
    ['25 años', 25],
    ['tengo 25', 25],
    ['1.500', 1500],
    ['1,500', 1500],
    ['1 500', 1500],
    ['-3', -3],
  ])('integer "%s" → %s', (t, n) => expect(parseInteger(t)).toEqual({ ok: true, value: n }));
  it.each(['2.5', '1 3', 'muchos', ''])('integer "%s" is refused', (t) => expect(parseInteger(t).ok).toBe(false));
  it.each([
    ['2,5', 2.5],
    ['2.75', 2.75],
    ['1.234,5', 1234.5],
    ['1,234.5', 1234.5],
    ['1.500', 1500],
    ['0.500', 0.5],
    ['300 soles', 300],
  ])('decimal "%s" → %s', (t, n) => expect(parseDecimal(t)).toEqual({ ok: true, value: n }));
  it.each([
    ['2026-11-22', '2026-11-22'],
    ['22/11/2026', '2026-11-22'],
    ['22-11-2026', '2026-11-22'],
    ['22.11.26', '2026-11-22'],
    ['1/2/1990', '1990-02-01'],
    ['22 de noviembre de 2026', '2026-11-22'],
    ['November 22, 2026', '2026-11-22'],
    ['22 nov', '2026-11-22'],
    ['3 setembro 2025', '2025-09-03'],
  ])('date "%s" → %s', (t, d) => expect(parseDate(t, '2026-11-22')).toEqual({ ok: true, value: d }));
  it.each(['31/02/2026', '2026-13-01', 'ayer', '22/11'])('date "%s" is refused', (t) => expect(parseDate(t, '2026-11-22').ok).toBe(false));

  it('matching is case- and accent-insensitive', () => {
    const choices = [{ key: 'si', match: [normaliseAnswer('Sí')] }, { key: 'no', match: [normaliseAnswer('No')] }];
    expect(parseOne('SÍ', choices)).toEqual({ ok: true, value: 'si' });
    expect(parseMany('si, no', choices)).toEqual({ ok: true, value: ['si', 'no'] });
  });
});
