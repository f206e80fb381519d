/**
 * Surveys:
 *   engine     steps per second of the pure engine through whole conversations of the shipped needs
 *              assessment (answers by number, label, several choices, a few invalid ones, skip logic),
 *              and the same with rendering each reply for SMS and WhatsApp. Goal: ≥ 50,000 steps/s.
 *   run start  a run of the needs assessment sent to a list of 100,000 contacts (quick: 2,000):
 *              sessions created with INSERT … SELECT in batches and the first question queued for
 *              each contact with INSERT … SELECT per language and medium. Contacts are generated
 *              set-based (half WhatsApp, half SMS; Spanish, English, regional Spanish, French and
 *              unknown languages; all consenting to surveys). Reported: the time until every first
 *              question is in the outbox, and the rate.
 * On SQLite by default; on PostgreSQL with AYNI_TEST_DB=postgresql and TEST_DATABASE_URL.
 */
import { join } from 'node:path';
import { openTestDatabase, testDbKind } from '../helpers/db.js';
import { loadConfig } from '../../src/config.js';
import type { Knex } from '../../src/db/orm.js';
import { toInt } from '../../src/db/values.js';
import { createLogger } from '../../src/log.js';
import { ROOT } from '../../src/paths.js';
import { SYSTEM } from '../../src/staff/audit.js';
import { loadSurveyFile } from '../../src/surveys/catalog.js';
import { compileSurvey, type CompiledSurvey } from '../../src/surveys/definition.js';
import { initialState, step } from '../../src/surveys/engine.js';
import { renderMessages } from '../../src/surveys/render.js';
import { createRun } from '../../src/surveys/runs.js';
import { row, type Benchmark, type Row } from './types.js';

/** One whole conversation: the opening, invalid answers, labels, several choices, skip logic. */
const ANSWERS = [
  'si', '7', 'compartido', '2', 'en persona', '1', '1 y 2', '1 2 3 4', '1,3,7', 'banana', '2 3', 'en parte', '1',
  'Dicen que cierran la frontera', '3', '5', '30 años', 'mujer', '1', '2', '3', '1', '1', 'no puede hacerlo', 'venezolana', 'Lima y Callao',
];

function conversations(survey: CompiledSurvey, steps: number, withRender: boolean): { steps: number; ms: number; cpuMs: number } {
  const now = new Date();
  let done = 0;
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  while (done < steps) {
    let r = step(survey, initialState(survey, now, 'es'), { type: 'start', language: 'es' }, { now });
    done++;
    for (const a of ANSWERS) {
      r = step(survey, r.state, { type: 'answer', text: a }, { now });
      if (withRender) renderMessages(r.messages, { medium: done % 2 ? 'sms' : 'whatsapp', programme: 'Ayni' });
      done++;
    }
    if (r.state.status !== 'completed') throw new Error(`the scripted conversation did not complete (${r.state.status})`);
  }
  const cpu = process.cpuUsage(c0);
  return { steps: done, ms: performance.now() - t0, cpuMs: (cpu.user + cpu.system) / 1000 };
}

async function generate(knex: Knex, n: number, listId: number): Promise<void> {
  const now = new Date();
  const language = "CASE i % 5 WHEN 0 THEN 'en' WHEN 1 THEN 'es-PE' WHEN 2 THEN 'fr' WHEN 3 THEN NULL ELSE 'es' END";
  if (testDbKind === 'sqlite') {
    await knex.raw(
      `WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < ?)
       INSERT INTO contacts (id, language, status, created_at, updated_at) SELECT i, ${language}, 'active', ?, ? FROM seq`,
      [n, now.getTime(), now.getTime()],
    );
  } else {
    await knex.raw(
      `INSERT INTO contacts (id, language, status, created_at, updated_at) SELECT i, ${language}, 'active', ?::timestamptz, ?::timestamptz FROM generate_series(1, ?) AS i`,
      [now, now, n],
    );
    await knex.raw(`SELECT setval(pg_get_serial_sequence('contacts', 'id'), ?)`, [n]);
  }
  const t = testDbKind === 'sqlite' ? { yes: 1, no: 0, at: now.getTime() } : { yes: true, no: false, at: now };
  await knex.raw(`INSERT INTO subscriptions (list_id, contact_id, status, joined_at) SELECT ?, id, 'active', ? FROM contacts`, [listId, t.at]);
  await knex.raw(`INSERT INTO consent_state (contact_id, purpose, granted, consent_id, at) SELECT id, 'surveys', ?, id, ? FROM contacts`, [t.yes, t.at]);
  await knex.raw(`INSERT INTO contact_addresses (contact_id, channel, kind, address, opted_out, created_at) SELECT id, 'whatsapp', 'phone', '+5190' || (1000000 + id), ?, ? FROM contacts WHERE id % 2 = 0`, [t.no, t.at]);
  await knex.raw(`INSERT INTO contact_addresses (contact_id, channel, kind, address, opted_out, created_at) SELECT id, 'sms', 'phone', '+5190' || (1000000 + id), ?, ? FROM contacts WHERE id % 2 = 1`, [t.no, t.at]);
  await knex.raw('ANALYZE');
}

