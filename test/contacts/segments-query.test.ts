/**
 * Segment queries against a real database (SQLite, and PostgreSQL in the postgresql project):
 * which contacts match, typed comparisons, the meaning of not/!=/durations, erased contacts,
 * audiences for fan-out, and injection attempts that must be refused or matched literally.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestDatabase } from '../helpers/db.js';
import type { Database, Knex } from '../../src/db/orm.js';
import { toInt } from '../../src/db/values.js';
import { audienceQuery, countAudience, countQuery, SegmentError } from '../../src/contacts/segments/index.js';

const NOW = new Date('2026-03-01T12:00:00Z');
const daysAgo = (n: number) => new Date(NOW.getTime() - n * 86_400_000);

let db: Database;
let close: () => Promise<void>;
const ids: Record<string, number> = {};

interface Person {
  name: string;
  language?: string;
  status?: string;
  fields?: Record<string, unknown>;
  seen?: number;
  created?: string;
  lists?: Record<string, 'active' | 'ended'>;
  consents?: Record<string, boolean>;
  addresses?: { channel: string; address: string; optedOut?: boolean }[];
  erased?: boolean;
}

const PEOPLE: Person[] = [
  { name: 'Ana', language: 'es', fields: { region: 'Lima', age_group: '18-24', household_size: 4, arrived: '2024-01-10' }, seen: 10, created: '2026-02-01T10:00:00Z', lists: { migrants: 'active' }, consents: { surveys: true }, addresses: [{ channel: 'whatsapp', address: '+51987650001' }] },
  { name: 'Bruno', language: 'es-PE', fields: { region: 'Lima', age_group: '25-39', household_size: 2, arrived: '2025-11-20' }, seen: 40, lists: { migrants: 'active', news: 'active' }, consents: { surveys: true, updates: true }, addresses: [{ channel: 'sms', address: '+51987650002' }] },
  { name: 'Carla', language: 'es', fields: { region: 'Lima', age_group: '25-39', household_size: 3 }, lists: { migrants: 'active' }, consents: { surveys: true } },
  { name: 'Dan', language: 'en', fields: { region: 'Lima', age_group: '18-24' }, seen: 100, lists: { migrants: 'ended' }, consents: { surveys: true } },
  { name: 'Eva', language: 'es', fields: { region: 'Tumbes', age_group: '18-24' }, seen: 50, lists: { migrants: 'active' }, consents: { surveys: false } },
  { name: 'Fay', language: 'es', fields: { region: 'Lima', age_group: '40-59', household_size: 10 }, seen: 60, lists: { migrants: 'active' }, consents: { surveys: true } },
  { name: 'Gil', language: 'es', fields: { region: 'Lima', age_group: '18-24' }, seen: 45, lists: { migrants: 'active' }, consents: { surveys: true }, erased: true },
  { name: 'Hugo_%', language: 'pt-BR', status: 'stopped', addresses: [{ channel: 'whatsapp', address: '+5511987650008', optedOut: true }] },
  { name: 'Ines', language: 'es', fields: { region: "O'Higgins \\ \"Sur\" 🙂" }, seen: 5 },
];

async function seed(knex: Knex): Promise<void> {
  const now = new Date();
  await knex('contact_fields').insert([
    { key: 'region', label: 'Region', type: 'text', choices: null, created_at: now },
    { key: 'age_group', label: 'Age group', type: 'choice', choices: JSON.stringify(['18-24', '25-39', '40-59', '60+']), created_at: now },
    { key: 'household_size', label: 'Household size', type: 'number', choices: null, created_at: now },
    { key: 'arrived', label: 'Arrival date', type: 'date', choices: null, created_at: now },
  ]);
  const lists: Record<string, number> = {};
  for (const key of ['migrants', 'news']) {
    const [row] = await knex('lists').insert({ key, name: key, purpose: 'updates', default_language: 'es', created_at: now, updated_at: now }).returning('id');
    lists[key] = toInt(typeof row === 'object' ? row.id : row);
  }
  for (const p of PEOPLE) {
    const [row] = await knex('contacts')
      .insert({
        name: p.name,
        language: p.language ?? null,
        status: p.status ?? 'active',
        fields: p.fields ? JSON.stringify(p.fields) : null,
        last_seen_at: p.seen === undefined ? null : daysAgo(p.seen),
        erased_at: p.erased ? daysAgo(1) : null,
        created_at: p.created ? new Date(p.created) : daysAgo(200),
        updated_at: now,
      })
      .returning('id');
    const id = toInt(typeof row === 'object' ? row.id : row);
    ids[p.name] = id;
    for (const [key, status] of Object.entries(p.lists ?? {})) {
      await knex('subscriptions').insert({ list_id: lists[key], contact_id: id, status, joined_at: daysAgo(300), ended_at: status === 'ended' ? daysAgo(20) : null });
    }
    for (const [purpose, granted] of Object.entries(p.consents ?? {})) {
      const [c] = await knex('consents').insert({ contact_id: id, purpose, action: granted ? 'grant' : 'withdraw', legal_basis: 'consent', method: 'keyword', at: daysAgo(300) }).returning('id');
      await knex('consent_state').insert({ contact_id: id, purpose, granted, consent_id: toInt(typeof c === 'object' ? c.id : c), at: daysAgo(300) });
    }
    for (const a of p.addresses ?? []) {
      await knex('contact_addresses').insert({ contact_id: id, channel: a.channel, kind: 'phone', address: a.address, opted_out: a.optedOut ?? false, created_at: now });
    }
  }
}

/** Names of the contacts a query matches, sorted. */
async function names(query: string): Promise<string[]> {
  const { query: q } = await audienceQuery(db.knex, { query, activeOnly: false, now: NOW });
  const rows = await q.select('c.name').orderBy('c.name');
  return rows.map((r: { name: string }) => r.name);
}

