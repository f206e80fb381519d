/**
 * The whole opt-in story over the simulator channel, through the real router steps:
 * JOIN → consent prompt → YES → subscription with its consent row; UNIRSE → Spanish; STOP wins
 * over an open session; START needs fresh consent; keyword variants; unknown keywords; buttons.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { currentConsents, consentHistory, hasConsent } from '../../src/contacts/consent.js';
import { createList, ensureDefaults, subscriptionsOf } from '../../src/contacts/lists.js';
import { receive } from '../../src/messaging/inbound.js';
import { enqueue, outboxFor } from '../../src/messaging/outbox.js';
import type { NamedStep } from '../../src/messaging/router.js';
import { ROUTER_STEPS } from '../../src/messaging/steps.js';
import { wording } from '../../src/messaging/texts.js';
import type { ParsedInbound } from '../../src/messaging/types.js';
import { testServices } from '../helpers/services.js';

let s: Awaited<ReturnType<typeof testServices>>;
beforeAll(async () => {
  s = await testServices({ PROGRAMME_NAME: 'Cruz Roja Lima' });
  await ensureDefaults(s.db, s.config);
});
afterAll(() => s?.close());

let seq = 0;
const sms = (from: string, text: string, receivedAt = new Date()): ParsedInbound => ({
  channel: 'simulator', medium: 'sms', providerId: `sim-${++seq}`, from, fromKind: 'phone', kind: 'text', text, receivedAt,
});
const waButton = (from: string, payload: string, title: string): ParsedInbound => ({
  channel: 'whatsapp', medium: 'whatsapp', providerId: `wamid.${++seq}`, from, fromKind: 'phone', kind: 'button', text: title, payload, receivedAt: new Date(),
});
const waText = (from: string, text: string): ParsedInbound => ({
  channel: 'whatsapp', medium: 'whatsapp', providerId: `wamid.${++seq}`, from, fromKind: 'phone', kind: 'text', text, receivedAt: new Date(),
});

async function contactOf(address: string) {
  const row = await s.db.knex('contact_addresses as a').join('contacts as c', 'c.id', 'a.contact_id').where('a.address', address).first('c.*');
  return row as { id: number; status: string; language: string | null; stopped_at: unknown };
}
async function lastReply(contactId: number) {
  const out = await outboxFor(s.db.knex, contactId);
  return out[out.length - 1];
}

describe('JOIN → prompt → YES', () => {
  const phone = '+51987000001';
  it('a plain JOIN on a fresh install asks for consent to the default list, in English', async () => {
    const r = await receive(s, ROUTER_STEPS, [sms(phone, 'join')]);
    expect(r.routes).toEqual(['join-prompt']);
    const c = await contactOf(phone);
    expect(c.language).toBe('en');
    expect(c.status).toBe('active');
    const prompt = await lastReply(c.id);
    expect(prompt.purpose).toBe('reply');
    expect(prompt.channel).toBe('sms');
    expect(prompt.content).toMatchObject({ type: 'text' });
    const body = (prompt.content as { text: string }).text;
    expect(body).toContain('Cruz Roja Lima'); // from whom
    expect(body).toContain('Reply STOP'); // how to stop
    expect(body).toContain('Reply YES'); // how to confirm on SMS
    expect(body).toContain('Novedades de Cruz Roja Lima'); // what
    // Nothing is granted yet.
    expect(await hasConsent(s.db.knex, c.id, 'updates')).toBe(false);
    expect(await subscriptionsOf(s.db.knex, c.id)).toEqual([]);
  });

  it('YES subscribes, with a consent row naming the wording version they saw and the YES message as evidence', async () => {
    const r = await receive(s, ROUTER_STEPS, [sms(phone, 'Yes!')]);
    expect(r.routes).toEqual(['confirmation-yes']);
    const c = await contactOf(phone);
    const subs = await subscriptionsOf(s.db.knex, c.id);
    expect(subs).toHaveLength(1);
    expect(subs[0]).toMatchObject({ listKey: 'updates', status: 'active', channel: 'sms' });
    const ledger = await consentHistory(s.db.knex, c.id);
    expect(ledger).toHaveLength(1);
    const expected = wording('consent-prompt', ['en']);
    expect(ledger[0]).toMatchObject({
      purpose: 'updates', action: 'grant', legalBasis: 'consent', channel: 'sms', method: 'keyword',
      wordingKey: 'consent-prompt', wordingVersion: expected.version, wordingLanguage: 'en',
      evidenceType: 'inbound_message', evidenceRef: String(r.stored[0]), proxy: false,
    });
    expect(subs[0].consentId).toBe(ledger[0].id);
    expect(await hasConsent(s.db.knex, c.id, 'updates')).toBe(true);
    const welcome = await lastReply(c.id);
    expect((welcome.content as { text: string }).text).toMatch(/you will receive the messages/i);
  });

  it('JOIN again answers "already subscribed" and changes nothing', async () => {
    const r = await receive(s, ROUTER_STEPS, [sms(phone, 'JOIN')]);
    expect(r.routes).toEqual(['join-already']);
    const c = await contactOf(phone);
    expect(await consentHistory(s.db.knex, c.id)).toHaveLength(1);
  });

  it('a YES with no open question goes on to the inbox', async () => {
    const r = await receive(s, ROUTER_STEPS, [sms(phone, 'yes')]);
    expect(r.routes).toEqual(['inbox']);
  });
});

describe('languages', () => {
  it('UNIRSE makes the contact Spanish-speaking and the prompt is in Spanish', async () => {
    const phone = '+51987000002';
    const r = await receive(s, ROUTER_STEPS, [sms(phone, 'Unirse')]);
    expect(r.routes).toEqual(['join-prompt']);
    const c = await contactOf(phone);
    expect(c.language).toBe('es');
    const prompt = await lastReply(c.id);
    expect(prompt.language).toBe('es');
    expect((prompt.content as { text: string }).text).toContain('Responda SI');
    await receive(s, ROUTER_STEPS, [sms(phone, 'SÍ')]);
    const ledger = await consentHistory(s.db.knex, c.id);
    expect(ledger[0]).toMatchObject({ wordingLanguage: 'es', wordingVersion: wording('consent-prompt', ['es']).version });
  });

  it('ENTRAR → Portuguese, REJOINDRE → French, and a list keyword alone uses its own language', async () => {
    await receive(s, ROUTER_STEPS, [sms('+51987000003', 'entrar')]);
    expect((await contactOf('+51987000003')).language).toBe('pt');
    await receive(s, ROUTER_STEPS, [sms('+51987000004', 'REJOINDRE')]);
    expect((await contactOf('+51987000004')).language).toBe('fr');
    const r = await receive(s, ROUTER_STEPS, [sms('+51987000005', 'noticias')]);
    expect(r.routes).toEqual(['join-prompt']);
    expect((await contactOf('+51987000005')).language).toBe('es');
  });

  it('a language switch changes the language until the person chooses another', async () => {
    const phone = '+51987000003';
    const r = await receive(s, ROUTER_STEPS, [sms(phone, 'Español')]);
    expect(r.routes).toEqual(['language']);
    expect((await contactOf(phone)).language).toBe('es');
    await receive(s, ROUTER_STEPS, [sms(phone, 'lang fr')]);
    expect((await contactOf(phone)).language).toBe('fr');
    const reply = await lastReply((await contactOf(phone)).id);
    expect((reply.content as { text: string }).text).toContain('français');
    await receive(s, ROUTER_STEPS, [sms(phone, 'LANG xx')]);
    expect((await contactOf(phone)).language).toBe('fr');
  });

  it('HELP answers what the line is and the keywords, in the person’s language', async () => {
    const r = await receive(s, ROUTER_STEPS, [sms('+51987000002', 'ayuda')]);
    expect(r.routes).toEqual(['help']);
    const reply = await lastReply((await contactOf('+51987000002')).id);
    const t = (reply.content as { text: string }).text;
    expect(t).toContain('Cruz Roja Lima');
    expect(t).toContain('BAJA');
    expect(t).toContain('UNIRSE');
  });
});

describe('lists and keywords', () => {
  it('JOIN with an unknown keyword lists the lists that can be joined, and subscribes to nothing', async () => {
    await createList(s.db.knex, { key: 'salud', name: 'Salud y vacunas', keywords: { es: ['SALUD'], en: ['HEALTH'] }, defaultLanguage: 'es', doubleOptIn: false, frequency: { es: 'una vez al mes' } });
    const phone = '+51987000010';
    const r = await receive(s, ROUTER_STEPS, [sms(phone, 'JOIN FOOTBALL')]);
    expect(r.routes).toEqual(['join-unknown']);
    const c = await contactOf(phone);
    const t = ((await lastReply(c.id)).content as { text: string }).text;
    expect(t).toContain('JOIN HEALTH - Salud y vacunas');
    expect(t).toContain('JOIN NEWS');
    expect(t).not.toContain('FOOTBALL'); // their words are not echoed into the outbox
    expect(await subscriptionsOf(s.db.knex, c.id)).toEqual([]);
  });

  it('single opt-in subscribes at once with a keyword consent', async () => {
    const phone = '+51987000011';
    const r = await receive(s, ROUTER_STEPS, [sms(phone, 'unirse salud')]);
    expect(r.routes).toEqual(['join-subscribed']);
    const c = await contactOf(phone);
    const ledger = await consentHistory(s.db.knex, c.id);
    expect(ledger).toHaveLength(1);
    expect(ledger[0]).toMatchObject({ method: 'keyword', wordingKey: 'subscribed', wordingLanguage: 'es', evidenceRef: String(r.stored[0]) });
    expect((await subscriptionsOf(s.db.knex, c.id))[0]).toMatchObject({ listKey: 'salud', status: 'active' });
  });

  it('a prompt answered after it expired is ignored', async () => {
    const phone = '+51987000012';
    const long = new Date(Date.now() - 80 * 3_600_000);
    await receive(s, ROUTER_STEPS, [sms(phone, 'JOIN', long)]);
    const r = await receive(s, ROUTER_STEPS, [sms(phone, 'YES')]);
    expect(r.routes).toEqual(['inbox']);
    expect(await subscriptionsOf(s.db.knex, (await contactOf(phone)).id)).toEqual([]);
  });

  it('NO declines: nothing granted, a short reply', async () => {
    const phone = '+51987000013';
    await receive(s, ROUTER_STEPS, [sms(phone, 'JOIN')]);
    const r = await receive(s, ROUTER_STEPS, [sms(phone, 'no')]);
    expect(r.routes).toEqual(['confirmation-no']);
    const c = await contactOf(phone);
    expect(await consentHistory(s.db.knex, c.id)).toEqual([]);
    const pending = await s.db.knex('pending_confirmations').where('contact_id', c.id).first();
    expect(pending.answer).toBe('no');
  });
});

describe('WhatsApp buttons', () => {
  it('the prompt offers Yes/No buttons and tapping Yes subscribes with method button', async () => {
    const phone = '+51987000020';
    await receive(s, ROUTER_STEPS, [waText(phone, 'JOIN NEWS')]);
    const c = await contactOf(phone);
    const prompt = await lastReply(c.id);
    expect(prompt.channel).toBe('whatsapp');
    expect(prompt.content?.type).toBe('buttons');
    const content = prompt.content as { type: 'buttons'; text: string; buttons: { id: string; title: string }[] };
    expect(content.buttons.map((b) => b.title)).toEqual(['Yes', 'No']);
    expect(content.text).not.toContain('Reply YES');
    const r = await receive(s, ROUTER_STEPS, [waButton(phone, content.buttons[0].id, 'Yes')]);
    expect(r.routes).toEqual(['confirmation-yes']);
    const ledger = await consentHistory(s.db.knex, c.id);
    expect(ledger[0]).toMatchObject({ method: 'button', channel: 'whatsapp', evidenceRef: String(r.stored[0]) });
  });
});

describe('STOP', () => {
  const phone = '+51987000030';
  // A later step that would otherwise take every message: an open survey session.
  const sessionSeen: string[] = [];
  const sessionStep: NamedStep = {
    stage: 'session', name: 'fake-survey', step: async (ctx) => {
      sessionSeen.push(ctx.message.text ?? '');
      return 'survey';
    },
  };
  const steps = [...ROUTER_STEPS, sessionStep];

  it('wins over an open survey session: subscriptions end, consent withdrawn, queue cancelled, one confirmation', async () => {
    await receive(s, steps, [sms(phone, 'JOIN')]);
    await receive(s, steps, [sms(phone, 'YES')]);
    await receive(s, steps, [sms(phone, 'JOIN SALUD')]);
    const c = await contactOf(phone);
    expect(await hasConsent(s.db.knex, c.id, 'updates')).toBe(true);
    // The survey holds the conversation…
    expect((await receive(s, steps, [sms(phone, 'mi respuesta es 3')])).routes).toEqual(['survey']);
    // …and a broadcast and a survey question are waiting in the outbox.
    const queued = [
      await enqueue(s.db.knex, { contactId: c.id, purpose: 'updates', content: { type: 'text', text: 'news' } }),
      await enqueue(s.db.knex, { contactId: c.id, purpose: 'surveys', content: { type: 'text', text: 'question 2' } }),
    ];
    const r = await receive(s, steps, [sms(phone, 'Stop')]);
    expect(r.routes).toEqual(['stop']);
    expect(sessionSeen).toEqual(['mi respuesta es 3']);
    const after = await contactOf(phone);
    expect(after.status).toBe('stopped');
    expect(after.stopped_at).not.toBeNull();
    const subs = await subscriptionsOf(s.db.knex, c.id);
    expect(subs.map((x) => [x.listKey, x.status, x.endedReason]).sort()).toEqual([['salud', 'ended', 'stop'], ['updates', 'ended', 'stop']]);
    expect((await currentConsents(s.db.knex, c.id)).every((x) => !x.granted)).toBe(true);
    const ledger = await consentHistory(s.db.knex, c.id);
    const withdrawals = ledger.filter((x) => x.action === 'withdraw');
    expect(withdrawals).toHaveLength(1); // both lists share the purpose "updates"
    expect(withdrawals[0]).toMatchObject({ method: 'keyword', evidenceRef: String(r.stored[0]), wordingKey: 'stop-confirmation' });
    const out = await outboxFor(s.db.knex, c.id);
    for (const id of queued) expect(out.find((o) => o.id === id)?.status).toBe('cancelled');
    const stillQueued = out.filter((o) => o.status === "queued" && o.id > Math.max(...queued));
    expect(stillQueued).toHaveLength(1);
    expect((stillQueued[0].content as { text: string }).text).toContain('START');
  });

  it('recognises the keyword in any case and accent, alone; not inside a sentence', async () => {
    const variants = ['STOP', 'stop', ' Stop. ', 'BAJA', 'baja', 'Parar', 'SAIR', 'ARRÊT', 'arret', 'Unsubscribe', 'CANCEL', 'end', 'QUIT', 'STOPALL', 'opt-out', 'REVOKE'];
    let n = 100;
    for (const v of variants) {
      const phone2 = `+519870001${String(n++).padStart(2, '0')}`;
      const r = await receive(s, ROUTER_STEPS, [sms(phone2, v)]);
      expect(r.routes, v).toEqual(['stop']);
      expect((await contactOf(phone2)).status, v).toBe('stopped');
    }
    for (const v of ['please stop sending', 'stop it now', 'no baja']) {
      const phone3 = `+519870002${String(n++).padStart(2, '0')}`;
      const r = await receive(s, ROUTER_STEPS, [sms(phone3, v)]);
      expect(r.routes, v).not.toEqual(['stop']);
      expect((await contactOf(phone3)).status, v).toBe('active');
    }
  });

  it('START needs fresh consent: a prompt first, YES re-activates with new consent rows', async () => {
    const c = await contactOf(phone);
    const before = (await consentHistory(s.db.knex, c.id)).length;
    const r = await receive(s, ROUTER_STEPS, [sms(phone, 'START')]);
    expect(r.routes).toEqual(['start']);
    expect((await contactOf(phone)).status).toBe('stopped');
    expect(await hasConsent(s.db.knex, c.id, 'updates')).toBe(false);
    const prompt = await lastReply(c.id);
    expect((prompt.content as { text: string }).text).toContain('Reply YES');
    const yes = await receive(s, ROUTER_STEPS, [sms(phone, 'YES')]);
    expect(yes.routes).toEqual(['confirmation-yes']);
    expect((await contactOf(phone)).status).toBe('active');
    const ledger = await consentHistory(s.db.knex, c.id);
    expect(ledger.length).toBe(before + 1);
    expect(ledger[ledger.length - 1]).toMatchObject({ action: 'grant', wordingKey: 'consent-prompt-restart', evidenceRef: String(yes.stored[0]) });
    const subs = await subscriptionsOf(s.db.knex, c.id);
    expect(subs.filter((x) => x.status === 'active').map((x) => x.listKey).sort()).toEqual(['salud', 'updates']);
  });

  it('a YES that was never asked does not bring a stopped contact back', async () => {
    const phone4 = '+51987000040';
    await receive(s, ROUTER_STEPS, [sms(phone4, 'JOIN')]);
    await receive(s, ROUTER_STEPS, [sms(phone4, 'STOP')]); // closes the open prompt too
    const r = await receive(s, ROUTER_STEPS, [sms(phone4, 'YES')]);
    expect(r.routes).toEqual(['inbox']);
    expect((await contactOf(phone4)).status).toBe('stopped');
  });
});
