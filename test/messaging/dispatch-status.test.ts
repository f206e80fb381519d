/**
 * Delivery statuses applied to the outbox (src/messaging/status.ts): forward only, replays and
 * out-of-order arrivals change nothing, failures recorded with their code, opt-outs stop the
 * address, a closed WhatsApp window sends the message again by SMS, and a status that outruns the
 * dispatcher's record of the provider id is applied once the id is recorded.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildChannels, type ChannelRegistry } from '../../src/channels/index.js';
import type { ChannelAdapter, SendRequest, SendResult, StatusUpdate } from '../../src/channels/types.js';
import { loadConfig, type Config } from '../../src/config.js';
import type { Database } from '../../src/db/orm.js';
import { toBool, toDate, toInt } from '../../src/db/values.js';
import { createLogger } from '../../src/log.js';
import { Dispatcher } from '../../src/messaging/dispatcher.js';
import { applyEarlyStatuses, applyStatuses, purgeEarlyStatuses } from '../../src/messaging/status.js';
import { openTestDatabase } from '../helpers/db.js';
import { startFakeProvider, type FakeProvider } from '../helpers/fake-provider.js';
import { insertOutbox, outboxRow, seedContacts } from './dispatch-fixtures.js';

let fake: FakeProvider;
let db: Database;
let config: Config;
let channels: ChannelRegistry;
let closeDb: () => Promise<void>;
let next = 500_000;

beforeAll(async () => {
  fake = await startFakeProvider();
  const t = await openTestDatabase();
  db = t.db;
  closeDb = t.close;
  config = loadConfig({ ...fake.env(), DATABASE_URL: t.test.url, LOG_LEVEL: 'silent', NODE_ENV: 'test', WHATSAPP_RATE_PER_SECOND: '10000', TWILIO_RATE_PER_SECOND: '10000' });
  channels = buildChannels(config);
});
afterAll(async () => {
  await channels?.close();
  await closeDb?.();
  await fake?.close();
});
beforeEach(() => fake.reset());

const log = createLogger('silent');
const t = (s: number) => new Date(Date.UTC(2026, 10, 20, 12, 0, s));

/** One WhatsApp message sent through the dispatcher and the fake: returns its row id and provider id. */
async function sentMessage(o: { sms?: boolean } = {}) {
  const [c] = await seedContacts(db.knex, { count: 1, firstNumber: next++, sms: o.sms });
  const [id] = await insertOutbox(db.knex, [{ contactId: c.id, purpose: 'reply' }]);
  await new Dispatcher({ db, config, log, adapters: channels.all, pollMs: 10 }).runUntilIdle();
  const row = await outboxRow(db.knex, id);
  expect(row.status).toBe('sent');
  return { id, contact: c, providerId: String(row.provider_id) };
}

const status = (providerId: string, s: StatusUpdate['status'], at: Date, extra: Partial<StatusUpdate> = {}): StatusUpdate => ({ channel: 'whatsapp', providerId, status: s, at, ...extra });

