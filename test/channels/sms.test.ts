import { describe, expect, it } from 'vitest';
import { SegmentedMessage } from 'sms-segments-calculator';
import { gsmFriendly, measureSms, numberedChoice, renderSms, replyPrompt } from '../../src/channels/sms.js';

describe('SMS encoding (PROVIDERS.md facts)', () => {
  it.each([
    // text, encoding, units, segments
    ['Hola', 'GSM-7', 4, 1],
    ['ñ Ñ ¿ ¡ é É ü', 'GSM-7', 13, 1],
    ['¿Dónde está?', 'UCS-2', 12, 1], // ó forces UCS-2
    ['más', 'UCS-2', 3, 1],
    ['sí', 'UCS-2', 2, 1],
    ['aquí', 'UCS-2', 4, 1],
    ['según', 'UCS-2', 5, 1],
    ['ação', 'UCS-2', 4, 1], // Portuguese ç ã
    ['você', 'UCS-2', 4, 1],
    ['€', 'GSM-7', 2, 1],
    ['[]{}~^\\|', 'GSM-7', 16, 1],
    ['\f', 'GSM-7', 2, 1],
    ['a'.repeat(160), 'GSM-7', 160, 1],
    ['a'.repeat(161), 'GSM-7', 161, 2],
    ['a'.repeat(306), 'GSM-7', 306, 2],
    ['a'.repeat(307), 'GSM-7', 307, 3],
    ['€'.repeat(80), 'GSM-7', 160, 1],
    ['€'.repeat(81), 'GSM-7', 162, 2],
    // an escape pair is never split: 152 + € does not fit 153, so € opens part two
    ['a'.repeat(152) + '€' + 'a'.repeat(152), 'GSM-7', 306, 3],
    ['á'.repeat(70), 'UCS-2', 70, 1],
    ['á'.repeat(71), 'UCS-2', 71, 2],
    ['á'.repeat(134), 'UCS-2', 134, 2],
    ['á'.repeat(135), 'UCS-2', 135, 3],
    // a surrogate pair is never split
    ['á'.repeat(66) + '😀' + 'á'.repeat(66), 'UCS-2', 134, 3],
  ])('%j is %s, %i units, %i segment(s)', (text, encoding, units, segments) => {
    const m = measureSms(text);
    expect(m.encoding).toBe(encoding);
    expect(m.units).toBe(units);
    expect(m.segments).toBe(segments);
  });

  it('names the characters that force UCS-2', () => {
    expect(measureSms('Hola, ¿cómo está? ñ').nonGsm).toEqual(['ó', 'á']);
  });

  it('agrees with Twilio\'s sms-segments-calculator on 3,000 random texts', () => {
    const alphabet = [...'abcdefghijklmnopqrstuvwxyz ABC.,!?0123456789ñÑ¿¡éÉüàèù€[]{}~^\\|\n', 'á', 'ó', 'ç', 'ã', '😀', '“', '’', '—'];
    let seed = 42;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
    for (let k = 0; k < 3000; k++) {
      const unicode = rand(3) === 0;
      const pool = unicode ? alphabet : alphabet.slice(0, alphabet.length - 7);
      let text = '';
      const len = rand(480);
      for (let i = 0; i < len; i++) text += pool[rand(pool.length)];
      const ours = measureSms(text);
      const lib = new SegmentedMessage(text);
      expect({ text, encoding: ours.encoding, segments: ours.segments }).toEqual({ text, encoding: lib.encodingName, segments: lib.segmentsCount });
    }
  });
});

describe('SMS rendering', () => {
  it('replaces typographic look-alikes only when that keeps the message in GSM-7', () => {
    expect(gsmFriendly('“Hola” — it’s here…')).toBe('"Hola" - it\'s here...');
    expect(gsmFriendly('“Atención” — sí')).toBe('“Atención” — sí'); // UCS-2 anyway: keep the original
  });

  it('turns buttons into numbered options with the reply prompt in the contact\'s language', () => {
    const content = { type: 'buttons' as const, text: 'Do you want to join?', buttons: [{ id: 'y', title: 'Yes' }, { id: 'n', title: 'No' }, { id: 'l', title: 'Later' }] };
    expect(renderSms(content, 'en')).toBe('Do you want to join?\n\n1. Yes\n2. No\n3. Later\n\nReply 1, 2 or 3');
    expect(renderSms({ ...content, buttons: content.buttons.slice(0, 2) }, 'es')).toContain('Responda 1 o 2');
    expect(replyPrompt(10, 'es')).toBe('Responda del 1 al 10');
    expect(replyPrompt(1, 'en')).toBe('Reply 1');
  });

  it('drops list descriptions and blank lines when they would cost an extra segment', () => {
    const rows = Array.from({ length: 5 }, (_, i) => ({ id: `r${i}`, title: `Option ${i + 1}`, description: 'A longer description of this option' }));
    const rich = renderSms({ type: 'list', text: 'Pick one', button: 'Options', rows: rows.slice(0, 2) }, 'en');
    expect(rich).toContain('1. Option 1 - A longer description');
    const lean = renderSms({ type: 'list', text: 'Pick one', button: 'Options', rows }, 'en');
    expect(lean).not.toContain('description');
    expect(measureSms(lean).segments).toBe(1);
    expect(lean).toContain('Reply 1 to 5');
  });

  it('sends a template\'s SMS text', () => {
    expect(renderSms({ type: 'template', name: 'update', language: 'es', params: ['x'], text: 'Hola x' })).toBe('Hola x');
  });

  it('reads a numbered or titled reply back to the option id', () => {
    const content = { type: 'buttons' as const, text: '?', buttons: [{ id: 'yes', title: 'Sí' }, { id: 'no', title: 'No' }] };
    expect(numberedChoice(content, ' 1 ')).toBe('yes');
    expect(numberedChoice(content, '2.')).toBe('no');
    expect(numberedChoice(content, 'si')).toBe('yes');
    expect(numberedChoice(content, '3')).toBeNull();
    expect(numberedChoice(content, 'maybe')).toBeNull();
  });
});
