/**
 * Exports of a survey's answers, streamed (memory stays flat however many sessions):
 *
 *   wide  one row per session: who (a pseudonymous respondent reference, never a number or a
 *         name), run, status, language, medium, times, then one column per question and
 *         calculation; a select_multiple also gets one 0/1 column per choice (question/choice),
 *         as Kobo and ODK exports do.
 *   long  one row per answer: session, respondent, run, question, type, value, label, skipped,
 *         answered at.
 *
 * CSV (UTF-8 with a byte-order mark, so spreadsheet programs read accents) or XLSX, whose second
 * sheet is the codebook: every question with its labels per language, and every choice.
 * The caller audits the export.
 */
import { createHmac } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import ExcelJS from 'exceljs';
import { stringify } from 'csv-stringify';
import type { Knex } from '../db/orm.js';
import { toDateOrNull, toInt } from '../db/values.js';
import { notFound } from '../http/errors.js';
import { addressHash } from '../contacts/pseudonyms.js';
import { textIn, type CompiledItem, type CompiledSurvey } from './definition.js';
import { readJson, labelsSurvey } from './versions.js';

export type ExportFormat = 'csv' | 'xlsx';
export type ExportLayout = 'wide' | 'long';

export interface ExportOptions {
  runId?: number | null;
  format: ExportFormat;
  layout: ExportLayout;
}

export interface ExportFile {
  filename: string;
  contentType: string;
  /** Sessions in the export (for the audit event). */
  sessions: number;
  stream: Readable;
}

const PAGE = 500;

/** A stable reference per contact that cannot be turned back into a number without the instance's key. */
async function respondentRef(knex: Knex): Promise<(contactId: number) => string> {
  const key = await addressHash(knex, 'ayni:survey-respondents');
  return (contactId) => createHmac('sha256', key).update(String(contactId)).digest('hex').slice(0, 16);
}

function exportedItems(survey: CompiledSurvey): CompiledItem[] {
  return survey.items.filter((i) => i.type !== 'note');
}

function header(survey: CompiledSurvey, layout: ExportLayout): string[] {
  if (layout === 'long') return ['session', 'respondent', 'run', 'question', 'type', 'value', 'label', 'skipped', 'answered_at'];
  const cols = ['session', 'respondent', 'run', 'status', 'end_reason', 'language', 'medium', 'started_at', 'finished_at', 'skipped'];
  for (const item of exportedItems(survey)) {
    cols.push(item.name);
    if (item.type === 'select_multiple') for (const c of uniqueChoices(item)) cols.push(`${item.name}/${c}`);
  }
  return cols;
}

function uniqueChoices(item: CompiledItem): string[] {
  return [...new Set(item.choices.map((c) => c.name))];
}

function valueOf(a: Record<string, unknown>): string | number {
  if (a.value_number !== null && a.value_number !== undefined && a.type !== 'calculate') return Number(a.value_number);
  if (a.value_date) return String(a.value_date);
  if (a.value_text !== null && a.value_text !== undefined) return a.type === 'calculate' && a.value_number !== null && a.value_number !== undefined ? Number(a.value_number) : String(a.value_text);
  return '';
}

const iso = (v: unknown) => toDateOrNull(v)?.toISOString() ?? '';

