/**
 * Console pages for surveys:
 *   /surveys                    the catalog, files refused with their problems, a box to check a YAML definition
 *   /surveys/:key               questions, versions, runs; links to a new run and to results
 *   /surveys/:key/runs/new      start a run: audience (lists, segment, query, contact ids), medium,
 *                               keyword, schedule, quiet hours, reminders; "Preview" counts first
 *   /survey-runs, /survey-runs/:id   runs (paginated) and one run (sessions by status, close)
 *   /surveys/:key/results       tables per question with a chart beside (the tables work without JavaScript)
 *   /surveys/:key/export        CSV / XLSX download (audited)
 * The same services and audit events as the API.
 */
import Router from '@koa/router';
import type { AppState, Ctx } from '../http/context.js';
import { HttpError, notFound, zodDetails } from '../http/errors.js';
import { flash, needs, render } from '../console/page.js';
import type { Renderer } from '../console/render.js';
import { listLists } from '../contacts/lists.js';
import { listSegments } from '../contacts/segments/service.js';
import { audit } from '../staff/audit.js';
import { ZodError } from 'zod';
import { runCounts, surveyDetail, surveySummary } from './api.js';
import { catalog, loadSurveyText } from './catalog.js';
import { compileSurvey, DefinitionError, textIn } from './definition.js';
import { exportAnswers } from './export.js';
import { surveyResults } from './results.js';
import { closeRun, createRun, getRun, listRuns, previewAudience, RUN_MEDIA, type Audience, type RunInput } from './runs.js';
import { versionsOf } from './versions.js';

type Handler = (ctx: Ctx) => Promise<void> | void;
const h = (fn: Handler) => (c: unknown) => fn(c as Ctx);
const body = (ctx: Ctx) => (ctx.request.body ?? {}) as Record<string, string | string[]>;
const str = (v: unknown) => (Array.isArray(v) ? String(v[0] ?? '') : v === undefined || v === null ? '' : String(v));
const arr = (v: unknown) => (Array.isArray(v) ? v.map(String) : v === undefined || v === '' ? [] : [String(v)]);

async function entryOr404(key: string) {
  const entry = (await catalog()).surveys.get(key);
  if (!entry) throw notFound(`There is no survey "${key}"`);
  return entry;
}

/** The run form as submitted, turned into the API's input. */
function runForm(key: string, b: Record<string, string | string[]>): { input: RunInput; audience: Audience } {
  const lists = arr(b.lists).filter(Boolean);
  const ids = str(b.contact_ids)
    .split(/[\s,;]+/)
    .filter(Boolean)
    .map((x) => (/^\d+$/.test(x) ? Number(x) : NaN));
  const audience: Audience = {};
  if (lists.length) audience.lists = lists.map((l) => (/^\d+$/.test(l) ? Number(l) : l));
  if (str(b.segment)) audience.segment = /^\d+$/.test(str(b.segment)) ? Number(str(b.segment)) : str(b.segment);
  if (str(b.query).trim()) audience.query = str(b.query);
  if (ids.length) audience.contactIds = ids;
  const num = (v: string) => (v.trim() === '' ? undefined : Number(v));
  const input: RunInput = {
    survey: key,
    name: str(b.name),
    audience,
    medium: (str(b.medium) || 'auto') as (typeof RUN_MEDIA)[number],
    keyword: str(b.keyword).trim() || null,
    askLanguage: str(b.ask_language) !== 'false',
    scheduledAt: str(b.scheduled_at) ? new Date(str(b.scheduled_at)) : null,
    quietHours: str(b.quiet_start) && str(b.quiet_end) ? { start: str(b.quiet_start), end: str(b.quiet_end) } : null,
    expiryHours: num(str(b.expiry_hours)),
    reminderHours: str(b.reminder_hours).trim() === '' ? undefined : num(str(b.reminder_hours)) || null,
    maxReminders: num(str(b.max_reminders)) ?? 1,
  };
  return { input, audience };
}