const benchmark: Benchmark = {
  name: 'surveys',
  async run({ quick }) {
    const rows: Row[] = [];
    const survey = compileSurvey(await loadSurveyFile(join(ROOT, 'surveys', 'needs-assessment.yaml')));

    // ------------------------------------------------------------------------- the engine
    const target = quick ? 5_000 : 300_000;
    conversations(survey, 2_000, true); // warm up
    // The engine is single-threaded CPU work: its throughput is steps per CPU-second of this process,
    // which a machine shared with other work does not distort; the wall-clock rate is shown beside it.
    let best = 0;
    let bestWall = 0;
    for (let i = 0; i < 3; i++) {
      const r = conversations(survey, target, false);
      best = Math.max(best, r.steps / (r.cpuMs / 1000));
      bestWall = Math.max(bestWall, r.steps / (r.ms / 1000));
    }
    rows.push(row('surveys: engine steps per CPU-second (needs assessment, whole conversations)', Math.round(best), 'steps/s', { atLeast: 50_000 }));
    rows.push(row('surveys: engine steps per second, wall clock', Math.round(bestWall), 'steps/s'));
    let bestRendered = 0;
    for (let i = 0; i < 3; i++) {
      const r = conversations(survey, Math.round(target / 3), true);
      bestRendered = Math.max(bestRendered, r.steps / (r.cpuMs / 1000));
    }
    rows.push(row('surveys: engine steps per CPU-second, each reply rendered for SMS or WhatsApp', Math.round(bestRendered), 'steps/s'));

    // -------------------------------------------------------------------------- a run
    const n = quick ? 2_000 : 100_000;
    const { db, test, close } = await openTestDatabase();
    try {
      const config = loadConfig({ LOG_LEVEL: 'silent', NODE_ENV: 'test', DATABASE_URL: test.url, DEFAULT_LANGUAGE: 'es', DEFAULT_TIMEZONE: 'America/Lima' });
      const services = { config, db, log: createLogger('silent') };
      const now = new Date();
      const [list] = await db.knex('lists').insert({ key: 'bench', name: 'bench', purpose: 'updates', default_language: 'es', double_opt_in: false, is_default: false, created_at: now, updated_at: now }).returning('id');
      const listId = toInt(typeof list === 'object' ? list.id : list);
      const g0 = performance.now();
      await generate(db.knex, n, listId);
      rows.push(row(`surveys: generate ${n.toLocaleString('en')} contacts (set-based)`, Number(((performance.now() - g0) / 1000).toFixed(1)), 's'));

      const t0 = performance.now();
      const { started } = await createRun(services, SYSTEM, { survey: 'needs-assessment', name: 'bench', audience: { lists: [listId] }, medium: 'auto' });
      const seconds = (performance.now() - t0) / 1000;
      const [{ q }] = await db.knex('outbox').where('purpose', 'surveys').select(db.knex.raw('count(*) as q'));
      if (!started || started.sessions !== n || toInt(q) !== n) throw new Error(`the run did not queue one first question per contact (${started?.sessions} sessions, ${q} queued, ${n} contacts)`);
      const byKind = await db.knex('survey_sessions').groupBy('current_question').select('current_question', db.knex.raw('count(*) as c'));
      if (byKind.length !== 2) throw new Error('expected the language question for unknown languages and the consent question for the others');
      rows.push(row(`surveys: start a run for ${n.toLocaleString('en')} contacts (sessions + first questions queued, ${testDbKind})`, Number(seconds.toFixed(2)), 's'));
      rows.push(row(`surveys: run start rate (${testDbKind})`, Math.round(n / seconds), 'contacts/s'));
    } finally {
      await close();
    }
    return rows;
  },
};

export default benchmark;
