/**
 * Results: live aggregates per question (counts and percentages per choice; n, mean, median,
 * min and max for numbers; earliest and latest for dates; how many answered for text), session
 * counts by status, the completion rate and where people stopped (drop-off). No personal data:
 * free text is counted, never shown.
 */
import type { Knex } from '../db/orm.js';
import { toInt } from '../db/values.js';
import { notFound } from '../http/errors.js';
import { textIn, type CompiledSurvey } from './definition.js';
import { LANGUAGE_STEP, CONSENT_STEP } from './engine.js';
import { labelsSurvey } from './versions.js';

export interface ResultsFilter {
  runId?: number | null;
}

export interface ChoiceTally {
  key: string;
  label: string;
  count: number;
  /** Of those who answered the question (a select_multiple's percentages add up to more than 100). */
  percent: number;
}

export interface QuestionResult {
  name: string;
  type: string;
  label: string;
  /** Sessions with an answer (not skipped). */
  answered: number;
  skipped: number;
  choices?: ChoiceTally[];
  numbers?: { n: number; mean: number | null; median: number | null; min: number | null; max: number | null };
  dates?: { n: number; first: string | null; last: string | null };
  /** Calculations that are not numbers: the most common values. */
  values?: { value: string; count: number }[];
}

export interface SurveyResults {
  survey: { key: string; title: string; version: string; languages: string[] };
  runId: number | null;
  sessions: { total: number; waiting: number; active: number; completed: number; ended: number; declined: number; expired: number; cancelled: number };
  /** Completed ÷ sessions that started (not waiting or cancelled before starting), 0–100. */
  completionRate: number | null;
  /** Where unfinished sessions (expired, ended) stopped. */
  dropOff: { question: string; label: string; count: number }[];
  questions: QuestionResult[];
}

const round1 = (n: number) => Math.round(n * 10) / 10;

function scope(q: Knex.QueryBuilder, surveyKey: string, f: ResultsFilter, prefix = ''): Knex.QueryBuilder {
  q.where(`${prefix}survey_key`, surveyKey);
  if (f.runId) q.where(`${prefix}run_id`, f.runId);
  return q;
}

function labelOf(survey: CompiledSurvey, name: string): string {
  if (name === LANGUAGE_STEP) return 'Language question';
  if (name === CONSENT_STEP) return 'Opening (consent) question';
  const item = survey.byName.get(name);
  const lang = survey.def.defaultLanguage;
  return item ? textIn(item.label, lang, lang) || name : name;
}

