/** Every form a question takes on WhatsApp (buttons, list, list with descriptions, text) and on SMS. */
import { describe, expect, it } from 'vitest';
import { measureSms, isGsm7 } from '../../src/channels/sms.js';
import type { EndMessage, EngineMessage, NoteMessage, QuestionMessage } from '../../src/surveys/engine.js';
import { renderMessages, smsQuestion, whatsappQuestion, WHATSAPP_LIMITS } from '../../src/surveys/render.js';
import { chrome } from '../../src/surveys/strings.js';

const q = (over: Partial<QuestionMessage> = {}): QuestionMessage => ({
  kind: 'question',
  name: 'q',
  qtype: 'select_one',
  text: '¿Tiene celular propio?',
  hint: null,
  choices: [
    { key: 'yes', label: 'Sí' },
    { key: 'no', label: 'No' },
  ],
  required: true,
  canSkip: false,
  error: null,
  prefix: null,
  lang: 'es',
  ...over,
});
const opts = (n: number, label = (i: number) => `Opción ${i}`) => Array.from({ length: n }, (_, i) => ({ key: `k${i + 1}`, label: label(i + 1) }));
const wa = (m: QuestionMessage) => whatsappQuestion(m, 'Ayni').content;
const note = (text: string): NoteMessage => ({ kind: 'note', name: 'n', text, lang: 'es' });

