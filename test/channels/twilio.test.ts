import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import twilio from 'twilio';
import { TwilioChannel, classifyTwilioError, twilioSignature } from '../../src/channels/twilio.js';
import type { SendRequest, WebhookRequest } from '../../src/channels/types.js';
import type { OutboundContent } from '../../src/messaging/types.js';
import { FAKE_CREDENTIALS, startFakeProvider, twilioError, type FakeProvider } from '../helpers/fake-provider.js';
import { fixture, signTwilio, twilioParams } from './helpers.js';

const PUBLIC = 'https://ayni.example.org';
let fake: FakeProvider;
let tw: TwilioChannel;
let viaService: TwilioChannel;
beforeAll(async () => {
  fake = await startFakeProvider();
  const base = { apiUrl: fake.url, accountSid: FAKE_CREDENTIALS.twilioAccountSid, authToken: FAKE_CREDENTIALS.twilioAuthToken, publicUrl: PUBLIC };
  tw = new TwilioChannel({ ...base, from: '+15005550006' });
  viaService = new TwilioChannel({ ...base, messagingServiceSid: 'MG00000000000000000000000000000001' });
});
afterAll(async () => {
  await tw?.close();
  await viaService?.close();
  await fake?.close();
});

const req = (content: OutboundContent, extra: Partial<SendRequest> = {}): SendRequest => ({ to: '+51987654321', toKind: 'phone', content, ...extra });
const basic = 'Basic ' + Buffer.from(`${FAKE_CREDENTIALS.twilioAccountSid}:${FAKE_CREDENTIALS.twilioAuthToken}`).toString('base64');

