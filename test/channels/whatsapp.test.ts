import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WhatsAppChannel, classifyWhatsAppError, validateWhatsAppContent } from '../../src/channels/whatsapp.js';
import type { SendRequest, WebhookRequest } from '../../src/channels/types.js';
import type { OutboundContent } from '../../src/messaging/types.js';
import { FAKE_CREDENTIALS, startFakeProvider, whatsappError, type FakeProvider } from '../helpers/fake-provider.js';
import { fixture, metaSignature } from './helpers.js';

const SECRET = 'test_app_secret';
let fake: FakeProvider;
let wa: WhatsAppChannel;
beforeAll(async () => {
  fake = await startFakeProvider();
  wa = new WhatsAppChannel({ apiUrl: `${fake.url}/v23.0`, accessToken: FAKE_CREDENTIALS.whatsappToken, phoneNumberId: FAKE_CREDENTIALS.whatsappPhoneNumberId, appSecret: SECRET, verifyToken: 'verify-me' });
});
afterAll(async () => {
  await wa?.close();
  await fake?.close();
});

const req = (content: OutboundContent, extra: Partial<SendRequest> = {}): SendRequest => ({ to: '+51987654321', toKind: 'phone', content, callbackData: 'outbox:7', ...extra });

describe('WhatsApp send: the exact request for every content type', () => {
  it.each<[string, OutboundContent, Record<string, unknown>]>([
    ['text', { type: 'text', text: 'Hola' }, { type: 'text', text: { preview_url: false, body: 'Hola' } }],
    [
      'template',
      { type: 'template', name: 'pdm_reminder', language: 'es', params: ['Rosa', '12 de mayo'], text: 'x' },
      { type: 'template', template: { name: 'pdm_reminder', language: { code: 'es' }, components: [{ type: 'body', parameters: [{ type: 'text', text: 'Rosa' }, { type: 'text', text: '12 de mayo' }] }] } },
    ],
    ['image with caption', { type: 'text', text: 'Puntos de pago', media: { kind: 'image', url: 'https://example.org/mapa.jpg' } }, { type: 'image', image: { link: 'https://example.org/mapa.jpg', caption: 'Puntos de pago' } }],
    ['document by media id', { type: 'text', text: 'Guía', media: { kind: 'document', id: '1479537139650973', filename: 'guia.pdf' } }, { type: 'document', document: { id: '1479537139650973', caption: 'Guía', filename: 'guia.pdf' } }],
    ['voice note (no caption)', { type: 'text', text: 'not sent', media: { kind: 'audio', url: 'https://example.org/nota.ogg' } }, { type: 'audio', audio: { link: 'https://example.org/nota.ogg' } }],
    ['template without parameters', { type: 'template', name: 'hello_world', language: 'en_US', params: [], text: 'x' }, { type: 'template', template: { name: 'hello_world', language: { code: 'en_US' } } }],
    [
      'buttons',
      { type: 'buttons', text: '¿Quiere unirse?', buttons: [{ id: 'y', title: 'Sí' }, { id: 'n', title: 'No' }] },
      { type: 'interactive', interactive: { type: 'button', body: { text: '¿Quiere unirse?' }, action: { buttons: [{ type: 'reply', reply: { id: 'y', title: 'Sí' } }, { type: 'reply', reply: { id: 'n', title: 'No' } }] } } },
    ],
    [
      'list',
      { type: 'list', text: 'Temas', button: 'Ver temas', rows: [{ id: 'cash', title: 'Efectivo', description: 'Fechas y montos' }, { id: 'health', title: 'Salud' }] },
      { type: 'interactive', interactive: { type: 'list', body: { text: 'Temas' }, action: { button: 'Ver temas', sections: [{ rows: [{ id: 'cash', title: 'Efectivo', description: 'Fechas y montos' }, { id: 'health', title: 'Salud' }] }] } } },
    ],
  ])('%s', async (_name, content, expected) => {
    fake.reset();
    const r = await wa.send(req(content));
    expect(r).toMatchObject({ ok: true });
    expect(fake.requests).toHaveLength(1);
    const sent = fake.requests[0];
    expect(sent.path).toBe(`/v23.0/${FAKE_CREDENTIALS.whatsappPhoneNumberId}/messages`);
    expect(sent.headers.authorization).toBe(`Bearer ${FAKE_CREDENTIALS.whatsappToken}`);
    expect(sent.headers['content-type']).toBe('application/json');
    expect(sent.body).toEqual({ messaging_product: 'whatsapp', recipient_type: 'individual', to: '51987654321', biz_opaque_callback_data: 'outbox:7', ...expected });
    expect(r.ok && r.providerId).toBe(sent.providerIds[0]);
  });

  it('addresses a username user by business-scoped user id in `recipient`, not `to`', async () => {
    fake.reset();
    const r = await wa.send(req({ type: 'text', text: 'Hola' }, { to: 'PE.90231847561029384', toKind: 'wa_user' }));
    expect(r.ok).toBe(true);
    expect(fake.requests[0].body.recipient).toBe('PE.90231847561029384');
    expect(fake.requests[0].body).not.toHaveProperty('to');
    expect(fake.accepted('PE.90231847561029384')).toBe(1);
  });
});

