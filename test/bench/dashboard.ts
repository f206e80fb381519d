/**
 * Dashboard and weekly report over a busy line: 200,000 contacts (quick: 2,000), 1,000,000 outbox rows
 * and 300,000 inbound messages spread over 60 days (quick: 20,000 and 6,000), 100,000 subscriptions and
 * 20,000 complaints, generated set-based in a temporary database. Each figure is computed through the
 * same functions the pages use (dashboardFigures, weeklyReport), best of 3 after a warm-up.
 *
 * Goals (a page that staff open many times a day): the dashboard's default 7 days in under 1 s, a
 * 60-day dashboard in under 3 s, the weekly report (two weeks, five breakdowns) in under 2 s.
 */
import { openTestDatabase, testDbKind } from '../helpers/db.js';
import type { Knex } from '../../src/db/orm.js';
import { dashboardFigures } from '../../src/reports/dashboard.js';
import { periodFrom, localDate } from '../../src/reports/period.js';
import { weeklyReport } from '../../src/reports/weekly.js';
import { row, type Benchmark, type Row } from './types.js';

const TZ = 'America/Lima';
const DAY = 86_400_000;

export interface Sizes {
  contacts: number;
  outbox: number;
  inbound: number;
  complaints: number;
}

export async function generate(knex: Knex, n: Sizes): Promise<void> {
  const now = Date.now();
  const pg = testDbKind === 'postgresql';
  const seq = (count: number, body: string) =>
    pg ? `${body.replace(/\bFROM_SEQ\b/, `from generate_series(1, ${count}) as s(i)`)}` : `with recursive seq(i) as (select 1 union all select i + 1 from seq where i < ${count}) ${body.replace(/\bFROM_SEQ\b/, 'from seq')}`;
  // Times: `ago(expr)` is now minus expr milliseconds, as each database stores a time.
  const ago = (ms: string) => (pg ? `to_timestamp((${now} - (${ms})) / 1000.0)` : `(${now} - (${ms}))`);
  const spread = (col: string, a: number, m: number) => `((cast(${col} as bigint) * ${a}) % ${m})`;
  const within60 = (col: string) => `${spread(col, 15485863, 5184000007)} % ${60 * DAY}`;
  // Messages are written as they happen: the later the row, the later its time.
  const inOrder = (col: string, count: number) => `${60 * DAY} - cast(${col} as bigint) * ${Math.floor((60 * DAY) / count)}`;
  const bool = (b: boolean) => (pg ? String(b) : b ? '1' : '0');

  await knex('contact_fields').insert(['gender', 'age_group', 'nationality', 'region'].map((key) => ({ key, label: key, type: 'text', choices: null, created_at: new Date() })));
  await knex('lists').insert({ key: 'news', name: 'News', purpose: 'updates', default_language: 'es', created_at: new Date(), updated_at: new Date() });
  const json = pg
    ? `jsonb_build_object('gender', case i % 3 when 0 then 'female' when 1 then 'male' end, 'age_group', case i % 4 when 0 then '0-17' when 1 then '18-59' when 2 then '60+' end, 'nationality', case i % 5 when 0 then 'Peru' else 'Venezuela' end, 'region', case i % 7 when 0 then 'Tumbes' when 1 then 'Piura' else 'Lima' end)`
    : `json_object('gender', case i % 3 when 0 then 'female' when 1 then 'male' end, 'age_group', case i % 4 when 0 then '0-17' when 1 then '18-59' when 2 then '60+' end, 'nationality', case i % 5 when 0 then 'Peru' else 'Venezuela' end, 'region', case i % 7 when 0 then 'Tumbes' when 1 then 'Piura' else 'Lima' end)`;
  // Constant SQL text: the generator's shape, with sizes written in as numbers this module chose.
  await knex.raw(seq(n.contacts, `insert into contacts (id, status, fields, created_at, updated_at) select i, 'active', ${json}, ${ago(within60('i'))}, ${ago('0')} FROM_SEQ`));
  await knex.raw(seq(n.contacts, `insert into contact_addresses (id, contact_id, channel, kind, address, opted_out, created_at) select i, i, case when i % 2 = 0 then 'whatsapp' else 'sms' end, 'phone', '+5190' || (1000000 + i), ${bool(false)}, ${ago('0')} FROM_SEQ`));
  await knex.raw(seq(n.inbound, `insert into inbound_messages (channel, provider_id, contact_id, address_id, kind, text, keep, received_at, handled_at, route) select case when (i % ${n.contacts}) % 2 = 0 then 'whatsapp' else 'twilio' end, 'p' || i, 1 + i % ${n.contacts}, 1 + i % ${n.contacts}, 'text', 'hola', ${bool(false)}, ${ago(inOrder('i', n.inbound))}, ${ago('0')}, case i % 4 when 0 then 'faq' when 1 then 'inbox' else 'survey' end FROM_SEQ`));
  await knex.raw(seq(n.outbox, `insert into outbox (contact_id, purpose, priority, status, channel, segments, attempts, created_at, possible_duplicate) select 1 + i % ${n.contacts}, case i % 3 when 0 then 'reply' else 'updates' end, 3, case i % 10 when 0 then 'failed' when 1 then 'sent' when 2 then 'queued' when 3 then 'read' when 4 then 'read' else 'delivered' end, case when (i % ${n.contacts}) % 2 = 0 then 'whatsapp' else 'twilio' end, 1, 1, ${ago(inOrder('i', n.outbox))}, ${bool(false)} FROM_SEQ`));
  await knex.raw(seq(Math.floor(n.contacts / 2), `insert into subscriptions (list_id, contact_id, status, channel, joined_at, ended_at, ended_reason) select 1, i * 2, case when i % 10 = 0 then 'ended' else 'active' end, 'whatsapp', ${ago(within60('i'))}, case when i % 10 = 0 then ${ago(`${within60('i')} / 2`)} end, case when i % 10 = 0 then 'stop' end FROM_SEQ`));
  await knex.raw(seq(n.complaints, `insert into complaints (code, source, category, sensitive, suggested_sensitive, priority, status, anonymous, wants_answer, received_at, due_at, created_at, updated_at) select 'C' || i, 'web', case i % 6 when 0 then 'rumour' when 1 then 'sea' when 2 then 'question' else 'programme' end, case when i % 6 = 1 then ${bool(true)} else ${bool(false)} end, ${bool(false)}, 'medium', case i % 3 when 0 then 'resolved' else 'new' end, ${bool(true)}, ${bool(false)}, ${ago(within60('i'))}, ${ago(`${within60('i')} - ${7 * DAY}`)}, ${ago('0')}, ${ago('0')} FROM_SEQ`));
  // A few test contacts of the phone simulator, whose messages every figure leaves out.
  await knex('simulator_contacts').insert([1, 2, 3, 4, 5].map((id) => ({ contact_id: id, created_at: new Date() })));
  if (pg) for (const t of ['contacts', 'contact_addresses']) await knex.raw(`select setval(pg_get_serial_sequence('${t}', 'id'), (select max(id) from ${t}))`);
  await knex.raw(pg ? 'analyze' : 'analyze');
}