describe('Twilio send: the exact form for every content type', () => {
  it.each<[string, OutboundContent, string]>([
    ['text', { type: 'text', text: 'Hola, ¿cómo está?' }, 'Hola, ¿cómo está?'],
    ['template (its SMS text)', { type: 'template', name: 'pdm', language: 'es', params: ['Rosa'], text: 'Rosa, su encuesta' }, 'Rosa, su encuesta'],
    ['buttons', { type: 'buttons', text: '¿Quiere unirse?', buttons: [{ id: 'y', title: 'Si' }, { id: 'n', title: 'No' }] }, '¿Quiere unirse?\n\n1. Si\n2. No\n\nResponda 1 o 2'],
    ['list', { type: 'list', text: 'Temas', button: 'Ver', rows: [{ id: 'a', title: 'Efectivo' }, { id: 'b', title: 'Salud' }, { id: 'c', title: 'Agua' }, { id: 'd', title: 'Otro' }] }, 'Temas\n\n1. Efectivo\n2. Salud\n3. Agua\n4. Otro\n\nResponda del 1 al 4'],
  ])('%s', async (_name, content, body) => {
    fake.reset();
    const r = await tw.send(req(content, { language: 'es' }));
    expect(r).toMatchObject({ ok: true, segments: 1 });
    const sent = fake.requests[0];
    expect(sent.path).toBe(`/2010-04-01/Accounts/${FAKE_CREDENTIALS.twilioAccountSid}/Messages.json`);
    expect(sent.headers.authorization).toBe(basic);
    expect(sent.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(sent.body).toEqual({ To: '+51987654321', From: '+15005550006', Body: body, StatusCallback: `${PUBLIC}/webhooks/twilio/status` });
    expect(r.ok && r.providerId).toBe(sent.providerIds[0]);
  });

  it('sends through a messaging service when one is configured', async () => {
    fake.reset();
    expect(await viaService.send(req({ type: 'text', text: 'x' }))).toMatchObject({ ok: true });
    expect(fake.requests[0].body).toEqual({ To: '+51987654321', MessagingServiceSid: 'MG00000000000000000000000000000001', Body: 'x', StatusCallback: `${PUBLIC}/webhooks/twilio/status` });
  });

  it('counts segments and refuses bodies over 1,600 characters or without a phone number', async () => {
    expect(await tw.send(req({ type: 'text', text: 'á'.repeat(100) }))).toMatchObject({ ok: true, segments: 2 });
    fake.reset();
    expect(await tw.send(req({ type: 'text', text: 'a'.repeat(1601) }))).toMatchObject({ ok: false, error: { class: 'permanent', code: 'invalid_content', detail: expect.stringContaining('1601 characters') } });
    expect(await tw.send(req({ type: 'text', text: 'x' }, { to: 'PE.1234', toKind: 'wa_user' }))).toMatchObject({ ok: false, error: { code: 'invalid_content' } });
    expect(fake.requests).toHaveLength(0);
  });
});

describe('Twilio errors', () => {
  it.each([
    [20429, 429, 'throttled'], [21610, 400, 'opted_out'], [20003, 401, 'auth'], [21211, 400, 'permanent'], [21408, 400, 'permanent'],
    [21614, 400, 'permanent'], [30001, 400, 'throttled'], [30003, 400, 'transient'], [30005, 400, 'permanent'], [30006, 400, 'permanent'], [30008, 400, 'transient'],
  ])('code %i (HTTP %i) → %s', async (code, status, cls) => {
    expect(classifyTwilioError(code, status)).toBe(cls);
    fake.fail({ ...twilioError(code, status), times: 1 });
    expect(await tw.send(req({ type: 'text', text: 'x' }))).toMatchObject({ ok: false, error: { class: cls, code: String(code) } });
  });

  it('falls back on the HTTP status', () => {
    expect(classifyTwilioError(undefined, 429)).toBe('throttled');
    expect(classifyTwilioError(undefined, 500)).toBe('transient');
    expect(classifyTwilioError(undefined, 401)).toBe('auth');
    expect(classifyTwilioError(undefined, 400)).toBe('permanent');
  });

  it('reports wrong credentials as auth', async () => {
    const bad = new TwilioChannel({ ...tw.settings, authToken: 'wrong' });
    expect(await bad.send(req({ type: 'text', text: 'x' }))).toMatchObject({ ok: false, error: { class: 'auth', code: '20003' } });
    await bad.close();
  });
});

describe('X-Twilio-Signature, with the official twilio package as the oracle', () => {
  it('computes the same signature as twilio for 500 random forms (repeated names, unicode, empty values)', () => {
    let seed = 7;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
    const names = ['Body', 'From', 'To', 'MessageSid', 'NumMedia', 'MediaUrl0', 'OptOutType', 'a', 'Z', 'b_2', 'ñame'];
    const values = ['', 'hola', '¿Dónde?', '+51987654321', 'a&b=c', '😀', ' spaced ', '0'];
    for (let k = 0; k < 500; k++) {
      const pairs: [string, string][] = Array.from({ length: rand(8) }, () => [names[rand(names.length)], values[rand(values.length)]]);
      const raw = new URLSearchParams(pairs).toString();
      const url = `${PUBLIC}/webhooks/twilio${rand(2) ? '/status' : ''}`;
      const ours = twilioSignature(FAKE_CREDENTIALS.twilioAuthToken, url, pairs);
      expect(ours).toBe(twilio.getExpectedTwilioSignature(FAKE_CREDENTIALS.twilioAuthToken, url, twilioParams(raw) as Record<string, string>));
      expect(twilio.validateRequest(FAKE_CREDENTIALS.twilioAuthToken, ours, url, twilioParams(raw) as Record<string, string>)).toBe(true);
    }
  });

  const hook = (path: string, raw: string, sig: string | null): WebhookRequest => ({ method: 'POST', path, headers: sig === null ? {} : { 'x-twilio-signature': sig }, rawBody: raw, body: {}, query: {} });

  it('accepts what twilio signs and refuses anything else', () => {
    const raw = fixture('twilio', 'inbound.txt');
    const url = `${PUBLIC}/webhooks/twilio`;
    const good = signTwilio(FAKE_CREDENTIALS.twilioAuthToken, url, raw);
    expect(tw.parseWebhook(hook('/webhooks/twilio', raw, good)).ok).toBe(true);
    expect(tw.parseWebhook(hook('/webhooks/twilio', raw, null))).toMatchObject({ ok: false, status: 401 });
    expect(tw.parseWebhook(hook('/webhooks/twilio', raw, signTwilio('other-token', url, raw)))).toMatchObject({ ok: false, status: 401 });
    expect(tw.parseWebhook(hook('/webhooks/twilio/status', raw, good))).toMatchObject({ ok: false, status: 401 }); // signed for another URL
    expect(tw.parseWebhook(hook('/webhooks/twilio', raw + '&Extra=1', good))).toMatchObject({ ok: false, status: 401 }); // a parameter added
    expect(tw.parseWebhook(hook('/webhooks/twilio', raw.replace('Body=Ack', 'Body=Acl'), good))).toMatchObject({ ok: false, status: 401 });
  });

  it('accepts a signature over the URL with its default port, as twilio does', () => {
    const raw = fixture('twilio', 'inbound.txt');
    const sig = signTwilio(FAKE_CREDENTIALS.twilioAuthToken, 'https://ayni.example.org:443/webhooks/twilio', raw);
    expect(tw.parseWebhook(hook('/webhooks/twilio', raw, sig)).ok).toBe(true);
  });
});

describe('Twilio webhook parsing (captured forms)', () => {
  const parse = (path: string, file: string) => {
    const raw = fixture('twilio', file);
    return tw.parseWebhook({ method: 'POST', path, headers: { 'x-twilio-signature': signTwilio(FAKE_CREDENTIALS.twilioAuthToken, PUBLIC + path, raw) }, rawBody: raw, body: {}, query: {} });
  };
  it.each([
    ['inbound.txt', { providerId: 'SM2f0c10a1b2c3d4e5f60718293a4b5c6d', from: '+447700900513', kind: 'text', text: 'Ack' }],
    ['inbound-spanish.txt', { from: '+51987654321', text: '¿Dónde cobro el bono?' }],
    ['inbound-mms.txt', { kind: 'media', text: null }],
    ['opt-out.txt', { from: '+14155550199', kind: 'text', text: 'STOP' }],
  ])('%s', (file, expected) => {
    const r = parse('/webhooks/twilio', file);
    expect(r.ok && r.messages).toHaveLength(1);
    expect(r.ok && r.messages[0]).toMatchObject({ channel: 'twilio', medium: 'sms', fromKind: 'phone', ...expected });
  });

  it.each([
    ['status-sent.txt', { status: 'sent' }],
    ['status-delivered.txt', { status: 'delivered' }],
    ['status-undelivered.txt', { status: 'failed', error: { class: 'transient', code: '30003' } }],
    ['status-failed-opted-out.txt', { status: 'failed', error: { class: 'opted_out', code: '21610' } }],
  ])('%s', (file, expected) => {
    const r = parse('/webhooks/twilio/status', file);
    expect(r.ok && r.statuses).toHaveLength(1);
    expect(r.ok && r.statuses[0]).toMatchObject({ channel: 'twilio', ...expected });
  });

  it('takes queued and sending as no news', () => {
    expect(parse('/webhooks/twilio/status', 'status-queued.txt')).toMatchObject({ ok: true, messages: [], statuses: [], ignored: 1 });
  });
});