describe('WhatsApp content limits: refused before any request, with the reason', () => {
  const b = (title: string, id = title) => ({ id, title });
  it.each<[string, OutboundContent, RegExp]>([
    ['empty text', { type: 'text', text: '  ' }, /text is empty/],
    ['text over 4,096', { type: 'text', text: 'a'.repeat(4097) }, /4097 characters; WhatsApp allows 4096/],
    ['no buttons', { type: 'buttons', text: 'q', buttons: [] }, /0 given; WhatsApp allows 1 to 3/],
    ['four buttons', { type: 'buttons', text: 'q', buttons: [b('a'), b('b'), b('c'), b('d')] }, /4 given/],
    ['button title over 20', { type: 'buttons', text: 'q', buttons: [b('a'.repeat(21))] }, /button 1 title has 21 characters; WhatsApp allows 20/],
    ['duplicate button titles', { type: 'buttons', text: 'q', buttons: [b('Sí', '1'), b('sí', '2')] }, /titles must be different/],
    ['button body over 1,024', { type: 'buttons', text: 'q'.repeat(1025), buttons: [b('a')] }, /text has 1025 characters; WhatsApp allows 1024/],
    ['eleven rows', { type: 'list', text: 'q', button: 'Ver', rows: Array.from({ length: 11 }, (_, i) => b(`r${i}`)) }, /list rows: 11 given; WhatsApp allows 1 to 10/],
    ['row title over 24', { type: 'list', text: 'q', button: 'Ver', rows: [b('a'.repeat(25))] }, /row 1 title has 25 characters; WhatsApp allows 24/],
    ['row description over 72', { type: 'list', text: 'q', button: 'Ver', rows: [{ id: 'x', title: 'x', description: 'd'.repeat(73) }] }, /row 1 description has 73 characters; WhatsApp allows 72/],
    ['list button over 20', { type: 'list', text: 'q', button: 'b'.repeat(21), rows: [b('x')] }, /list button label has 21 characters/],
    ['media without URL or id', { type: 'text', text: 'x', media: { kind: 'image' } }, /https:\/\/ URL or a WhatsApp media id/],
    ['media over plain http', { type: 'text', text: 'x', media: { kind: 'image', url: 'http://example.org/a.jpg' } }, /https:\/\/ URL/],
    ['caption over 1,024', { type: 'text', text: 'c'.repeat(1025), media: { kind: 'image', url: 'https://example.org/a.jpg' } }, /caption has 1025 characters; WhatsApp allows 1024/],
    ['template name', { type: 'template', name: 'Bad Name', language: 'es', params: [], text: '' }, /template name/],
    ['template parameter with a line break', { type: 'template', name: 'ok', language: 'es', params: ['a\nb'], text: '' }, /line breaks/],
  ])('%s', async (_name, content, reason) => {
    expect(validateWhatsAppContent(content).join('; ')).toMatch(reason);
    fake.reset();
    const r = await wa.send(req(content));
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error).toMatchObject({ class: 'permanent', code: 'invalid_content' });
      expect(r.error.detail).toMatch(reason);
    }
    expect(fake.requests).toHaveLength(0);
  });

  it('accepts content exactly at the limits', () => {
    expect(validateWhatsAppContent({ type: 'buttons', text: 'q'.repeat(1024), buttons: [b('a'.repeat(20)), b('b'), b('c')] })).toEqual([]);
    expect(validateWhatsAppContent({ type: 'list', text: 'q', button: 'b'.repeat(20), rows: Array.from({ length: 10 }, (_, i) => ({ id: `r${i}`, title: 't'.repeat(24), description: 'd'.repeat(72) })) })).toEqual([]);
  });

  it('refuses callback data over 512 bytes and a recipient that is no phone number', async () => {
    expect(await wa.send(req({ type: 'text', text: 'x' }, { callbackData: 'é'.repeat(257) }))).toMatchObject({ ok: false, error: { code: 'invalid_content' } });
    expect(await wa.send(req({ type: 'text', text: 'x' }, { to: '12' }))).toMatchObject({ ok: false, error: { code: 'invalid_content' } });
  });
});

