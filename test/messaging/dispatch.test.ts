/**
 * The dispatcher against the fake provider on loopback (WhatsApp Cloud API, Twilio and Africa's
 * Talking with the base URLs and credentials from the settings): what it sends, on which channel,
 * in which order, to whom not, and what it records.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildChannels, type ChannelRegistry } from '../../src/channels/index.js';
import { loadConfig } from '../../src/config.js';
import { toBool, toDate, toInt } from '../../src/db/values.js';
import { Dispatcher, registerBroadcastRenderer, unregisterBroadcastRenderer, type DispatcherOptions } from '../../src/messaging/dispatcher.js';
import { createLogger } from '../../src/log.js';
import { openTestDatabase } from '../helpers/db.js';
import { startFakeProvider, twilioError, whatsappError, type FakeProvider } from '../helpers/fake-provider.js';
import { insertOutbox, outboxRow, seedContacts, until } from './dispatch-fixtures.js';
import type { Database } from '../../src/db/orm.js';
import type { Config } from '../../src/config.js';

let fake: FakeProvider;
let db: Database;
let config: Config;
let channels: ChannelRegistry;
let closeDb: () => Promise<void>;
let nextNumber = 0;

beforeAll(async () => {
  fake = await startFakeProvider();
  const t = await openTestDatabase();
  db = t.db;
  closeDb = t.close;
  config = loadConfig({ ...fake.env(), DATABASE_URL: t.test.url, LOG_LEVEL: 'silent', NODE_ENV: 'test', WHATSAPP_RATE_PER_SECOND: '10000', TWILIO_RATE_PER_SECOND: '10000', AFRICASTALKING_RATE_PER_SECOND: '10000' });
  channels = buildChannels(config);
});
afterAll(async () => {
  await channels?.close();
  await closeDb?.();
  await fake?.close();
});
beforeEach(async () => {
  fake.reset();
  await db.knex('outbox').delete();
});

function dispatcher(over: Partial<DispatcherOptions> = {}): Dispatcher {
  return new Dispatcher({ db, config, log: createLogger('silent'), adapters: channels.all, retryBaseMs: 20, throttleBaseMs: 30, authPauseMs: 300, pollMs: 20, ...over });
}

async function seed(n: number, o: Parameters<typeof seedContacts>[1] extends infer T ? Omit<T & object, 'count'> : never = {}) {
  const contacts = await seedContacts(db.knex, { count: n, firstNumber: nextNumber, ...o });
  nextNumber += n;
  return contacts;
}

/** Runs the dispatcher until the rows are final (sent, failed, skipped, cancelled), waiting out their not_before. */
async function settle(ids: number[], over: Partial<DispatcherOptions> = {}, timeoutMs = 10_000): Promise<Record<string, unknown>[]> {
  const d = dispatcher(over);
  d.start();
  const until = Date.now() + timeoutMs;
  try {
    for (;;) {
      const rows = await db.knex('outbox').whereIn('id', ids).orderBy('id');
      if (rows.every((r: { status: string }) => !['queued', 'sending'].includes(r.status))) return rows;
      if (Date.now() > until) throw new Error(`rows not final: ${rows.map((r: { id: unknown; status: string }) => `${r.id}:${r.status}`).join(' ')}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    await d.stop();
  }
}

describe('dispatcher: what it sends and records', () => {
  it('sends a broadcast to every recipient once and records provider id, channel, address and attempts', async () => {
    const contacts = await seed(300);
    const ids = await insertOutbox(db.knex, contacts.map((c) => ({ contactId: c.id, broadcastId: 1, content: { type: 'text', text: 'Vacunación gratuita este sábado' } })));
    const counts = await dispatcher().runUntilIdle();
    expect(counts.sent).toBe(300);
    expect(fake.acceptedTotal).toBe(300);
    expect(fake.duplicates()).toEqual([]);
    for (const c of contacts) expect(fake.accepted(c.phone)).toBe(1);
    const rows = await db.knex('outbox').whereIn('id', ids);
    const providerIds = new Set(fake.requests.flatMap((r) => r.providerIds));
    for (const r of rows) {
      expect(r.status).toBe('sent');
      expect(r.channel).toBe('whatsapp');
      expect(toInt(r.attempts)).toBe(1);
      expect(providerIds.has(r.provider_id)).toBe(true);
      expect(r.claimed_by).toBeNull();
      expect(toBool(r.possible_duplicate)).toBe(false);
    }
    const byContact = new Map(contacts.map((c) => [c.id, c]));
    for (const r of rows) expect(toInt(r.address_id)).toBe(byContact.get(toInt(r.contact_id))!.whatsappAddressId);
    // The request is what WhatsApp expects: the number without '+', the text, the outbox id as callback data.
    const req = fake.requests.find((x) => x.to[0] === contacts[0].phone)!;
    expect(req.body).toMatchObject({ messaging_product: 'whatsapp', to: contacts[0].phone.slice(1), type: 'text', text: { body: 'Vacunación gratuita este sábado' }, biz_opaque_callback_data: String(ids[0]) });
  });

  it('sends replies before survey questions before broadcasts, oldest first', async () => {
    const [a, b, c] = await seed(3);
    const ids = await insertOutbox(db.knex, [
      { contactId: a.id, purpose: 'updates', broadcastId: 7, content: { type: 'text', text: 'broadcast' } },
      { contactId: b.id, purpose: 'surveys', content: { type: 'text', text: 'survey 1' } },
      { contactId: c.id, purpose: 'reply', content: { type: 'text', text: 'reply' } },
      { contactId: a.id, purpose: 'surveys', content: { type: 'text', text: 'survey 2' } },
    ]);
    await dispatcher({ concurrency: 1, batchSize: 10 }).runUntilIdle();
    expect(fake.requests.map((r) => (r.body as { text: { body: string } }).text.body)).toEqual(['reply', 'survey 1', 'survey 2', 'broadcast']);
    expect((await db.knex('outbox').whereIn('id', ids)).every((r: { status: string }) => r.status === 'sent')).toBe(true);
  });

  it('a reply queued during a slow broadcast goes out before the rest of the broadcast', async () => {
    const people = await seed(40);
    const [asker] = await seed(1);
    await insertOutbox(db.knex, people.map((c) => ({ contactId: c.id, broadcastId: 8, content: { type: 'text' as const, text: 'broadcast' } })));
    const d = dispatcher({ rates: { whatsapp: 10 } });
    d.start();
    try {
      await until(async () => fake.acceptedTotal >= 3, 10_000, 'the broadcast to start');
      await insertOutbox(db.knex, [{ contactId: asker.id, purpose: 'reply', content: { type: 'text', text: 'reply' } }]);
      d.wake();
      await until(async () => fake.accepted(asker.phone) === 1, 10_000, 'the reply');
      // 40 messages at 10/s take four seconds; the reply did not wait for them.
      expect(fake.acceptedTotal).toBeLessThan(30);
    } finally {
      await d.stop();
    }
  }, 30_000);

  it('keeps the messages to one contact in order even with many requests in flight', async () => {
    const [a] = await seed(1);
    const texts = Array.from({ length: 8 }, (_, i) => `pregunta ${i + 1}`);
    await insertOutbox(db.knex, texts.map((text) => ({ contactId: a.id, purpose: 'surveys' as const, content: { type: 'text' as const, text } })));
    fake.latencyMs = 5;
    try {
      await dispatcher({ concurrency: 64, pairRate: false }).runUntilIdle();
    } finally {
      fake.latencyMs = 0;
    }
    expect(fake.requests.map((r) => (r.body as { text: { body: string } }).text.body)).toEqual(texts);
  });

  it('respects not_before', async () => {
    const [a, b] = await seed(2);
    const [later, now] = await insertOutbox(db.knex, [
      { contactId: a.id, purpose: 'reply', notBefore: new Date(Date.now() + 60_000) },
      { contactId: b.id, purpose: 'reply', notBefore: new Date(Date.now() - 1_000) },
    ]);
    await dispatcher().runUntilIdle();
    expect((await outboxRow(db.knex, later)).status).toBe('queued');
    expect((await outboxRow(db.knex, now)).status).toBe('sent');
    expect(fake.accepted(a.phone)).toBe(0);
    await db.knex('outbox').where('id', later).update({ not_before: new Date(Date.now() - 1) });
    await dispatcher().runUntilIdle();
    expect((await outboxRow(db.knex, later)).status).toBe('sent');
    expect(fake.accepted(a.phone)).toBe(1);
  });

  it('skips contacts without consent for the purpose, stopped, blocked or erased, and says why', async () => {
    const [noConsent, stopped, blocked, erased, ok] = await seed(5, { consents: ['updates'] });
    await db.knex('consent_state').where('contact_id', noConsent.id).update({ granted: false });
    await db.knex('contacts').where('id', stopped.id).update({ status: 'stopped', stopped_at: new Date(Date.now() - 60_000) });
    await db.knex('contacts').where('id', blocked.id).update({ status: 'blocked' });
    await db.knex('contacts').where('id', erased.id).update({ erased_at: new Date() });
    const ids = await insertOutbox(db.knex, [
      { contactId: noConsent.id, broadcastId: 2 },
      { contactId: stopped.id, broadcastId: 2 },
      { contactId: blocked.id, broadcastId: 2 },
      { contactId: erased.id, broadcastId: 2 },
      { contactId: ok.id, purpose: 'surveys' }, // consented to updates only
      { contactId: ok.id, broadcastId: 2 },
    ]);
    await dispatcher().runUntilIdle();
    const rows = await db.knex('outbox').whereIn('id', ids).orderBy('id');
    expect(rows.map((r: { status: string; error_code: string | null }) => [r.status, r.error_code])).toEqual([
      ['skipped', 'no_consent'],
      ['skipped', 'contact_stopped'],
      ['skipped', 'contact_blocked'],
      ['skipped', 'contact_erased'],
      ['skipped', 'no_consent'],
      ['sent', null],
    ]);
    expect(fake.acceptedTotal).toBe(1);
    expect(fake.accepted(ok.phone)).toBe(1);
  });

  it('sends a stopped contact only the replies queued after the stop (the STOP confirmation), never older ones', async () => {
    const [p] = await seed(1);
    const stoppedAt = new Date(Date.now() - 10_000);
    await db.knex('contacts').where('id', p.id).update({ status: 'stopped', stopped_at: stoppedAt });
    const [before, after, update] = await insertOutbox(db.knex, [
      { contactId: p.id, purpose: 'reply', content: { type: 'text', text: 'old answer' }, createdAt: new Date(stoppedAt.getTime() - 5_000) },
      { contactId: p.id, purpose: 'reply', content: { type: 'text', text: 'You will get no more messages' }, createdAt: new Date() },
      { contactId: p.id, purpose: 'updates', content: { type: 'text', text: 'news' }, createdAt: new Date() },
    ]);
    await dispatcher().runUntilIdle();
    expect((await outboxRow(db.knex, before)).error_code).toBe('contact_stopped');
    expect((await outboxRow(db.knex, after)).status).toBe('sent');
    expect((await outboxRow(db.knex, update)).error_code).toBe('contact_stopped');
    expect(fake.requests.map((r) => (r.body as { text: { body: string } }).text.body)).toEqual(['You will get no more messages']);
  });

  it('fails a broadcast row with no content and no renderer, and renders through the broadcast hook', async () => {
    const [a, b] = await seed(2, { language: 'en' });
    const [bare, rendered] = await insertOutbox(db.knex, [
      { contactId: a.id, broadcastId: 40, content: null },
      { contactId: b.id, broadcastId: 41, content: null },
    ]);
    const seen: unknown[] = [];
    registerBroadcastRenderer(41, (targets) => {
      seen.push(...targets);
      return targets.map((t) => ({ type: 'text', text: `hello in ${t.language}` }));
    });
    try {
      await dispatcher().runUntilIdle();
    } finally {
      unregisterBroadcastRenderer(41);
    }
    const r1 = await outboxRow(db.knex, bare);
    expect([r1.status, r1.error_code]).toEqual(['failed', 'no_content']);
    expect((await outboxRow(db.knex, rendered)).status).toBe('sent');
    expect(seen).toEqual([{ outboxId: rendered, contactId: b.id, broadcastId: 41, language: 'en' }]);
    expect(fake.requests.map((r) => (r.body as { text: { body: string } }).text.body)).toEqual(['hello in en']);
  });
});

describe('dispatcher: choosing the channel', () => {
  it('uses WhatsApp inside the 24-hour window, SMS outside it, a template on WhatsApp outside it, and skips when nothing can carry it', async () => {
    const old = new Date(Date.now() - 30 * 3_600_000);
    const [inside] = await seed(1, { sms: true });
    const [outside] = await seed(1, { sms: true, lastInboundAt: old });
    const [template] = await seed(1, { sms: true, lastInboundAt: old });
    const [waOnly] = await seed(1, { lastInboundAt: old });
    const [never] = await seed(1, { sms: true, lastInboundAt: null });
    const tpl = { type: 'template' as const, name: 'weekly_update', language: 'es', params: ['Lima'], text: 'Novedades para Lima' };
    const ids = await insertOutbox(db.knex, [
      { contactId: inside.id, content: { type: 'text', text: 'a' } },
      { contactId: outside.id, content: { type: 'text', text: 'b' } },
      { contactId: template.id, content: tpl },
      { contactId: waOnly.id, content: { type: 'text', text: 'd' } },
      { contactId: never.id, content: { type: 'text', text: 'e' } },
    ]);
    await dispatcher().runUntilIdle();
    const rows = await db.knex('outbox').whereIn('id', ids).orderBy('id');
    expect(rows.map((r: { status: string; channel: string | null; error_code: string | null }) => [r.status, r.channel, r.error_code])).toEqual([
      ['sent', 'whatsapp', null],
      ['sent', 'twilio', null],
      ['sent', 'whatsapp', null],
      ['skipped', null, 'window_closed'],
      ['sent', 'twilio', null],
    ]);
    expect(toInt(rows[1].address_id)).toBe(outside.smsAddressId);
    expect(toInt(rows[1].segments)).toBe(1);
    const tplReq = fake.requests.find((r) => r.to[0] === template.phone)!;
    expect(tplReq.body).toMatchObject({ type: 'template', template: { name: 'weekly_update' } });
    const smsReq = fake.requests.find((r) => r.to[0] === outside.phone)!;
    expect(smsReq.provider).toBe('twilio');
    expect(smsReq.body).toMatchObject({ To: outside.phone, Body: 'b' });
  });

  it('sends a row fixed to a medium on that medium, and honours SMS_FALLBACK=false', async () => {
    const [p] = await seed(1, { sms: true });
    const [q] = await seed(1, { sms: true, lastInboundAt: new Date(Date.now() - 30 * 3_600_000) });
    const [toSms, toAt, fixedWa] = await insertOutbox(db.knex, [
      { contactId: p.id, purpose: 'reply', channel: 'sms' },
      { contactId: p.id, purpose: 'reply', channel: 'africastalking' },
      { contactId: q.id, purpose: 'reply', channel: 'whatsapp' },
    ]);
    await dispatcher().runUntilIdle();
    expect((await outboxRow(db.knex, toSms)).channel).toBe('twilio');
    expect((await outboxRow(db.knex, toAt)).channel).toBe('africastalking');
    const fixed = await outboxRow(db.knex, fixedWa);
    expect([fixed.status, fixed.error_code]).toEqual(['skipped', 'window_closed']);

    const noFallback = loadConfig({ ...fake.env(), DATABASE_URL: 'sqlite::memory:', SMS_FALLBACK: 'false' });
    const [r] = await insertOutbox(db.knex, [{ contactId: q.id, purpose: 'updates' }]);
    await dispatcher({ config: { ...config, SMS_FALLBACK: noFallback.SMS_FALLBACK } }).runUntilIdle();
    const row = await outboxRow(db.knex, r);
    expect([row.status, row.error_code]).toEqual(['skipped', 'window_closed']);
  });

  it('counts an SMS in segments', async () => {
    const [p] = await seed(1, { sms: true, whatsapp: false });
    const long = 'Información importante: '.repeat(5); // á forces UCS-2: 120 characters → 2 segments
    const [id] = await insertOutbox(db.knex, [{ contactId: p.id, content: { type: 'text', text: long } }]);
    await dispatcher().runUntilIdle();
    const row = await outboxRow(db.knex, id);
    expect(row.channel).toBe('twilio');
    expect(toInt(row.segments)).toBe(2);
  });

  it('sends to the simulator when the address belongs to it (the person wrote through the simulator)', async () => {
    const [p] = await seed(1);
    await db.knex('inbound_messages').insert({ channel: 'simulator', provider_id: 'sim-in-1', contact_id: p.id, address_id: p.whatsappAddressId, kind: 'text', text: 'hola', keep: false, received_at: new Date() });
    const [id] = await insertOutbox(db.knex, [{ contactId: p.id, purpose: 'reply', content: { type: 'text', text: 'respuesta' } }]);
    await dispatcher().runUntilIdle();
    const row = await outboxRow(db.knex, id);
    expect([row.status, row.channel]).toEqual(['sent', 'simulator']);
    expect(fake.acceptedTotal).toBe(0);
    expect(channels.simulator.whatsapp.sent(p.phone).map((m) => m.text)).toContain('respuesta');
  });

  it('sends everything to the simulator when no provider is configured', async () => {
    const simOnly = loadConfig({ DATABASE_URL: 'sqlite::memory:', LOG_LEVEL: 'silent' });
    const simChannels = buildChannels(simOnly);
    const [p] = await seed(1, { sms: true, whatsapp: false });
    const [id] = await insertOutbox(db.knex, [{ contactId: p.id, content: { type: 'buttons', text: '¿Recibió el pago?', buttons: [{ id: 'y', title: 'Sí' }, { id: 'n', title: 'No' }] } }]);
    await dispatcher({ adapters: simChannels.all }).runUntilIdle();
    expect((await outboxRow(db.knex, id)).channel).toBe('simulator');
    const got = simChannels.simulator.sms.sent(p.phone);
    expect(got).toHaveLength(1);
    expect(got[0].text).toContain('1. Sí');
  });
});

describe('dispatcher: provider errors', () => {
  it('throttled: pauses the channel, queues the row again without counting an attempt, then sends it', async () => {
    const [p] = await seed(1);
    const [id] = await insertOutbox(db.knex, [{ contactId: p.id }]);
    fake.fail({ ...whatsappError(130429, 400, 'Rate limit hit'), times: 1 });
    const d = dispatcher({ throttleBaseMs: 400 });
    await d.runUntilIdle();
    const row = await outboxRow(db.knex, id);
    expect([row.status, row.error_code, toInt(row.attempts)]).toEqual(['queued', '130429', 0]);
    const wait = toDate(row.not_before).getTime() - Date.now();
    expect(wait).toBeGreaterThan(100);
    expect(wait).toBeLessThanOrEqual(400);
    const [done] = await settle([id]);
    expect([done.status, toInt(done.attempts), done.error_code]).toEqual(['sent', 1, null]);
    expect(fake.attempts(p.phone)).toBe(2);
    expect(fake.accepted(p.phone)).toBe(1);
  });

  it('transient: retries with backoff, then fails after the configured attempts', async () => {
    const [p, q] = await seed(2);
    const [gives, recovers] = await insertOutbox(db.knex, [{ contactId: p.id }, { contactId: q.id }]);
    fake.fail({ ...whatsappError(131000, 500, 'Something went wrong'), to: p.phone });
    fake.fail({ ...whatsappError(131016, 503, 'Service unavailable'), to: q.phone, times: 2 });
    const rows = await settle([gives, recovers], { maxAttempts: 3, retryBaseMs: 30 });
    expect([rows[0].status, toInt(rows[0].attempts), rows[0].error_code]).toEqual(['failed', 3, '131000']);
    expect([rows[1].status, toInt(rows[1].attempts)]).toEqual(['sent', 3]);
    expect(fake.attempts(p.phone)).toBe(3);
    expect(fake.accepted(q.phone)).toBe(1);
  });

  it('a refused connection is transient too', async () => {
    const [p] = await seed(1);
    const [id] = await insertOutbox(db.knex, [{ contactId: p.id }]);
    const dead = loadConfig({ ...fake.env(), WHATSAPP_API_URL: 'http://127.0.0.1:9/v23.0', DATABASE_URL: 'sqlite::memory:' });
    const deadChannels = buildChannels(dead);
    try {
      const rows = await settle([id], { adapters: deadChannels.all, maxAttempts: 2, retryBaseMs: 10 });
      expect([rows[0].status, toInt(rows[0].attempts)]).toEqual(['failed', 2]);
      expect(String(rows[0].error_code)).toMatch(/ECONNREFUSED|network/);
    } finally {
      await deadChannels.close();
    }
  });

  it('permanent: fails at once', async () => {
    const [p] = await seed(1);
    const [id] = await insertOutbox(db.knex, [{ contactId: p.id }]);
    fake.fail({ ...whatsappError(131026, 400, 'Message undeliverable'), to: p.phone });
    await dispatcher().runUntilIdle();
    const row = await outboxRow(db.knex, id);
    expect([row.status, toInt(row.attempts), row.error_code]).toEqual(['failed', 1, '131026']);
    expect(fake.attempts(p.phone)).toBe(1);
  });

  it('opted out (Twilio 21610): fails the row and stops the address on that channel', async () => {
    const [p] = await seed(1, { sms: true, whatsapp: false });
    const [a, b] = await insertOutbox(db.knex, [{ contactId: p.id, purpose: 'reply' }, { contactId: p.id, purpose: 'updates' }]);
    fake.fail({ ...twilioError(21610, 400, 'Attempt to send to unsubscribed recipient'), to: p.phone });
    await dispatcher({ concurrency: 1 }).runUntilIdle();
    const first = await outboxRow(db.knex, a);
    expect([first.status, first.error_code]).toEqual(['failed', '21610']);
    const addr = await db.knex('contact_addresses').where('id', p.smsAddressId).first();
    expect(toBool(addr.opted_out)).toBe(true);
    // Its only address: the contact is stopped, the next message not even tried.
    const contact = await db.knex('contacts').where('id', p.id).first();
    expect(contact.status).toBe('stopped');
    const second = await outboxRow(db.knex, b);
    expect(['cancelled', 'skipped']).toContain(second.status);
    expect(fake.attempts(p.phone)).toBe(1);
  });

  it('window closed (131047): sends the message again by SMS', async () => {
    const [p] = await seed(1, { sms: true });
    const [id] = await insertOutbox(db.knex, [{ contactId: p.id }]);
    fake.fail({ ...whatsappError(131047, 400, 'Re-engagement message'), to: p.phone, provider: 'whatsapp' });
    const [row] = await settle([id]);
    expect([row.status, row.channel, toInt(row.address_id)]).toEqual(['sent', 'twilio', p.smsAddressId]);
    expect(fake.requests.map((r) => r.provider)).toEqual(['whatsapp', 'twilio']);
  });

  it('window closed with no SMS address: fails', async () => {
    const [p] = await seed(1);
    const [id] = await insertOutbox(db.knex, [{ contactId: p.id }]);
    fake.fail({ ...whatsappError(131047, 400, 'Re-engagement message'), to: p.phone });
    const [row] = await settle([id]);
    expect([row.status, row.error_code]).toEqual(['failed', '131047']);
  });

  it('auth: keeps the rows queued, pauses the channel and logs an alert without personal data', async () => {
    const [p, q] = await seed(2);
    const ids = await insertOutbox(db.knex, [{ contactId: p.id, content: { type: 'text', text: 'secreto' } }, { contactId: q.id }]);
    fake.fail({ ...whatsappError(190, 401, 'Invalid OAuth access token'), times: 1 });
    const lines: string[] = [];
    const log = createLogger('info', { write: (s: string) => void lines.push(s) });
    await dispatcher({ log, concurrency: 1, authPauseMs: 5_000 }).runUntilIdle();
    const rows = await db.knex('outbox').whereIn('id', ids).orderBy('id');
    expect(rows.map((r: { status: string; attempts: unknown }) => [r.status, toInt(r.attempts)])).toEqual([
      ['queued', 0],
      ['queued', 0],
    ]);
    expect(fake.total).toBe(1); // the second was held back by the pause
    const alert = lines.map((l) => JSON.parse(l)).find((l) => l.alert);
    expect(alert).toMatchObject({ channel: 'whatsapp', code: '190', level: 'error' });
    const all = lines.join('\n');
    expect(all).not.toContain(p.phone.slice(1));
    expect(all).not.toContain('secreto');
  });
});
