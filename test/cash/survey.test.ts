/**
 * The shipped PDM survey (surveys/pdm-cash.yaml) through the surveys engineer's loader and the pure
 * engine: both languages, every message short enough for SMS, "none" excluding the other problems,
 * the complaint route for "not received", the report question for "asked to pay", and the rCSI
 * questions named as the indicator reads them.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { measureSms } from '../../src/channels/sms.js';
import { RCSI_ITEMS } from '../../src/cash/rcsi.js';
import { answerColumns } from '../../src/cash/pdm.js';
import { loadSurveyFile } from '../../src/surveys/catalog.js';
import { compileSurvey } from '../../src/surveys/definition.js';
import { initialState, step, type StepResult } from '../../src/surveys/engine.js';
import { renderMessages } from '../../src/surveys/render.js';
import { SURVEYS } from '../../src/paths.js';

const now = new Date('2026-11-22T15:00:00Z');
const load = async () => compileSurvey(await loadSurveyFile(join(SURVEYS, 'pdm-cash.yaml')));

/** Runs a conversation; returns every SMS sent and the final state. */
async function converse(lang: 'es' | 'en', answers: string[]) {
  const s = await load();
  let r: StepResult = step(s, initialState(s, now, lang), { type: 'start', language: lang, params: { amount: '300', currency: 'PEN' } }, { now });
  const sms: string[] = [];
  const collect = () => sms.push(...renderMessages(r.messages, { medium: 'sms', programme: 'Programa de Ayuda Humanitaria' }).map((m) => m.content.text));
  collect();
  for (const a of answers) {
    r = step(s, r.state, { type: 'answer', text: a }, { now });
    collect();
  }
  return { sms, state: r.state };
}

const FULL = ['1', '1', '1', '1', '2 5', '1', '1', '1', '1', '1 2 3', '2', '5', '2', '1', '3', '0', '1', '1', '2', '2', 'Gracias'];

describe('surveys/pdm-cash.yaml', () => {
  it('loads with the surveys loader, in Spanish and English, with the amount as a parameter', async () => {
    const s = await load();
    expect(s.def.key).toBe('pdm-cash');
    expect(s.def.languages).toEqual(['es', 'en']);
    expect(s.def.settings.parameters).toEqual(['amount', 'currency']);
    for (const i of RCSI_ITEMS) expect(s.byName.get(i.key)).toMatchObject({ type: 'integer', constraint: '. >= 0 and . <= 7' });
  });

  for (const lang of ['es', 'en'] as const) {
    it(`fits every message in at most two GSM-7 SMS segments (${lang})`, async () => {
      const { sms, state } = await converse(lang, FULL);
      expect(state.status).toBe('completed');
      expect(sms.length).toBeGreaterThan(20);
      for (const text of sms) {
        const m = measureSms(text);
        expect({ text, encoding: m.encoding, ok: m.segments <= 2 }).toEqual({ text, encoding: 'GSM-7', ok: true });
      }
    });
  }

  it('stores what the report reads, with the rCSI weighted 1, 2, 1, 1, 3', async () => {
    const { state } = await converse('es', FULL);
    const cols = answerColumns(state.values);
    expect(cols).toMatchObject({
      received: 'yes', amount_told: 'same', on_time: 'yes', problems: JSON.stringify(['wait', 'agent_fee']), asked_to_pay: 'yes', pay_report: 'yes_contact',
      felt_safe: 'yes', respected: 'yes', spending: JSON.stringify(['food', 'rent', 'health']), needs_met: 'most', household_size: 5,
      rcsi_less_preferred: 2, rcsi_borrow: 1, rcsi_fewer_meals: 3, rcsi_smaller_portions: 0, rcsi_adults_less: 1, rcsi: 2 + 2 + 3 + 0 + 3, rcsi_band: '4-18',
      knows_complaint: 'yes', satisfaction: 'satisfied', preferred_modality: 'mobile_money', commented: true,
    });
  });

  it('refuses "none" with another problem, and more than three spending answers', async () => {
    const { sms } = await converse('en', ['1', '1', '1', '1', '1 3']);
    expect(sms.at(-1)).toContain('If you choose 1 (None), do not choose other options.');
    const more = await converse('en', ['1', '1', '1', '1', '1', '2', '1', '1', '1 2 3 4']);
    expect(more.sms.at(-1)).toContain('Choose at most 3, for example 1 2 5.');
  });

  it('offers the complaint route when the transfer was not received, and skips what is about collecting it', async () => {
    const { sms, state } = await converse('en', ['1', '3', '1', '2', '4', '0', '0', '0', '0', '0', '1', '4', 'SKIP']);
    expect(sms.some((t) => t.includes('Would you like us to register a complaint'))).toBe(true);
    expect(sms.some((t) => t.includes('Did you receive the amount you were told?'))).toBe(false);
    expect(sms.some((t) => t.includes('Did you feel safe'))).toBe(false);
    expect(state.status).toBe('completed');
    expect(state.values).toMatchObject({ received: 'not_sure', not_received_complaint: 'yes', asked_to_pay: 'no', preferred_modality: 'card' });
  });

  it('asks for consent before passing an "asked to pay" to the protection team', async () => {
    const { sms, state } = await converse('en', ['1', '1', '1', '1', '1', '1', '2']);
    expect(sms.at(-2)).toContain('May we pass this on, in confidence, to our protection team?');
    expect(state.values).toMatchObject({ asked_to_pay: 'yes', pay_report: 'yes_anonymous' });
  });
});
