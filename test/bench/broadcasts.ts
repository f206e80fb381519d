/**
 * Broadcast fan-out over a large audience: 1,000,000 contacts (quick: 20,000) on one list, all
 * consenting to updates, with WhatsApp numbers, four languages and four time zones, generated with
 * set-based inserts in a temporary database (SQLite by default; PostgreSQL with AYNI_TEST_DB=postgresql).
 *
 * Compared in the same run on the same database, alternately, best of five each (quick: three):
 *   bare     INSERT INTO outbox (…) SELECT id, 'updates', 3, ?, language, 'queued', ? FROM contacts
 *            — the same rows with no audience, exclusions, language fallback or quiet hours;
 *   fan-out  `fanOut` of a broadcast to the list: the recipients query (list, status, consent,
 *            address per channel policy), the language CASE (contact's, base, list default,
 *            programme) and the quiet-hours CASE per time zone, in one INSERT … SELECT, plus the
 *            broadcast's own bookkeeping, in one transaction.
 * The rows of each run are deleted before the next.
 *
 * Memory: the process's resident set size is sampled every 5 ms during each fan-out; the row reports
 * the largest growth over the size just before it started (the database work runs in SQLite's
 * thread inside this process, or in the PostgreSQL server). The absolute peak is reported beside it.
 *
 * Goals: fan-out at most 1.4 × the bare insert; RSS growth under 150 MB.
 */
import { openTestDatabase, testDbKind } from '../helpers/db.js';
import { loadConfig } from '../../src/config.js';
import type { Database, Knex } from '../../src/db/orm.js';
import { toInt } from '../../src/db/values.js';
import { createBroadcast, fanOut } from '../../src/broadcasts/broadcasts.js';
import { approveMessage, createMessage, submitMessage } from '../../src/broadcasts/messages.js';
import { previewBroadcast } from '../../src/broadcasts/preview.js';
import { createUser } from '../../src/staff/service.js';
import { SYSTEM, type Actor } from '../../src/staff/audit.js';
import { row, type Benchmark, type Row } from './types.js';

async function generate(knex: Knex, n: number, listId: number): Promise<void> {
  const now = new Date();
  const language = "CASE i % 5 WHEN 0 THEN 'en' WHEN 1 THEN 'es-PE' WHEN 2 THEN 'fr' ELSE 'es' END";
  const timezone = "CASE i % 4 WHEN 0 THEN 'America/Lima' WHEN 1 THEN 'Europe/Madrid' WHEN 2 THEN 'Asia/Tokyo' ELSE NULL END";
  // Constant SQL text (the generator's shape), with the sizes and times bound.
  if (testDbKind === 'sqlite') {
    await knex.raw(
      `WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < ?)
       INSERT INTO contacts (id, name, language, timezone, status, created_at, updated_at)
       SELECT i, 'Contact ' || i, ${language}, ${timezone}, 'active', ?, ? FROM seq`,
      [n, now.getTime(), now.getTime()],
    );
  } else {
    await knex.raw(
      `INSERT INTO contacts (id, name, language, timezone, status, created_at, updated_at)
       SELECT i, 'Contact ' || i, ${language}, ${timezone}, 'active', ?::timestamptz, ?::timestamptz FROM generate_series(1, ?) AS i`,
      [now, now, n],
    );
    await knex.raw(`SELECT setval(pg_get_serial_sequence('contacts', 'id'), ?)`, [n]);
  }
  const t = testDbKind === 'sqlite' ? { yes: 1, no: 0, at: now.getTime() } : { yes: true, no: false, at: now };
  await knex.raw(`INSERT INTO subscriptions (list_id, contact_id, status, joined_at) SELECT ?, id, 'active', ? FROM contacts`, [listId, t.at]);
  await knex.raw(`INSERT INTO consent_state (contact_id, purpose, granted, consent_id, at) SELECT id, 'updates', ?, id, ? FROM contacts`, [t.yes, t.at]);
  await knex.raw(`INSERT INTO contact_addresses (contact_id, channel, kind, address, opted_out, created_at) SELECT id, 'whatsapp', 'phone', '+5190' || (1000000 + id), ?, ? FROM contacts`, [t.no, t.at]);
  await knex.raw(`INSERT INTO contact_addresses (contact_id, channel, kind, address, opted_out, created_at) SELECT id, 'sms', 'phone', '+5190' || (1000000 + id), ?, ? FROM contacts WHERE id % 2 = 0`, [t.no, t.at]);
  await knex.raw('ANALYZE');
}

async function count(knex: Knex, broadcastId: number): Promise<number> {
  const [{ n }] = await knex('outbox').where('broadcast_id', broadcastId).count({ n: '*' });
  return toInt(n);
}

/** Runs fn while sampling RSS every 5 ms; returns its time, this process's CPU time, and the largest RSS growth and peak. */
async function measured<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number; cpuMs: number; growthMb: number; peakMb: number }> {
  const base = process.memoryUsage.rss();
  let peak = base;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 5);
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  try {
    const value = await fn();
    const ms = performance.now() - t0;
    const used = process.cpuUsage(cpu);
    peak = Math.max(peak, process.memoryUsage.rss());
    return { value, ms, cpuMs: (used.user + used.system) / 1000, growthMb: (peak - base) / 1048576, peakMb: peak / 1048576 };
  } finally {
    clearInterval(timer);
  }
}