async function best(fn: () => Promise<unknown>, times = 3): Promise<number> {
  await fn();
  let min = Infinity;
  for (let i = 0; i < times; i++) {
    const t0 = performance.now();
    await fn();
    min = Math.min(min, performance.now() - t0);
  }
  return Math.round(min);
}

const bench: Benchmark = {
  name: 'dashboard',
  async run({ quick }): Promise<Row[]> {
    const n: Sizes = quick ? { contacts: 2_000, outbox: 20_000, inbound: 6_000, complaints: 400 } : { contacts: 200_000, outbox: 1_000_000, inbound: 300_000, complaints: 20_000 };
    const { db, close } = await openTestDatabase();
    try {
      await generate(db.knex, n);
      const viewer = { permissions: ['reports.read'] as const };
      const week = periodFrom({}, TZ);
      const today = localDate(new Date(), TZ);
      const sixty = periodFrom({ from: localDate(new Date(Date.now() - 60 * DAY), TZ), to: today }, TZ);
      const check = await dashboardFigures(db.knex, viewer, sixty);
      // Every row but the test contacts' (contacts 1-5 have every n.contacts-th row each).
      const expected = n.outbox - (await db.knex('outbox').whereIn('contact_id', [1, 2, 3, 4, 5]).count({ n: '*' }).then((r) => Number(r[0].n)));
      const counted = check.outbound.sent + check.outbound.failed + check.outbound.pending + check.outbound.skipped;
      if (counted !== expected) throw new Error(`the 60-day dashboard counted ${counted} of ${expected} outbox rows`);
      const label = `${n.outbox.toLocaleString('en')} outbox rows`;
      return [
        row(`dashboard, 7 days, ${label}`, await best(() => dashboardFigures(db.knex, viewer, week)), 'ms', { atMost: 1000 }),
        row(`dashboard, 60 days, ${label}`, await best(() => dashboardFigures(db.knex, viewer, sixty)), 'ms', { atMost: 3000 }),
        row(`weekly report, ${label}`, await best(() => weeklyReport(db.knex, today, TZ)), 'ms', { atMost: 2000 }),
      ];
    } finally {
      await close();
    }
  },
};

export default bench;
