import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AfricasTalkingChannel, classifyAfricasTalkingFailure, classifyAfricasTalkingStatusCode } from '../../src/channels/africastalking.js';
import type { SendRequest, WebhookRequest } from '../../src/channels/types.js';
import type { OutboundContent } from '../../src/messaging/types.js';
import { FAKE_CREDENTIALS, atRecipientError, startFakeProvider, type FakeProvider } from '../helpers/fake-provider.js';
import { fixture } from './helpers.js';

const SECRET = 'at_webhook_secret_0123456789';
let fake: FakeProvider;
let at: AfricasTalkingChannel;
beforeAll(async () => {
  fake = await startFakeProvider();
  at = new AfricasTalkingChannel({ apiUrl: fake.url, username: FAKE_CREDENTIALS.atUsername, apiKey: FAKE_CREDENTIALS.atApiKey, from: 'AYNI', webhookSecret: SECRET });
});
afterAll(async () => {
  await at?.close();
  await fake?.close();
});

const req = (content: OutboundContent, extra: Partial<SendRequest> = {}): SendRequest => ({ to: '+254712345678', toKind: 'phone', content, ...extra });

describe("Africa's Talking send", () => {
  it.each<[string, OutboundContent, string]>([
    ['text', { type: 'text', text: 'Habari' }, 'Habari'],
    ['buttons', { type: 'buttons', text: 'Join?', buttons: [{ id: 'y', title: 'Yes' }, { id: 'n', title: 'No' }] }, 'Join?\n\n1. Yes\n2. No\n\nReply 1 or 2'],
    ['template', { type: 'template', name: 't', language: 'en', params: [], text: 'Your survey' }, 'Your survey'],
  ])('%s: the exact form, apiKey header and JSON accept', async (_name, content, message) => {
    fake.reset();
    const r = await at.send(req(content, { language: 'en' }));
    expect(r).toMatchObject({ ok: true, segments: 1 });
    const sent = fake.requests[0];
    expect(sent.path).toBe('/version1/messaging');
    expect(sent.headers.apikey).toBe(FAKE_CREDENTIALS.atApiKey);
    expect(sent.headers.accept).toBe('application/json');
    expect(sent.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(sent.body).toEqual({ username: FAKE_CREDENTIALS.atUsername, to: '+254712345678', message, from: 'AYNI' });
    expect(r.ok && r.providerId).toBe(sent.providerIds[0]);
  });

  it.each([
    [403, 'InvalidPhoneNumber', 'permanent'], [406, 'UserInBlacklist', 'opted_out'], [409, 'DoNotDisturbRejection', 'opted_out'],
    [405, 'InsufficientBalance', 'auth'], [401, 'RiskHold', 'auth'], [402, 'InvalidSenderId', 'auth'], [500, 'InternalServerError', 'transient'], [501, 'GatewayError', 'transient'], [502, 'RejectedByGateway', 'permanent'],
  ])('recipient statusCode %i %s → %s', async (code, status, cls) => {
    expect(classifyAfricasTalkingStatusCode(code)).toBe(cls);
    fake.fail({ ...atRecipientError(code, status), times: 1 });
    expect(await at.send(req({ type: 'text', text: 'x' }))).toMatchObject({ ok: false, error: { class: cls, code: String(code), detail: status } });
  });

  it('reports a wrong API key as auth and a dead provider as transient', async () => {
    const bad = new AfricasTalkingChannel({ ...at.settings, apiKey: 'wrong' });
    expect(await bad.send(req({ type: 'text', text: 'x' }))).toMatchObject({ ok: false, error: { class: 'auth', code: 'http_401' } });
    await bad.close();
    fake.fail({ provider: 'africastalking', status: 503, body: 'down', times: 1 });
    expect(await at.send(req({ type: 'text', text: 'x' }))).toMatchObject({ ok: false, error: { class: 'transient' } });
  });
});

describe("Africa's Talking webhooks", () => {
  const hook = (path: string, raw: string): WebhookRequest => ({ method: 'POST', path, headers: {}, rawBody: raw, body: {}, query: {} });

  it('reads an inbound message', () => {
    const r = at.parseWebhook(hook(`/webhooks/africastalking/${SECRET}/inbound`, fixture('africastalking', 'inbound.txt')));
    expect(r).toMatchObject({ ok: true, statuses: [] });
    expect(r.ok && r.messages[0]).toMatchObject({ channel: 'africastalking', medium: 'sms', providerId: 'ATXid_4c5b0d9e3a6f7e8d9c0b1a2f3e4d5c6b', from: '+254711082000', kind: 'text', text: 'Hello' });
    expect(r.ok && r.messages[0].receivedAt.toISOString()).toBe('2026-11-22T15:30:12.000Z');
  });

  it.each([
    ['delivery-success.txt', { status: 'delivered' }],
    ['delivery-buffered.txt', { status: 'sent' }],
    ['delivery-rejected-blacklist.txt', { status: 'failed', error: { class: 'opted_out', code: 'UserInBlackList' } }],
    ['delivery-failed.txt', { status: 'failed', error: { class: 'transient', code: 'DeliveryFailure' } }],
  ])('reads the delivery report %s', (file, expected) => {
    const r = at.parseWebhook(hook(`/webhooks/africastalking/${SECRET}/delivery`, fixture('africastalking', file)));
    expect(r.ok && r.statuses[0]).toMatchObject({ channel: 'africastalking', ...expected });
  });

  it('classifies failure reasons', () => {
    expect(classifyAfricasTalkingFailure('UserInBlackList')).toBe('opted_out');
    expect(classifyAfricasTalkingFailure('UserDoesNotExist')).toBe('permanent');
    expect(classifyAfricasTalkingFailure('AbsentSubscriber')).toBe('transient');
    expect(classifyAfricasTalkingFailure(undefined)).toBe('permanent');
  });

  it('refuses a wrong or missing secret in the path', () => {
    const raw = fixture('africastalking', 'inbound.txt');
    for (const path of [`/webhooks/africastalking/${SECRET}x/inbound`, '/webhooks/africastalking/x/inbound', `/webhooks/africastalking/${SECRET.slice(0, -1)}/delivery`, '/webhooks/africastalking//inbound']) {
      expect(at.parseWebhook(hook(path, raw))).toMatchObject({ ok: false, status: 401 });
    }
  });

  it('accepts JSON as well as forms, and refuses a body without an id', () => {
    const r = at.parseWebhook(hook(`/webhooks/africastalking/${SECRET}/inbound`, JSON.stringify({ id: 'ATXid_j1', from: '+254711082000', text: 'Hi', to: '28901', date: '2026-11-22 15:30:12' })));
    expect(r.ok && r.messages[0].providerId).toBe('ATXid_j1');
    expect(at.parseWebhook(hook(`/webhooks/africastalking/${SECRET}/inbound`, 'from=%2B254711082000&text=x'))).toMatchObject({ ok: false, status: 400 });
  });
});