export async function surveyResults(knex: Knex, surveyKey: string, f: ResultsFilter = {}): Promise<SurveyResults> {
  const survey = await labelsSurvey(knex, surveyKey);
  if (!survey) throw notFound(`There is no survey "${surveyKey}"`);
  const lang = survey.def.defaultLanguage;

  // Sessions by status.
  const statusRows = await scope(knex('survey_sessions'), surveyKey, f).groupBy('status', 'end_reason').select('status', 'end_reason', knex.raw('count(*) as n'));
  const sessions = { total: 0, waiting: 0, active: 0, completed: 0, ended: 0, declined: 0, expired: 0, cancelled: 0 };
  for (const r of statusRows) {
    const n = toInt(r.n);
    sessions.total += n;
    const st = String(r.status) as keyof typeof sessions;
    if (st === 'ended' && r.end_reason === 'declined') sessions.declined += n;
    else if (st in sessions) sessions[st] += n;
  }
  const startedCount = sessions.total - sessions.waiting - sessions.cancelled;
  const completionRate = startedCount > 0 ? round1((sessions.completed / startedCount) * 100) : null;

  const drop = await scope(knex('survey_sessions'), surveyKey, f)
    .whereIn('status', ['expired', 'ended'])
    .whereNotNull('current_question')
    .groupBy('current_question')
    .orderBy('n', 'desc')
    .select('current_question', knex.raw('count(*) as n'));
  const dropOff = drop.map((r: Record<string, unknown>) => ({ question: String(r.current_question), label: labelOf(survey, String(r.current_question)), count: toInt(r.n) }));

  // Answered / skipped per question.
  const counts = await scope(knex('survey_answers'), surveyKey, f).groupBy('question', 'skipped').select('question', 'skipped', knex.raw('count(*) as n'));
  const answered = new Map<string, number>();
  const skipped = new Map<string, number>();
  for (const r of counts) {
    const m = r.skipped === true || r.skipped === 1 || r.skipped === '1' ? skipped : answered;
    m.set(String(r.question), (m.get(String(r.question)) ?? 0) + toInt(r.n));
  }
  // Choice tallies for every choice question at once.
  const choiceRows = await scope(knex('survey_answer_choices'), surveyKey, f).groupBy('question', 'choice').select('question', 'choice', knex.raw('count(*) as n'));
  const byChoice = new Map<string, Map<string, number>>();
  for (const r of choiceRows) {
    const q = String(r.question);
    if (!byChoice.has(q)) byChoice.set(q, new Map());
    byChoice.get(q)!.set(String(r.choice), toInt(r.n));
  }

  const questions: QuestionResult[] = [];
  for (const item of survey.items) {
    if (item.type === 'note' || item.type === 'start' || item.type === 'end' || item.type === 'today') continue;
    const n = answered.get(item.name) ?? 0;
    const res: QuestionResult = { name: item.name, type: item.type, label: textIn(item.label, lang, lang) || item.name, answered: n, skipped: skipped.get(item.name) ?? 0 };
    if (item.type === 'select_one' || item.type === 'select_multiple') {
      const tally = byChoice.get(item.name) ?? new Map<string, number>();
      const known = new Set(item.choices.map((c) => c.name));
      res.choices = item.choices
        .filter((c, i, all) => all.findIndex((x) => x.name === c.name) === i)
        .map((c) => ({ key: c.name, label: textIn(c.label, lang, lang) || c.name, count: tally.get(c.name) ?? 0, percent: n ? round1(((tally.get(c.name) ?? 0) / n) * 100) : 0 }));
      // Answers from another version whose choice no longer exists still count.
      for (const [key, count] of tally) if (!known.has(key)) res.choices.push({ key, label: key, count, percent: n ? round1((count / n) * 100) : 0 });
    } else if (item.type === 'integer' || item.type === 'decimal' || (item.type === 'calculate' && (await isNumeric(knex, surveyKey, f, item.name)))) {
      res.numbers = await numberSummary(knex, surveyKey, f, item.name);
    } else if (item.type === 'date') {
      const [row] = await scope(knex('survey_answers'), surveyKey, f).where('question', item.name).whereNotNull('value_date').select(knex.raw('count(*) as n'), knex.raw('min(value_date) as first'), knex.raw('max(value_date) as last'));
      res.dates = { n: toInt(row?.n), first: row?.first ?? null, last: row?.last ?? null };
    } else if (item.type === 'calculate') {
      const rows = await scope(knex('survey_answers'), surveyKey, f).where('question', item.name).whereNotNull('value_text').groupBy('value_text').orderBy('n', 'desc').limit(20).select('value_text', knex.raw('count(*) as n'));
      res.values = rows.map((r: Record<string, unknown>) => ({ value: String(r.value_text), count: toInt(r.n) }));
    }
    questions.push(res);
  }
  return {
    survey: { key: surveyKey, title: textIn(survey.def.title, lang, lang), version: survey.version, languages: survey.def.languages },
    runId: f.runId ?? null,
    sessions,
    completionRate,
    dropOff,
    questions,
  };
}

async function isNumeric(knex: Knex, surveyKey: string, f: ResultsFilter, question: string): Promise<boolean> {
  const [row] = await scope(knex('survey_answers'), surveyKey, f).where('question', question).select(knex.raw('count(*) as n'), knex.raw('count(value_number) as nums'));
  return toInt(row?.n) > 0 && toInt(row?.n) === toInt(row?.nums);
}

async function numberSummary(knex: Knex, surveyKey: string, f: ResultsFilter, question: string): Promise<NonNullable<QuestionResult['numbers']>> {
  const base = () => scope(knex('survey_answers'), surveyKey, f).where('question', question).whereNotNull('value_number');
  const [agg] = await base().select(knex.raw('count(*) as n'), knex.raw('avg(value_number) as mean'), knex.raw('min(value_number) as min'), knex.raw('max(value_number) as max'));
  const n = toInt(agg?.n);
  if (!n) return { n: 0, mean: null, median: null, min: null, max: null };
  // Median: the middle value (or the mean of the two middle values), read with ORDER BY … OFFSET.
  const mid = Math.floor((n - 1) / 2);
  const middle = await base().orderBy('value_number').offset(mid).limit(n % 2 ? 1 : 2).pluck('value_number');
  const values = middle.map(Number);
  const median = values.reduce((a, b) => a + b, 0) / values.length;
  return { n, mean: round2(Number(agg.mean)), median: round2(median), min: Number(agg.min), max: Number(agg.max) };
}

const round2 = (n: number) => Math.round(n * 100) / 100;
