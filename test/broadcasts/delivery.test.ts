/**
 * Broadcasts through the real dispatcher, in-process, against the fake WhatsApp and Twilio APIs on
 * loopback: the renderer fills each row at send time (language, footer, template outside the
 * 24-hour window, media, SMS text), the channel policy holds, and a contact who says STOP in the
 * middle of a broadcast gets nothing more of it.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildChannels, type ChannelRegistry } from '../../src/channels/index.js';
import { createLogger } from '../../src/log.js';
import { toInt } from '../../src/db/values.js';
import { Dispatcher, setBroadcastRendererResolver } from '../../src/messaging/dispatcher.js';
import { receive } from '../../src/messaging/inbound.js';
import { ROUTER_STEPS } from '../../src/messaging/steps.js';
import { createBroadcast, fanOut, broadcastStats, completeFinished, getBroadcast } from '../../src/broadcasts/broadcasts.js';
import { installBroadcastRenderer } from '../../src/broadcasts/render.js';
import { startFakeProvider, type FakeProvider } from '../helpers/fake-provider.js';
import { testServices } from '../helpers/services.js';
import { addList, addPeople, addPerson, approvedMessage, staff, type Staff } from './fixtures.js';

let fake: FakeProvider;
let s: Awaited<ReturnType<typeof testServices>>;
let channels: ChannelRegistry;
let st: Staff;

beforeAll(async () => {
  fake = await startFakeProvider();
  s = await testServices({ ...fake.env(), WHATSAPP_RATE_PER_SECOND: '10000', TWILIO_RATE_PER_SECOND: '10000', PROGRAMME_NAME: 'Línea Amiga' });
  channels = buildChannels(s.config);
  installBroadcastRenderer(s);
  st = await staff(s.db);
});
afterAll(async () => {
  setBroadcastRendererResolver(null);
  await channels?.close();
  await s?.close();
  await fake?.close();
});
afterEach(() => fake.reset());

function dispatcher(over: Partial<ConstructorParameters<typeof Dispatcher>[0]> = {}) {
  return new Dispatcher({ db: s.db, config: s.config, log: createLogger('silent'), adapters: channels.all, pollMs: 20, pairRate: false, ...over });
}

const bodies = (to: string) => fake.requests.filter((r) => r.to.includes(to)).map((r) => r.body as Record<string, any>);

describe('rendered at send time', () => {
  it('sends each person the approved text in their language with the footer; a template outside the window; SMS to those without WhatsApp', async () => {
    const list = await addList(s.db.knex, 'render', 'es');
    const inWindow = await addPerson(s.db.knex, { lists: [list], name: 'Rosa', language: 'es', fields: { region: 'Tumbes' } });
    const english = await addPerson(s.db.knex, { lists: [list], name: 'John', language: 'en' });
    const closed = await addPerson(s.db.knex, { lists: [list], name: 'Luz', language: 'es', lastInbound: null });
    const smsOnly = await addPerson(s.db.knex, { lists: [list], name: 'Pedro', language: 'es', channels: ['sms'] });
    await s.db.knex('contact_fields').insert({ key: 'region', label: 'Región', type: 'text', created_at: new Date() });
    const m = await approvedMessage(s.db, st, {
      es: { text: 'Hola {{name}}: vacunación en {{#if fields.region}}{{fields.region}}{{else}}tu centro de salud{{/if}} el sábado.', template: { name: 'vacunacion', language: 'es', params: ['{{name}}'] } },
      en: { text: 'Hi {{name}}: vaccination on Saturday.' },
    });
    const b = await createBroadcast(s.db, s.config, st.author, { name: 'vacunas', messageId: m.id, lists: [list], quietHours: null, footer: { es: 'Nunca te pediremos dinero.', en: 'We will never ask you for money.' } });
    expect(await fanOut(s.db, s.config, b.id)).toBe(4);
    const counts = await dispatcher().runUntilIdle();
    expect(counts.sent).toBe(4);

    expect(bodies(inWindow.phone)).toEqual([expect.objectContaining({ type: 'text', text: { preview_url: false, body: 'Hola Rosa: vacunación en Tumbes el sábado.\n\nNunca te pediremos dinero.' } })]);
    expect(bodies(english.phone)).toEqual([expect.objectContaining({ type: 'text', text: { preview_url: false, body: 'Hi John: vaccination on Saturday.\n\nWe will never ask you for money.' } })]);
    expect(bodies(closed.phone)).toEqual([expect.objectContaining({ type: 'template', template: { name: 'vacunacion', language: { code: 'es' }, components: [{ type: 'body', parameters: [{ type: 'text', text: 'Luz' }] }] } })]);
    expect(bodies(smsOnly.phone)).toEqual([expect.objectContaining({ Body: 'Hola Pedro: vacunación en tu centro de salud el sábado.\n\nNunca te pediremos dinero.' })]);
    const rows = await s.db.knex('outbox').where('broadcast_id', b.id);
    expect(rows.map((r: { status: string }) => r.status)).toEqual(['sent', 'sent', 'sent', 'sent']);
    expect(rows.find((r: { contact_id: unknown }) => toInt(r.contact_id) === smsOnly.id)).toMatchObject({ channel: 'twilio' });
    expect(await completeFinished(s.db.knex)).toBeGreaterThanOrEqual(1);
    expect((await getBroadcast(s.db.knex, b.id)).status).toBe('completed');
    const stats = await broadcastStats(s.db.knex, b.id);
    expect(stats).toMatchObject({ total: 4, sent: 4, queued: 0 });
    expect(stats.byChannel.whatsapp.sent).toBe(3);
    expect(stats.byLanguage.en.sent).toBe(1);
  });

  it('sends the image with the text as its caption on WhatsApp and the text alone by SMS; WhatsApp only skips whoever is outside the window without a template', async () => {
    const list = await addList(s.db.knex, 'media', 'es');
    const wa = await addPerson(s.db.knex, { lists: [list], name: 'Ana' });
    const sms = await addPerson(s.db.knex, { lists: [list], name: 'Eva', channels: ['sms'] });
    const m = await approvedMessage(s.db, st, { es: { text: 'Mapa de puntos de reparto, {{name}}.' } }, { media: { kind: 'image', url: 'https://example.org/mapa.png' } });
    const b = await createBroadcast(s.db, s.config, st.author, { name: 'mapa', messageId: m.id, lists: [list], quietHours: null });
    await fanOut(s.db, s.config, b.id);
    await dispatcher().runUntilIdle();
    expect(bodies(wa.phone)).toEqual([expect.objectContaining({ type: 'image', image: { link: 'https://example.org/mapa.png', caption: 'Mapa de puntos de reparto, Ana.' } })]);
    expect(bodies(sms.phone)).toEqual([expect.objectContaining({ Body: 'Mapa de puntos de reparto, Eva.' })]);

    const closed = await addPerson(s.db.knex, { lists: [list], lastInbound: null, channels: ['whatsapp', 'sms'] });
    const only = await createBroadcast(s.db, s.config, st.author, { name: 'solo wa', messageId: m.id, lists: [list], quietHours: null, channelPolicy: 'whatsapp_only' });
    fake.reset();
    await fanOut(s.db, s.config, only.id);
    await dispatcher().runUntilIdle();
    expect(bodies(closed.phone)).toEqual([]);
    const row = await s.db.knex('outbox').where({ broadcast_id: only.id, contact_id: closed.id }).first();
    expect(row).toMatchObject({ status: 'skipped', error_code: 'window_closed' });
  });
});

describe('STOP in the middle of a broadcast', () => {
  it('a contact who stops while the broadcast is going out gets nothing more of it', async () => {
    const list = await addList(s.db.knex, 'stop', 'es');
    const people = await addPeople(s.db.knex, 120, { lists: [list], name: 'Ana' });
    const m = await approvedMessage(s.db, st, { es: { text: 'Reparto de kits el lunes.' } });
    const b = await createBroadcast(s.db, s.config, st.author, { name: 'kits', messageId: m.id, lists: [list], quietHours: null });
    await fanOut(s.db, s.config, b.id);
    // The contact whose row goes last.
    const last = await s.db.knex('outbox').where('broadcast_id', b.id).orderBy('id', 'desc').first();
    const stopper = people.find((p) => p.id === toInt(last.contact_id))!;

    const d = dispatcher({ rates: { whatsapp: 40 }, concurrency: 4 }).start();
    try {
      // Wait until the broadcast is under way, then the person writes STOP on WhatsApp.
      for (let i = 0; i < 200 && fake.acceptedTotal < 10; i++) await new Promise((r) => setTimeout(r, 20));
      expect(fake.acceptedTotal).toBeGreaterThanOrEqual(10);
      expect(fake.acceptedTotal).toBeLessThan(120);
      await receive(s, ROUTER_STEPS, [{ channel: 'whatsapp', medium: 'whatsapp', providerId: 'wamid.stop-1', from: stopper.phone, fromKind: 'phone', kind: 'text', text: 'STOP', receivedAt: new Date() }]);
      await d.idle();
    } finally {
      await d.stop();
    }
    const texts = bodies(stopper.phone).map((x) => x.text?.body as string);
    expect(texts).toHaveLength(1); // the STOP confirmation, nothing of the broadcast
    expect(texts[0]).not.toContain('Reparto de kits');
    const row = await s.db.knex('outbox').where({ broadcast_id: b.id, contact_id: stopper.id }).first();
    expect(['cancelled', 'skipped']).toContain(row.status);
    const stats = await broadcastStats(s.db.knex, b.id);
    expect(stats.sent).toBe(119);
    expect(stats.sent + stats.cancelled + stats.skipped).toBe(120);
    for (const p of people.filter((x) => x.id !== stopper.id)) expect(fake.accepted(p.phone)).toBe(1);
  });
});