describe('WhatsApp', () => {
  it('up to 3 short options: reply buttons whose ids name the question and option', () => {
    expect(wa(q())).toEqual({ type: 'buttons', text: '¿Tiene celular propio?', buttons: [{ id: 'sv:q:1', title: 'Sí' }, { id: 'sv:q:2', title: 'No' }] });
  });

  it('an optional question with room gets a Skip button; without room, the SKIP line', () => {
    expect(wa(q({ required: false, canSkip: true }))).toMatchObject({ type: 'buttons', buttons: [{ title: 'Sí' }, { title: 'No' }, { id: 'sv:q:skip', title: 'Saltar' }] });
    const three = wa(q({ required: false, canSkip: true, choices: opts(3) }));
    expect(three).toMatchObject({ type: 'buttons', text: '¿Tiene celular propio?\nSALTAR para omitir' });
    expect((three as { buttons: unknown[] }).buttons).toHaveLength(3);
  });

  it('a label over 20 characters makes a list instead of buttons', () => {
    const c = wa(q({ choices: [{ key: 'a', label: 'Propio, con internet!' }, { key: 'b', label: 'No' }] }));
    expect(c).toMatchObject({ type: 'list', button: 'Elegir', rows: [{ id: 'sv:q:1', title: 'Propio, con internet!' }, { id: 'sv:q:2', title: 'No' }] });
  });

  it('4 to 10 options of up to 24 characters: a list (with a Skip row when optional and there is room)', () => {
    const c = wa(q({ choices: opts(9, (i) => `Departamento número ${i}`.slice(0, 24)), canSkip: true, required: false }));
    expect(c.type).toBe('list');
    const rows = (c as { rows: { id: string; title: string }[] }).rows;
    expect(rows).toHaveLength(10);
    expect(rows[9]).toEqual({ id: 'sv:q:skip', title: 'Saltar' });
    expect(rows.every((r) => [...r.title].length <= WHATSAPP_LIMITS.rowTitle)).toBe(true);
  });

  it('labels up to 72 characters: list rows titled "Option n" with the label as description, word for word', () => {
    const long = 'Documentos, regularización y permiso temporal de permanencia (PTP)';
    const c = wa(q({ choices: [{ key: 'docs', label: long }, ...opts(4)] }));
    expect(c.type).toBe('list');
    expect((c as { rows: unknown[] }).rows[0]).toEqual({ id: 'sv:q:1', title: 'Opción 1', description: long });
    expect((c as { rows: { description?: string }[] }).rows.every((r) => (r.description ?? '').length <= WHATSAPP_LIMITS.rowDescription)).toBe(true);
  });

  it('more than 10 options, or longer labels: numbered text', () => {
    const c = wa(q({ choices: opts(11) }));
    expect(c.type).toBe('text');
    expect(c.text).toBe(`¿Tiene celular propio?\n\n${opts(11).map((o, i) => `${i + 1}. ${o.label}`).join('\n')}\n\nResponda 1-11`);
    const tooLong = wa(q({ choices: [{ key: 'a', label: 'x'.repeat(73) }, { key: 'b', label: 'y' }] }));
    expect(tooLong.type).toBe('text');
  });

  it('several choices: numbered text that says how to answer', () => {
    expect(wa(q({ qtype: 'select_multiple', choices: opts(3) })).text).toBe('¿Tiene celular propio?\n\n1. Opción 1\n2. Opción 2\n3. Opción 3\n\nPuede elegir varios, p.ej. 1 3');
  });

  it('numbers, text and dates are asked in text, with the hint, the date format and SKIP when optional', () => {
    expect(wa(q({ qtype: 'integer', text: '¿Qué edad tiene?', choices: [], hint: 'En años' }))).toEqual({ type: 'text', text: '¿Qué edad tiene?\nEn años' });
    expect(wa(q({ qtype: 'date', text: 'Fecha de llegada', choices: [], canSkip: true }))).toEqual({ type: 'text', text: 'Fecha de llegada\n\nFecha como DD/MM/AAAA\nSALTAR para omitir' });
  });

  it('an error and a reminder come before the question', () => {
    expect(wa(q({ error: 'No entendimos su respuesta.', prefix: 'reminder' })).text).toBe('Recordatorio:\nNo entendimos su respuesta.\n¿Tiene celular propio?');
  });

  it('the opening question: the consent wording with the survey title, duration and buttons', () => {
    const c = wa(q({ name: '~consent', qtype: 'consent', text: '', choices: [{ key: 'yes', label: 'Empezar' }, { key: 'no', label: 'No, gracias' }], consent: { title: 'Encuesta', minutes: 5, keep: true } }));
    expect(c).toMatchObject({ type: 'buttons', buttons: [{ id: 'sv:~consent:1', title: 'Empezar' }, { id: 'sv:~consent:2', title: 'No, gracias' }] });
    expect(c.text).toBe('Ayni: Encuesta. Responder es voluntario, toma unos 5 minutos y no afecta la ayuda que recibe. Si acepta, guardaremos el texto de sus respuestas. ¿Desea empezar?');
    expect(whatsappQuestion(q({ qtype: 'consent', consent: { title: 'S', minutes: 1, keep: false } }), 'Ayni').wording).toMatchObject({ key: 'survey-consent', language: 'es', version: expect.stringMatching(/^[0-9a-f]{12}$/) });
  });

  it('notes go in the body of the question that follows; the end message after them', () => {
    const msgs: EngineMessage[] = [note('Unas preguntas sobre usted.'), q(), note('Fin.'), { kind: 'end', reason: 'completed', text: null, lang: 'es' } as EndMessage];
    const out = renderMessages(msgs, { medium: 'whatsapp', programme: 'Ayni' });
    expect(out.map((o) => o.content)).toEqual([
      { type: 'buttons', text: 'Unas preguntas sobre usted.\n\n¿Tiene celular propio?', buttons: [{ id: 'sv:q:1', title: 'Sí' }, { id: 'sv:q:2', title: 'No' }] },
      { type: 'text', text: 'Fin.\n\n¡Gracias por sus respuestas!' },
    ]);
  });

  it('a note too long for an interactive body is sent before the buttons', () => {
    const long = 'Nota. '.repeat(200);
    const out = renderMessages([note(long), q()], { medium: 'whatsapp', programme: 'Ayni' });
    expect(out.map((o) => o.content.type)).toEqual(['text', 'buttons']);
  });

  it('declined and ended sessions get their system message', () => {
    const out = renderMessages([{ kind: 'end', reason: 'declined', text: null, lang: 'en' }], { medium: 'whatsapp', programme: 'Ayni' });
    expect(out[0].content).toEqual({ type: 'text', text: "Understood: we will not ask you this survey's questions. Thank you." });
  });
});