describe('WhatsApp errors are classified by error.code', () => {
  it.each([
    [4, 'throttled'], [80007, 'throttled'], [130429, 'throttled'], [131048, 'throttled'], [131056, 'throttled'], [133016, 'throttled'],
    [131000, 'transient'], [131016, 'transient'], [131053, 'transient'],
    [131047, 'window_closed'],
    [131026, 'permanent'], [131030, 'permanent'], [132000, 'permanent'], [132001, 'permanent'],
    [131050, 'opted_out'],
    [190, 'auth'], [10, 'auth'], [200, 'auth'], [299, 'auth'],
  ])('code %i → %s (from a real send answered with HTTP 400)', async (code, cls) => {
    expect(classifyWhatsAppError(code, 400)).toBe(cls);
    fake.reset();
    fake.fail({ ...whatsappError(code), times: 1 });
    const r = await wa.send(req({ type: 'text', text: 'x' }));
    expect(r).toMatchObject({ ok: false, error: { class: cls, code: String(code) } });
  });

  it('uses the HTTP status only when there is no code; a dead provider is transient', async () => {
    expect(classifyWhatsAppError(undefined, 429)).toBe('throttled');
    expect(classifyWhatsAppError(undefined, 503)).toBe('transient');
    expect(classifyWhatsAppError(undefined, 401)).toBe('auth');
    expect(classifyWhatsAppError(999999, 400)).toBe('permanent');
    fake.fail({ provider: 'whatsapp', status: 502, body: 'Bad gateway', times: 1 });
    expect(await wa.send(req({ type: 'text', text: 'x' }))).toMatchObject({ ok: false, error: { class: 'transient', code: 'http_502' } });
    const dead = new WhatsAppChannel({ ...wa.settings, apiUrl: 'http://127.0.0.1:1/v23.0' });
    expect(await dead.send(req({ type: 'text', text: 'x' }))).toMatchObject({ ok: false, error: { class: 'transient' } });
    await dead.close();
  });

  it('suggests waiting 6 s after the pair rate limit and honours Retry-After', async () => {
    fake.fail({ ...whatsappError(131056), times: 1 });
    expect(await wa.send(req({ type: 'text', text: 'x' }))).toMatchObject({ ok: false, error: { retryAfterMs: 6000 } });
    fake.fail({ ...whatsappError(130429, 429), headers: { 'retry-after': '3' }, times: 1 });
    expect(await wa.send(req({ type: 'text', text: 'x' }))).toMatchObject({ ok: false, error: { class: 'throttled', retryAfterMs: 3000 } });
  });

  it('answers auth failure for a wrong token', async () => {
    const bad = new WhatsAppChannel({ ...wa.settings, accessToken: 'wrong' });
    expect(await bad.send(req({ type: 'text', text: 'x' }))).toMatchObject({ ok: false, error: { class: 'auth', code: '190' } });
    await bad.close();
  });
});

const hook = (raw: string, sig: string | null = metaSignature(SECRET, raw)): WebhookRequest => ({
  method: 'POST', path: '/webhooks/whatsapp', headers: sig ? { 'x-hub-signature-256': sig } : {}, rawBody: raw, body: JSON.parse(raw), query: {},
});

