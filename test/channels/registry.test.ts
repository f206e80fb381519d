import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { buildChannels } from '../../src/channels/index.js';
import { SimulatorChannel } from '../../src/channels/simulator.js';
import { fakeEnv } from '../helpers/fake-provider.js';

describe('channel registry', () => {
  it('with no credentials, only the simulator carries both media', async () => {
    const c = buildChannels(loadConfig({ NODE_ENV: 'test' }));
    expect(c.providers).toEqual([]);
    expect(c.forMedium('whatsapp')).toEqual([c.simulator.whatsapp]);
    expect(c.forMedium('sms')).toEqual([c.simulator.sms]);
    expect(c.get('whatsapp')).toBeUndefined();
    await c.close();
  });

  it('builds every configured provider with base URLs from the settings', async () => {
    const c = buildChannels(loadConfig({ NODE_ENV: 'test', ...fakeEnv('http://127.0.0.1:9') }));
    expect(c.providers).toEqual(['whatsapp', 'twilio', 'africastalking']);
    expect(c.forMedium('sms').map((a) => a.name)).toEqual(['twilio', 'africastalking']);
    expect(c.forMedium('whatsapp').map((a) => a.name)).toEqual(['whatsapp']);
    expect(c.whatsapp?.settings.apiUrl).toBe('http://127.0.0.1:9/v23.0');
    expect(c.get('simulator', 'whatsapp')).toBe(c.simulator.whatsapp);
    expect(c.whatsapp?.ratePerSecond).toBe(80);
    await c.close();
  });

  it('takes rate overrides', async () => {
    const c = buildChannels(loadConfig({ NODE_ENV: 'test', ...fakeEnv('http://127.0.0.1:9') }), { rates: { whatsapp: 250, twilio: 3 } });
    expect(c.whatsapp?.ratePerSecond).toBe(250);
    expect(c.twilio?.ratePerSecond).toBe(3);
    await c.close();
  });
});

describe('simulator', () => {
  it('records what it sends per address, rendered as SMS or kept as WhatsApp content', async () => {
    const sms = new SimulatorChannel({ medium: 'sms' });
    const wa = new SimulatorChannel({ medium: 'whatsapp', store: sms.store });
    const content = { type: 'buttons' as const, text: 'Join?', buttons: [{ id: 'y', title: 'Yes' }, { id: 'n', title: 'No' }] };
    const r1 = await sms.send({ to: '+51987654321', toKind: 'phone', content, language: 'en' });
    const r2 = await wa.send({ to: '+51987654321', toKind: 'phone', content, callbackData: 'outbox:1' });
    expect(r1).toMatchObject({ ok: true, segments: 1 });
    expect(r2.ok && r2.providerId).toMatch(/^sim-/);
    expect(sms.sent('+51987654321').map((m) => m.text)).toEqual(['Join?\n\n1. Yes\n2. No\n\nReply 1 or 2']);
    expect(wa.sent('+51987654321')).toEqual([expect.objectContaining({ text: 'Join?', content, callbackData: 'outbox:1' })]);
    expect(sms.sent('+51911111111')).toEqual([]);
  });

  it('refuses what the real channel would refuse, and plays injected failures', async () => {
    const wa = new SimulatorChannel({ medium: 'whatsapp' });
    expect(await wa.send({ to: '+51987654321', toKind: 'phone', content: { type: 'buttons', text: 'q', buttons: [] } })).toMatchObject({ ok: false, error: { code: 'invalid_content' } });
    wa.failNext({ class: 'throttled', code: '131056', detail: 'pair rate' }, { times: 1 });
    expect(await wa.send({ to: '+51987654321', toKind: 'phone', content: { type: 'text', text: 'x' } })).toMatchObject({ ok: false, error: { class: 'throttled' } });
    expect(await wa.send({ to: '+51987654321', toKind: 'phone', content: { type: 'text', text: 'x' } })).toMatchObject({ ok: true });
  });

  it('builds inbound messages as a webhook would', () => {
    const wa = new SimulatorChannel({ medium: 'whatsapp' });
    expect(wa.inbound({ from: '+51987654321', text: 'Sí', buttonId: 'y' })).toMatchObject({ channel: 'simulator', medium: 'whatsapp', kind: 'button', payload: 'y', text: 'Sí', fromKind: 'phone' });
    expect(wa.inbound({ from: '+51987654321', text: 'hola' }).providerId).not.toBe(wa.inbound({ from: '+51987654321', text: 'hola' }).providerId);
    expect(wa.report('sim-1', 'read')).toMatchObject({ channel: 'simulator', providerId: 'sim-1', status: 'read' });
  });
});
