/**
 * The webhooks over HTTP, courier-style: a captured request in, the status code and the effects
 * in the database out. Runs the real Koa app on a test database (SQLite, and PostgreSQL in the
 * postgresql project).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { FAKE_CREDENTIALS, fakeEnv } from '../helpers/fake-provider.js';
import { fixture, metaSignature, signTwilio } from './helpers.js';
import { startInboundWorker } from '../../src/messaging/inbound-worker.js';
import { createLogger } from '../../src/log.js';
import { toInt } from '../../src/db/values.js';

const PUBLIC = 'https://ayni.example.org';
const ENV = { ...fakeEnv('http://127.0.0.1:9'), PUBLIC_URL: PUBLIC };
const APP_SECRET = ENV.WHATSAPP_APP_SECRET;
const AT_SECRET = ENV.AFRICASTALKING_WEBHOOK_SECRET;

let app: TestApp;
beforeAll(async () => {
  app = await startTestApp(ENV);
});
afterAll(() => app?.close());

interface Sent {
  status: number;
  text: string;
  type: string;
}

async function post(path: string, body: string, headers: Record<string, string>): Promise<Sent> {
  const r = await request(app.url + path, { method: 'POST', headers, body });
  return { status: r.statusCode, text: await r.body.text(), type: String(r.headers['content-type'] ?? '') };
}

const wa = (raw: string, sig: string | null = metaSignature(APP_SECRET, raw)) =>
  post('/webhooks/whatsapp', raw, { 'content-type': 'application/json', ...(sig ? { 'x-hub-signature-256': sig } : {}) });
const tw = (path: '/webhooks/twilio' | '/webhooks/twilio/status', raw: string, sig: string | null = signTwilio(FAKE_CREDENTIALS.twilioAuthToken, PUBLIC + path, raw)) =>
  post(path, raw, { 'content-type': 'application/x-www-form-urlencoded', ...(sig ? { 'x-twilio-signature': sig } : {}) });
const at = (kind: 'inbound' | 'delivery', raw: string, secret = AT_SECRET) => post(`/webhooks/africastalking/${encodeURIComponent(secret)}/${kind}`, raw, { 'content-type': 'application/x-www-form-urlencoded' });

const count = async (table: string) => toInt((await app.db.knex(table).count({ n: '*' }).first())?.n);
const inbound = (providerId: string) =>
  app.db.knex('inbound_messages as m').join('contact_addresses as a', 'a.id', 'm.address_id').where('m.provider_id', providerId).select('m.*', 'a.address', 'a.kind as address_kind', 'a.channel as medium');

/** An outbox row that the dispatcher sent, as a status callback will find it. */
async function sentRow(channel: string, providerId: string, status = 'sent'): Promise<number> {
  const now = new Date();
  const [c] = await app.db.knex('contacts').insert({ status: 'active', created_at: now, updated_at: now }).returning('id');
  const contactId = toInt(typeof c === 'object' ? c.id : c);
  const [o] = await app.db
    .knex('outbox')
    .insert({ contact_id: contactId, purpose: 'updates', priority: 3, content: JSON.stringify({ type: 'text', text: 'x' }), channel, status, provider_id: providerId, attempts: 1, created_at: now })
    .returning('id');
  return toInt(typeof o === 'object' ? o.id : o);
}
const outboxStatus = async (id: number) => (await app.db.knex('outbox').where('id', id).first('status', 'error_code')) as { status: string; error_code: string | null };

