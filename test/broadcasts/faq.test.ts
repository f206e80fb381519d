/**
 * FAQ auto-replies: the router's 'faq' stage answers a question containing a keyword with the key
 * message's approved version, in the person's language, on the channel they wrote on; reserved
 * words and taken keywords are refused; STOP still wins; an unapproved message answers nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpError } from '../../src/http/errors.js';
import { receive } from '../../src/messaging/inbound.js';
import { outboxFor } from '../../src/messaging/outbox.js';
import { ROUTER_STEPS } from '../../src/messaging/steps.js';
import type { ParsedInbound } from '../../src/messaging/types.js';
import { createFaq, updateFaq } from '../../src/broadcasts/faq.js';
import { createMessage } from '../../src/broadcasts/messages.js';
import { testServices } from '../helpers/services.js';
import { approvedMessage, staff, type Staff } from './fixtures.js';

let s: Awaited<ReturnType<typeof testServices>>;
let st: Staff;
let seq = 0;
beforeAll(async () => {
  s = await testServices({ DEFAULT_LANGUAGE: 'es' });
  st = await staff(s.db);
});
afterAll(() => s?.close());

function msg(from: string, text: string, medium: 'whatsapp' | 'sms' = 'whatsapp'): ParsedInbound {
  seq++;
  return { channel: medium === 'whatsapp' ? 'whatsapp' : 'twilio', medium, providerId: `faq-${seq}`, from, fromKind: 'phone', kind: 'text', text, receivedAt: new Date() };
}

async function contactOf(phone: string): Promise<number> {
  return (await s.db.knex('contact_addresses').where('address', phone).first('contact_id')).contact_id;
}

describe('FAQ', () => {
  it('answers a question that contains a keyword, in the language of the keyword for a new contact and in their own language after', async () => {
    const m = await approvedMessage(s.db, st, {
      es: { text: 'Vacunación gratuita los sábados en el centro de salud.' },
      en: { text: 'Free vaccination on Saturdays at the health centre.' },
    }, { media: { kind: 'image', url: 'https://example.org/mapa.png' } });
    await createFaq(s.db, st.author, { messageId: m.id, keywords: { es: ['vacuna', 'vacuno', 'vacunación'], en: ['vaccine'] } });

    const r1 = await receive(s, ROUTER_STEPS, [msg('+51911100001', '¿Dónde me VACUNO?')]);
    expect(r1.routes).toEqual(['faq']);
    const c1 = await contactOf('+51911100001');
    const out1 = await outboxFor(s.db.knex, c1);
    expect(out1).toHaveLength(1);
    expect(out1[0]).toMatchObject({ purpose: 'reply', language: 'es', channel: 'whatsapp', content: { type: 'text', text: 'Vacunación gratuita los sábados en el centro de salud.', media: { kind: 'image', url: 'https://example.org/mapa.png' } } });

    const r2 = await receive(s, ROUTER_STEPS, [msg('+51911100002', 'where can I get the vaccine please', 'sms')]);
    expect(r2.routes).toEqual(['faq']);
    const out2 = await outboxFor(s.db.knex, await contactOf('+51911100002'));
    expect(out2[0]).toMatchObject({ language: 'en', channel: 'sms', content: { type: 'text', text: 'Free vaccination on Saturdays at the health centre.' } });
    expect(out2[0].content).not.toHaveProperty('media');

    // A Spanish speaker who writes the English keyword still gets Spanish.
    await s.db.knex('contacts').where('id', c1).update({ language: 'es' });
    await receive(s, ROUTER_STEPS, [msg('+51911100001', 'vaccine?')]);
    expect((await outboxFor(s.db.knex, c1))[1]).toMatchObject({ language: 'es' });
  });

  it('passes on what matches no keyword (to the inbox), a word inside another word, and keywords of an unapproved message', async () => {
    const draft = await createMessage(s.db, st.author, { key: 'kits', title: 'Kits', topic: 'general', variants: { es: { text: 'Kits el lunes' } } });
    await createFaq(s.db, st.author, { messageId: draft.id, keywords: { es: ['kit'] } });
    const r = await receive(s, ROUTER_STEPS, [msg('+51911100003', 'hola, ¿cuándo entregan el kit?'), msg('+51911100003', 'necesito vacunarme')]);
    expect(r.routes).toEqual(['inbox', 'inbox']);
  });

  it('refuses reserved words and keywords another entry answers, naming the language; STOP still stops', async () => {
    const m = await approvedMessage(s.db, st, { es: { text: 'Bonos en efectivo: llame al 0800.' } });
    const reserved = await createFaq(s.db, st.author, { messageId: m.id, keywords: { es: ['bono', 'baja'] } }).catch((e: HttpError) => e);
    expect(reserved).toBeInstanceOf(HttpError);
    expect((reserved as HttpError).details?.['keywords.es']).toContain('BAJA is a reserved word');
    const taken = await createFaq(s.db, st.author, { messageId: m.id, keywords: { es: ['bono', 'Vacuna'] } }).catch((e: HttpError) => e);
    expect((taken as HttpError).details?.['keywords.es']).toMatch(/VACUNA already answers FAQ entry \d+/);
    const entry = await createFaq(s.db, st.author, { messageId: m.id, keywords: { es: ['bono'] } });

    const r = await receive(s, ROUTER_STEPS, [msg('+51911100004', 'STOP')]);
    expect(r.routes).toEqual(['stop']);
    // Deactivated: no longer answers.
    await updateFaq(s.db, st.author, entry.id, { active: false });
    const again = await receive(s, ROUTER_STEPS, [msg('+51911100005', 'el bono cuando')]);
    expect(again.routes).toEqual(['inbox']);
  });
});
