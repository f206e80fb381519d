import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { receive } from '../../src/messaging/inbound.js';
import { outboxFor } from '../../src/messaging/outbox.js';
import { ROUTER_STEPS } from '../../src/messaging/steps.js';
import type { ParsedInbound } from '../../src/messaging/types.js';
import { testServices } from '../helpers/services.js';

let s: Awaited<ReturnType<typeof testServices>>;
beforeAll(async () => {
  s = await testServices();
});
afterAll(() => s?.close());

const sms = (id: string, text: string, from = '+51987654321'): ParsedInbound => ({
  channel: 'simulator', medium: 'sms', providerId: id, from, fromKind: 'phone', kind: 'text', text, receivedAt: new Date(),
});

describe('inbound pipeline', () => {
  it('stores a message once however often the provider delivers it', async () => {
    const first = await receive(s, ROUTER_STEPS, [sms('m1', 'hola')]);
    const again = await receive(s, ROUTER_STEPS, [sms('m1', 'hola'), sms('m1', 'hola')]);
    expect(first.stored).toHaveLength(1);
    expect(again.stored).toHaveLength(0);
    expect(again.duplicates).toBe(2);
    const rows = await s.db.knex('inbound_messages').where('provider_id', 'm1');
    expect(rows).toHaveLength(1);
  });

  it('finds the same contact for the same number and acknowledges an unrouted message once', async () => {
    await receive(s, ROUTER_STEPS, [sms('m2', 'otra pregunta')]);
    const contacts = await s.db.knex('contact_addresses').where('address', '+51987654321');
    expect(contacts).toHaveLength(1);
    const out = await outboxFor(s.db.knex, contacts[0].contact_id);
    expect(out).toHaveLength(1);
    expect(out[0].content).toMatchObject({ type: 'text' });
    expect(out[0].purpose).toBe('reply');
  });
});
