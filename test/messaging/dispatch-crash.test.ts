/**
 * Crash safety and several processes, with the dispatcher in child processes
 * (test/messaging/fixtures/dispatch-child.ts) and the fake provider in this process, counting what
 * each recipient received.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../src/db/orm.js';
import { toBool, toInt } from '../../src/db/values.js';
import { createTestDatabase, testDbKind, type TestDatabase } from '../helpers/db.js';
import { startFakeProvider, type FakeProvider } from '../helpers/fake-provider.js';
import { countBy, insertOutbox, seedContacts, spawnDispatcher, until, type DispatcherChild } from './dispatch-fixtures.js';

let fake: FakeProvider;
let test: TestDatabase;
let db: Database;
const children: DispatcherChild[] = [];

beforeAll(async () => {
  fake = await startFakeProvider({ record: false });
  test = await createTestDatabase();
  db = await openDatabase(test.setting, { poolSize: 3 });
});
afterAll(async () => {
  await Promise.all(children.map((c) => c.kill()));
  await db?.close();
  await test?.drop();
  await fake?.close();
});

function childEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    ...fake.env(),
    DATABASE_URL: test.url,
    DATABASE_POOL_SIZE: '4',
    NODE_ENV: 'test',
    LOG_LEVEL: 'warn',
    WHATSAPP_RATE_PER_SECOND: '100000',
    DISPATCH_CLAIM_TIMEOUT_SECONDS: '3',
    ...extra,
  };
}

async function start(extra?: Record<string, string>): Promise<DispatcherChild> {
  const c = await spawnDispatcher(childEnv(extra));
  children.push(c);
  return c;
}

async function unfinished(broadcastId: number): Promise<number> {
  const r = await db.knex('outbox').where('broadcast_id', broadcastId).whereIn('status', ['queued', 'sending']).count({ n: '*' }).first();
  return toInt(r?.n);
}

describe('dispatcher processes', () => {
  it('SIGKILL in the middle of a 20,000-message broadcast: after a restart everyone has it once, and the only doubles are marked rows of the batch in flight', async () => {
    const n = 20_000;
    const contacts = await seedContacts(db.knex, { count: n, firstNumber: 0 });
    await insertOutbox(db.knex, contacts.map((c) => ({ contactId: c.id, broadcastId: 1, content: { type: 'text' as const, text: 'Distribución de kits el lunes' } })));

    const first = await start();
    await until(async () => fake.acceptedTotal >= 6_000, 120_000, '6,000 messages at the fake provider');
    await first.kill();
    const acceptedAtKill = fake.acceptedTotal;
    expect(acceptedAtKill).toBeLessThan(n); // it really died in the middle
    // A statement the dead process had sent may still complete on the database server (PostgreSQL
    // finishes it): count the rows it left claimed once they stop changing.
    let inFlight = -1;
    await until(async () => {
      await new Promise((r) => setTimeout(r, 300));
      const now = toInt((await db.knex('outbox').where({ broadcast_id: 1, status: 'sending' }).count({ n: '*' }).first())?.n);
      const settled = now === inFlight;
      inFlight = now;
      return settled;
    }, 30_000, 'the dead process to leave the database');
    expect(inFlight).toBeGreaterThan(0);
    expect(inFlight).toBeLessThanOrEqual(first.ready.maxHeld);

    const second = await start();
    await until(async () => (await unfinished(1)) === 0, 120_000, 'the broadcast to finish after the restart');
    const counts = await second.stop();
    expect(counts?.recovered).toBe(inFlight);

    // Every recipient got the message.
    const missing = contacts.filter((c) => fake.accepted(c.phone) === 0);
    expect(missing).toEqual([]);
    expect(await countBy(db.knex, 'status', { broadcast_id: 1 })).toEqual({ sent: n });
    // Doubles: no more than the rows in flight at the kill, and each one's row is marked.
    const doubled = fake.duplicates();
    console.info(`killed after ${acceptedAtKill} accepted; ${inFlight} rows in flight (bound ${first.ready.maxHeld}); ${doubled.length} recipients got it twice`);
    expect(doubled.length).toBeLessThanOrEqual(inFlight);
    expect(fake.acceptedTotal - n).toBe(doubled.reduce((s, to) => s + fake.accepted(to) - 1, 0));
    const byPhone = new Map(contacts.map((c) => [c.phone, c.id]));
    const doubledIds = doubled.map((p) => byPhone.get(p)!);
    const rows = doubledIds.length ? await db.knex('outbox').where('broadcast_id', 1).whereIn('contact_id', doubledIds).select('possible_duplicate') : [];
    expect(rows.every((r: { possible_duplicate: unknown }) => toBool(r.possible_duplicate))).toBe(true);
    expect(Math.max(0, ...doubled.map((p) => fake.accepted(p)))).toBeLessThanOrEqual(2);
    // Exactly the rows in flight at the kill are marked.
    expect(toInt((await db.knex('outbox').where({ broadcast_id: 1, possible_duplicate: true }).count({ n: '*' }).first())?.n)).toBe(inFlight);
  }, 300_000);

  it.skipIf(testDbKind !== 'postgresql')('four processes on one broadcast (PostgreSQL, FOR UPDATE SKIP LOCKED): every recipient exactly once', async () => {
    fake.reset();
    const n = 12_000;
    const contacts = await seedContacts(db.knex, { count: n, firstNumber: 100_000 });
    await insertOutbox(db.knex, contacts.map((c) => ({ contactId: c.id, broadcastId: 2, content: { type: 'text' as const, text: 'Nueva encuesta disponible' } })));
    // Small batches so that the four really interleave on one broadcast.
    const four = await Promise.all([1, 2, 3, 4].map(() => start({ DISPATCH_BATCH_SIZE: '100', DISPATCH_CONCURRENCY: '32' })));
    await until(async () => (await unfinished(2)) === 0, 180_000, 'the broadcast to finish');
    const counts = await Promise.all(four.map((c) => c.stop()));
    expect(fake.duplicates()).toEqual([]);
    expect(fake.acceptedTotal).toBe(n);
    expect(contacts.filter((c) => fake.accepted(c.phone) !== 1)).toEqual([]);
    expect(await countBy(db.knex, 'status', { broadcast_id: 2 })).toEqual({ sent: n });
    expect(toInt((await db.knex('outbox').where({ broadcast_id: 2, possible_duplicate: true }).count({ n: '*' }).first())?.n)).toBe(0);
    // All four took part.
    for (const c of counts) expect(c?.sent ?? 0).toBeGreaterThan(0);
    expect(counts.reduce((s, c) => s + (c?.sent ?? 0), 0)).toBe(n);
  }, 300_000);
});