async function* rows(knex: Knex, survey: CompiledSurvey, surveyKey: string, opts: ExportOptions): AsyncGenerator<(string | number)[]> {
  const ref = await respondentRef(knex);
  const items = exportedItems(survey);
  const lang = survey.def.defaultLanguage;
  const choiceLabel = (item: CompiledItem | undefined, key: string) => (item ? textIn(item.choices.find((c) => c.name === key)?.label, lang, lang) || key : key);
  let after = 0;
  for (;;) {
    const q = knex('survey_sessions').where('survey_key', surveyKey).where('id', '>', after).whereNot('status', 'waiting').orderBy('id').limit(PAGE);
    if (opts.runId) q.where('run_id', opts.runId);
    const sessions = await q.select('id', 'contact_id', 'run_id', 'status', 'end_reason', 'language', 'medium', 'started_at', 'finished_at');
    if (!sessions.length) return;
    after = toInt(sessions[sessions.length - 1].id);
    const answers = await knex('survey_answers').whereIn('session_id', sessions.map((s: Record<string, unknown>) => toInt(s.id))).orderBy('session_id').orderBy('id');
    const bySession = new Map<number, Record<string, unknown>[]>();
    for (const a of answers) {
      const sid = toInt(a.session_id);
      if (!bySession.has(sid)) bySession.set(sid, []);
      bySession.get(sid)!.push(a);
    }
    for (const s of sessions) {
      const sid = toInt(s.id);
      const who = ref(toInt(s.contact_id));
      const run = s.run_id === null ? '' : toInt(s.run_id);
      const list = bySession.get(sid) ?? [];
      if (opts.layout === 'long') {
        for (const a of list) {
          const item = survey.byName.get(String(a.question));
          const keys = readJson<string[]>(a.value_choices) ?? [];
          const label = keys.length ? keys.map((k) => choiceLabel(item, k)).join(', ') : '';
          yield [sid, who, run, String(a.question), String(a.type), valueOf(a), label, a.skipped === true || a.skipped === 1 ? 1 : 0, iso(a.answered_at)];
        }
        continue;
      }
      const byQ = new Map(list.map((a) => [String(a.question), a]));
      const skippedNames = list.filter((a) => a.skipped === true || a.skipped === 1).map((a) => String(a.question));
      const row: (string | number)[] = [sid, who, run, String(s.status), (s.end_reason as string | null) ?? '', String(s.language), String(s.medium), iso(s.started_at), iso(s.finished_at), skippedNames.join(' ')];
      for (const item of items) {
        const a = byQ.get(item.name);
        row.push(a ? valueOf(a) : '');
        if (item.type === 'select_multiple') {
          const chosen = new Set(a ? readJson<string[]>(a.value_choices) ?? [] : []);
          for (const c of uniqueChoices(item)) row.push(a && !(a.skipped === true || a.skipped === 1) ? (chosen.has(c) ? 1 : 0) : '');
        }
      }
      yield row;
    }
  }
}

function codebook(survey: CompiledSurvey): (string | number)[][] {
  const langs = survey.def.languages;
  const out: (string | number)[][] = [['question', 'type', 'required', 'relevant', 'constraint', 'calculation', 'choice', ...langs.map((l) => `label::${l}`)]];
  for (const item of exportedItems(survey)) {
    out.push([item.name, item.type, item.required, item.relevant ?? '', item.constraint ?? '', item.calculation ?? '', '', ...langs.map((l) => item.label?.[l] ?? '')]);
    for (const c of item.choices) out.push([item.name, '', '', '', '', '', c.name, ...langs.map((l) => c.label[l] ?? '')]);
  }
  return out;
}

export async function exportAnswers(knex: Knex, surveyKey: string, opts: ExportOptions): Promise<ExportFile> {
  const survey = await labelsSurvey(knex, surveyKey);
  if (!survey) throw notFound(`There is no survey "${surveyKey}"`);
  const countQ = knex('survey_sessions').where('survey_key', surveyKey).whereNot('status', 'waiting');
  if (opts.runId) countQ.where('run_id', opts.runId);
  const [{ n }] = await countQ.select(knex.raw('count(*) as n'));
  const stamp = new Date().toISOString().slice(0, 10);
  const base = `${surveyKey}${opts.runId ? `-run${opts.runId}` : ''}-${opts.layout}-${stamp}`;
  const head = header(survey, opts.layout);
  const source = rows(knex, survey, surveyKey, opts);
  if (opts.format === 'csv') {
    const csv = stringify({ bom: true });
    const input = Readable.from(
      (async function* () {
        yield head;
        yield* source;
      })(),
    );
    input.on('error', (e) => csv.destroy(e));
    return { filename: `${base}.csv`, contentType: 'text/csv; charset=utf-8', sessions: toInt(n), stream: input.pipe(csv) };
  }
  const out = new PassThrough();
  const wb = new ExcelJS.stream.xlsx.WorkbookWriter({ stream: out, useStyles: false, useSharedStrings: false });
  (async () => {
    const sheet = wb.addWorksheet('answers');
    sheet.addRow(head).commit();
    for await (const r of source) sheet.addRow(r).commit();
    sheet.commit();
    const cb = wb.addWorksheet('codebook');
    for (const r of codebook(survey)) cb.addRow(r).commit();
    cb.commit();
    await wb.commit();
  })().catch((e) => out.destroy(e as Error));
  return { filename: `${base}.xlsx`, contentType: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet', sessions: toInt(n), stream: out };
}
