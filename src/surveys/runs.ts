/**
 * Survey runs: a survey sent to an audience (lists, a saved segment, a segment query, explicit
 * contact ids — combined, they narrow each other), to the contacts who consent to `surveys` and
 * can be reached on the chosen medium.
 *
 * Starting a run is set-based, in batches of contacts (each batch one transaction, so a crash
 * leaves whole batches and a restart carries on where it stopped):
 *   1. INSERT … SELECT the batch's sessions from the audience query — 'waiting' for a contact
 *      already in a session, 'active' otherwise — with the language each will be asked in;
 *   2. per (language, language question or not): one UPDATE setting the engine's first state,
 *      computed once for all of them (the first step depends on nothing personal);
 *   3. per (language, language question, medium) and per message: one INSERT … SELECT into the
 *      outbox with the content rendered once.
 */
import { z } from 'zod';
import type { Knex } from '../db/orm.js';
import { toBool, toDate, toDateOrNull, toInt } from '../db/values.js';
import { HttpError, notFound } from '../http/errors.js';
import { audienceQuery, segmentHttpError } from '../contacts/segments/service.js';
import { SegmentError } from '../contacts/segments/errors.js';
import { reservedWords, normaliseKeyword } from '../contacts/keywords.js';
import { keywordIndex } from '../contacts/lists.js';
import type { Medium, RouterServices } from '../messaging/types.js';
import { PRIORITY } from '../messaging/types.js';
import { audit, type Actor } from '../staff/audit.js';
import type { CompiledSurvey } from './definition.js';
import { initialState, step, waitingFor, type EngineEvent } from './engine.js';
import { DEFAULT_EXPIRY_HOURS, DEFAULT_REMINDER_HOURS, configureSurveys, render } from './sessions.js';
import { currentSurvey, isPostgres, lit, loadVersion, readJson } from './versions.js';

const hhmm = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, { message: 'must be a time such as 21:00' });

export const audienceSchema = z
  .object({
    lists: z.array(z.union([z.number().int().positive(), z.string().min(1).max(64)])).max(50).optional(),
    segment: z.union([z.number().int().positive(), z.string().min(1).max(64)]).optional(),
    query: z.string().max(10_000).optional(),
    contactIds: z.array(z.number().int().positive()).max(100_000).optional(),
  })
  .strict()
  .refine((a) => Boolean(a.lists?.length || a.segment !== undefined || a.query?.trim() || a.contactIds?.length), {
    message: 'choose an audience: lists, a segment, a query or contact ids',
  });
export type Audience = z.infer<typeof audienceSchema>;

export const RUN_MEDIA = ['auto', 'whatsapp', 'sms'] as const;

export const runInputSchema = z
  .object({
    survey: z.string().min(1).max(64),
    name: z.string().trim().min(1).max(200),
    audience: audienceSchema,
    /** auto: WhatsApp where the contact has it, else SMS. */
    medium: z.enum(RUN_MEDIA).default('auto'),
    /** A word that starts a session for whoever texts it while the run is open. */
    keyword: z.string().trim().max(64).nullish(),
    askLanguage: z.boolean().default(true),
    /** When to send the first questions (default: now). */
    scheduledAt: z.coerce.date().nullish(),
    /** No first questions or reminders between these times (programme time zone). */
    quietHours: z.object({ start: hhmm, end: hhmm }).nullish(),
    expiryHours: z.number().int().min(1).max(24 * 60).optional(),
    reminderHours: z.number().int().min(1).max(24 * 30).nullish(),
    maxReminders: z.number().int().min(0).max(5).default(1),
  })
  .strict();
export type RunInput = z.input<typeof runInputSchema>;

export interface Run {
  id: number;
  surveyKey: string;
  versionId: number;
  name: string;
  status: 'scheduled' | 'starting' | 'running' | 'closed';
  audience: Audience;
  medium: (typeof RUN_MEDIA)[number];
  keyword: string | null;
  askLanguage: boolean;
  scheduledAt: string | null;
  quietHours: { start: string; end: string } | null;
  expiryHours: number;
  reminderHours: number | null;
  maxReminders: number;
  targeted: number;
  startedAt: string | null;
  closedAt: string | null;
  createdAt: string;
}

