/**
 * Surveys over HTTP (/api/v1):
 *   GET  /surveys                       the catalog, and the files refused with their problems
 *   GET  /surveys/:key                  one survey: questions, choices, stored versions
 *   POST /surveys/validate              check a definition (YAML text or XLSForm base64) without installing it
 *   GET  /surveys/:key/results          aggregates per question, completion, drop-off (?run=)
 *   GET  /surveys/:key/export           CSV or XLSX of the answers (?format=csv|xlsx&layout=wide|long&run=), audited
 *   GET  /survey-runs                   runs, newest first (?survey=&status=&before=)
 *   POST /survey-runs                   start (or schedule) a run for an audience
 *   POST /survey-runs/preview           how many contacts an audience would reach
 *   GET  /survey-runs/:id               one run with its sessions by status
 *   POST /survey-runs/:id/close         stop starting sessions
 *   POST /survey-sessions               start one contact's session
 *   GET  /survey-sessions/:id           one session with its answers (personal data: audited)
 * Reading needs surveys.results; changing needs surveys.manage.
 */
import { z } from 'zod';
import { Api, idParam, queryInt } from '../http/api.js';
import type { Ctx } from '../http/context.js';
import { notFound } from '../http/errors.js';
import { toDateOrNull, toInt } from '../db/values.js';
import { audit } from '../staff/audit.js';
import { catalog, loadSurveyText } from './catalog.js';
import { compileSurvey, DefinitionError, textIn, type CompiledSurvey } from './definition.js';
import { exportAnswers } from './export.js';
import { surveyResults } from './results.js';
import { audienceSchema, closeRun, createRun, getRun, listRuns, previewAudience, RUN_MEDIA, runInputSchema } from './runs.js';
import { configureSurveys, readSession, startSession } from './sessions.js';
import { versionsOf, readJson } from './versions.js';

const keyParam = z.object({ key: z.string().min(1).max(64) });
const problem = z.object({ where: z.string(), message: z.string() });

export function surveySummary(file: string, s: CompiledSurvey) {
  const lang = s.def.defaultLanguage;
  return {
    key: s.def.key,
    title: textIn(s.def.title, lang, lang),
    version: s.version,
    versionLabel: s.def.versionLabel,
    format: s.def.format,
    file,
    languages: s.def.languages,
    defaultLanguage: lang,
    questions: s.askable,
    consentQuestion: s.def.settings.consentQuestion,
    keepAnswers: s.def.settings.keepAnswers,
  };
}

export function surveyDetail(s: CompiledSurvey) {
  return s.items.map((i) => ({
    name: i.name,
    type: i.type,
    group: i.group,
    label: i.label,
    hint: i.hint,
    required: i.required,
    relevant: i.relevant,
    constraint: i.constraint,
    calculation: i.calculation,
    choiceFilter: i.choiceFilter,
    choices: i.choices.map((c) => ({ name: c.name, label: c.label })),
  }));
}

const summaryOut = z.object({
  key: z.string(), title: z.string(), version: z.string(), versionLabel: z.string().nullable(), format: z.string(), file: z.string(),
  languages: z.array(z.string()), defaultLanguage: z.string(), questions: z.number(), consentQuestion: z.boolean(), keepAnswers: z.boolean(),
});

export async function sessionView(ctx: Ctx, id: number) {
  const { knex } = ctx.services.db;
  const row = await knex('survey_sessions').where('id', id).first();
  if (!row) throw notFound(`There is no survey session ${id}`);
  const s = readSession(row);
  const answers = await knex('survey_answers').where('session_id', id).orderBy('id');
  return {
    id: s.id, runId: s.runId, survey: s.surveyKey, contactId: s.contactId, medium: s.medium, language: s.language, status: s.status,
    endReason: s.endReason, currentQuestion: s.currentQuestion, startedAt: s.startedAt?.toISOString() ?? null, finishedAt: s.finishedAt?.toISOString() ?? null,
    answers: answers.map((a: Record<string, unknown>) => ({
      question: String(a.question), type: String(a.type), text: (a.value_text as string | null) ?? null,
      number: a.value_number === null || a.value_number === undefined ? null : Number(a.value_number), date: (a.value_date as string | null) ?? null,
      choices: readJson<string[]>(a.value_choices), skipped: a.skipped === true || a.skipped === 1, answeredAt: toDateOrNull(a.answered_at)?.toISOString() ?? null,
    })),
  };
}

