/**
 * The retention job: old conversation text and the numbers of people without consent are erased,
 * kept messages and consenting contacts are not, aggregates survive, and on SQLite the erased
 * number and text are gone from the database file's bytes (main file and WAL).
 */
import { existsSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDefaults } from '../../src/contacts/lists.js';
import { OPEN_CASE_QUERIES } from '../../src/contacts/hooks.js';
import { isTombstoned } from '../../src/contacts/pseudonyms.js';
import { runRetention } from '../../src/contacts/retention.js';
import { eraseContact } from '../../src/contacts/rights.js';
import { SYSTEM } from '../../src/staff/audit.js';
import { receive } from '../../src/messaging/inbound.js';
import { ROUTER_STEPS } from '../../src/messaging/steps.js';
import type { ParsedInbound } from '../../src/messaging/types.js';
import { testDbKind } from '../helpers/db.js';
import { testServices } from '../helpers/services.js';

let s: Awaited<ReturnType<typeof testServices>>;
beforeAll(async () => {
  s = await testServices();
  await ensureDefaults(s.db, s.config);
});
afterAll(() => s?.close());

const DAY = 86_400_000;
// Only the contacts domain's steps and the inbox: what other domains do with a message (complaint intake,
// FAQ answers) is theirs to test; here the messages just have to be stored and routed.
const STEPS = ROUTER_STEPS.filter((st) => st.name.startsWith('contacts.') || st.name === 'inbox');
let seq = 0;
const sms = (from: string, text: string, receivedAt: Date): ParsedInbound => ({
  channel: 'simulator', medium: 'sms', providerId: `ret-${++seq}`, from, fromKind: 'phone', kind: 'text', text, receivedAt,
});

const STRANGER = '+51987650123'; // wrote ten days ago, never consented
const STRANGER_TEXT = 'mi hija tiene fiebre desde el martes en Zarumilla';
const MEMBER = '+51987650456'; // joined and consented ten days ago
const MEMBER_TEXT = 'tengo una pregunta sobre el bono de octubre';
const RECENT_TEXT = 'gracias por la informacion de hoy';
const KEPT_TEXT = 'el monto que recibimos fue menor al anunciado';

async function contactId(address: string): Promise<number | null> {
  const row = await s.db.knex('contact_addresses').where('address', address).first('contact_id');
  return row ? Number(row.contact_id) : null;
}

function sqliteBytes(): Buffer {
  const setting = s.config.DATABASE_URL;
  if (setting.kind !== 'sqlite') throw new Error('sqlite only');
  const parts = [readFileSync(setting.file)];
  if (existsSync(setting.file + '-wal')) parts.push(readFileSync(setting.file + '-wal'));
  return Buffer.concat(parts);
}