describe('webhooks: a captured request in, status and effects out', () => {
  interface Case {
    name: string;
    send: () => Promise<Sent>;
    status: number;
    stored?: { providerId: string; kind: string; text: string | null; payload?: string | null; address: string; medium: string; addressKind?: string }[];
  }
  const cases: Case[] = [
    { name: 'WhatsApp text', send: () => wa(fixture('whatsapp', 'text.json')), status: 200, stored: [{ providerId: 'wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=', kind: 'text', text: 'Does it come in another color?', address: '+16505551234', medium: 'whatsapp', addressKind: 'phone' }] },
    { name: 'WhatsApp button reply', send: () => wa(fixture('whatsapp', 'button-reply.json')), status: 200, stored: [{ providerId: 'wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUU0NjZBMUQ4MTE2RjlCRDJCRgA=', kind: 'button', text: 'Yes', payload: 'q1_yes', address: '+16505551234', medium: 'whatsapp' }] },
    { name: 'WhatsApp list reply', send: () => wa(fixture('whatsapp', 'list-reply.json')), status: 200, stored: [{ providerId: 'wamid.HBgLNTE5ODc2NTQzMjEVAgASGBQzRUIwNUE4MzBBNjAxMUZBQTNEMAA=', kind: 'list', text: 'Cash assistance', payload: 'topic_cash', address: '+51987654321', medium: 'whatsapp' }] },
    { name: 'WhatsApp template quick reply', send: () => wa(fixture('whatsapp', 'template-button.json')), status: 200, stored: [{ providerId: 'wamid.HBgLNTE5ODc2NTQzMjEVAgASGBQzQTg3RTgzRUE3OTE0RTRCMzE2NgA=', kind: 'button', text: 'Empezar', payload: 'pdm_start', address: '+51987654321', medium: 'whatsapp' }] },
    { name: 'WhatsApp image', send: () => wa(fixture('whatsapp', 'image.json')), status: 200, stored: [{ providerId: 'wamid.HBgLNTE5ODc2NTQzMjEVAgASGBQzQUI2MEMxRjg1NjgzQzI0RjQ4MAA=', kind: 'media', text: 'Mi tarjeta no funciona', address: '+51987654321', medium: 'whatsapp' }] },
    { name: 'WhatsApp username user', send: () => wa(fixture('whatsapp', 'username-user.json')), status: 200, stored: [{ providerId: 'wamid.HBgUUEUuOTAyMzE4NDc1NjEwMjkzODQVAgASGBQzQzFERjA0QjE4OUUyNkI3NzdCNQA=', kind: 'text', text: 'Hola, quiero información', address: 'PE.90231847561029384', medium: 'whatsapp', addressKind: 'wa_user' }] },
    { name: 'WhatsApp reaction (nothing to store)', send: () => wa(fixture('whatsapp', 'reaction.json')), status: 200, stored: [] },
    { name: 'WhatsApp template status update (not a message)', send: () => wa(fixture('whatsapp', 'template-status-update.json')), status: 200, stored: [] },
    { name: 'WhatsApp unsigned', send: () => wa(fixture('whatsapp', 'text.json').replace('another color', 'unsigned'), null), status: 401 },
    { name: 'WhatsApp signed with another secret', send: () => { const raw = fixture('whatsapp', 'image.json').replace('no funciona', 'forged'); return wa(raw, metaSignature('not-the-secret', raw)); }, status: 401 },
    { name: 'WhatsApp body changed after signing', send: () => { const raw = fixture('whatsapp', 'list-reply.json'); return wa(raw.replace('Cash', 'Kash'), metaSignature(APP_SECRET, raw)); }, status: 401 },
    { name: 'WhatsApp signed but not a notification', send: () => wa('{"hello":"world"}'), status: 400 },
    { name: 'WhatsApp invalid JSON', send: () => wa('{"object":'), status: 400 },
    { name: 'Twilio inbound', send: () => tw('/webhooks/twilio', fixture('twilio', 'inbound.txt')), status: 200, stored: [{ providerId: 'SM2f0c10a1b2c3d4e5f60718293a4b5c6d', kind: 'text', text: 'Ack', address: '+447700900513', medium: 'sms' }] },
    { name: 'Twilio inbound in Spanish', send: () => tw('/webhooks/twilio', fixture('twilio', 'inbound-spanish.txt')), status: 200, stored: [{ providerId: 'SM9a8b7c6d5e4f30211f2e3d4c5b6a7988', kind: 'text', text: '¿Dónde cobro el bono?', address: '+51987654321', medium: 'sms' }] },
    { name: 'Twilio MMS', send: () => tw('/webhooks/twilio', fixture('twilio', 'inbound-mms.txt')), status: 200, stored: [{ providerId: 'MM0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f', kind: 'media', text: null, address: '+14155550123', medium: 'sms' }] },
    { name: 'Twilio STOP with OptOutType', send: () => tw('/webhooks/twilio', fixture('twilio', 'opt-out.txt')), status: 200, stored: [{ providerId: 'SM5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b', kind: 'text', text: 'STOP', address: '+14155550199', medium: 'sms' }] },
    { name: 'Twilio unknown extra fields', send: () => tw('/webhooks/twilio', fixture('twilio', 'inbound.txt').replace(/SM2f0c10a1b2c3d4e5f60718293a4b5c6d/g, 'SMextra000000000000000000000000001') + '&AddOns=%7B%22status%22%3A%22successful%22%7D&FutureField=x'), status: 200, stored: [{ providerId: 'SMextra000000000000000000000000001', kind: 'text', text: 'Ack', address: '+447700900513', medium: 'sms' }] },
    { name: 'Twilio forged', send: () => tw('/webhooks/twilio', fixture('twilio', 'inbound.txt').replace(/SM2f0c10/g, 'SMf0rg3d'), 'bm90IGEgc2lnbmF0dXJl'), status: 401 },
    { name: 'Twilio signed for the status URL, sent to the inbound URL', send: () => { const raw = fixture('twilio', 'inbound.txt').replace(/SM2f0c10/g, 'SMwr0ng1'); return tw('/webhooks/twilio', raw, signTwilio(FAKE_CREDENTIALS.twilioAuthToken, PUBLIC + '/webhooks/twilio/status', raw)); }, status: 401 },
    { name: 'Twilio signed but without MessageSid', send: () => tw('/webhooks/twilio', 'From=%2B51987654321&Body=hola'), status: 400 },
    { name: "Africa's Talking inbound", send: () => at('inbound', fixture('africastalking', 'inbound.txt')), status: 200, stored: [{ providerId: 'ATXid_4c5b0d9e3a6f7e8d9c0b1a2f3e4d5c6b', kind: 'text', text: 'Hello', address: '+254711082000', medium: 'sms' }] },
    { name: "Africa's Talking wrong secret", send: () => at('inbound', fixture('africastalking', 'inbound.txt').replace('ATXid_4c5b', 'ATXid_f0rg'), 'wrong-secret-0123456789'), status: 401 },
    { name: "Africa's Talking without id", send: () => at('inbound', 'from=%2B254711082000&text=hi'), status: 400 },
  ];

  it.each(cases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const before = await count('inbound_messages');
    const res = await c.send();
    expect(res.status).toBe(c.status);
    if (c.status >= 400) {
      expect(await count('inbound_messages')).toBe(before);
      expect(res.type).toContain('application/json');
      return;
    }
    expect(await count('inbound_messages')).toBe(before + (c.stored?.length ?? 0));
    for (const s of c.stored ?? []) {
      const rows = await inbound(s.providerId);
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({ kind: s.kind, text: s.text, address: s.address, medium: s.medium, ...(s.payload !== undefined ? { payload: s.payload } : {}), ...(s.addressKind ? { address_kind: s.addressKind } : {}) });
      expect(rows[0].handled_at).toBeNull(); // routing happens after the answer
    }
  });

  it('answers Twilio with empty TwiML for messages and 204 for status callbacks', async () => {
    const raw = fixture('twilio', 'inbound.txt').replace(/SM2f0c10/g, 'SMtwiml1');
    const r = await tw('/webhooks/twilio', raw);
    expect(r.type).toContain('text/xml');
    expect(r.text).toContain('<Response></Response>');
    expect((await tw('/webhooks/twilio/status', fixture('twilio', 'status-queued.txt'))).status).toBe(204);
  });

  it('does the GET verification handshake', async () => {
    const ok = await request(`${app.url}/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=${ENV.WHATSAPP_VERIFY_TOKEN}&hub.challenge=1158201444`);
    expect(ok.statusCode).toBe(200);
    expect(await ok.body.text()).toBe('1158201444');
    const bad = await request(`${app.url}/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1158201444`);
    expect(bad.statusCode).toBe(403);
    expect(await bad.body.text()).not.toContain('1158201444');
  });

  it('refuses wrong content types with 415 and stores nothing', async () => {
    const raw = fixture('whatsapp', 'text.json').replace('another color', 'text/plain');
    const r = await post('/webhooks/whatsapp', raw, { 'content-type': 'text/plain', 'x-hub-signature-256': metaSignature(APP_SECRET, raw) });
    expect(r.status).toBe(415);
  });
});