describe('SMS', () => {
  const sms = (m: QuestionMessage, notes: string[] = []) => smsQuestion(m, 'Ayni', notes).text;

  it('numbered options with "Reply 1-N", in the session language', () => {
    expect(sms(q({ choices: opts(4) }))).toBe('¿Tiene celular propio?\n\n1. Opción 1\n2. Opción 2\n3. Opción 3\n4. Opción 4\n\nResponda 1-4');
    expect(sms(q({ lang: 'en', text: 'Phone?', choices: opts(2, (i) => `O${i}`) }))).toBe('Phone?\n\n1. O1\n2. O2\n\nReply 1-2');
  });

  it('several choices, skipping and dates say so', () => {
    expect(sms(q({ qtype: 'select_multiple', canSkip: true, required: false, choices: opts(2, (i) => `O${i}`) }))).toBe('¿Tiene celular propio?\n\n1. O1\n2. O2\n\nPuede elegir varios, p.ej. 1 3\nSALTAR para omitir');
    expect(sms(q({ qtype: 'date', choices: [], lang: 'fr', text: "Date d'arrivée ?" }))).toBe("Date d'arrivée ?\n\nDate au format JJ/MM/AAAA");
  });

  it('chooses a compact layout when it saves a segment, and never changes the wording', () => {
    const text = '¿Qué fuentes le inspiran confianza?';
    const choices = ['Familia y amigos', 'ONG y Cruz Roja', 'Naciones Unidas', 'Gobierno', 'Iglesia', 'Redes sociales', 'Radio o TV'].map((label, i) => ({ key: `k${i}`, label }));
    const rich = `${text}\n\n${choices.map((c, i) => `${i + 1}. ${c.label}`).join('\n')}\n\nPuede elegir varios, p.ej. 1 3`;
    expect(measureSms(rich).segments).toBe(2);
    const out = sms(q({ qtype: 'select_multiple', text, choices }));
    expect(measureSms(out).segments).toBe(1);
    expect(out.startsWith(`${text}\n1 Familia y amigos\n`)).toBe(true);
    for (const c of choices) expect(out).toContain(c.label);
  });

  it('keeps the rich layout when compacting would not save a segment', () => {
    expect(sms(q())).toBe('¿Tiene celular propio?\n\n1. Sí\n2. No\n\nResponda 1-2');
  });

  it('the chrome is GSM-7 in Spanish, English and French, so it never forces UCS-2 by itself', () => {
    const keys = ['reply_range', 'reply_multi', 'reply_multi_short', 'skip_hint', 'date_hint', 'err_not_understood', 'err_choose_number', 'err_one_only', 'err_integer', 'err_decimal', 'err_date', 'err_text', 'err_required', 'err_invalid', 'err_stale', 'prefix_reminder', 'prefix_resume', 'consent_yes', 'consent_no'] as const;
    for (const lang of ['es', 'en', 'fr']) for (const k of keys) expect(isGsm7(chrome(lang, k, { from: 1, to: 5 })), `${lang} ${k}`).toBe(true);
    // A GSM-7 question stays GSM-7 with its chrome.
    const out = sms(q({ text: 'Tiene celular propio?', choices: opts(3, (i) => `Op ${i}`), canSkip: true, error: chrome('es', 'err_choose_number', { from: 1, to: 3 }) }));
    expect(measureSms(out).encoding).toBe('GSM-7');
  });

  it('notes before a question share its message', () => {
    const out = renderMessages([note('Para terminar, unas preguntas.'), q()], { medium: 'sms', programme: 'Ayni' });
    expect(out).toHaveLength(1);
    expect(out[0].content).toEqual({ type: 'text', text: 'Para terminar, unas preguntas.\n\n¿Tiene celular propio?\n\n1. Sí\n2. No\n\nResponda 1-2' });
  });

  it('a text longer than an SMS provider accepts is split at line ends', () => {
    const out = renderMessages([q({ qtype: 'text', choices: [], text: Array.from({ length: 80 }, (_, i) => `Línea ${i} del texto largo.`).join('\n') })], { medium: 'sms', programme: 'Ayni' });
    expect(out.length).toBe(2);
    expect(out.every((o) => o.content.type === 'text' && o.content.text.length <= 1600)).toBe(true);
  });
});