describe('retention', () => {
  const tenDaysAgo = new Date(Date.now() - 10 * DAY);

  beforeAll(async () => {
    await receive(s, STEPS, [sms(STRANGER, STRANGER_TEXT, tenDaysAgo)]);
    await receive(s, STEPS, [sms(MEMBER, 'JOIN', tenDaysAgo), sms(MEMBER, 'YES', new Date(tenDaysAgo.getTime() + 60_000))]);
    await receive(s, STEPS, [sms(MEMBER, MEMBER_TEXT, tenDaysAgo)]);
    await receive(s, STEPS, [sms(MEMBER, RECENT_TEXT, new Date())]);
    const kept = await receive(s, STEPS, [sms(MEMBER, KEPT_TEXT, tenDaysAgo)]);
    await s.db.knex('inbound_messages').where('id', kept.stored[0]).update({ keep: true });
    // Backdate the contact rows as if they had been created ten days ago.
    await s.db.knex('contacts').update({ created_at: tenDaysAgo });
    await s.db.knex('outbox').update({ created_at: tenDaysAgo, status: 'sent' });
  });

  it.skipIf(testDbKind !== 'sqlite')('the number and the text are in the file before the job runs (so the check below can fail)', async () => {
    await s.db.knex.raw('PRAGMA wal_checkpoint(TRUNCATE)');
    const bytes = sqliteBytes();
    expect(bytes.includes(Buffer.from(STRANGER.slice(1)))).toBe(true);
    expect(bytes.includes(Buffer.from(STRANGER_TEXT))).toBe(true);
  });

  it('erases old text and unconsented contacts, keeps what must be kept', async () => {
    const before = await s.db.knex('inbound_messages').count({ n: '*' }).first();
    const result = await runRetention(s.db, s.config);
    expect(result.messagesErased).toBeGreaterThanOrEqual(3);
    expect(result.contactsErased).toBe(1);
    expect(result.repliesErased).toBeGreaterThanOrEqual(1);
    expect(result.vacuumed).toBe(testDbKind === 'sqlite');

    // The stranger: number gone, contact row kept as erased, tombstoned.
    expect(await contactId(STRANGER)).toBeNull();
    const erased = await s.db.knex('contacts').whereNotNull('erased_at').select('id', 'name');
    expect(erased).toHaveLength(1);
    expect(await isTombstoned(s.db.knex, STRANGER)).toBe(true);
    expect(await isTombstoned(s.db.knex, MEMBER)).toBe(false);

    // The member keeps number and consent; old text erased, recent and kept text stay.
    const member = await contactId(MEMBER);
    expect(member).not.toBeNull();
    const texts = (await s.db.knex('inbound_messages').where('contact_id', member!).whereNotNull('text').pluck('text')).sort();
    expect(texts).toEqual([KEPT_TEXT, RECENT_TEXT].sort());
    // Replies older than the period lose their content.
    const replies = await s.db.knex('outbox').where('contact_id', member!).whereNotNull('content').count({ n: '*' }).first();
    expect(Number(replies!.n)).toBe(0);

    // Aggregates survive: every message row is still there to be counted by day.
    const after = await s.db.knex('inbound_messages').count({ n: '*' }).first();
    expect(Number(after!.n)).toBe(Number(before!.n));
    const audit = await s.db.knex('audit_events').where('action', 'retention.run').first();
    expect(audit).toBeTruthy();
  });

  it.skipIf(testDbKind !== 'sqlite')('leaves neither the erased number nor the erased text in the SQLite file or its WAL', async () => {
    await s.db.knex.raw('PRAGMA wal_checkpoint(TRUNCATE)');
    const bytes = sqliteBytes();
    expect(bytes.includes(Buffer.from(STRANGER.slice(1)))).toBe(false);
    expect(bytes.includes(Buffer.from(STRANGER_TEXT))).toBe(false);
    expect(bytes.includes(Buffer.from(MEMBER_TEXT))).toBe(false);
    // …while what is kept is still there: the check reads the right file.
    expect(bytes.includes(Buffer.from(KEPT_TEXT))).toBe(true);
    expect(bytes.includes(Buffer.from(MEMBER.slice(1)))).toBe(true);
  });

  it('spares a contact with an open case in another domain', async () => {
    const phone = '+51987650789';
    await receive(s, STEPS, [sms(phone, 'hola', new Date(Date.now() - 10 * DAY))]);
    const other = '+51987650788';
    await receive(s, STEPS, [sms(other, 'hola', new Date(Date.now() - 10 * DAY))]);
    const id = (await contactId(phone))!;
    await s.db.knex('contacts').update({ created_at: new Date(Date.now() - 10 * DAY) });
    // An open case of this contact, and an anonymous one (no contact) that must not block everyone else.
    OPEN_CASE_QUERIES.push({ domain: 'test', contactIds: (knex) => knex('contacts').where('id', id).select('id as contact_id').unionAll((u) => u.select(knex.raw('null as contact_id'))) });
    try {
      const r = await runRetention(s.db, s.config, { vacuum: false });
      expect(r.contactsErased).toBe(1); // the other one
      expect(await contactId(other)).toBeNull();
      expect(await contactId(phone)).toBe(id);
    } finally {
      OPEN_CASE_QUERIES.pop();
    }
    const r = await runRetention(s.db, s.config, { vacuum: false });
    expect(r.contactsErased).toBe(1);
    expect(await contactId(phone)).toBeNull();
  });

  it('does nothing with a period of 0', async () => {
    const phone = '+51987650790';
    await receive(s, STEPS, [sms(phone, 'texto viejo', new Date(Date.now() - 30 * DAY))]);
    const r = await runRetention(s.db, { RETENTION_MESSAGE_DAYS: 0, RETENTION_UNCONSENTED_DAYS: 0 });
    expect(r).toMatchObject({ messagesErased: 0, repliesErased: 0, contactsErased: 0 });
    expect(await contactId(phone)).not.toBeNull();
    expect(await s.db.knex('inbound_messages').where('text', 'texto viejo').first()).toBeTruthy();
  });

  it.skipIf(testDbKind !== 'sqlite')('compacts the file after a staff erasure, so the erased number leaves the file too', async () => {
    const phone = '+51987650791';
    const words = 'vivo en la calle Los Olivos 123 con mis tres hijos';
    await receive(s, STEPS, [sms(phone, words, new Date())]);
    const id = (await contactId(phone))!;
    await s.db.knex.raw('PRAGMA wal_checkpoint(TRUNCATE)');
    expect(sqliteBytes().includes(Buffer.from(words))).toBe(true);
    await eraseContact(s.db, SYSTEM, id);
    const r = await runRetention(s.db, { RETENTION_MESSAGE_DAYS: 0, RETENTION_UNCONSENTED_DAYS: 0 });
    expect(r.vacuumed).toBe(true);
    const bytes = sqliteBytes();
    expect(bytes.includes(Buffer.from(phone.slice(1)))).toBe(false);
    expect(bytes.includes(Buffer.from(words))).toBe(false);
  });
});
