/**
 * The PDM report of a distribution: response, and the indicators of the recipients who completed
 * the survey — % received, % full amount, % on time, problems collecting by type, % asked to pay,
 * % felt safe and respected, spending, basic needs met, satisfaction, preferred modality, knowledge
 * of the complaint channel, household size, rCSI (mean, median and phase bands) — with the same
 * indicators by gender, age group and admin area. Aggregates only: a group with fewer than
 * MIN_CELL respondents shows its count and nothing else, so that no answer can be traced to a
 * person. The follow-up list (named people to call back) is separate and needs cash.manage.
 */
import type { Knex } from '../db/orm.js';
import { toDateOrNull, toInt } from '../db/values.js';
import { findSurvey } from '../surveys/catalog.js';
import { textIn } from '../surveys/definition.js';
import { getDistribution, type Distribution } from './distributions.js';
import { readJsonArray } from './lists.js';
import { PDM_SURVEY } from './model.js';
import { addDays, type PdmPlan } from './pdm.js';
import { RCSI_BANDS } from './rcsi.js';
import { tableFile, type FileFormat, type FileOut, type Sheet } from './export.js';

/** Groups smaller than this show no indicator. */
export const MIN_CELL = 5;

export interface Share {
  n: number;
  of: number;
  percent: number | null;
}

export interface Tally {
  key: string;
  count: number;
  percent: number | null;
}

export interface Indicators {
  respondents: number;
  received: Share;
  receivedBreakdown: Tally[];
  fullAmount: Share;
  onTime: Share;
  anyProblem: Share;
  problems: Tally[];
  askedToPay: Share;
  feltSafe: Share;
  respected: Share;
  spending: Tally[];
  needsMet: Tally[];
  needsMetAllOrMost: Share;
  satisfaction: Tally[];
  satisfied: Share;
  preferredModality: Tally[];
  knowsComplaint: Share;
  householdSize: { n: number; mean: number | null };
  rcsi: { n: number; mean: number | null; median: number | null; max: number | null; bands: Tally[] };
}

export interface GroupRow {
  group: string;
  respondents: number;
  /** Fewer than MIN_CELL respondents: the indicators are withheld. */
  suppressed: boolean;
  received: number | null;
  fullAmount: number | null;
  onTime: number | null;
  anyProblem: number | null;
  askedToPay: number | null;
  feltSafe: number | null;
  respected: number | null;
  satisfied: number | null;
  rcsiMean: number | null;
  rcsiCrisis: number | null;
}

export interface PdmReport {
  distribution: Pick<Distribution, 'id' | 'name' | 'date' | 'amount' | 'currency' | 'modality' | 'provider' | 'listId' | 'listName'> & { transfers: Distribution['transfers'] };
  pdm: Distribution['pdm'] & { dueOn: string; effectiveDays: number };
  response: { selected: number; sent: number; waiting: number; completed: number; partial: number; declined: number; noAnswer: number; skipped: number; responseRate: number | null };
  indicators: Indicators;
  disaggregation: { gender: GroupRow[]; ageGroup: GroupRow[]; admin1: GroupRow[] };
  minCell: number;
}

const pct = (n: number, of: number): number | null => (of > 0 ? Math.round((n / of) * 1000) / 10 : null);
const share = (n: number, of: number): Share => ({ n, of, percent: pct(n, of) });
const round1 = (n: number) => Math.round(n * 10) / 10;

interface Resp {
  received: string | null;
  amount_told: string | null;
  on_time: string | null;
  problems: string[] | null;
  asked_to_pay: string | null;
  felt_safe: string | null;
  respected: string | null;
  spending: string[] | null;
  needs_met: string | null;
  satisfaction: string | null;
  preferred_modality: string | null;
  knows_complaint: string | null;
  household_size: number | null;
  rcsi: number | null;
  rcsi_band: string | null;
  gender: string | null;
  age_group: string | null;
  admin1: string | null;
}

const PROBLEMS = ['wait', 'distance', 'card_pin_id', 'agent_fee', 'unsafe', 'other'];
const SPENDING = ['food', 'rent', 'health', 'education', 'debts', 'transport', 'hygiene', 'clothes', 'livelihood', 'savings', 'other'];
const NEEDS = ['all', 'most', 'half', 'some', 'none'];
const SATISFACTION = ['very_satisfied', 'satisfied', 'neutral', 'dissatisfied', 'very_dissatisfied'];
const MODALITIES = ['cash', 'mobile_money', 'voucher', 'card'];

function tally(values: (string | null)[], keys: string[], of: number): Tally[] {
  const counts = new Map<string, number>(keys.map((k) => [k, 0]));
  for (const v of values) if (v !== null) counts.set(v, (counts.get(v) ?? 0) + 1);
  return [...counts.entries()].map(([key, count]) => ({ key, count, percent: pct(count, of) }));
}

