/**
 * The inbox migration on a database that already holds messages: unhandled ones (route inbox or
 * error) open their contacts' conversations, newest message and its address first; others do not.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate, openDatabase, type Database } from '../../src/db/orm.js';
import { toBool, toDate, toInt } from '../../src/db/values.js';
import { createTestDatabase, testDbKind, type TestDatabase } from '../helpers/db.js';

let test: TestDatabase;
let db: Database;
beforeAll(async () => {
  test = await createTestDatabase();
  db = await openDatabase(test.setting, { migrate: false, poolSize: 2 });
  await db.orm.getMigrator().up({ to: 'Migration20261122040000_import_speed' });
});
afterAll(async () => {
  await db?.close();
  await test?.drop();
});

const id = (row: unknown) => toInt(typeof row === 'object' && row !== null ? (row as { id: unknown }).id : row);

describe(`the inbox migration on ${testDbKind}`, () => {
  it('opens a conversation for each contact with unhandled messages, pointing at the newest one', async () => {
    const { knex } = db;
    const now = Date.now();
    const person = async (phone: string) => {
      const c = id((await knex('contacts').insert({ status: 'active', created_at: new Date(now), updated_at: new Date(now) }).returning('id'))[0]);
      const wa = id((await knex('contact_addresses').insert({ contact_id: c, channel: 'whatsapp', kind: 'phone', address: phone, opted_out: false, created_at: new Date(now) }).returning('id'))[0]);
      const sms = id((await knex('contact_addresses').insert({ contact_id: c, channel: 'sms', kind: 'phone', address: phone, opted_out: false, created_at: new Date(now) }).returning('id'))[0]);
      return { c, wa, sms };
    };
    let seq = 0;
    const message = async (p: { c: number }, addressId: number, route: string, minutesAgo: number) =>
      id((await knex('inbound_messages').insert({ channel: 'whatsapp', provider_id: `m${++seq}`, contact_id: p.c, address_id: addressId, kind: 'text', text: 'hola', keep: false, received_at: new Date(now - minutesAgo * 60_000), handled_at: new Date(now), route }).returning('id'))[0]);
    const a = await person('+51911000001');
    const b = await person('+51911000002');
    const quiet = await person('+51911000003');
    await message(a, a.wa, 'inbox', 30);
    const newestA = await message(a, a.sms, 'inbox', 10);
    await message(a, a.wa, 'faq', 5);
    const newestB = await message(b, b.wa, 'error', 20);
    await message(quiet, quiet.wa, 'stop', 1);

    await migrate(db);
    const rows = await knex('inbox_conversations').orderBy('contact_id');
    expect(rows.map((r: { contact_id: unknown }) => toInt(r.contact_id))).toEqual([a.c, b.c]);
    expect(rows[0]).toMatchObject({ status: 'open', last_address_id: a.sms });
    expect(toInt(rows[0].last_message_id)).toBe(newestA);
    expect(toDate(rows[0].last_message_at).getTime()).toBe(now - 10 * 60_000);
    expect(toBool(rows[0].has_error)).toBe(false);
    expect(toInt(rows[1].last_message_id)).toBe(newestB);
    expect(toBool(rows[1].has_error)).toBe(true);
    expect(toBool(rows[1].restricted)).toBe(false);
    expect(rows[1].claimed_by).toBeNull();
  });
});
