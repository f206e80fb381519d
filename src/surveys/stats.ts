/**
 * Counts of survey sessions over a period, for the dashboard and the weekly report (src/reports/):
 * how many people started and completed each survey. Aggregates only.
 */
import type { Knex } from '../db/orm.js';
import { toInt } from '../db/values.js';
import { countsWithout, type PeriodFilter } from '../messaging/stats.js';

export interface SurveyCounts {
  /** Sessions completed in the period. */
  completed: number;
  /** Sessions started (first question asked) in the period. */
  started: number;
  bySurvey: { key: string; title: string; started: number; completed: number }[];
}

export async function surveyCounts(knex: Knex, f: PeriodFilter): Promise<SurveyCounts> {
  const on = (column: 'finished_at' | 'started_at') => (only: ((q: Knex.QueryBuilder) => void) | null) => {
    const q = knex('survey_sessions').where(column, '>=', f.from).where(column, '<', f.to);
    if (column === 'finished_at') q.where('status', 'completed');
    only?.(q);
    return q.select('survey_key').count({ n: '*' }).groupBy('survey_key');
  };
  const completedRows = await countsWithout(knex, f, 'contact_id', on('finished_at'), ['survey_key'], ['n']);
  const startedRows = await countsWithout(knex, f, 'contact_id', on('started_at'), ['survey_key'], ['n']);
  const by = new Map<string, { started: number; completed: number }>();
  let completed = 0;
  let started = 0;
  for (const r of completedRows) {
    if (!toInt(r.n)) continue;
    const e = by.get(String(r.survey_key)) ?? { started: 0, completed: 0 };
    e.completed += toInt(r.n);
    completed += toInt(r.n);
    by.set(String(r.survey_key), e);
  }
  for (const r of startedRows) {
    if (!toInt(r.n)) continue;
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