describe('webhooks: batches, replays and statuses', () => {
  it('stores every message and applies every status of a batch with several entries and changes', async () => {
    const out1 = await sentRow('whatsapp', 'wamid.OUT.1');
    const out2 = await sentRow('whatsapp', 'wamid.OUT.2');
    const out3 = await sentRow('whatsapp', 'wamid.OUT.3');
    const r = await wa(fixture('whatsapp', 'batch.json'));
    expect(r.status).toBe(200);
    for (const id of ['wamid.BATCH.A1', 'wamid.BATCH.A2', 'wamid.BATCH.B1']) expect(await inbound(id)).toHaveLength(1);
    expect((await inbound('wamid.BATCH.B1'))[0]).toMatchObject({ address: 'PE.90231847561029384', address_kind: 'wa_user' });
    expect(await outboxStatus(out1)).toMatchObject({ status: 'delivered' });
    expect(await outboxStatus(out2)).toMatchObject({ status: 'read' });
    expect(await outboxStatus(out3)).toMatchObject({ status: 'failed', error_code: '131026' });
  });

  it('never moves a status backwards: read, then a late delivered and sent, stays read', async () => {
    const id = await sentRow('whatsapp', 'wamid.HBgLNTE5ODc2NTQzMjEVAgARGBJBQkNERUYwMTIzNDU2Nzg5QUIA');
    expect((await wa(fixture('whatsapp', 'status-read.json'))).status).toBe(200);
    expect(await outboxStatus(id)).toMatchObject({ status: 'read' });
    expect((await wa(fixture('whatsapp', 'status-delivered.json'))).status).toBe(200);
    expect((await wa(fixture('whatsapp', 'status-sent.json'))).status).toBe(200);
    expect(await outboxStatus(id)).toMatchObject({ status: 'read' });
  });

  it('applies Twilio and Africa\'s Talking status callbacks and failures with their codes', async () => {
    const t1 = await sentRow('twilio', 'SM1342a9f0e1d2c3b4a5968778695a4b3c');
    const t2 = await sentRow('twilio', 'SM1342a9f0e1d2c3b4a5968778695a4b3d');
    const a1 = await sentRow('africastalking', 'ATXid_1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a');
    expect((await tw('/webhooks/twilio/status', fixture('twilio', 'status-delivered.txt'))).status).toBe(204);
    expect((await tw('/webhooks/twilio/status', fixture('twilio', 'status-undelivered.txt'))).status).toBe(204);
    expect((await at('delivery', fixture('africastalking', 'delivery-success.txt'))).status).toBe(200);
    expect((await at('delivery', fixture('africastalking', 'delivery-buffered.txt'))).status).toBe(200); // late, changes nothing
    expect(await outboxStatus(t1)).toMatchObject({ status: 'delivered' });
    expect(await outboxStatus(t2)).toMatchObject({ status: 'failed', error_code: '30003' });
    expect(await outboxStatus(a1)).toMatchObject({ status: 'delivered' });
  });

  it('stores a message replayed three times once, whether in sequence or all at once', async () => {
    const raw = fixture('whatsapp', 'text.json').replace(/wamid\.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=/, 'wamid.REPLAY.1');
    for (let i = 0; i < 3; i++) expect((await wa(raw)).status).toBe(200);
    expect(await inbound('wamid.REPLAY.1')).toHaveLength(1);
    const raw2 = raw.replace('wamid.REPLAY.1', 'wamid.REPLAY.2');
    const tw2 = fixture('twilio', 'inbound.txt').replace(/SM2f0c10a1b2c3d4e5f60718293a4b5c6d/g, 'SMreplay00000000000000000000000002');
    const at2 = fixture('africastalking', 'inbound.txt').replace('ATXid_4c5b0d9e3a6f7e8d9c0b1a2f3e4d5c6b', 'ATXid_replay2');
    const all = await Promise.all([0, 1, 2].flatMap(() => [wa(raw2), tw('/webhooks/twilio', tw2), at('inbound', at2)]));
    expect(all.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 200, 200, 200, 200, 200]);
    for (const id of ['wamid.REPLAY.2', 'SMreplay00000000000000000000000002', 'ATXid_replay2']) expect(await inbound(id)).toHaveLength(1);
  });

  it('stores text with NUL characters (which PostgreSQL refuses) without them', async () => {
    const raw = JSON.stringify({ object: 'whatsapp_business_account', entry: [{ id: '1', changes: [{ field: 'messages', value: { messages: [{ from: '51966666666', id: 'wamid.NUL.1', timestamp: '1749416383', type: 'interactive', interactive: { type: 'button_reply', button_reply: { id: 'a\u0000b', title: 'x\u0000y' } } }] } }] }] });
    expect((await wa(raw)).status).toBe(200);
    expect((await inbound('wamid.NUL.1'))[0]).toMatchObject({ text: 'xy', payload: 'ab' });
    const form = fixture('twilio', 'inbound.txt').replace(/SM2f0c10a1b2c3d4e5f60718293a4b5c6d/g, 'SMnul00000000000000000000000000001').replace('Body=Ack', 'Body=A%00ck');
    expect((await tw('/webhooks/twilio', form)).status).toBe(200);
    expect((await inbound('SMnul00000000000000000000000000001'))[0]).toMatchObject({ text: 'Ack' });
  });

  it('finds the same contact for the same sender across messages, and moves the 24-hour window forward only', async () => {
    const msg = (id: string, ts: number) => JSON.stringify({ object: 'whatsapp_business_account', entry: [{ id: '1', changes: [{ field: 'messages', value: { messaging_product: 'whatsapp', metadata: { phone_number_id: '1' }, contacts: [{ wa_id: '51977777777' }], messages: [{ from: '51977777777', id, timestamp: String(ts), type: 'text', text: { body: 'hola' } }] } }] }] });
    const t = Math.floor(Date.now() / 1000) - 100;
    await wa(msg('wamid.WIN.1', t));
    await wa(msg('wamid.WIN.0', t - 3600)); // an older message delivered late
    const addresses = await app.db.knex('contact_addresses').where({ channel: 'whatsapp', address: '+51977777777' });
    expect(addresses).toHaveLength(1);
    expect(new Date(addresses[0].last_inbound_at).getTime() || Number(addresses[0].last_inbound_at)).toBe(t * 1000);
    const contacts = new Set((await app.db.knex('inbound_messages').whereIn('provider_id', ['wamid.WIN.1', 'wamid.WIN.0']).pluck('contact_id')).map(toInt));
    expect(contacts.size).toBe(1);
  });
});

