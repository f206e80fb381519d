/**
 * STOP while a broadcast is going out, through the real inbound pipeline (receive() with the
 * router's steps: the contacts domain's STOP handling), against the fake provider: nothing reaches a
 * person after their STOP is stored, except the STOP confirmation itself. Also the dispatcher's own
 * lifecycle: a graceful stop gives back what it did not send, and rows of a dead process are
 * recovered.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildChannels, type ChannelRegistry } from '../../src/channels/index.js';
import { loadConfig, type Config } from '../../src/config.js';
import type { Database } from '../../src/db/orm.js';
import { toBool, toInt } from '../../src/db/values.js';
import { createLogger } from '../../src/log.js';
import { Dispatcher } from '../../src/messaging/dispatcher.js';
import { receive } from '../../src/messaging/inbound.js';
import { ROUTER_STEPS } from '../../src/messaging/steps.js';
import type { ParsedInbound, RouterServices } from '../../src/messaging/types.js';
import { openTestDatabase } from '../helpers/db.js';
import { startFakeProvider, type FakeProvider } from '../helpers/fake-provider.js';
import { countBy, insertOutbox, outboxRow, seedContacts, until, type SeededContact } from './dispatch-fixtures.js';

let fake: FakeProvider;
let db: Database;
let config: Config;
let channels: ChannelRegistry;
let services: RouterServices;
let closeDb: () => Promise<void>;
let next = 700_000;
const log = createLogger('silent');

beforeAll(async () => {
  fake = await startFakeProvider();
  const t = await openTestDatabase();
  db = t.db;
  closeDb = t.close;
  config = loadConfig({ ...fake.env(), DATABASE_URL: t.test.url, LOG_LEVEL: 'silent', NODE_ENV: 'test', WHATSAPP_RATE_PER_SECOND: '100000' });
  channels = buildChannels(config);
  services = { config, db, log };
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

let inboundSeq = 0;
/** The person texts STOP on WhatsApp: stored and routed like a webhook's message. Resolves when it is stored and handled. */
async function sendStop(c: SeededContact): Promise<number> {
  const m: ParsedInbound = { channel: 'whatsapp', medium: 'whatsapp', providerId: `wamid.STOP${++inboundSeq}`, from: c.phone, fromKind: 'phone', kind: 'text', text: 'STOP', receivedAt: new Date() };
  const r = await receive(services, ROUTER_STEPS, [m]);
  expect(r.routes).toEqual(['stop']);
  return Date.now();
}

const textOf = (body: Record<string, unknown>) => (body.text as { body?: string } | undefined)?.body ?? '';

describe('STOP and the dispatcher', () => {
  it('a row claimed before the STOP and due to leave after it is not sent (the check right before the request)', async () => {
    const [a, b, c] = await seedContacts(db.knex, { count: 3, firstNumber: next });
    next += 3;
    const ids = await insertOutbox(db.knex, [a, b, c].map((x) => ({ contactId: x.id, broadcastId: 90, content: { type: 'text' as const, text: 'Campaña de salud' } })));
    // One message a second: b's waits in the rate limiter, already claimed, while b says STOP.
    const d = new Dispatcher({ db, config, log, adapters: channels.all, rates: { whatsapp: 1 }, pollMs: 10 });
    d.start();
    try {
      await until(async () => fake.accepted(a.phone) === 1, 10_000, "a's message");
      expect((await outboxRow(db.knex, ids[1])).status).toBe('sending');
      const stoppedAt = await sendStop(b);
      await until(async () => (await db.knex('outbox').whereIn('id', ids).whereIn('status', ['queued', 'sending']).count({ n: '*' }).first())?.n == 0, 15_000, 'the batch to finish');
      const row = await outboxRow(db.knex, ids[1]);
      expect([row.status, row.error_code]).toEqual(['skipped', 'contact_stopped']);
      expect((await outboxRow(db.knex, ids[2])).status).toBe('sent');
      // b got only the STOP confirmation, after the STOP.
      await until(async () => fake.accepted(b.phone) === 1, 10_000, 'the STOP confirmation');
      const toB = fake.requests.filter((r) => r.to[0] === b.phone);
      expect(toB).toHaveLength(1);
      expect(textOf(toB[0].body)).not.toContain('Campaña');
      expect(toB[0].at).toBeGreaterThanOrEqual(stoppedAt - 1);
    } finally {
      await d.stop();
    }
  }, 60_000);

  it('STOPs during a 4,000-message broadcast: nothing but the confirmation reaches anyone after their STOP is stored', async () => {
    const n = 4_000;
    const contacts = await seedContacts(db.knex, { count: n, firstNumber: next });
    next += n;
    await insertOutbox(db.knex, contacts.map((x) => ({ contactId: x.id, broadcastId: 91, content: { type: 'text' as const, text: 'Boletín semanal' } })));
    const d = new Dispatcher({ db, config, log, adapters: channels.all, rates: { whatsapp: 400 }, pollMs: 10 });
    d.start();
    const stops: { contact: SeededContact; at: number }[] = [];
    try {
      await until(async () => fake.acceptedTotal >= 200, 30_000, 'the broadcast to start');
      // Twenty people, each chosen among those whose message has not reached them yet, say STOP one after another.
      for (let i = 0; i < 20; i++) {
        const waiting = contacts.filter((c) => fake.accepted(c.phone) === 0 && !stops.some((s) => s.contact === c));
        const c = waiting[Math.floor(waiting.length / 3)];
        if (!c) break;
        stops.push({ contact: c, at: await sendStop(c) });
        await new Promise((r) => setTimeout(r, 10));
      }
      await until(async () => (await db.knex('outbox').where('broadcast_id', 91).whereIn('status', ['queued', 'sending']).count({ n: '*' }).first())?.n == 0, 60_000, 'the broadcast to finish');
      const confirmed = (c: SeededContact) => fake.requests.some((r) => r.to[0] === c.phone && textOf(r.body) !== 'Boletín semanal');
      await until(async () => stops.every((s) => confirmed(s.contact)), 30_000, 'the STOP confirmations');
    } finally {
      await d.stop();
    }
    expect(stops.length).toBe(20);
    for (const s of stops) {
      const after = fake.requests.filter((r) => r.to[0] === s.contact.phone && r.at > s.at);
      // The only thing after the STOP is its confirmation, never the broadcast.
      expect(after.map((r) => textOf(r.body))).not.toContain('Boletín semanal');
      expect(fake.requests.filter((r) => r.to[0] === s.contact.phone && textOf(r.body) !== 'Boletín semanal')).toHaveLength(1);
    }
    const stoppedIds = stops.map((s) => s.contact.id);
    const rows = await db.knex('outbox').where('broadcast_id', 91).whereIn('contact_id', stoppedIds).select('status', 'error_code');
    // Each stopped person's broadcast row was either sent before the STOP, cancelled by the STOP, or skipped at send time.
    for (const r of rows as { status: string; error_code: string | null }[]) expect(['sent', 'cancelled', 'skipped']).toContain(r.status);
    const sentBefore = stops.filter((s) => fake.requests.some((r) => r.to[0] === s.contact.phone && textOf(r.body) === 'Boletín semanal')).length;
    expect(rows.filter((r: { status: string }) => r.status === 'sent')).toHaveLength(sentBefore);
    // Everyone else got it exactly once.
    const others = contacts.filter((c) => !stoppedIds.includes(c.id));
    expect(others.filter((c) => fake.accepted(c.phone) !== 1)).toEqual([]);
  }, 120_000);
});