describe('WhatsApp webhook parsing (captured payload shapes)', () => {
  it.each([
    ['text.json', { from: '+16505551234', fromKind: 'phone', kind: 'text', text: 'Does it come in another color?', payload: null, profileName: 'Sheena Nelson' }],
    ['button-reply.json', { kind: 'button', text: 'Yes', payload: 'q1_yes' }],
    ['list-reply.json', { from: '+51987654321', kind: 'list', text: 'Cash assistance', payload: 'topic_cash' }],
    ['template-button.json', { kind: 'button', text: 'Empezar', payload: 'pdm_start' }],
    ['image.json', { kind: 'media', text: 'Mi tarjeta no funciona' }],
    ['location.json', { kind: 'other', text: null }],
    ['username-user.json', { from: 'PE.90231847561029384', fromKind: 'wa_user', kind: 'text', text: 'Hola, quiero información', profileName: 'Ana' }],
  ])('%s', (file, expected) => {
    const r = wa.parseWebhook(hook(fixture('whatsapp', file)));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.messages).toHaveLength(1);
    expect(r.messages[0]).toMatchObject({ channel: 'whatsapp', medium: 'whatsapp', ...expected });
    expect(r.messages[0].providerId).toMatch(/^wamid\./);
    expect(r.statuses).toHaveLength(0);
  });

  it('reads the timestamp in seconds', () => {
    const r = wa.parseWebhook(hook(fixture('whatsapp', 'text.json')));
    expect(r.ok && r.messages[0].receivedAt.toISOString()).toBe(new Date(1749416383 * 1000).toISOString());
  });

  it.each([
    ['status-sent.json', 'sent', { callbackData: 'outbox:1001' }],
    ['status-delivered.json', 'delivered', {}],
    ['status-read.json', 'read', {}],
    ['status-failed.json', 'failed', { error: { class: 'window_closed', code: '131047' }, callbackData: 'outbox:1002' }],
  ])('%s', (file, status, extra) => {
    const r = wa.parseWebhook(hook(fixture('whatsapp', file)));
    expect(r.ok && r.statuses.length).toBe(1);
    expect(r.ok && r.statuses[0]).toMatchObject({ channel: 'whatsapp', status, ...extra });
    expect(r.ok && r.messages).toEqual([]);
  });

  it('reads every entry, change, message and status of a batch', () => {
    const r = wa.parseWebhook(hook(fixture('whatsapp', 'batch.json')));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.messages.map((m) => [m.providerId, m.from, m.kind])).toEqual([
      ['wamid.BATCH.A1', '+51911111111', 'text'],
      ['wamid.BATCH.A2', '+51922222222', 'button'],
      ['wamid.BATCH.B1', 'PE.90231847561029384', 'text'],
    ]);
    expect(r.statuses.map((s) => [s.providerId, s.status, s.error?.class])).toEqual([
      ['wamid.OUT.1', 'delivered', undefined],
      ['wamid.OUT.2', 'read', undefined],
      ['wamid.OUT.3', 'failed', 'permanent'],
    ]);
  });

  it('reads a change of number or of user id as an address change, not a message', () => {
    const number = wa.parseWebhook(hook(fixture('whatsapp', 'system-number-changed.json')));
    expect(number).toMatchObject({ ok: true, messages: [], statuses: [], addressChanges: [{ medium: 'whatsapp', from: '+51987650500', to: '+51987650599', toKind: 'phone' }] });
    const raw = fixture('whatsapp', 'system-number-changed.json').replace(
      /"system":\{[^}]*\}/,
      '"system":{"body":"User changed","type":"user_changed_user_id","previous_user_id":"PE.11112222333344445555","user_id":"PE.99998888777766665555"}',
    );
    const userId = wa.parseWebhook(hook(raw));
    expect(userId).toMatchObject({ ok: true, messages: [], addressChanges: [{ from: 'PE.11112222333344445555', to: 'PE.99998888777766665555', toKind: 'wa_user' }] });
    // Not a valid user id: not a change.
    const bad = wa.parseWebhook(hook(raw.replace('PE.99998888777766665555', 'nonsense value')));
    expect(bad).toMatchObject({ ok: true, messages: [], addressChanges: [], ignored: 1 });
  });

  it('skips reactions and other fields, answering 200 with nothing to store', () => {
    for (const f of ['reaction.json', 'template-status-update.json']) {
      const r = wa.parseWebhook(hook(fixture('whatsapp', f)));
      expect(r).toMatchObject({ ok: true, messages: [], statuses: [], ignored: 1 });
    }
  });

  it('refuses a missing, forged or re-signed-with-another-secret signature', () => {
    const raw = fixture('whatsapp', 'text.json');
    expect(wa.parseWebhook(hook(raw, null))).toMatchObject({ ok: false, status: 401 });
    expect(wa.parseWebhook(hook(raw, metaSignature('other', raw)))).toMatchObject({ ok: false, status: 401 });
    expect(wa.parseWebhook(hook(raw, 'sha256=' + '0'.repeat(64)))).toMatchObject({ ok: false, status: 401 });
    expect(wa.parseWebhook(hook(raw, 'sha1=' + metaSignature(SECRET, raw).slice(7)))).toMatchObject({ ok: false, status: 401 });
    // one changed byte in the body
    expect(wa.parseWebhook({ ...hook(raw), rawBody: raw.replace('color', 'colour') })).toMatchObject({ ok: false, status: 401 });
  });

  it('answers the verification handshake', () => {
    expect(wa.verificationChallenge({ 'hub.mode': 'subscribe', 'hub.verify_token': 'verify-me', 'hub.challenge': '1158201444' })).toEqual({ status: 200, body: '1158201444' });
    expect(wa.verificationChallenge({ 'hub.mode': 'subscribe', 'hub.verify_token': 'wrong', 'hub.challenge': '1' }).status).toBe(403);
    expect(wa.verificationChallenge({ 'hub.mode': 'unsubscribe', 'hub.verify_token': 'verify-me', 'hub.challenge': '1' }).status).toBe(403);
    expect(wa.verificationChallenge({}).status).toBe(403);
  });
});
