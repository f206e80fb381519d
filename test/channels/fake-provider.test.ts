import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { FAKE_CREDENTIALS, spawnFakeProvider, startFakeProvider, twilioError, whatsappError, atRecipientError, type FakeProvider } from '../helpers/fake-provider.js';

let fake: FakeProvider;
beforeAll(async () => {
  fake = await startFakeProvider();
});
afterAll(() => fake?.close());

const waSend = (to: string, token = FAKE_CREDENTIALS.whatsappToken) =>
  request(`${fake.url}/v23.0/${FAKE_CREDENTIALS.whatsappPhoneNumberId}/messages`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ messaging_product: 'whatsapp', to, type: 'text', text: { body: 'hola' } }),
  });
const twSend = (To: string) =>
  request(`${fake.url}/2010-04-01/Accounts/${FAKE_CREDENTIALS.twilioAccountSid}/Messages.json`, {
    method: 'POST',
    headers: { authorization: 'Basic ' + Buffer.from(`${FAKE_CREDENTIALS.twilioAccountSid}:${FAKE_CREDENTIALS.twilioAuthToken}`).toString('base64'), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ To, From: '+15005550006', Body: 'hola' }).toString(),
  });
const atSend = (to: string) =>
  request(`${fake.url}/version1/messaging`, {
    method: 'POST',
    headers: { apikey: FAKE_CREDENTIALS.atApiKey, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams({ username: FAKE_CREDENTIALS.atUsername, to, message: 'hola' }).toString(),
  });

describe('fake provider', () => {
  it('accepts each provider and counts per recipient in E.164', async () => {
    fake.reset();
    const wa = await waSend('51987654321');
    expect(wa.statusCode).toBe(200);
    const waBody = (await wa.body.json()) as { messages: { id: string }[] };
    expect(waBody.messages[0].id).toMatch(/^wamid\./);
    expect((await twSend('+51987654321')).statusCode).toBe(201);
    const at = await atSend('+254712345678,+254712345679');
    expect(at.statusCode).toBe(201);
    const atBody = (await at.body.json()) as { SMSMessageData: { Recipients: { statusCode: number }[] } };
    expect(atBody.SMSMessageData.Recipients.map((r) => r.statusCode)).toEqual([101, 101]);
    expect(fake.accepted('+51987654321')).toBe(2);
    expect(fake.accepted('+254712345679')).toBe(1);
    expect(fake.duplicates()).toEqual(['+51987654321']);
    expect(fake.requests.map((r) => r.provider)).toEqual(['whatsapp', 'twilio', 'africastalking']);
  });

  it('refuses wrong credentials and plays configured faults a given number of times', async () => {
    fake.reset();
    const bad = await waSend('51987654321', 'wrong');
    expect(bad.statusCode).toBe(401);
    expect(((await bad.body.json()) as { error: { code: number } }).error.code).toBe(190);
    fake.fail({ ...whatsappError(131056), times: 1 });
    fake.fail({ ...twilioError(21610), to: '+51911111111' });
    fake.fail({ ...atRecipientError(406, 'UserInBlacklist'), to: '+254700000001' });
    const throttled = await waSend('51987654321');
    expect(throttled.statusCode).toBe(400);
    expect(((await throttled.body.json()) as { error: { code: number } }).error.code).toBe(131056);
    expect((await waSend('51987654321')).statusCode).toBe(200);
    expect((await twSend('+51911111111')).statusCode).toBe(400);
    expect((await twSend('+51911111111')).statusCode).toBe(400);
    expect((await twSend('+51922222222')).statusCode).toBe(201);
    const at = (await (await atSend('+254700000001,+254700000002')).body.json()) as { SMSMessageData: { Recipients: { statusCode: number }[] } };
    expect(at.SMSMessageData.Recipients.map((r) => r.statusCode)).toEqual([406, 101]);
    expect(fake.accepted('+51987654321')).toBe(1);
    expect(fake.attempts('+51987654321')).toBe(3);
    expect(fake.accepted('+254700000001')).toBe(0);
  });

  it('adds the configured latency', async () => {
    fake.reset();
    fake.latencyMs = 80;
    const t = performance.now();
    await (await twSend('+51987654321')).body.text();
    expect(performance.now() - t).toBeGreaterThanOrEqual(70);
    fake.latencyMs = 0;
  });

  it('runs in its own process with the same counts over HTTP', async () => {
    const p = await spawnFakeProvider();
    try {
      const r = await request(`${p.url}/version1/messaging`, {
        method: 'POST',
        headers: { apikey: FAKE_CREDENTIALS.atApiKey, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ username: FAKE_CREDENTIALS.atUsername, to: '+254712345678', message: 'x' }).toString(),
      });
      expect(r.statusCode).toBe(201);
      await r.body.text();
      const s = await p.stats();
      expect(s.accepted['+254712345678']).toBe(1);
      expect(s.acceptedTotal).toBe(1);
    } finally {
      await p.close();
    }
  });
});