export function readRun(r: Record<string, unknown>): Run {
  return {
    id: toInt(r.id),
    surveyKey: String(r.survey_key),
    versionId: toInt(r.survey_version_id),
    name: String(r.name),
    status: r.status as Run['status'],
    audience: readJson<Audience>(r.audience) ?? {},
    medium: r.medium as Run['medium'],
    keyword: (r.keyword as string | null) ?? null,
    askLanguage: toBool(r.ask_language),
    scheduledAt: toDateOrNull(r.scheduled_at)?.toISOString() ?? null,
    quietHours: r.quiet_start && r.quiet_end ? { start: String(r.quiet_start), end: String(r.quiet_end) } : null,
    expiryHours: toInt(r.expiry_hours),
    reminderHours: r.reminder_hours === null || r.reminder_hours === undefined ? null : toInt(r.reminder_hours),
    maxReminders: toInt(r.max_reminders),
    targeted: toInt(r.targeted),
    startedAt: toDateOrNull(r.started_at)?.toISOString() ?? null,
    closedAt: toDateOrNull(r.closed_at)?.toISOString() ?? null,
    createdAt: toDate(r.created_at).toISOString(),
  };
}

export async function getRun(knex: Knex, id: number): Promise<Run> {
  const row = await knex('survey_runs').where('id', id).first();
  if (!row) throw notFound(`There is no survey run ${id}`);
  return readRun(row);
}

export async function listRuns(knex: Knex, opts: { survey?: string; status?: string; before?: number; limit?: number } = {}): Promise<{ data: Run[]; next: number | null }> {
  const limit = Math.min(Math.max(opts.limit ?? 50, 1), 200);
  const q = knex('survey_runs').orderBy('id', 'desc').limit(limit);
  if (opts.survey) q.where('survey_key', opts.survey);
  if (opts.status) q.where('status', opts.status);
  if (opts.before) q.where('id', '<', opts.before);
  const data = (await q).map(readRun);
  return { data, next: data.length === limit ? data[data.length - 1].id : null };
}

// ------------------------------------------------------------------------------- audience

function mediaOf(medium: Run['medium']): Medium[] {
  return medium === 'auto' ? ['whatsapp', 'sms'] : [medium];
}

/**
 * The audience's contacts who consent to surveys and can be reached: `contacts as c`, no columns
 * chosen (wrapped: a bare Knex builder is thenable and would run when awaited).
 */
export async function runAudience(knex: Knex, audience: Audience, medium: Run['medium']): Promise<{ query: Knex.QueryBuilder }> {
  let q: Knex.QueryBuilder;
  try {
    ({ query: q } = await audienceQuery(knex, {
      lists: audience.lists,
      segment: audience.segment,
      query: audience.query,
      purpose: 'surveys',
      media: mediaOf(medium),
    }));
  } catch (e) {
    // A query that does not compile: 400 with its position, as the segments pages say it.
    if (e instanceof SegmentError) throw segmentHttpError(e);
    throw e;
  }
  if (audience.contactIds?.length) q.whereIn('c.id', audience.contactIds);
  return { query: q };
}

export interface AudiencePreview {
  /** Contacts who would get the survey (consent to surveys, active, reachable on the medium). */
  count: number;
  /** Of those, how many are in another session now (theirs will wait). */
  inSession: number;
}

export async function previewAudience(knex: Knex, audience: Audience, medium: Run['medium']): Promise<AudiencePreview> {
  const { query: q } = await runAudience(knex, audience, medium);
  const [row] = await q.clone().select(
    knex.raw('count(*) as n'),
    knex.raw('coalesce(sum(case when exists (select 1 from ?? as s2 where s2.contact_id = c.id and s2.status = ?) then 1 else 0 end), 0) as busy', ['survey_sessions', 'active']),
  );
  return { count: toInt(row.n), inSession: toInt(row.busy) };
}

// ------------------------------------------------------------------------------ create

async function checkKeyword(knex: Knex, keyword: string): Promise<void> {
  if (!/^[A-Z0-9]{2,30}$/.test(keyword)) {
    throw new HttpError(400, 'validation_failed', 'The keyword is not valid', { keyword: 'must be one word of 2 to 30 letters or digits' });
  }
  if (reservedWords().has(keyword)) throw new HttpError(400, 'validation_failed', 'The keyword is not valid', { keyword: `${keyword} already means something to the router (STOP, HELP, a language…)` });
  const lists = await keywordIndex(knex);
  if (lists.has(keyword)) throw new HttpError(409, 'conflict', 'The keyword is taken', { keyword: `${keyword} joins the list "${lists.get(keyword)!.list.name}"` });
  const run = await knex('survey_runs').where({ keyword }).whereIn('status', ['scheduled', 'starting', 'running']).first('id', 'name');
  if (run) throw new HttpError(409, 'conflict', 'The keyword is taken', { keyword: `${keyword} already starts the run "${run.name}"` });
}