beforeAll(async () => {
  ({ db, close } = await openTestDatabase());
  await seed(db.knex);
});
afterAll(() => close?.());

describe('segment results', () => {
  it('answers the example from the issue', async () => {
    const q = 'language = "es" and region = "Lima" and list = "migrants" and age_group in ("18-24", "25-39") and consent = "surveys" and not last_seen > 30d';
    expect(await names(q)).toEqual(['Bruno', 'Carla']);
    expect(await countQuery(db.knex, q, { now: NOW })).toEqual({ total: 2, active: 2 });
  });

  it('reads durations as points in time: > 30d is within the last 30 days', async () => {
    expect(await names('last_seen > 30d')).toEqual(['Ana', 'Ines']);
    expect(await names('last_seen < 30d')).toEqual(['Bruno', 'Dan', 'Eva', 'Fay']);
    expect(await names('last_seen > 6w')).toEqual(['Ana', 'Bruno', 'Ines']);
    expect(await names('last_seen > 240h')).toEqual(['Ines']);
    // not … includes the people never seen; "< 30d" does not
    expect(await names('not last_seen > 30d')).toEqual(['Bruno', 'Carla', 'Dan', 'Eva', 'Fay', 'Hugo_%']);
    expect(await names('last_seen is not set')).toEqual(['Carla', 'Hugo_%']);
  });

  it('compares dates by calendar day (UTC)', async () => {
    expect(await names('created = 2026-02-01')).toEqual(['Ana']);
    expect(await names('created <= "2026-02-01"')).toEqual(['Ana', 'Bruno', 'Carla', 'Dan', 'Eva', 'Fay', 'Hugo_%', 'Ines']);
    expect(await names('created > 2026-02-01')).toEqual([]);
    expect(await names('created < 2026-02-01 and created >= 2025-01-01')).toEqual(['Bruno', 'Carla', 'Dan', 'Eva', 'Fay', 'Hugo_%', 'Ines']);
    expect(await names('created >= "2026-02-01T09:00Z" and created < "2026-02-01T11:00:00+00:00"')).toEqual(['Ana']);
    expect(await names('arrived < 2025-01-01')).toEqual(['Ana']);
    expect(await names('arrived > 26w')).toEqual(['Bruno']);
    expect(await names('arrived = "2025-11-20"')).toEqual(['Bruno']);
  });

  it('compares number fields as numbers, not as text', async () => {
    expect(await names('household_size > 9')).toEqual(['Fay']);
    expect(await names('household_size >= 3')).toEqual(['Ana', 'Carla', 'Fay']);
    expect(await names('household_size in (2, 10)')).toEqual(['Bruno', 'Fay']);
    expect(await names('household_size < 2.5')).toEqual(['Bruno']);
    expect(await names('household_size is set')).toEqual(['Ana', 'Bruno', 'Carla', 'Fay']);
  });

  it('treats != and not as the complement, including contacts without the value', async () => {
    expect(await names('region != "Lima"')).toEqual(['Eva', 'Hugo_%', 'Ines']);
    expect(await names('not region = "Lima"')).toEqual(['Eva', 'Hugo_%', 'Ines']);
    expect(await names('age_group not in ("18-24", "25-39")')).toEqual(['Fay', 'Hugo_%', 'Ines']);
    expect(await names('not (region = "Lima" or language = "pt")')).toEqual(['Eva', 'Ines']);
    expect(await names('(region = "Tumbes" or status = "stopped") and not language = "es"')).toEqual(['Hugo_%']);
  });

  it('matches languages by prefix only when no region is given', async () => {
    expect(await names('language = "es" and region = "Lima"')).toEqual(['Ana', 'Bruno', 'Carla', 'Fay']);
    expect(await names('language = "es-pe"')).toEqual(['Bruno']);
    expect(await names('language in ("pt", "en")')).toEqual(['Dan', 'Hugo_%']);
    expect(await names('language != "es"')).toEqual(['Dan', 'Hugo_%']);
  });

  it('reads lists, consent, channels and status', async () => {
    expect(await names('list = "migrants"')).toEqual(['Ana', 'Bruno', 'Carla', 'Eva', 'Fay']);
    expect(await names('list = "news"')).toEqual(['Bruno']);
    expect(await names('list != "migrants"')).toEqual(['Dan', 'Hugo_%', 'Ines']);
    expect(await names('list in ("news", "migrants") and not list = "news"')).toEqual(['Ana', 'Carla', 'Eva', 'Fay']);
    expect(await names('list is not set')).toEqual(['Dan', 'Hugo_%', 'Ines']);
    expect(await names('consent = "surveys"')).toEqual(['Ana', 'Bruno', 'Carla', 'Dan', 'Fay']);
    expect(await names('consent is set')).toEqual(['Ana', 'Bruno', 'Carla', 'Dan', 'Fay']);
    expect(await names('channel = "whatsapp"')).toEqual(['Ana']);
    expect(await names('medium in ("sms", "whatsapp")')).toEqual(['Ana', 'Bruno']);
    expect(await names('status = "stopped"')).toEqual(['Hugo_%']);
    expect(await names('status = "Active" and fields.age_group = "60+"')).toEqual([]);
  });

  it('never matches an erased contact', async () => {
    expect(await names('name = "Gil"')).toEqual([]);
    expect(await names('')).not.toContain('Gil');
    expect(await countQuery(db.knex, '', { now: NOW })).toEqual({ total: PEOPLE.length - 1, active: PEOPLE.length - 2 });
  });

  it('finds text with contains, case-insensitively, and never as a pattern', async () => {
    expect(await names('name contains "AR"')).toEqual(['Carla']);
    expect(await names('name contains "%"')).toEqual(['Hugo_%']);
    expect(await names('name contains "_"')).toEqual(['Hugo_%']);
    expect(await names('name not contains "a"')).toEqual(['Bruno', 'Hugo_%', 'Ines']);
  });

  it('builds audiences for fan-out: active, consenting, on a list, by segment', async () => {
    const { query: q } = await audienceQuery(db.knex, { query: 'region = "Lima"', lists: ['migrants'], purpose: 'surveys', now: NOW });
    const rows = await q.select('c.id').orderBy('c.id');
    expect(rows.map((r: { id: unknown }) => toInt(r.id))).toEqual([ids.Ana, ids.Bruno, ids.Carla, ids.Fay]);
    expect(await countAudience(db.knex, { lists: ['news'], purpose: 'updates' })).toBe(1);
    expect(await countAudience(db.knex, { media: ['whatsapp'] })).toBe(1);
    expect(await countAudience(db.knex, { query: 'status = "stopped"' })).toBe(0);
    expect(await countAudience(db.knex, { query: 'status = "stopped"', activeOnly: false })).toBe(1);
    await expect(audienceQuery(db.knex, { lists: ['nope'] })).rejects.toThrow(/no list with the key nope/);
    await expect(audienceQuery(db.knex, { query: 'regoin = "x"' })).rejects.toBeInstanceOf(SegmentError);
  });

  it('feeds an INSERT … SELECT inside a transaction', async () => {
    await db.knex.schema.createTable('tmp_fanout', (t) => {
      t.integer('contact_id').notNullable();
      t.string('tag', 16).notNullable();
    });
    await db.knex.transaction(async (trx) => {
      const { query: q } = await audienceQuery(trx, { query: 'list = "migrants" and consent = "surveys"', now: NOW });
      await trx('tmp_fanout').insert(q.select('c.id as contact_id', trx.raw('? as tag', ['b1'])));
    });
    const rows = await db.knex('tmp_fanout').select('contact_id').orderBy('contact_id');
    expect(rows.map((r: { contact_id: unknown }) => toInt(r.contact_id))).toEqual([ids.Ana, ids.Bruno, ids.Carla, ids.Fay]);
    await db.knex.schema.dropTable('tmp_fanout');
  });
});