describe('dispatcher lifecycle', () => {
  it('a graceful stop lets the requests in flight finish, records them, and gives back the rest unmarked', async () => {
    const contacts = await seedContacts(db.knex, { count: 300, firstNumber: next });
    next += 300;
    await insertOutbox(db.knex, contacts.map((x) => ({ contactId: x.id, broadcastId: 92 })));
    fake.latencyMs = 20;
    const d = new Dispatcher({ db, config, log, adapters: channels.all, rates: { whatsapp: 100 }, pollMs: 10 });
    d.start();
    try {
      await until(async () => fake.acceptedTotal >= 40, 20_000, '40 messages');
      await d.stop();
    } finally {
      fake.latencyMs = 0;
    }
    const counts = await countBy(db.knex, 'status', { broadcast_id: 92 });
    expect(counts.sending).toBeUndefined();
    expect(counts.sent).toBe(fake.acceptedTotal); // every request that reached the provider is recorded
    expect(counts.queued).toBe(300 - fake.acceptedTotal);
    const marked = await db.knex('outbox').where({ broadcast_id: 92, possible_duplicate: true }).first('id');
    expect(marked).toBeUndefined();
    const claimed = await db.knex('outbox').where('broadcast_id', 92).whereNotNull('claimed_by').first('id');
    expect(claimed).toBeUndefined();
    // The rest goes out later, once each.
    await new Dispatcher({ db, config, log, adapters: channels.all, pollMs: 10 }).runUntilIdle();
    expect(await countBy(db.knex, 'status', { broadcast_id: 92 })).toEqual({ sent: 300 });
    expect(fake.duplicates()).toEqual([]);
  }, 60_000);

  it('recovers rows a dead process claimed (marked possible_duplicate) and leaves live claims alone', async () => {
    const [a, b] = await seedContacts(db.knex, { count: 2, firstNumber: next });
    next += 2;
    const [dead, live] = await insertOutbox(db.knex, [{ contactId: a.id, purpose: 'reply' }, { contactId: b.id, purpose: 'reply' }]);
    await db.knex('outbox').where('id', dead).update({ status: 'sending', claimed_by: 'other-host:1:dead', claimed_at: new Date(Date.now() - 10 * 60_000) });
    await db.knex('outbox').where('id', live).update({ status: 'sending', claimed_by: 'other-host:2:live', claimed_at: new Date(Date.now() - 1_000) });
    const d = new Dispatcher({ db, config, log, adapters: channels.all, claimTimeoutMs: 60_000, pollMs: 10 });
    const counts = await d.runUntilIdle();
    expect(counts.recovered).toBe(1);
    const r1 = await outboxRow(db.knex, dead);
    expect([r1.status, toBool(r1.possible_duplicate)]).toEqual(['sent', true]);
    const r2 = await outboxRow(db.knex, live);
    expect([r2.status, r2.claimed_by]).toEqual(['sending', 'other-host:2:live']);
    expect(fake.accepted(a.phone)).toBe(1);
    expect(fake.accepted(b.phone)).toBe(0);
    expect(toInt(r1.attempts)).toBe(1);
  });
});