/** The indicators of a set of responses (completed sessions). */
export function indicatorsOf(rows: readonly Resp[]): Indicators {
  const answeredReceived = rows.filter((r) => r.received !== null);
  const got = rows.filter((r) => r.received === 'yes');
  const answered = <K extends keyof Resp>(set: readonly Resp[], k: K) => set.filter((r) => r[k] !== null && r[k] !== undefined);
  const yes = <K extends keyof Resp>(set: readonly Resp[], k: K, v: string = 'yes') => share(set.filter((r) => r[k] === v).length, answered(set, k).length);
  const withProblems = answered(got, 'problems');
  const withSpending = answered(got, 'spending');
  const needs = answered(got, 'needs_met');
  const sat = answered(got, 'satisfaction');
  const mod = answered(rows, 'preferred_modality');
  const sizes = rows.map((r) => r.household_size).filter((n): n is number => n !== null);
  const scores = rows.map((r) => r.rcsi).filter((n): n is number => n !== null).sort((a, b) => a - b);
  const median = scores.length ? (scores.length % 2 ? scores[(scores.length - 1) / 2] : (scores[scores.length / 2 - 1] + scores[scores.length / 2]) / 2) : null;
  return {
    respondents: rows.length,
    received: share(got.length, answeredReceived.length),
    receivedBreakdown: tally(answeredReceived.map((r) => r.received), ['yes', 'no', 'not_sure'], answeredReceived.length),
    fullAmount: yes(got, 'amount_told', 'same'),
    onTime: yes(got, 'on_time'),
    anyProblem: share(withProblems.filter((r) => r.problems!.some((p) => p !== 'none')).length, withProblems.length),
    problems: PROBLEMS.map((key) => {
      const count = withProblems.filter((r) => r.problems!.includes(key)).length;
      return { key, count, percent: pct(count, withProblems.length) };
    }),
    askedToPay: yes(rows, 'asked_to_pay'),
    feltSafe: yes(got, 'felt_safe'),
    respected: yes(got, 'respected'),
    spending: SPENDING.map((key) => {
      const count = withSpending.filter((r) => r.spending!.includes(key)).length;
      return { key, count, percent: pct(count, withSpending.length) };
    }),
    needsMet: tally(needs.map((r) => r.needs_met), NEEDS, needs.length),
    needsMetAllOrMost: share(needs.filter((r) => r.needs_met === 'all' || r.needs_met === 'most').length, needs.length),
    satisfaction: tally(sat.map((r) => r.satisfaction), SATISFACTION, sat.length),
    satisfied: share(sat.filter((r) => r.satisfaction === 'very_satisfied' || r.satisfaction === 'satisfied').length, sat.length),
    preferredModality: tally(mod.map((r) => r.preferred_modality), MODALITIES, mod.length),
    knowsComplaint: yes(rows, 'knows_complaint'),
    householdSize: { n: sizes.length, mean: sizes.length ? round1(sizes.reduce((a, b) => a + b, 0) / sizes.length) : null },
    rcsi: {
      n: scores.length,
      mean: scores.length ? round1(scores.reduce((a, b) => a + b, 0) / scores.length) : null,
      median,
      max: scores.length ? scores[scores.length - 1] : null,
      bands: tally(rows.map((r) => r.rcsi_band), [...RCSI_BANDS], scores.length),
    },
  };
}

function groupRows(rows: readonly Resp[], key: 'gender' | 'age_group' | 'admin1'): GroupRow[] {
  const groups = new Map<string, Resp[]>();
  for (const r of rows) {
    const g = r[key] ?? 'unknown';
    groups.set(g, [...(groups.get(g) ?? []), r]);
  }
  return [...groups.entries()]
    .sort((a, b) => (a[0] === 'unknown' ? 1 : b[0] === 'unknown' ? -1 : a[0].localeCompare(b[0])))
    .map(([group, rs]) => {
      const suppressed = rs.length < MIN_CELL;
      const i = indicatorsOf(rs);
      const p = (s: Share) => (suppressed ? null : s.percent);
      return {
        group,
        respondents: rs.length,
        suppressed,
        received: p(i.received),
        fullAmount: p(i.fullAmount),
        onTime: p(i.onTime),
        anyProblem: p(i.anyProblem),
        askedToPay: p(i.askedToPay),
        feltSafe: p(i.feltSafe),
        respected: p(i.respected),
        satisfied: p(i.satisfied),
        rcsiMean: suppressed ? null : i.rcsi.mean,
        rcsiCrisis: suppressed ? null : (i.rcsi.bands.find((b) => b.key === '19+')?.percent ?? null),
      };
    });
}

