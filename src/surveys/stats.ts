/**
 * Counts of survey sessions over a period, for the dashboard and the weekly report (src/reports/):
 * how many people started and completed each survey. Aggregates only.
 */
import type { Knex } from '../db/orm.js';
import { toInt } from '../db/values.js';
import { withoutContacts, type PeriodFilter } from '../messaging/stats.js';

export interface SurveyCounts {
  /** Sessions completed in the period. */
  completed: number;
  /** Sessions started (first question asked) in the period. */
  started: number;
  bySurvey: { key: string; title: string; started: number; completed: number }[];
}

export async function surveyCounts(knex: Knex, f: PeriodFilter): Promise<SurveyCounts> {
  const completedRows = (await withoutContacts(knex, knex('survey_sessions').where('status', 'completed').where('finished_at', '>=', f.from).where('finished_at', '<', f.to), 'contact_id', f)
    .select('survey_key')
    .count({ n: '*' })
    .groupBy('survey_key')) as Record<string, unknown>[];
  const startedRows = (await withoutContacts(knex, knex('survey_sessions').where('started_at', '>=', f.from).where('started_at', '<', f.to), 'contact_id', f)
    .select('survey_key')
    .count({ n: '*' })
    .groupBy('survey_key')) as Record<string, unknown>[];
  const by = new Map<string, { started: number; completed: number }>();
  let completed = 0;
  let started = 0;
  for (const r of completedRows) {
    const e = by.get(String(r.survey_key)) ?? { started: 0, completed: 0 };
    e.completed += toInt(r.n);
    completed += toInt(r.n);
    by.set(String(r.survey_key), e);
  }
  for (const r of startedRows) {
    const e = by.get(String(r.survey_key)) ?? { started: 0, completed: 0 };
    e.started += toInt(r.n);
    started += toInt(r.n);
    by.set(String(r.survey_key), e);
  }
  // Titles: the newest version's title of each survey (the first language's, as stored).
  const titles = new Map<string, string>();
  if (by.size) {
    const rows = (await knex('survey_versions').whereIn('survey_key', [...by.keys()]).orderBy('id', 'asc').select('survey_key', 'title')) as Record<string, unknown>[];
    for (const r of rows) titles.set(String(r.survey_key), String(r.title));
  }
  const bySurvey = [...by].map(([key, v]) => ({ key, title: titles.get(key) ?? key, ...v })).sort((a, b) => b.completed - a.completed || b.started - a.started || a.key.localeCompare(b.key));
  return { completed, started, bySurvey };
}