/**
 * Creates a run and, unless it is scheduled for later, starts it (the first questions are queued
 * before this returns). Audited.
 */
export async function createRun(services: RouterServices, actor: Actor, raw: RunInput): Promise<{ run: Run; started: LaunchResult | null }> {
  const parsed = runInputSchema.safeParse(raw);
  if (!parsed.success) throw parsed.error;
  const input = parsed.data;
  const { knex } = services.db;
  const { entry, versionId } = await currentSurvey(knex, input.survey);
  const keyword = input.keyword ? normaliseKeyword(input.keyword) : null;
  if (keyword) await checkKeyword(knex, keyword);
  // Fail now, with the reason, on an audience that does not compile.
  await runAudience(knex, input.audience, input.medium);
  const now = new Date();
  const later = input.scheduledAt && input.scheduledAt.getTime() > now.getTime() + 1000;
  const [ins] = await knex('survey_runs')
    .insert({
      survey_key: entry.survey.def.key,
      survey_version_id: versionId,
      name: input.name,
      status: later ? 'scheduled' : 'starting',
      audience: JSON.stringify(input.audience),
      medium: input.medium,
      keyword,
      ask_language: input.askLanguage,
      scheduled_at: input.scheduledAt ?? null,
      quiet_start: input.quietHours?.start ?? null,
      quiet_end: input.quietHours?.end ?? null,
      expiry_hours: input.expiryHours ?? entry.survey.def.settings.expiryHours ?? DEFAULT_EXPIRY_HOURS,
      reminder_hours: input.reminderHours === undefined ? entry.survey.def.settings.reminderHours ?? DEFAULT_REMINDER_HOURS : input.reminderHours,
      max_reminders: input.maxReminders,
      created_by_id: actor.userId ?? (actor.type === 'staff' ? actor.id : null),
      created_at: now,
      updated_at: now,
    })
    .returning('id');
  const id = toInt(typeof ins === 'object' ? (ins as { id: unknown }).id : ins);
  await audit(services.db, actor, { action: 'survey_run.create', entityType: 'survey_run', entityId: id, detail: { survey: entry.survey.def.key, version: entry.survey.version, medium: input.medium, scheduled: Boolean(later), keyword: Boolean(keyword) } });
  const started = later ? null : await launchRun(services, id);
  return { run: await getRun(knex, id), started };
}

export async function closeRun(services: RouterServices, actor: Actor, id: number): Promise<Run> {
  const { knex } = services.db;
  const run = await getRun(knex, id);
  if (run.status === 'closed') return run;
  const now = new Date();
  await knex.transaction(async (trx) => {
    await trx('survey_runs').where('id', id).update({ status: 'closed', closed_at: now, updated_at: now });
    // Sessions still waiting for another to finish will not start; active ones may finish.
    await trx('survey_sessions').where({ run_id: id, status: 'waiting' }).update({ status: 'cancelled', end_reason: 'run_closed', finished_at: now });
  });
  await audit(services.db, actor, { action: 'survey_run.close', entityType: 'survey_run', entityId: id });
  return getRun(knex, id);
}

// ------------------------------------------------------------------------------ launch

export interface LaunchResult {
  /** Sessions created (active + waiting). */
  sessions: number;
  active: number;
  waiting: number;
  /** Outbox rows queued. */
  queued: number;
  ms: number;
}