export async function pdmReport(knex: Knex, config: { CASH_PDM_DAYS: number }, distributionId: number): Promise<PdmReport> {
  const d = await getDistribution(knex, distributionId);
  const statusRows = await knex('cash_pdm').where('distribution_id', d.id).groupBy('status').select('status', knex.raw('count(*) as n'));
  const by: Record<string, number> = {};
  for (const r of statusRows) by[String(r.status)] = toInt(r.n);
  const selected = Object.values(by).reduce((a, b) => a + b, 0);
  const sent = selected - (by.skipped ?? 0) - (by.selected ?? 0);
  const rows = await knex('cash_pdm as p')
    .join('cash_beneficiaries as b', 'b.id', 'p.beneficiary_id')
    .where('p.distribution_id', d.id)
    .where('p.status', 'completed')
    .select('p.*', 'b.gender', 'b.age_group', 'b.admin1');
  const resp: Resp[] = rows.map((r: Record<string, unknown>) => ({
    received: (r.received as string | null) ?? null,
    amount_told: (r.amount_told as string | null) ?? null,
    on_time: (r.on_time as string | null) ?? null,
    problems: r.problems === null || r.problems === undefined ? null : readJsonArray(r.problems),
    asked_to_pay: (r.asked_to_pay as string | null) ?? null,
    felt_safe: (r.felt_safe as string | null) ?? null,
    respected: (r.respected as string | null) ?? null,
    spending: r.spending === null || r.spending === undefined ? null : readJsonArray(r.spending),
    needs_met: (r.needs_met as string | null) ?? null,
    satisfaction: (r.satisfaction as string | null) ?? null,
    preferred_modality: (r.preferred_modality as string | null) ?? null,
    knows_complaint: (r.knows_complaint as string | null) ?? null,
    household_size: r.household_size === null || r.household_size === undefined ? null : toInt(r.household_size),
    rcsi: r.rcsi === null || r.rcsi === undefined ? null : toInt(r.rcsi),
    rcsi_band: (r.rcsi_band as string | null) ?? null,
    gender: (r.gender as string | null) ?? null,
    age_group: (r.age_group as string | null) ?? null,
    admin1: (r.admin1 as string | null) ?? null,
  }));
  const days = d.pdm.days ?? config.CASH_PDM_DAYS;
  return {
    distribution: { id: d.id, name: d.name, date: d.date, amount: d.amount, currency: d.currency, modality: d.modality, provider: d.provider, listId: d.listId, listName: d.listName, transfers: d.transfers },
    pdm: { ...d.pdm, dueOn: addDays(d.date, days), effectiveDays: days },
    response: {
      selected,
      sent,
      waiting: by.sent ?? 0,
      completed: by.completed ?? 0,
      partial: by.partial ?? 0,
      declined: by.declined ?? 0,
      noAnswer: by.no_answer ?? 0,
      skipped: by.skipped ?? 0,
      responseRate: pct(by.completed ?? 0, sent),
    },
    indicators: indicatorsOf(resp),
    disaggregation: { gender: groupRows(resp, 'gender'), ageGroup: groupRows(resp, 'age_group'), admin1: groupRows(resp, 'admin1') },
    minCell: MIN_CELL,
  };
}

/** Labels of the PDM survey's questions and choices in a language (from surveys/pdm-cash.yaml), for report tables. */
export async function pdmLabels(lang: string): Promise<{ question: (name: string) => string; choice: (question: string, key: string) => string }> {
  const entry = await findSurvey(PDM_SURVEY);
  const survey = entry?.survey;
  return {
    question: (name) => {
      const item = survey?.byName.get(name);
      return item ? textIn(item.label, lang, survey!.def.defaultLanguage).replace(/\$\{[^}]*\}\s*/g, '').trim() : name;
    },
    choice: (question, key) => {
      const item = survey?.byName.get(question);
      const c = item?.choices.find((x) => x.name === key);
      return c ? textIn(c.label, lang, survey!.def.defaultLanguage) : key;
    },
  };
}