describe('webhooks: routing happens after the answer', () => {
  it('the inbound worker routes what the webhook stored and acknowledges it', async () => {
    const worker = startInboundWorker({ config: app.built.app.context.services.config, db: app.db, log: createLogger('silent') });
    try {
      const raw = fixture('twilio', 'inbound.txt').replace(/SM2f0c10a1b2c3d4e5f60718293a4b5c6d/g, 'SMroute0000000000000000000000000001').replace('From=%2B447700900513', 'From=%2B447700900777').replace('Body=Ack', 'Body=Necesito+ayuda+con+mi+tarjeta');
      expect((await tw('/webhooks/twilio', raw)).status).toBe(200);
      let row: { handled_at: unknown; route: string | null; contact_id: unknown } | undefined;
      for (let i = 0; i < 100; i++) {
        row = await app.db.knex('inbound_messages').where('provider_id', 'SMroute0000000000000000000000000001').first('handled_at', 'route', 'contact_id');
        if (row?.route && row.route !== 'routing') break;
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(row?.handled_at).not.toBeNull();
      expect(row?.route).toBe('inbox');
      const replies = await app.db.knex('outbox').where('contact_id', toInt(row?.contact_id)).select('purpose', 'channel');
      expect(replies).toEqual([expect.objectContaining({ purpose: 'reply', channel: 'sms' })]);
    } finally {
      await worker.stop();
    }
  });
});

describe('webhooks: a WhatsApp user changes number', () => {
  const OLD = '+51987650500';
  const NEW = '+51987650599';
  async function contactWith(address: string): Promise<number> {
    const now = new Date();
    const [c] = await app.db.knex('contacts').insert({ status: 'active', created_at: now, updated_at: now }).returning('id');
    const id = toInt(typeof c === 'object' ? c.id : c);
    await app.db.knex('contact_addresses').insert({ contact_id: id, channel: 'whatsapp', kind: 'phone', address, created_at: now });
    return id;
  }
  const holders = async (address: string) => (await app.db.knex('contact_addresses').where({ channel: 'whatsapp', address }).pluck('contact_id')).map(toInt);

  it("moves the contact's WhatsApp address to the new number, keeps the contact, stores no message, and audits it", async () => {
    const id = await contactWith(OLD);
    expect((await wa(fixture('whatsapp', 'system-number-changed.json'))).status).toBe(200);
    expect(await holders(NEW)).toEqual([id]);
    expect(await holders(OLD)).toEqual([]);
    expect(await app.db.knex('inbound_messages').where('provider_id', 'like', 'wamid.HBgLNTE5ODc2NTA1MDAV%').first()).toBeUndefined();
    const audit = await app.db.knex('audit_events').where({ action: 'contacts.address_changed', entity_id: String(id) }).first('detail');
    expect(audit).toBeDefined();
    expect(String(audit.detail)).not.toContain('987650');
    // A message from the new number is the same person.
    const raw = fixture('whatsapp', 'text.json').replace(/16505551234/g, NEW.slice(1)).replace('wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=', 'wamid.AFTER.CHANGE');
    expect((await wa(raw)).status).toBe(200);
    expect(toInt((await app.db.knex('inbound_messages').where('provider_id', 'wamid.AFTER.CHANGE').first('contact_id')).contact_id)).toBe(id);
    // A replay of the notice changes nothing.
    expect((await wa(fixture('whatsapp', 'system-number-changed.json'))).status).toBe(200);
    expect(await holders(NEW)).toEqual([id]);
    await app.db.knex('contacts').where('id', id).delete();
  });

  it('moves nothing when another contact already has the new number', async () => {
    const a = await contactWith(OLD);
    const b = await contactWith(NEW);
    expect((await wa(fixture('whatsapp', 'system-number-changed.json'))).status).toBe(200);
    expect([await holders(OLD), await holders(NEW)]).toEqual([[a], [b]]);
    await app.db.knex('contacts').whereIn('id', [a, b]).delete();
  });
});
