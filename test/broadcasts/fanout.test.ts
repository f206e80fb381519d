/**
 * Fan-out and preview: who gets a row (one per contact however many lists), who does not and why,
 * the language each gets and the fallbacks, quiet hours in the contact's own time zone, pause /
 * resume / cancel against the dispatcher's claim, and that the preview counts exactly what the
 * fan-out inserts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toDate, toInt } from '../../src/db/values.js';
import { claimBatch } from '../../src/messaging/dispatcher-sql.js';
import { cancelBroadcast, broadcastStats, createBroadcast, fanOut, pauseBroadcast, resumeBroadcast, type BroadcastInput } from '../../src/broadcasts/broadcasts.js';
import { previewBroadcast } from '../../src/broadcasts/preview.js';
import { createSegment } from '../../src/contacts/segments/index.js';
import { testServices } from '../helpers/services.js';
import { addList, addPeople, addPerson, approvedMessage, staff, type Staff } from './fixtures.js';

let s: Awaited<ReturnType<typeof testServices>>;
let st: Staff;
beforeAll(async () => {
  s = await testServices({ DEFAULT_LANGUAGE: 'es', DEFAULT_TIMEZONE: 'America/Lima' });
  st = await staff(s.db);
});
afterAll(() => s?.close());

const rowsOf = (broadcastId: number) => s.db.knex('outbox').where('broadcast_id', broadcastId).orderBy('contact_id');
let n = 0;
async function broadcast(input: Partial<BroadcastInput> & Pick<BroadcastInput, 'messageId'>) {
  n++;
  return createBroadcast(s.db, s.config, st.author, { name: `b${n}`, quietHours: null, ...input });
}

describe('audience', () => {
  it('a contact in two lists gets one message; stopped, unconsented, addressless and recently messaged contacts get none', async () => {
    const a = await addList(s.db.knex, 'aud-a');
    const b = await addList(s.db.knex, 'aud-b');
    const both = await addPerson(s.db.knex, { lists: [a, b] });
    const onlyA = await addPerson(s.db.knex, { lists: [a] });
    const stopped = await addPerson(s.db.knex, { lists: [a], status: 'stopped' });
    const noConsent = await addPerson(s.db.knex, { lists: [b], consents: ['surveys'] });
    const smsOnly = await addPerson(s.db.knex, { lists: [a], channels: ['sms'] });
    const recent = await addPerson(s.db.knex, { lists: [b] });
    const m = await approvedMessage(s.db, st, { es: { text: 'Hola' } });

    // `recent` got another broadcast two hours ago.
    const earlier = await broadcast({ messageId: m.id, lists: [b] });
    await fanOut(s.db, s.config, earlier.id, { now: new Date(Date.now() - 2 * 3_600_000) });
    expect((await rowsOf(earlier.id)).map((r) => toInt(r.contact_id))).toEqual([both.id, recent.id]);

    const main = await broadcast({ messageId: m.id, lists: [a, b], excludeRecentHours: 6 });
    const p = await previewBroadcast(s.db, s.config, main.id);
    const inserted = await fanOut(s.db, s.config, main.id);
    // `both` was also messaged by `earlier`: excluded with `recent` for the same reason.
    expect((await rowsOf(main.id)).map((r) => toInt(r.contact_id))).toEqual([onlyA.id, smsOnly.id]);
    expect(inserted).toBe(2);
    expect(p.recipients).toBe(2);
    expect(p.excluded).toEqual({ notActive: 1, noConsent: 1, noAddress: 0, recentlyMessaged: 2 });
    expect([stopped.id, noConsent.id].every((id) => id > 0)).toBe(true);

    // Without the exclusion, the contact on both lists is there once (the unique (broadcast, contact) holds too).
    const again = await broadcast({ messageId: m.id, lists: [a, b] });
    await fanOut(s.db, s.config, again.id);
    const ids = (await rowsOf(again.id)).map((r) => toInt(r.contact_id));
    expect(ids).toEqual([both.id, onlyA.id, smsOnly.id, recent.id]);
    expect(new Set(ids).size).toBe(ids.length);
    // A second fan-out of the same broadcast is refused and adds nothing.
    await expect(fanOut(s.db, s.config, again.id)).rejects.toThrow(/sending/);
    expect((await rowsOf(again.id)).length).toBe(4);

    // WhatsApp only leaves out the SMS-only contact; SMS only fixes the channel.
    const wa = await broadcast({ messageId: m.id, lists: [a], channelPolicy: 'whatsapp_only' });
    await fanOut(s.db, s.config, wa.id);
    expect((await rowsOf(wa.id)).map((r) => [toInt(r.contact_id), r.channel])).toEqual([[both.id, 'whatsapp'], [onlyA.id, 'whatsapp']]);
    const sms = await broadcast({ messageId: m.id, lists: [a], channelPolicy: 'sms_only' });
    await fanOut(s.db, s.config, sms.id);
    expect((await rowsOf(sms.id)).map((r) => r.channel)).toEqual(['sms', 'sms', 'sms']);
    for (const r of await rowsOf(sms.id)) expect(r).toMatchObject({ purpose: 'updates', status: 'queued', content: null });
    expect(toInt((await rowsOf(sms.id))[0].priority)).toBe(3);
  });
});

describe('segment audience', () => {
  it('sends to a saved segment alone, or to those of the lists who are also in the segment, and records the query it used', async () => {
    const l = await addList(s.db.knex, 'seg-list');
    const enOnList = await addPerson(s.db.knex, { lists: [l], language: 'en' });
    await addPerson(s.db.knex, { lists: [l], language: 'es' });
    const enOffList = await addPerson(s.db.knex, { language: 'en' });
    const seg = await createSegment(s.db, st.author, { key: 'english-speakers', name: 'English speakers', query: 'language = "en"' });
    const m = await approvedMessage(s.db, st, { en: { text: 'Hello' } });
    const segOnly = await broadcast({ messageId: m.id, segmentId: seg.id });
    await fanOut(s.db, s.config, segOnly.id);
    const ids = (await rowsOf(segOnly.id)).map((r) => toInt(r.contact_id));
    expect(ids).toEqual(expect.arrayContaining([enOnList.id, enOffList.id]));
    expect((await s.db.knex('broadcasts').where('id', segOnly.id).first()).audience_query).toBe('language = "en"');
    const both = await broadcast({ messageId: m.id, segmentId: seg.id, lists: [l] });
    await fanOut(s.db, s.config, both.id);
    expect((await rowsOf(both.id)).map((r) => toInt(r.contact_id))).toEqual([enOnList.id]);
  });
});

describe('language', () => {
  it("takes the contact's language (or its base), else the list's default, else the programme's, and counts the fallbacks", async () => {
    const en = await addList(s.db.knex, 'lang-en', 'en');
    const qu = await addList(s.db.knex, 'lang-qu', 'qu');
    const spanish = await addPerson(s.db.knex, { lists: [en], language: 'es-PE' });
    const french = await addPerson(s.db.knex, { lists: [en], language: 'fr' });
    const quechua = await addPerson(s.db.knex, { lists: [qu], language: 'qu' });
    const unknown = await addPerson(s.db.knex, { lists: [qu], language: null });
    const english = await addPerson(s.db.knex, { lists: [en, qu], language: 'en' });
    const m = await approvedMessage(s.db, st, { es: { text: 'Hola {{name}}' }, en: { text: 'Hello {{name}}' } });
    const b = await broadcast({ messageId: m.id, lists: [en, qu] });
    const p = await previewBroadcast(s.db, s.config, b.id);
    await fanOut(s.db, s.config, b.id);
    const lang = Object.fromEntries((await rowsOf(b.id)).map((r) => [toInt(r.contact_id), r.language]));
    expect(lang).toEqual({ [spanish.id]: 'es', [french.id]: 'en', [quechua.id]: 'es', [unknown.id]: 'es', [english.id]: 'en' });
    const by = Object.fromEntries(p.byLanguage.map((l) => [l.language, l]));
    expect(by.es).toMatchObject({ recipients: 3, fromContact: 1, fromList: 0, fromProgramme: 2 });
    expect(by.en).toMatchObject({ recipients: 2, fromContact: 1, fromList: 1, fromProgramme: 0 });
    expect(p.languageFallback).toBe(3);
  });
});

describe('quiet hours', () => {
  it("holds a Lima contact's message at 21:00 local time and releases it at 08:00; a Tokyo contact's goes at once", async () => {
    const l = await addList(s.db.knex, 'quiet');
    const lima = await addPerson(s.db.knex, { lists: [l], timezone: 'America/Lima' });
    const tokyo = await addPerson(s.db.knex, { lists: [l], timezone: 'Asia/Tokyo' });
    const noZone = await addPerson(s.db.knex, { lists: [l], timezone: null }); // the programme's zone: Lima
    const m = await approvedMessage(s.db, st, { es: { text: 'Buenas noches' } });
    const b = await createBroadcast(s.db, s.config, st.author, { name: 'quiet', messageId: m.id, lists: [l] }); // default 20:00–08:00
    expect(b.quietHours).toEqual({ start: '20:00', end: '08:00' });

    // 21:00 in Lima (UTC−5) is 02:00 UTC the next day, and 11:00 in Tokyo.
    const at2100Lima = new Date('2026-03-11T02:00:00Z');
    const p = await previewBroadcast(s.db, s.config, b.id, { now: at2100Lima });
    await fanOut(s.db, s.config, b.id, { now: at2100Lima });
    const rows = Object.fromEntries((await rowsOf(b.id)).map((r) => [toInt(r.contact_id), r]));
    const eightLima = new Date('2026-03-11T13:00:00Z');
    expect(toDate(rows[lima.id].not_before).toISOString()).toBe(eightLima.toISOString());
    expect(toDate(rows[noZone.id].not_before).toISOString()).toBe(eightLima.toISOString());
    expect(rows[tokyo.id].not_before).toBeNull();
    expect(p.quiet).toEqual({ held: 2, until: [{ at: eightLima.toISOString(), recipients: 2 }] });

    // The dispatcher's claim, with its clock injected: at 21:00 only Tokyo is due; at 07:59 Lima still
    // waits; at 08:00 Lima time both Lima messages go.
    const claim = async (at: Date) => {
      const got = await claimBatch(s.db, 'test', 100, at);
      await s.db.knex('outbox').whereIn('id', got.map((r) => r.id)).update({ status: 'sent', claimed_by: null });
      return got.filter((r) => r.broadcastId === b.id).map((r) => r.contactId).sort((x, y) => x - y);
    };
    expect(await claim(at2100Lima)).toEqual([tokyo.id]);
    expect(await claim(new Date(eightLima.getTime() - 60_000))).toEqual([]);
    expect(await claim(eightLima)).toEqual([lima.id, noZone.id]);
  });

  it("holds everyone in the programme's time zone when no contact has one of their own", async () => {
    const local = await testServices({ DEFAULT_TIMEZONE: 'America/Lima' });
    try {
      const s2 = await staff(local.db, '-tz');
      const l = await addList(local.db.knex, 'no-zones');
      await addPeople(local.db.knex, 3, { lists: [l], timezone: null });
      const m = await approvedMessage(local.db, s2, { es: { text: 'Hola' } });
      const b = await createBroadcast(local.db, local.config, s2.author, { name: 'nz', messageId: m.id, lists: [l] });
      const at = new Date('2026-03-11T02:00:00Z'); // 21:00 in Lima
      const p = await previewBroadcast(local.db, local.config, b.id, { now: at });
      await fanOut(local.db, local.config, b.id, { now: at });
      const rows = await local.db.knex('outbox').where('broadcast_id', b.id);
      expect(rows.map((r: { not_before: unknown }) => toDate(r.not_before).toISOString())).toEqual(Array(3).fill('2026-03-11T13:00:00.000Z'));
      expect(p.quiet.held).toBe(3);
    } finally {
      await local.close();
    }
  });

  it('holds nobody outside quiet hours, and nobody when the broadcast has none', async () => {
    const l = await addList(s.db.knex, 'day');
    await addPerson(s.db.knex, { lists: [l], timezone: 'America/Lima' });
    const m = await approvedMessage(s.db, st, { es: { text: 'Buenos días' } });
    const day = await createBroadcast(s.db, s.config, st.author, { name: 'day', messageId: m.id, lists: [l] });
    await fanOut(s.db, s.config, day.id, { now: new Date('2026-03-11T15:00:00Z') }); // 10:00 in Lima
    expect((await rowsOf(day.id))[0].not_before).toBeNull();
    const off = await createBroadcast(s.db, s.config, st.author, { name: 'off', messageId: m.id, lists: [l], quietHours: null });
    await fanOut(s.db, s.config, off.id, { now: new Date('2026-03-11T04:00:00Z') }); // 23:00 in Lima
    expect((await rowsOf(off.id))[0].not_before).toBeNull();
  });
});

describe('pause, resume, cancel', () => {
  it('pause holds every unclaimed row from the dispatcher, resume gives them back, cancel ends them', async () => {
    const l = await addList(s.db.knex, 'prc');
    for (let i = 0; i < 5; i++) await addPerson(s.db.knex, { lists: [l] });
    const m = await approvedMessage(s.db, st, { es: { text: 'Aviso' } });
    const b = await broadcast({ messageId: m.id, lists: [l] });
    await fanOut(s.db, s.config, b.id);
    await s.db.knex('outbox').where('status', 'queued').whereNot('broadcast_id', b.id).update({ status: 'cancelled' });

    const paused = await pauseBroadcast(s.db, st.author, b.id);
    expect(paused.held).toBe(5);
    expect(paused.broadcast.status).toBe('paused');
    expect(await claimBatch(s.db, 'test', 100)).toEqual([]);
    expect((await broadcastStats(s.db.knex, b.id)).held).toBe(5);

    const resumed = await resumeBroadcast(s.db, st.author, b.id);
    expect(resumed).toMatchObject({ released: 5, broadcast: { status: 'sending' } });
    const two = await claimBatch(s.db, 'test', 2);
    expect(two).toHaveLength(2);
    await s.db.knex('outbox').whereIn('id', two.map((r) => r.id)).update({ status: 'sent', claimed_by: null });

    const cancelled = await cancelBroadcast(s.db, st.author, b.id);
    expect(cancelled).toMatchObject({ cancelled: 3, broadcast: { status: 'cancelled' } });
    expect(await claimBatch(s.db, 'test', 100)).toEqual([]);
    const stats = await broadcastStats(s.db.knex, b.id);
    expect(stats).toMatchObject({ total: 5, sent: 2, cancelled: 3, queued: 0, held: 0 });
    await expect(resumeBroadcast(s.db, st.author, b.id)).rejects.toThrow(/cancelled/);
    await expect(pauseBroadcast(s.db, st.author, b.id)).rejects.toThrow(/cancelled/);
  });
});

describe('preview equals fan-out', () => {
  it('counts exactly the rows the fan-out inserts, by language and quiet hours, over a mixed audience', async () => {
    const es = await addList(s.db.knex, 'mix-es', 'es');
    const en = await addList(s.db.knex, 'mix-en', 'en');
    const langs = ['es', 'es-PE', 'en', 'fr', null, 'pt-BR'];
    const zones = ['America/Lima', 'Europe/Madrid', 'Asia/Tokyo', null, 'America/Bogota'];
    for (let i = 0; i < 60; i++) {
      await addPerson(s.db.knex, {
        lists: i % 3 === 0 ? [es, en] : i % 3 === 1 ? [es] : [en],
        language: langs[i % langs.length],
        timezone: zones[i % zones.length],
        status: i % 17 === 0 ? 'stopped' : 'active',
        consents: i % 13 === 0 ? [] : ['updates'],
        channels: i % 4 === 0 ? ['sms'] : i % 4 === 1 ? ['whatsapp'] : ['whatsapp', 'sms'],
        lastInbound: i % 2 === 0 ? null : new Date(),
      });
    }
    const m = await approvedMessage(s.db, st, { es: { text: 'Hola {{name}}, hay reparto de kits.', template: { name: 'reparto', language: 'es', params: ['{{name}}'] } }, en: { text: 'Hello {{name}}, kits are handed out.' } });
    const b = await createBroadcast(s.db, s.config, st.author, { name: 'mix', messageId: m.id, lists: [es, en], channelPolicy: 'whatsapp_then_sms', footer: { es: 'Nunca te pediremos dinero.', en: 'We will never ask you for money.' } });
    const at = new Date('2026-03-11T01:30:00Z'); // 20:30 in Lima and Bogotá, 02:30 in Madrid, 10:30 in Tokyo
    const p = await previewBroadcast(s.db, s.config, b.id, { now: at });
    const inserted = await fanOut(s.db, s.config, b.id, { now: at });
    const rows = await rowsOf(b.id);
    expect(inserted).toBe(rows.length);
    expect(p.recipients).toBe(rows.length);
    const byLanguage: Record<string, number> = {};
    for (const r of rows) byLanguage[r.language] = (byLanguage[r.language] ?? 0) + 1;
    expect(Object.fromEntries(p.byLanguage.map((l) => [l.language, l.recipients]))).toEqual(byLanguage);
    expect(p.quiet.held).toBe(rows.filter((r) => r.not_before !== null).length);
    expect(p.quiet.held).toBeGreaterThan(0);
    expect(p.quiet.held).toBeLessThan(rows.length);
    const split = p.byChannel.whatsapp + p.byChannel.whatsappTemplate + p.byChannel.sms + p.byChannel.unreachable;
    expect(split).toBe(p.recipients);
    expect(p.samples.map((x) => x.language).sort()).toEqual(Object.keys(byLanguage).sort());
    const esSample = p.samples.find((x) => x.language === 'es')!;
    expect(esSample.sms.text).toMatch(/^Hola .+, hay reparto de kits\.\n\nNunca te pediremos dinero\.$/);
    expect(esSample.whatsappTemplate?.name).toBe('reparto');
  });

  it('prices SMS segments and template messages and estimates the time from the rates, the tier and quiet hours', async () => {
    const local = await testServices({ SMS_PRICE_PER_SEGMENT: '0.05', WHATSAPP_PRICE_PER_MESSAGE: '0.02', PRICE_CURRENCY: 'PEN', WHATSAPP_MESSAGING_TIER: '250', WHATSAPP_RATE_PER_SECOND: '10', TWILIO_RATE_PER_SECOND: '2', QUIET_HOURS: 'off' });
    try {
      const s2 = await staff(local.db, '-price');
      const l = await addList(local.db.knex, 'price');
      const old = new Date(Date.now() - 3 * 86_400_000);
      await addPeople(local.db.knex, 300, { lists: [l], channels: ['whatsapp'], lastInbound: old }); // template
      await addPeople(local.db.knex, 20, { lists: [l], channels: ['sms'] }); // SMS
      // 170 characters of GSM-7: two segments.
      const m = await approvedMessage(local.db, s2, { es: { text: 'A'.repeat(170), template: { name: 'aviso', language: 'es', params: [] } } });
      const b = await createBroadcast(local.db, local.config, s2.author, { name: 'price', messageId: m.id, lists: [l] });
      const now = new Date();
      const p = await previewBroadcast(local.db, local.config, b.id, { now });
      expect(p.byChannel).toEqual({ whatsapp: 0, whatsappTemplate: 300, sms: 20, unreachable: 0 });
      expect(p.byLanguage[0].smsSegmentsEach).toBe(2);
      expect(p.cost).toEqual({ currency: 'PEN', smsMessages: 20, smsSegments: 40, sms: 2, whatsappTemplates: 300, whatsapp: 6, total: 8 });
      // 300 WhatsApp at 10/s = 30 s; 40 segments at 2/s = 20 s; 300 templates > tier 250: one more day.
      expect(p.estimate).toMatchObject({ whatsappSeconds: 30, smsSeconds: 20, tierDays: 1 });
      expect(new Date(p.estimate.finishAt).getTime() - now.getTime()).toBe(86_400_000 + 30_000);
    } finally {
      await local.close();
    }
  });
});