/** The report as CSV or XLSX: indicators, tallies and disaggregations; aggregate figures only. */
export async function reportFile(report: PdmReport, format: FileFormat, lang = 'en'): Promise<FileOut> {
  const L = await pdmLabels(lang);
  const i = report.indicators;
  const shareRow = (name: string, s: Share) => [name, s.n, s.of, s.percent];
  const summary: Sheet = {
    name: 'Indicators',
    header: ['indicator', 'n', 'of', 'percent'],
    rows: [
      ['selected for PDM', report.response.selected, null, null],
      ['sent', report.response.sent, report.response.selected, null],
      ['completed (respondents)', report.response.completed, report.response.sent, report.response.responseRate],
      shareRow('received the transfer', i.received),
      shareRow('received the full amount', i.fullAmount),
      shareRow('received on time', i.onTime),
      shareRow('had any problem collecting', i.anyProblem),
      shareRow('asked to pay or do a favour', i.askedToPay),
      shareRow('felt safe', i.feltSafe),
      shareRow('treated with respect', i.respected),
      shareRow('basic needs met (all or most)', i.needsMetAllOrMost),
      shareRow('satisfied (very satisfied or satisfied)', i.satisfied),
      shareRow('knows how to complain', i.knowsComplaint),
      ['household size (mean)', i.householdSize.mean, i.householdSize.n, null],
      ['rCSI (mean)', i.rcsi.mean, i.rcsi.n, null],
      ['rCSI (median)', i.rcsi.median, i.rcsi.n, null],
    ],
  };
  const tallies: Sheet = { name: 'Breakdowns', header: ['question', 'answer', 'count', 'percent'], rows: [] };
  const add = (question: string, label: string, list: Tally[], labelOf: (k: string) => string) => {
    for (const t of list) tallies.rows.push([label, labelOf(t.key), t.count, t.percent]);
  };
  add('received', 'received', i.receivedBreakdown, (k) => L.choice('received', k));
  add('problems', 'problems collecting', i.problems, (k) => L.choice('problems', k));
  add('spending', 'spending', i.spending, (k) => L.choice('spending', k));
  add('needs_met', 'basic needs met', i.needsMet, (k) => L.choice('needs_met', k));
  add('satisfaction', 'satisfaction', i.satisfaction, (k) => L.choice('satisfaction', k));
  add('preferred_modality', 'preferred modality', i.preferredModality, (k) => L.choice('preferred_modality', k));
  add('rcsi', 'rCSI phase', i.rcsi.bands, (k) => k);
  const groups: Sheet = {
    name: 'Disaggregation',
    header: ['by', 'group', 'respondents', 'received %', 'full amount %', 'on time %', 'any problem %', 'asked to pay %', 'felt safe %', 'respected %', 'satisfied %', 'rCSI mean', 'rCSI 19+ %'],
    rows: [],
  };
  for (const [by, list] of [['gender', report.disaggregation.gender], ['age group', report.disaggregation.ageGroup], ['admin1', report.disaggregation.admin1]] as const) {
    for (const g of list) {
      groups.rows.push([by, g.group, g.respondents, g.received, g.fullAmount, g.onTime, g.anyProblem, g.askedToPay, g.feltSafe, g.respected, g.satisfied, g.rcsiMean, g.rcsiCrisis]);
    }
  }
  return tableFile(`pdm-report-${report.distribution.id}-${new Date().toISOString().slice(0, 10)}`, format, [summary, tallies, groups]);
}

// ------------------------------------------------------------------------------------ follow-up

export interface FollowUp {
  pdmId: number;
  beneficiaryId: number;
  householdId: string | null;
  name: string | null;
  phone: string | null;
  admin1: string | null;
  reason: 'not_received' | 'not_sure' | 'asked_to_pay';
  complaintCode: string | null;
  answeredAt: string | null;
}

/**
 * People to call back: those who said they did not receive the transfer (or are not sure), and —
 * only for viewers who may see sensitive cases — those who said they were asked to pay.
 */
export async function followUpList(knex: Knex, distributionId: number, opts: { sensitive: boolean }): Promise<FollowUp[]> {
  const q = knex('cash_pdm as p')
    .join('cash_beneficiaries as b', 'b.id', 'p.beneficiary_id')
    .where('p.distribution_id', distributionId)
    .whereIn('p.status', ['completed', 'partial'])
    .where((w) => {
      w.whereIn('p.received', ['no', 'not_sure']);
      if (opts.sensitive) w.orWhere('p.asked_to_pay', 'yes');
    })
    .orderBy('p.id')
    .select('p.id', 'p.beneficiary_id', 'p.received', 'p.asked_to_pay', 'p.complaint_code', 'p.finished_at', 'b.household_id', 'b.name', 'b.phone', 'b.admin1');
  const out: FollowUp[] = [];
  for (const r of await q) {
    const base = {
      pdmId: toInt(r.id), beneficiaryId: toInt(r.beneficiary_id), householdId: r.household_id ?? null, name: r.name ?? null, phone: r.phone ?? null,
      admin1: r.admin1 ?? null, answeredAt: toDateOrNull(r.finished_at)?.toISOString() ?? null,
    };
    if (r.received === 'no' || r.received === 'not_sure') out.push({ ...base, reason: r.received === 'no' ? 'not_received' : 'not_sure', complaintCode: r.complaint_code ?? null });
    if (opts.sensitive && r.asked_to_pay === 'yes') out.push({ ...base, reason: 'asked_to_pay', complaintCode: null });
  }
  return out;
}

export type { PdmPlan };