const benchmark: Benchmark = {
  name: 'broadcasts',
  async run({ quick }) {
    const n = quick ? 20_000 : 1_000_000;
    const { db, test, close } = await openTestDatabase();
    try {
      const config = loadConfig({ LOG_LEVEL: 'silent', NODE_ENV: 'test', DATABASE_URL: test.url, DEFAULT_LANGUAGE: 'es', DEFAULT_TIMEZONE: 'America/Lima' });
      const now = new Date();
      const [list] = await db.knex('lists').insert({ key: 'bench', name: 'bench', purpose: 'updates', default_language: 'es', double_opt_in: false, is_default: false, created_at: now, updated_at: now }).returning('id');
      const listId = toInt(typeof list === 'object' ? list.id : list);
      const started = performance.now();
      await generate(db.knex, n, listId);
      const rows: Row[] = [row(`broadcasts: generate ${n.toLocaleString('en')} contacts (set-based)`, Number(((performance.now() - started) / 1000).toFixed(1)), 's')];

      const actors = await staffActors(db);
      const m = await createMessage(db, actors.author, { key: 'bench', title: 'Bench', topic: 'health', variants: { es: { text: 'Hola {{name}}' }, en: { text: 'Hello {{name}}' } } });
      await submitMessage(db, actors.author, m.id);
      await approveMessage(db, actors.reviewer, m.id);
      // 02:00 UTC: 21:00 in Lima (quiet), 03:00 in Madrid (quiet), 11:00 in Tokyo.
      const at = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate(), 2));

      let bareBest = Infinity;
      let fanBest = Infinity;
      let bareCpu = Infinity;
      let fanCpu = Infinity;
      let growth = 0;
      let peak = 0;
      let nextBare = 1_000_000_000;
      const rounds = quick ? 3 : 5;
      for (let i = 0; i < rounds; i++) {
        const bareId = nextBare++;
        const bare = await measured(() =>
          db.knex.raw(
            `INSERT INTO outbox (contact_id, purpose, priority, broadcast_id, language, status, created_at) SELECT id, 'updates', 3, ?, language, 'queued', ? FROM contacts`,
            [bareId, testDbKind === 'sqlite' ? at.getTime() : at],
          ),
        );
        if ((await count(db.knex, bareId)) !== n) throw new Error('the bare insert did not insert every contact');
        bareBest = Math.min(bareBest, bare.ms);
        bareCpu = Math.min(bareCpu, bare.cpuMs);
        await db.knex('outbox').where('broadcast_id', bareId).delete();

        const b = await createBroadcast(db, config, actors.author, { name: `bench ${i}`, messageId: m.id, lists: [listId] });
        const fan = await measured(() => fanOut(db, config, b.id, { now: at }));
        if (fan.value !== n || (await count(db.knex, b.id)) !== n) throw new Error(`the fan-out inserted ${fan.value} rows, not ${n}`);
        fanBest = Math.min(fanBest, fan.ms);
        fanCpu = Math.min(fanCpu, fan.cpuMs);
        growth = Math.max(growth, fan.growthMb);
        peak = Math.max(peak, fan.peakMb);
        if (i === 0) {
          const held = toInt((await db.knex('outbox').where('broadcast_id', b.id).whereNotNull('not_before').count({ n: '*' }))[0].n);
          if (held === 0 || held === n) throw new Error('quiet hours held nobody or everybody: the benchmark data is wrong');
        }
        await db.knex('outbox').where('broadcast_id', b.id).delete();
      }
      // The preview of the same audience (the grouped recipients query, exclusions, 200 rendered samples).
      const draft = await createBroadcast(db, config, actors.author, { name: 'bench preview', messageId: m.id, lists: [listId] });
      const t0 = performance.now();
      const p = await previewBroadcast(db, config, draft.id, { now: at });
      const previewMs = performance.now() - t0;
      if (p.recipients !== n) throw new Error(`the preview counted ${p.recipients} recipients, not ${n}`);
      const label = `${n.toLocaleString('en')} recipients (${testDbKind})`;
      rows.push(row(`broadcasts: bare INSERT … SELECT of ${label}`, Number(bareBest.toFixed(0)), 'ms'));
      rows.push(row(`broadcasts: fan-out of ${label}`, Number(fanBest.toFixed(0)), 'ms'));
      rows.push(row('broadcasts: fan-out time / bare insert time', Number((fanBest / bareBest).toFixed(2)), 'x', { atMost: 1.4 }));
      rows.push(row(`broadcasts: preview of ${label}`, Number(previewMs.toFixed(0)), 'ms'));
      if (testDbKind === 'sqlite') {
        // SQLite works in this process: its CPU time says the same without the waits of a busy machine.
        rows.push(row('broadcasts: fan-out CPU time / bare insert CPU time (SQLite, in-process)', Number((fanCpu / bareCpu).toFixed(2)), 'x'));
      }
      rows.push(row('broadcasts: RSS growth during fan-out (sampled every 5 ms)', Number(growth.toFixed(1)), 'MB', { atMost: 150 }));
      rows.push(row('broadcasts: peak RSS of the process during fan-out', Number(peak.toFixed(0)), 'MB'));
      return rows;
    } finally {
      await close();
    }
  },
};

async function staffActors(db: Database): Promise<{ author: Actor; reviewer: Actor }> {
  const a = await createUser(db, SYSTEM, { email: 'bench-author@example.org', name: 'Author', role: 'broadcaster', password: 'correct horse battery staple' });
  const r = await createUser(db, SYSTEM, { email: 'bench-reviewer@example.org', name: 'Reviewer', role: 'editor', password: 'correct horse battery staple' });
  return {
    author: { type: 'staff', id: a.user.id, label: a.user.email, role: 'broadcaster' },
    reviewer: { type: 'staff', id: r.user.id, label: r.user.email, role: 'editor' },
  };
}

export default benchmark;