describe('injection attempts', () => {
  const refused = [
    `region = "Lima" or 1=1`,
    `region = "x"; drop table contacts; --`,
    `region = "x" -- comment`,
    `region = 'x'' or ''1''=''1'`,
    `$.a"] or 1=1 = "x"`,
    `fields.a"] or 1=1 = "x"`,
    `fields.region") or ("1" = "x"`,
    `region; drop table contacts = "x"`,
    `"region" = "x"`,
    `contacts.id = 1`,
    `c.id > 0`,
    `region/**/= "x"`,
    `language = "es' or '1'='1"`,
    `language = "es%"`,
    `list = "migrants' or 1=1 --"`,
    `consent = "surveys') or 1=1 --"`,
    `channel = "sms\\" or \\"1\\"=\\"1"`,
    `household_size > 1 or 1 = 1`,
    `household_size > 0x10`,
    `household_size > 1e308`,
    `region = "a\u0000b"`,
    `region = "\\x27"`,
    `created > "2024-01-01'; delete from contacts; --"`,
    `status = "active" union select * from staff_users`,
    `région = "Lima"`,
    `region = "x" and`,
    `region in ()`,
    `region in ("a" "b")`,
  ];

  it.each(refused)('refuses %s with a positioned error', async (q) => {
    const err = await countQuery(db.knex, q, { now: NOW }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(SegmentError);
    const e = err as SegmentError;
    expect(e.position.offset).toBeGreaterThanOrEqual(0);
    expect(e.position.offset).toBeLessThanOrEqual(q.length);
    expect(e.position.line).toBeGreaterThanOrEqual(1);
    expect(e.message.length).toBeGreaterThan(5);
  });

  const literal: [string, number][] = [
    [`region = "'; drop table contacts; --"`, 0],
    [`region = "Lima\\" or \\"1\\"=\\"1"`, 0],
    [`region = "x' or '1'='1"`, 0],
    [`name = "Robert'); DROP TABLE contacts;--"`, 0],
    [`region = "O'Higgins \\\\ \\"Sur\\" 🙂"`, 1],
    [`region = 'O\\'Higgins \\\\ "Sur" 🙂'`, 1],
    [`region contains "\\\\"`, 1],
    [`region contains "🙂"`, 1],
    [`region = "$.a\\"] or 1=1"`, 0],
    [`region in ("Lima') or ('1'='1", "Tumbes")`, 1],
    [`name contains "%' or '%'='"`, 0],
    [`region = "Lïmá"`, 0],
    [`region = "LIMA"`, 0],
    [`fields.region = "Lima"`, 5],
  ];

  it.each(literal)('matches %s literally (%i contact)', async (q, n) => {
    expect((await countQuery(db.knex, q, { now: NOW })).total).toBe(n);
  });

  it('leaves the database intact', async () => {
    const [{ n }] = await db.knex('contacts').count({ n: '*' });
    expect(toInt(n)).toBe(PEOPLE.length);
    expect(await db.knex.schema.hasTable('staff_users')).toBe(true);
    expect(await names('name = "Ana"')).toEqual(['Ana']);
  });
});