export function surveysConsole(renderer: Renderer): Router<AppState> {
  const r = new Router<AppState>();
  const view = (ctx: Ctx, page: string, data: Record<string, unknown> = {}, status = 200) => render(ctx, renderer, page, data, status);
  const canManage = (ctx: Ctx) => Boolean(ctx.state.permissions?.includes('surveys.manage'));

  const indexPage = async (ctx: Ctx, extra: Record<string, unknown> = {}, status = 200) => {
    const c = await catalog();
    view(ctx, 'surveys/index', {
      title: 'surveys.title',
      surveys: [...c.surveys.values()].map((e) => surveySummary(e.file, e.survey)),
      refused: c.refused,
      canManage: canManage(ctx),
      ...extra,
    }, status);
  };

  r.get('/surveys', needs('surveys.results'), h((ctx) => indexPage(ctx)));

  r.post('/surveys/validate', needs('surveys.manage'), h(async (ctx) => {
    const b = body(ctx);
    const text = str(b.definition);
    if (!text.trim()) return indexPage(ctx, { checked: { valid: false, problems: [{ where: 'definition', message: 'is empty' }] }, definition: text }, 400);
    try {
      const def = await loadSurveyText('pasted.yaml', Buffer.from(text, 'utf8'), { defaultLanguage: ctx.services.config.DEFAULT_LANGUAGE });
      await indexPage(ctx, { checked: { valid: true, survey: surveySummary('pasted.yaml', compileSurvey(def)) }, definition: text });
    } catch (e) {
      if (e instanceof DefinitionError) return indexPage(ctx, { checked: { valid: false, problems: e.problems }, definition: text }, 400);
      throw e;
    }
  }));

  r.get('/surveys/:key', needs('surveys.results'), h(async (ctx) => {
    const entry = await entryOr404(ctx.params.key);
    const lang = entry.survey.def.defaultLanguage;
    view(ctx, 'surveys/detail', {
      title: 'surveys.survey',
      survey: surveySummary(entry.file, entry.survey),
      items: surveyDetail(entry.survey).map((i) => ({
        ...i,
        labelText: textIn(i.label, lang, lang),
        choiceText: i.choices.map((c) => `${c.name} = ${textIn(c.label, lang, lang)}`).join('; '),
      })),
      versions: await versionsOf(ctx.services.db.knex, entry.survey.def.key),
      runs: (await listRuns(ctx.services.db.knex, { survey: entry.survey.def.key, limit: 20 })).data,
      canManage: canManage(ctx),
    });
  }));

  const newRunPage = async (ctx: Ctx, key: string, extra: Record<string, unknown> = {}, status = 200) => {
    const entry = await entryOr404(key);
    const { knex } = ctx.services.db;
    view(ctx, 'surveys/run-new', {
      title: 'surveys.newRun',
      survey: surveySummary(entry.file, entry.survey),
      lists: await listLists(knex),
      segments: (await listSegments(knex, { limit: 200 })).data,
      media: RUN_MEDIA,
      form: { medium: 'auto', ask_language: 'true', max_reminders: '1', reminder_hours: String(entry.survey.def.settings.reminderHours ?? 24), expiry_hours: String(entry.survey.def.settings.expiryHours ?? 72), ...(extra.form as object) },
      ...extra,
    }, status);
  };

  r.get('/surveys/:key/runs/new', needs('surveys.manage'), h((ctx) => newRunPage(ctx, ctx.params.key)));

  r.post('/surveys/:key/runs', needs('surveys.manage'), h(async (ctx) => {
    const b = body(ctx);
    const key = ctx.params.key;
    const form = { ...b, lists: arr(b.lists) };
    const { input, audience } = runForm(key, b);
    try {
      if (str(b.action) === 'preview') {
        const preview = await previewAudience(ctx.services.db.knex, audience, input.medium ?? 'auto');
        return newRunPage(ctx, key, { form, preview });
      }
      const { run } = await createRun(ctx.services, ctx.state.actor!, input);
      flash(ctx, run.status === 'scheduled' ? 'surveys.runScheduled' : 'surveys.runStarted');
      ctx.redirect(`/survey-runs/${run.id}`);
    } catch (e) {
      if (e instanceof ZodError) return newRunPage(ctx, key, { form, errors: zodDetails(e) }, 400);
      if (e instanceof HttpError && e.code === 'segment_invalid') return newRunPage(ctx, key, { form, errors: { 'audience.query': e.message } }, 400);
      if (e instanceof HttpError && e.status < 500 && e.status !== 404) return newRunPage(ctx, key, { form, errors: e.details ?? { request: e.message } }, e.status);
      if (e instanceof HttpError && e.status === 404 && (e.message.includes('list') || e.message.includes('segment'))) return newRunPage(ctx, key, { form, errors: { audience: e.message } }, 400);
      throw e;
    }
  }));

  r.get('/survey-runs', needs('surveys.results'), h(async (ctx) => {
    const before = Number(ctx.query.before) || undefined;
    const { data, next } = await listRuns(ctx.services.db.knex, { before, limit: 50 });
    view(ctx, 'surveys/runs', { title: 'surveys.runs', runs: data, next });
  }));

  r.get('/survey-runs/:id', needs('surveys.results'), h(async (ctx) => {
    const id = Number(ctx.params.id);
    if (!Number.isInteger(id)) throw notFound();
    const run = await getRun(ctx.services.db.knex, id);
    const counts = await runCounts(ctx, id);
    view(ctx, 'surveys/run', { title: 'surveys.run', run, counts: Object.entries(counts).map(([status, n]) => ({ status, n })), audience: JSON.stringify(run.audience), canManage: canManage(ctx) && run.status !== 'closed' });
  }));

  r.post('/survey-runs/:id/close', needs('surveys.manage'), h(async (ctx) => {
    await closeRun(ctx.services, ctx.state.actor!, Number(ctx.params.id));
    flash(ctx, 'surveys.runClosed');
    ctx.redirect(`/survey-runs/${Number(ctx.params.id)}`);
  }));

  r.get('/surveys/:key/results', needs('surveys.results'), h(async (ctx) => {
    const runId = Number(ctx.query.run) || undefined;
    const res = await surveyResults(ctx.services.db.knex, ctx.params.key, { runId });
    const questions = res.questions.map((q) => ({
      ...q,
      chart: q.choices && q.choices.length ? JSON.stringify({ labels: q.choices.map((c) => c.label), counts: q.choices.map((c) => c.count), title: q.label }) : null,
    }));
    const runs = (await listRuns(ctx.services.db.knex, { survey: ctx.params.key, limit: 100 })).data;
    view(ctx, 'surveys/results', {
      title: 'surveys.results',
      results: res,
      questions,
      runs: runs.map((r) => ({ ...r, selected: r.id === runId })),
      runId,
      statuses: Object.entries(res.sessions).map(([status, n]) => ({ status, n })),
    });
  }));

  r.get('/surveys/:key/export', needs('surveys.results'), h(async (ctx) => {
    const format = ctx.query.format === 'xlsx' ? 'xlsx' : 'csv';
    const layout = ctx.query.layout === 'long' ? 'long' : 'wide';
    const runId = Number(ctx.query.run) || undefined;
    const file = await exportAnswers(ctx.services.db.knex, ctx.params.key, { runId, format, layout });
    await audit(ctx.services.db, ctx.state.actor!, { action: 'survey.export', entityType: 'survey', entityId: ctx.params.key, detail: { format, layout, run: runId ?? null, sessions: file.sessions } });
    ctx.set('Content-Disposition', `attachment; filename="${file.filename}"`);
    ctx.type = file.contentType;
    ctx.body = file.stream;
  }));

  return r;
}