/** Minutes since midnight of `now` in a time zone. */
function localMinutes(now: Date, timeZone: string): number {
  const parts = new Intl.DateTimeFormat('en-GB', { timeZone, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).formatToParts(now);
  const h = Number(parts.find((p) => p.type === 'hour')?.value ?? 0);
  const m = Number(parts.find((p) => p.type === 'minute')?.value ?? 0);
  return h * 60 + m;
}

/** The end of the quiet hours if `now` falls inside them, else null. */
export function quietUntil(now: Date, quiet: { start: string; end: string } | null, timeZone: string): Date | null {
  if (!quiet) return null;
  const toMin = (s: string) => Number(s.slice(0, 2)) * 60 + Number(s.slice(3, 5));
  const start = toMin(quiet.start);
  const end = toMin(quiet.end);
  if (start === end) return null;
  const cur = localMinutes(now, timeZone);
  const inside = start < end ? cur >= start && cur < end : cur >= start || cur < end;
  if (!inside) return null;
  const wait = (end - cur + 24 * 60) % (24 * 60);
  const at = new Date(now.getTime() + wait * 60_000);
  at.setUTCSeconds(0, 0);
  return at;
}

let launchTimeZone = 'UTC';
/** The programme time zone quiet hours are read in (DEFAULT_TIMEZONE). */
export function configureRuns(timeZone: string): void {
  launchTimeZone = timeZone;
}

/** SQL for the language a contact will be asked in: theirs when the survey has it, else the survey's default. */
function languageCase(knex: Knex, survey: CompiledSurvey): Knex.Raw {
  const langs = survey.def.languages;
  const whens = langs.map(() => 'when c.language = ? or c.language like ? then ?').join(' ');
  const bindings = langs.flatMap((l) => [l, `${l}-%`, l]);
  return knex.raw(`case ${whens} else ? end`, [...bindings, survey.def.defaultLanguage]);
}

/** SQL true when the contact's language is not one of the survey's. */
function unknownLanguage(knex: Knex, survey: CompiledSurvey): Knex.Raw {
  const langs = survey.def.languages;
  const conds = langs.map(() => 'c.language = ? or c.language like ?').join(' or ');
  return knex.raw(`(c.language is null or not (${conds}))`, langs.flatMap((l) => [l, `${l}-%`]));
}

/**
 * The address each contact is reached at: one join on a per-contact summary of their addresses
 * (their first WhatsApp and first SMS address that has not opted out), not a subquery per contact.
 */
function joinAddresses(knex: Knex, q: Knex.QueryBuilder, medium: Run['medium']): { address: Knex.Raw; medium: Knex.Raw } {
  const summary = knex('contact_addresses')
    .where('opted_out', false)
    .groupBy('contact_id')
    .select(
      'contact_id',
      knex.raw('min(case when channel = ? then id end) as wa', ['whatsapp']),
      knex.raw('min(case when channel = ? then id end) as sms', ['sms']),
    )
    .as('ad');
  q.join(summary, 'ad.contact_id', 'c.id');
  if (medium === 'auto') {
    return { address: knex.raw('coalesce(ad.wa, ad.sms)'), medium: knex.raw('case when ad.wa is not null then ? else ? end', ['whatsapp', 'sms']) };
  }
  q.whereNotNull(medium === 'whatsapp' ? 'ad.wa' : 'ad.sms');
  return { address: knex.raw(medium === 'whatsapp' ? 'ad.wa' : 'ad.sms'), medium: lit(knex, medium, 'text') };
}

const BATCH = 10_000;

/**
 * Starts a run: creates the sessions of its audience (one INSERT … SELECT) and queues their first
 * questions in batches of sessions. Safe to call again after an interruption: sessions are created
 * once per contact, and a batch marks its sessions (step 1) in the transaction that queues them.
 */
export async function launchRun(services: RouterServices, id: number, opts: { batchSize?: number; now?: Date } = {}): Promise<LaunchResult> {
  const started = performance.now();
  const { knex } = services.db;
  configureSurveys(services.config);
  configureRuns(services.config.DEFAULT_TIMEZONE);
  const run = await getRun(knex, id);
  const result: LaunchResult = { sessions: 0, active: 0, waiting: 0, queued: 0, ms: 0 };
  if (run.status === 'closed' || run.status === 'running') return result;
  const now = opts.now ?? new Date();
  await knex('survey_runs').where('id', id).whereIn('status', ['scheduled', 'starting']).update({ status: 'starting', started_at: run.startedAt ?? now, updated_at: now });
  const survey = await loadVersion(knex, run.versionId);
  const notBefore = quietUntil(now, run.quietHours, launchTimeZone);
  const pg = isPostgres(knex);
  const multiLang = survey.def.languages.length > 1;

  // The first step for each (language, language question?): computed once, rendered once per medium.
  const firsts = new Map<string, { state: string; current: string | null; status: string; finished: boolean; events: EngineEvent[]; rendered: Map<Medium, ReturnType<typeof render>> }>();
  const firstFor = (lang: string, ask: boolean) => {
    const k = `${lang}|${ask}`;
    let f = firsts.get(k);
    if (!f) {
      const r = step(survey, initialState(survey, now, lang), { type: 'start', language: ask ? null : lang, askLanguage: ask }, { now });
      f = {
        state: JSON.stringify(r.state),
        current: waitingFor(survey, r.state),
        status: r.state.status === 'completed' ? 'completed' : r.state.status === 'ended' ? 'ended' : 'active',
        finished: r.state.status !== 'active',
        events: r.events,
        rendered: new Map([
          ['whatsapp', render(r.messages, 'whatsapp')],
          ['sms', render(r.messages, 'sms')],
        ]),
      };
      firsts.set(k, f);
    }
    return f;
  };

  const sessionCols = [
    'run_id', 'survey_version_id', 'survey_key', 'contact_id', 'address_id', 'medium', 'language', 'status', 'purpose', 'step',
    'ask_language', 'keep_answers', 'expiry_hours', 'reminder_hours', 'max_reminders', 'reminders_sent', 'created_at',
  ];
  const outboxCols = ['contact_id', 'purpose', 'priority', 'content', 'language', 'channel', 'address_id', 'not_before', 'status', 'attempts', 'created_at'];
  const answerCols = ['session_id', 'run_id', 'survey_key', 'question', 'type', 'value_text', 'value_number', 'value_date', 'value_choices', 'skipped', 'message_id', 'answered_at'];

  // 1. The sessions: one INSERT … SELECT from the audience ('waiting' for a contact in another session).
  await knex.transaction(async (trx) => {
    // PostgreSQL would JIT-compile this one large statement, which costs more than it saves here.
    if (pg) await trx.raw('SET LOCAL jit = off');
    const { query: audienceQ } = await runAudience(trx, run.audience, run.medium);
    const addr = joinAddresses(trx, audienceQ, run.medium);
    const askExpr = run.askLanguage && multiLang
      ? trx.raw(`case when ? then ${pg ? 'true' : '1'} else ${pg ? 'false' : '0'} end`, [unknownLanguage(trx, survey)])
      : lit(trx, false, 'boolean');
    const select = audienceQ
      .whereNotExists(function (this: Knex.QueryBuilder) {
        this.select(trx.raw('1')).from('survey_sessions as s1').where('s1.run_id', id).whereRaw('s1.contact_id = c.id');
      })
      .select(
        lit(trx, id, 'integer'),
        lit(trx, run.versionId, 'integer'),
        lit(trx, run.surveyKey, 'text'),
        'c.id',
        addr.address,
        addr.medium,
        languageCase(trx, survey),
        lit(trx, 'active', 'text'),
        lit(trx, 'surveys', 'text'),
        lit(trx, 0, 'integer'),
        askExpr,
        lit(trx, false, 'boolean'),
        lit(trx, run.expiryHours, 'integer'),
        lit(trx, run.reminderHours, 'integer'),
        lit(trx, run.maxReminders, 'smallint'),
        lit(trx, 0, 'smallint'),
        lit(trx, now, 'timestamptz'),
      )
      .orderBy('c.id');
    await trx.into(trx.raw(`?? (${sessionCols.map(() => '??').join(', ')})`, ['survey_sessions', ...sessionCols])).insert(select);
    // Contacts already in another session wait for it to finish. (A separate statement: read inside the
    // INSERT, survey_sessions would be rescanned per row, new index entries included — quadratic on PostgreSQL.)
    await trx('survey_sessions')
      .where({ run_id: id, step: 0, status: 'active' })
      .whereIn('contact_id', function (this: Knex.QueryBuilder) {
        this.select('s2.contact_id').from('survey_sessions as s2').where('s2.status', 'active').where((q) => q.whereNull('s2.run_id').orWhereNot('s2.run_id', id));
      })
      .update({ status: 'waiting' });
  });
  const [{ n: made, w: waiting }] = await knex('survey_sessions')
    .where('run_id', id)
    .select(knex.raw('count(*) as n'), knex.raw('coalesce(sum(case when status = ? then 1 else 0 end), 0) as w', ['waiting']));
  result.sessions = toInt(made);
  result.waiting = toInt(waiting);

  // 2. The first questions, in batches of sessions: state set and outbox rows inserted per group.
  const batchSize = opts.batchSize ?? BATCH;
  for (;;) {
    const done = await knex.transaction(async (trx) => {
      const ids = await trx('survey_sessions').where({ run_id: id, status: 'active', step: 0 }).orderBy('id').limit(batchSize).pluck('id');
      if (!ids.length) return true;
      const lo = toInt(ids[0]);
      const hi = toInt(ids[ids.length - 1]);
      const inBatch = (q: Knex.QueryBuilder, p = '') => q.where(`${p}run_id`, id).whereBetween(`${p}id`, [lo, hi]).where(`${p}step`, 0).where(`${p}status`, 'active');
      const groups = await inBatch(trx('survey_sessions')).groupBy('language', 'ask_language', 'medium').select('language', 'ask_language', 'medium', trx.raw('count(*) as c'));
      // Outbox rows first (they select the batch by step 0), then the state (which moves it to step 1).
      for (const g of groups) {
        const f = firstFor(String(g.language), toBool(g.ask_language));
        const medium = g.medium as Medium;
        const rendered = f.rendered.get(medium) ?? [];
        result.queued += toInt(g.c) * rendered.length;
        for (const r of rendered) {
          const sel = inBatch(trx('survey_sessions as s'), 's.')
            .where('s.language', g.language)
            .where('s.ask_language', toBool(g.ask_language))
            .where('s.medium', medium)
            .orderBy('s.id')
            .select(
              's.contact_id', lit(trx, 'surveys', 'text'), lit(trx, PRIORITY.survey, 'smallint'), lit(trx, JSON.stringify(r.content), 'jsonb'),
              lit(trx, r.language, 'text'), lit(trx, medium, 'text'), 's.address_id', lit(trx, notBefore, 'timestamptz'), lit(trx, 'queued', 'text'),
              lit(trx, 0, 'smallint'), lit(trx, now, 'timestamptz'),
            );
          await trx.into(trx.raw(`?? (${outboxCols.map(() => '??').join(', ')})`, ['outbox', ...outboxCols])).insert(sel);
        }
      }
      const seen = new Set<string>();
      for (const g of groups) {
        const lang = String(g.language);
        const ask = toBool(g.ask_language);
        if (seen.has(`${lang}|${ask}`)) continue;
        seen.add(`${lang}|${ask}`);
        const f = firstFor(lang, ask);
        const inGroup = (q: Knex.QueryBuilder, p = '') => inBatch(q, p).where(`${p}language`, lang).where(`${p}ask_language`, ask);
        // Calculations that have a value before any answer (constants, metadata).
        for (const e of f.events) {
          if (e.type !== 'calculated' || e.value === null) continue;
          const item = survey.byName.get(e.name);
          const sel = inGroup(trx('survey_sessions as s'), 's.').select(
            's.id', 's.run_id', 's.survey_key', lit(trx, e.name, 'text'), lit(trx, item?.type ?? 'calculate', 'text'),
            lit(trx, Array.isArray(e.value) ? e.value.join(' ') : String(e.value), 'text'), lit(trx, typeof e.value === 'number' ? e.value : null, 'double precision'),
            lit(trx, null, 'text'), lit(trx, null, 'jsonb'), lit(trx, false, 'boolean'), lit(trx, null, 'integer'), lit(trx, now, 'timestamptz'),
          );
          await trx.into(trx.raw(`?? (${answerCols.map(() => '??').join(', ')})`, ['survey_answers', ...answerCols])).insert(sel);
        }
        result.active += await inGroup(trx('survey_sessions')).update({
          state: f.state,
          status: f.status,
          current_question: f.current,
          step: 1,
          started_at: now,
          last_activity_at: now,
          expires_at: new Date(now.getTime() + run.expiryHours * 3_600_000),
          next_reminder_at: run.reminderHours && run.maxReminders > 0 ? new Date(now.getTime() + run.reminderHours * 3_600_000) : null,
          finished_at: f.finished ? now : null,
        });
      }
      return ids.length < batchSize;
    });
    if (done) break;
  }
  await knex('survey_runs').where('id', id).where('status', 'starting').update({ status: 'running', targeted: result.sessions, updated_at: new Date() });
  result.ms = Math.round(performance.now() - started);
  services.log.info({ run: id, sessions: result.sessions, active: result.active, waiting: result.waiting, ms: result.ms }, 'survey run started');
  return result;
}

/** Runs whose time has come (scheduled) or whose start was interrupted (starting): started now. */
export async function launchDueRuns(services: RouterServices, now = new Date()): Promise<number> {
  const { knex } = services.db;
  const due = await knex('survey_runs')
    .where((q) => q.where('status', 'scheduled').where((w) => w.whereNull('scheduled_at').orWhere('scheduled_at', '<=', now)))
    .orWhere('status', 'starting')
    .orderBy('id')
    .pluck('id');
  for (const id of due) await launchRun(services, toInt(id), { now });
  return due.length;
}
