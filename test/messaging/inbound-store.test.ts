import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storeInbound, storeInboundBatch } from '../../src/messaging/inbound.js';
import { startInboundWorker } from '../../src/messaging/inbound-worker.js';
import type { NamedStep } from '../../src/messaging/router.js';
import type { ParsedInbound } from '../../src/messaging/types.js';
import { toDate, toInt } from '../../src/db/values.js';
import { testServices } from '../helpers/services.js';

let s: Awaited<ReturnType<typeof testServices>>;
beforeAll(async () => {
  s = await testServices();
});
afterAll(() => s?.close());

const msg = (id: string, from: string, at = new Date(), over: Partial<ParsedInbound> = {}): ParsedInbound => ({
  channel: 'whatsapp', medium: 'whatsapp', providerId: id, from, fromKind: 'phone', kind: 'text', text: 'hola', payload: null, receivedAt: at, ...over,
});

describe('storeInboundBatch', () => {
  it('stores a batch in one go: duplicates inside the batch and earlier ones come back as null, in order', async () => {
    await storeInbound(s, [msg('b-0', '+51900000000')]);
    const out = await storeInboundBatch(s.db.knex, [msg('b-1', '+51900000001'), msg('b-0', '+51900000000'), msg('b-2', '+51900000002'), msg('b-1', '+51900000001')]);
    expect(out[0]).toBeGreaterThan(0);
    expect(out[1]).toBeNull();
    expect(out[2]).toBeGreaterThan(out[0]!);
    expect(out[3]).toBeNull();
  });

  it('keeps the same id on another channel apart', async () => {
    const out = await storeInboundBatch(s.db.knex, [msg('same', '+51900000003'), msg('same', '+51900000003', new Date(), { channel: 'twilio', medium: 'sms' })]);
    expect(out.every((id) => id !== null)).toBe(true);
  });

  it('creates each new sender once, joins known ones, and keeps one person one contact across media', async () => {
    const before = toInt((await s.db.knex('contacts').count({ n: '*' }).first())?.n);
    await storeInboundBatch(s.db.knex, [msg('c-1', '+51911000001'), msg('c-2', '+51911000001'), msg('c-3', '+51911000002'), msg('c-4', '+51911000001', new Date(), { channel: 'twilio', medium: 'sms' })]);
    const after = toInt((await s.db.knex('contacts').count({ n: '*' }).first())?.n);
    expect(after - before).toBe(2);
    const addrs = await s.db.knex('contact_addresses').where('address', '+51911000001').select('contact_id', 'channel');
    expect(addrs.map((a) => a.channel).sort()).toEqual(['sms', 'whatsapp']);
    expect(new Set(addrs.map((a) => toInt(a.contact_id))).size).toBe(1);
  });

  it('moves last inbound and last seen forward only', async () => {
    const t = new Date('2026-11-20T10:00:00Z');
    await storeInboundBatch(s.db.knex, [msg('w-1', '+51922000001', t)]);
    await storeInboundBatch(s.db.knex, [msg('w-0', '+51922000001', new Date(t.getTime() - 3_600_000))]);
    const a = await s.db.knex('contact_addresses').where('address', '+51922000001').first('last_inbound_at', 'contact_id');
    expect(toDate(a.last_inbound_at).toISOString()).toBe(t.toISOString());
    const c = await s.db.knex('contacts').where('id', a.contact_id).first('last_seen_at');
    expect(toDate(c.last_seen_at).toISOString()).toBe(t.toISOString());
    const later = new Date(t.getTime() + 60_000);
    await storeInboundBatch(s.db.knex, [msg('w-2', '+51922000001', later), msg('w-3', '+51922000001', t)]);
    const a2 = await s.db.knex('contact_addresses').where('address', '+51922000001').first('last_inbound_at');
    expect(toDate(a2.last_inbound_at).toISOString()).toBe(later.toISOString());
  });

  it('stores 2,000 messages from 2,000 senders in one batch', async () => {
    const many = Array.from({ length: 2000 }, (_, i) => msg(`m-${i}`, `+5193${String(i).padStart(7, '0')}`));
    const out = await storeInboundBatch(s.db.knex, many);
    expect(out.filter((id) => id !== null)).toHaveLength(2000);
    expect(new Set(out).size).toBe(2000);
  });
});

describe('inbound worker', () => {
  it('routes stored messages, and sets aside one whose routing keeps failing without holding up the rest', async () => {
    const seen: string[] = [];
    const steps: NamedStep[] = [
      {
        stage: 'inbox',
        name: 'test',
        step: async (ctx) => {
          if (ctx.message.text === 'poison') throw new Error('router bug');
          seen.push(String(ctx.message.text));
          return 'test-route';
        },
      },
    ];
    await s.db.knex('inbound_messages').whereNull('handled_at').update({ handled_at: new Date(), route: 'earlier' });
    const stored = await storeInbound(s, [msg('r-1', '+51933000001', new Date(), { text: 'poison' }), msg('r-2', '+51933000002', new Date(), { text: 'fine' })]);
    const worker = startInboundWorker(s, { steps, sweepMs: 60_000, maxFailures: 3 });
    try {
      for (let i = 0; i < 3; i++) await worker.kick();
      const rows = await s.db.knex('inbound_messages').whereIn('id', stored.stored).orderBy('id').select('route', 'handled_at');
      expect(rows.map((r) => r.route)).toEqual(['error', 'test-route']);
      expect(seen).toEqual(['fine']);
      expect(worker.routed).toBe(1);
    } finally {
      await worker.stop();
    }
  });

  it('releases a claim left by a process that died while routing', async () => {
    const stored = await storeInbound(s, [msg('r-3', '+51933000003', new Date(), { text: 'orphan' })]);
    await s.db.knex('inbound_messages').where('id', stored.stored[0]).update({ handled_at: new Date(Date.now() - 10 * 60_000), route: 'routing' });
    const steps: NamedStep[] = [{ stage: 'inbox', name: 'test', step: async () => 'rescued' }];
    const worker = startInboundWorker(s, { steps, sweepMs: 60_000, staleClaimMs: 120_000 });
    try {
      await worker.kick();
      expect(await s.db.knex('inbound_messages').where('id', stored.stored[0]).first('route')).toEqual({ route: 'rescued' });
    } finally {
      await worker.stop();
    }
  });
});