describe('statuses', () => {
  it('move forward only: read, then a late delivered and sent change nothing', async () => {
    const m = await sentMessage();
    const r1 = await applyStatuses(db, [status(m.providerId, 'read', t(30))]);
    expect(r1.applied).toBe(1);
    const r2 = await applyStatuses(db, [status(m.providerId, 'delivered', t(20)), status(m.providerId, 'sent', t(10))]);
    expect(r2).toMatchObject({ applied: 0, ignored: 2 });
    const row = await outboxRow(db.knex, m.id);
    expect(row.status).toBe('read');
    expect(toDate(row.status_at).toISOString()).toBe(t(30).toISOString());
  });

  it('a batch holding sent, read and delivered in any order ends at read', async () => {
    const m = await sentMessage();
    await applyStatuses(db, [status(m.providerId, 'read', t(3)), status(m.providerId, 'sent', t(1)), status(m.providerId, 'delivered', t(2))]);
    const row = await outboxRow(db.knex, m.id);
    expect(row.status).toBe('read');
    expect(toDate(row.status_at).toISOString()).toBe(t(3).toISOString());
  });

  it('a batch over many messages (as a webhook group is) moves each row to its own status and time', async () => {
    const a = await sentMessage();
    const b = await sentMessage();
    const c = await sentMessage();
    const r = await applyStatuses(db, [
      status(a.providerId, 'read', t(7)),
      status(b.providerId, 'delivered', t(5)),
      status(c.providerId, 'delivered', t(5)),
      status(a.providerId, 'delivered', t(5)),
      status(c.providerId, 'failed', t(6), { error: { class: 'permanent', code: '131026', detail: 'x' } }),
      status(b.providerId, 'delivered', t(5)),
      status('wamid.NOT-RECORDED-YET', 'delivered', t(5)),
    ]);
    // a: delivered then read; b: delivered (its copy ignored); c: delivered, then a failure after
    // delivered changes nothing; the unknown id is kept for later.
    expect(r).toMatchObject({ applied: 4, ignored: 2, early: 1 });
    const rows = await Promise.all([a, b, c].map((m) => outboxRow(db.knex, m.id)));
    expect(rows.map((x) => [x.status, toDate(x.status_at).toISOString()])).toEqual([
      ['read', t(7).toISOString()],
      ['delivered', t(5).toISOString()],
      ['delivered', t(5).toISOString()],
    ]);
    expect(await db.knex('outbox_status_early').where('provider_id', 'wamid.NOT-RECORDED-YET').pluck('status')).toEqual(['delivered']);
    await db.knex('outbox_status_early').delete();
  });

  it('a status delivered three times has the effect of one', async () => {
    const m = await sentMessage();
    const d = status(m.providerId, 'delivered', t(5));
    const first = await applyStatuses(db, [d, d, d]);
    const again = await applyStatuses(db, [d]);
    const third = await applyStatuses(db, [d]);
    expect(first).toMatchObject({ applied: 1, ignored: 2 });
    expect(again).toMatchObject({ applied: 0, ignored: 1 });
    expect(third).toMatchObject({ applied: 0, ignored: 1 });
    expect((await outboxRow(db.knex, m.id)).status).toBe('delivered');
  });

  it('failed after sent records the code; failed after delivered, or anything after failed, changes nothing', async () => {
    const a = await sentMessage();
    await applyStatuses(db, [status(a.providerId, 'failed', t(4), { error: { class: 'permanent', code: '131026', detail: 'Message undeliverable' } })]);
    const ra = await outboxRow(db.knex, a.id);
    expect([ra.status, ra.error_code, ra.error_detail]).toEqual(['failed', '131026', 'Message undeliverable']);
    await applyStatuses(db, [status(a.providerId, 'delivered', t(9)), status(a.providerId, 'read', t(10))]);
    expect((await outboxRow(db.knex, a.id)).status).toBe('failed');

    const b = await sentMessage();
    await applyStatuses(db, [status(b.providerId, 'delivered', t(1))]);
    await applyStatuses(db, [status(b.providerId, 'failed', t(2), { error: { class: 'permanent', code: '131026', detail: 'x' } })]);
    const rb = await outboxRow(db.knex, b.id);
    expect([rb.status, rb.error_code]).toEqual(['delivered', null]);
  });

  it('matches the channel too: a status from another channel with the same id does not touch the row', async () => {
    const m = await sentMessage();
    const r = await applyStatuses(db, [{ channel: 'twilio', providerId: m.providerId, status: 'delivered', at: t(1) }]);
    expect(r.applied).toBe(0);
    expect((await outboxRow(db.knex, m.id)).status).toBe('sent');
    await db.knex('outbox_status_early').delete();
  });

  it('an opt-out failure (131050) stops the address on that channel', async () => {
    const m = await sentMessage();
    const r = await applyStatuses(db, [status(m.providerId, 'failed', t(1), { error: { class: 'opted_out', code: '131050', detail: 'stopped marketing messages' } })]);
    expect(r.optedOut).toBe(1);
    const addr = await db.knex('contact_addresses').where('id', m.contact.whatsappAddressId).first();
    expect(toBool(addr.opted_out)).toBe(true);
    const contact = await db.knex('contacts').where('id', m.contact.id).first();
    expect(contact.status).toBe('stopped'); // it was the only address
    const consent = await db.knex('consents').where({ contact_id: m.contact.id, action: 'withdraw' }).first();
    expect(consent).toMatchObject({ method: 'provider', evidence_type: 'provider_signal' });
    expect(String(consent.evidence_ref)).not.toContain(m.contact.phone.slice(1));
  });

  it('131047 after the message was accepted: the message goes again by SMS', async () => {
    const m = await sentMessage({ sms: true });
    const r = await applyStatuses(db, [status(m.providerId, 'failed', t(1), { error: { class: 'window_closed', code: '131047', detail: 'Re-engagement message' } })]);
    expect(r.requeued).toBe(1);
    const queued = await outboxRow(db.knex, m.id);
    expect([queued.status, queued.channel, queued.provider_id]).toEqual(['queued', 'sms', null]);
    await new Dispatcher({ db, config, log, adapters: channels.all, pollMs: 10 }).runUntilIdle();
    const row = await outboxRow(db.knex, m.id);
    expect([row.status, row.channel, toInt(row.address_id)]).toEqual(['sent', 'twilio', m.contact.smsAddressId]);
    expect(fake.accepted(m.contact.phone)).toBe(2); // once on WhatsApp (never delivered), once by SMS
    // The same failure replayed finds nothing to do.
    const again = await applyStatuses(db, [status(m.providerId, 'failed', t(1), { error: { class: 'window_closed', code: '131047', detail: 'Re-engagement message' } })]);
    expect(again.applied).toBe(0);
  });

  it('a status that arrives before the dispatcher recorded its provider id is kept and applied once the id is recorded', async () => {
    // A provider whose status webhook outruns its own answer to the send request.
    let seq = 0;
    const hasty: ChannelAdapter = {
      name: 'whatsapp',
      medium: 'whatsapp',
      ratePerSecond: 1000,
      async send(_req: SendRequest): Promise<SendResult> {
        const providerId = `wamid.HASTY${++seq}`;
        const r = await applyStatuses(db, [status(providerId, 'delivered', t(7))]);
        expect(r.early).toBe(1);
        return { ok: true, providerId };
      },
      parseWebhook: () => ({ ok: false, status: 400, reason: 'none' }),
    };
    const [c] = await seedContacts(db.knex, { count: 1, firstNumber: next++ });
    const [id] = await insertOutbox(db.knex, [{ contactId: c.id, purpose: 'reply' }]);
    await new Dispatcher({ db, config, log, adapters: [hasty], pollMs: 10 }).runUntilIdle();
    const row = await outboxRow(db.knex, id);
    expect([row.status, row.provider_id]).toEqual(['delivered', 'wamid.HASTY1']);
    expect(await db.knex('outbox_status_early').where('provider_id', 'wamid.HASTY1').first()).toBeUndefined();
    expect(await applyEarlyStatuses(db)).toBe(0);
  });

  it('forgets early statuses nobody claimed after an hour', async () => {
    await db.knex('outbox_status_early').delete();
    const r = await applyStatuses(db, [status('wamid.SENT_BY_SOMEONE_ELSE', 'delivered', t(1))]);
    expect(r.early).toBe(1);
    expect(await purgeEarlyStatuses(db.knex, 3_600_000, new Date(Date.now() + 30 * 60_000))).toBe(0);
    expect(await purgeEarlyStatuses(db.knex, 3_600_000, new Date(Date.now() + 61 * 60_000))).toBe(1);
  });
});