export function registerSurveysApi(api: Api): void {
  api.route({
    method: 'get', path: '/surveys', tag: 'surveys', summary: 'The surveys in the surveys folder, and the files refused with their problems', permission: 'surveys.results',
    response: z.object({ data: z.array(summaryOut), refused: z.array(z.object({ file: z.string(), problems: z.array(problem) })) }),
    handler: async () => {
      const c = await catalog();
      return { data: [...c.surveys.values()].map((e) => surveySummary(e.file, e.survey)), refused: c.refused };
    },
  });

  api.route({
    method: 'post', path: '/surveys/validate', tag: 'surveys', summary: 'Check a definition without installing it: YAML text, or an XLSForm as base64', permission: 'surveys.manage',
    body: z.object({
      fileName: z.string().regex(/\.(ya?ml|xlsx)$/i, { message: 'must end in .yaml, .yml or .xlsx' }).max(255),
      content: z.string().min(1).max(10_000_000),
      encoding: z.enum(['utf8', 'base64']).default('utf8'),
    }),
    handler: async (ctx, { body }) => {
      const data = Buffer.from(body.content, body.encoding === 'base64' ? 'base64' : 'utf8');
      try {
        const def = await loadSurveyText(body.fileName, data, { defaultLanguage: ctx.services.config.DEFAULT_LANGUAGE });
        return { valid: true, survey: surveySummary(body.fileName, compileSurvey(def)), problems: [] };
      } catch (e) {
        if (e instanceof DefinitionError) return { valid: false, survey: null, problems: e.problems };
        throw e;
      }
    },
  });

  api.route({
    method: 'get', path: '/surveys/:key', tag: 'surveys', summary: 'One survey: its questions and choices, and the versions that have run', permission: 'surveys.results',
    params: keyParam,
    handler: async (ctx, { params }) => {
      const entry = (await catalog()).surveys.get(params.key);
      if (!entry) throw notFound(`There is no survey "${params.key}"`);
      return { data: { ...surveySummary(entry.file, entry.survey), items: surveyDetail(entry.survey), versions: await versionsOf(ctx.services.db.knex, params.key) } };
    },
  });

  api.route({
    method: 'get', path: '/surveys/:key/results', tag: 'surveys', summary: 'Answers counted per question (choices, numbers, dates), sessions by status, completion rate and drop-off', permission: 'surveys.results',
    params: keyParam, query: z.object({ run: queryInt(1, 2 ** 31).optional() }),
    handler: async (ctx, { params, query }) => ({ data: await surveyResults(ctx.services.db.knex, params.key, { runId: query.run }) }),
  });

  api.route({
    method: 'get', path: '/surveys/:key/export', tag: 'surveys', summary: 'The answers as CSV or XLSX (wide: one row per session; long: one row per answer; XLSX adds a codebook)', permission: 'surveys.results',
    params: keyParam,
    query: z.object({ format: z.enum(['csv', 'xlsx']).default('csv'), layout: z.enum(['wide', 'long']).default('wide'), run: queryInt(1, 2 ** 31).optional() }),
    handler: async (ctx, { params, query }) => {
      const file = await exportAnswers(ctx.services.db.knex, params.key, { runId: query.run, format: query.format, layout: query.layout });
      await audit(ctx.services.db, ctx.state.actor!, { action: 'survey.export', entityType: 'survey', entityId: params.key, detail: { format: query.format, layout: query.layout, run: query.run ?? null, sessions: file.sessions } });
      ctx.set('Content-Disposition', `attachment; filename="${file.filename}"`);
      ctx.type = file.contentType;
      return file.stream;
    },
  });

  const runOut = z.object({ id: z.number(), surveyKey: z.string(), name: z.string(), status: z.string() }).passthrough();

  api.route({
    method: 'get', path: '/survey-runs', tag: 'surveys', summary: 'Survey runs, newest first', permission: 'surveys.results',
    query: z.object({ survey: z.string().max(64).optional(), status: z.enum(['scheduled', 'starting', 'running', 'closed']).optional(), before: queryInt(1, 2 ** 31).optional(), limit: queryInt(1, 200).optional() }),
    response: z.object({ data: z.array(runOut), next: z.number().nullable() }),
    handler: async (ctx, { query }) => listRuns(ctx.services.db.knex, query),
  });

  api.route({
    method: 'post', path: '/survey-runs/preview', tag: 'surveys', summary: 'How many contacts an audience would reach (consenting to surveys, reachable on the medium)', permission: 'surveys.manage',
    body: z.object({ audience: audienceSchema, medium: z.enum(RUN_MEDIA).default('auto') }),
    response: z.object({ count: z.number(), inSession: z.number() }),
    handler: async (ctx, { body }) => previewAudience(ctx.services.db.knex, body.audience, body.medium),
  });

  api.route({
    method: 'post', path: '/survey-runs', tag: 'surveys', summary: 'Send a survey to an audience now (the first questions are queued before the reply) or at scheduledAt', permission: 'surveys.manage',
    body: runInputSchema, status: 201,
    handler: async (ctx, { body }) => {
      const { run, started } = await createRun(ctx.services, ctx.state.actor!, body);
      return { data: run, started };
    },
  });

  api.route({
    method: 'get', path: '/survey-runs/:id', tag: 'surveys', summary: 'One run, with its sessions counted by status', permission: 'surveys.results',
    params: idParam,
    handler: async (ctx, { params }) => {
      const run = await getRun(ctx.services.db.knex, params.id);
      return { data: run, sessions: await runCounts(ctx, params.id) };
    },
  });

  api.route({
    method: 'post', path: '/survey-runs/:id/close', tag: 'surveys', summary: 'Close a run: no new sessions start (waiting ones are cancelled); active ones may finish', permission: 'surveys.manage',
    params: idParam,
    handler: async (ctx, { params }) => ({ data: await closeRun(ctx.services, ctx.state.actor!, params.id) }),
  });

  api.route({
    method: 'post', path: '/survey-sessions', tag: 'surveys', summary: "Start one contact's session (it waits if they are in another); needs their consent to surveys", permission: 'surveys.manage',
    body: z.object({ survey: z.string().min(1).max(64), contactId: z.number().int().positive(), medium: z.enum(['whatsapp', 'sms']).optional() }),
    status: 201,
    handler: async (ctx, { body }) => {
      configureSurveys(ctx.services.config);
      const r = await startSession(ctx.services.db.knex, { surveyKey: body.survey, contactId: body.contactId, medium: body.medium, context: { source: 'staff' }, services: ctx.services });
      await audit(ctx.services.db, ctx.state.actor!, { action: 'survey_session.start', entityType: 'contact', entityId: body.contactId, detail: { survey: body.survey, session: r.sessionId, status: r.status } });
      return { data: r };
    },
  });

  api.route({
    method: 'get', path: '/survey-sessions/:id', tag: 'surveys', summary: 'One session and its answers (audited: answers are personal data)', permission: 'surveys.results',
    params: idParam,
    handler: async (ctx, { params }) => {
      const view = await sessionView(ctx, params.id);
      await audit(ctx.services.db, ctx.state.actor!, { action: 'survey_session.read', entityType: 'survey_session', entityId: params.id, detail: { contact: view.contactId } });
      return { data: view };
    },
  });
}

export async function runCounts(ctx: Ctx, runId: number): Promise<Record<string, number>> {
  const rows = await ctx.services.db.knex('survey_sessions').where('run_id', runId).groupBy('status').select('status', ctx.services.db.knex.raw('count(*) as n'));
  const out: Record<string, number> = { waiting: 0, active: 0, completed: 0, ended: 0, expired: 0, cancelled: 0 };
  for (const r of rows) out[String(r.status)] = toInt(r.n);
  return out;
}

