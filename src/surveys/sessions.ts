/**
 * Sessions: one contact going through one survey. The engine decides; this file keeps the state,
 * the answers and the outbox in step, in one transaction per message.
 *
 * - `startSession` starts one contact's session (staff, the simulator, a keyword, cash or
 *   complaints). A contact has at most one active session: another one waits until it finishes.
 * - `sessionStep` is the router's 'session' stage: a contact with an active session who writes
 *   gets the engine; a contact without one who writes a running run's keyword starts it.
 * - Answers are stored per question, typed; a finished session runs the hooks of hooks.ts and
 *   starts the contact's next waiting session.
 */
import type { Config } from '../config.js';
import type { Knex } from '../db/orm.js';
import { toBool, toDate, toDateOrNull, toInt } from '../db/values.js';
import { HttpError, notFound } from '../http/errors.js';
import { hasConsent, recordConsent } from '../contacts/consent.js';
import { LANGUAGE_NAMES, normaliseKeyword } from '../contacts/keywords.js';
import { setContactLanguage } from '../contacts/contacts.js';
import { enqueue } from '../messaging/outbox.js';
import { wording } from '../messaging/texts.js';
import { PRIORITY, type InboundContext, type Medium, type Purpose, type RouterServices, type RouterStep } from '../messaging/types.js';
import type { CompiledSurvey } from './definition.js';
import { currentQuestion, initialState, LANGUAGE_STEP, step, waitingFor, type AnswerValue, type EngineEvent, type EngineMessage, type SessionState } from './engine.js';
import { NATIVE_NAMES } from './strings.js';
import { runFinishHooks, type FinishedSession } from './hooks.js';
import { renderMessages, type Rendered } from './render.js';
import { currentSurvey, loadVersion, readJson } from './versions.js';

export const DEFAULT_EXPIRY_HOURS = 72;
export const DEFAULT_REMINDER_HOURS = 24;
/** Someone who comes back after this long with something that is not an answer is shown where they were. */
export const RESUME_AFTER_MS = 60 * 60_000;

const settings = { programme: 'Ayni' };
/** Who surveys are from (PROGRAMME_NAME), for the opening question. Called at start-up. */
export function configureSurveys(config: Pick<Config, 'PROGRAMME_NAME'>): void {
  settings.programme = config.PROGRAMME_NAME;
}
export function programmeName(): string {
  return settings.programme;
}

export type SessionStatus = 'waiting' | 'active' | 'completed' | 'ended' | 'expired' | 'cancelled';

export interface SessionRow {
  id: number;
  runId: number | null;
  versionId: number;
  surveyKey: string;
  contactId: number;
  addressId: number | null;
  medium: Medium;
  language: string;
  status: SessionStatus;
  endReason: string | null;
  purpose: Purpose;
  state: SessionState | null;
  currentQuestion: string | null;
  step: number;
  askLanguage: boolean;
  keepAnswers: boolean;
  context: Record<string, unknown> | null;
  params: Record<string, AnswerValue> | null;
  expiryHours: number;
  reminderHours: number | null;
  maxReminders: number;
  remindersSent: number;
  lastActivityAt: Date | null;
  nextReminderAt: Date | null;
  expiresAt: Date | null;
  startedAt: Date | null;
  finishedAt: Date | null;
  createdAt: Date;
}

export function readSession(r: Record<string, unknown>): SessionRow {
  return {
    id: toInt(r.id),
    runId: r.run_id === null || r.run_id === undefined ? null : toInt(r.run_id),
    versionId: toInt(r.survey_version_id),
    surveyKey: String(r.survey_key),
    contactId: toInt(r.contact_id),
    addressId: r.address_id === null || r.address_id === undefined ? null : toInt(r.address_id),
    medium: r.medium as Medium,
    language: String(r.language),
    status: r.status as SessionStatus,
    endReason: (r.end_reason as string | null) ?? null,
    purpose: r.purpose as Purpose,
    state: readJson<SessionState>(r.state),
    currentQuestion: (r.current_question as string | null) ?? null,
    step: toInt(r.step),
    askLanguage: toBool(r.ask_language),
    keepAnswers: toBool(r.keep_answers),
    context: readJson<Record<string, unknown>>(r.context),
    params: readJson<Record<string, AnswerValue>>(r.params),
    expiryHours: toInt(r.expiry_hours),
    reminderHours: r.reminder_hours === null || r.reminder_hours === undefined ? null : toInt(r.reminder_hours),
    maxReminders: toInt(r.max_reminders),
    remindersSent: toInt(r.reminders_sent),
    lastActivityAt: toDateOrNull(r.last_activity_at),
    nextReminderAt: toDateOrNull(r.next_reminder_at),
    expiresAt: toDateOrNull(r.expires_at),
    startedAt: toDateOrNull(r.started_at),
    finishedAt: toDateOrNull(r.finished_at),
    createdAt: toDate(r.created_at),
  };
}

const hours = (h: number) => h * 3_600_000;

/** The purpose whose consent a session's unprompted messages need (replies need none). */
export function consentPurposeOf(purpose: Purpose): string | null {
  return purpose === 'reply' ? null : purpose;
}

// ------------------------------------------------------------------------------- addresses

export async function pickAddress(knex: Knex, contactId: number, medium?: Medium | null, addressId?: number | null): Promise<{ addressId: number; medium: Medium }> {
  if (addressId) {
    const a = await knex('contact_addresses').where({ id: addressId, contact_id: contactId }).first('id', 'channel');
    if (!a) throw new HttpError(400, 'validation_failed', 'The address is not valid', { addressId: 'is not an address of this contact' });
    return { addressId: toInt(a.id), medium: a.channel as Medium };
  }
  const q = knex('contact_addresses').where({ contact_id: contactId, opted_out: false });
  if (medium) q.where('channel', medium);
  // WhatsApp first (buttons and lists), then SMS; the oldest address of a kind first.
  const rows = await q.orderByRaw("case when channel = 'whatsapp' then 0 else 1 end").orderBy('id').select('id', 'channel');
  if (!rows.length) {
    throw new HttpError(409, 'no_address', medium ? `The contact has no ${medium} address that can receive messages` : 'The contact has no address that can receive messages');
  }
  return { addressId: toInt(rows[0].id), medium: rows[0].channel as Medium };
}

// --------------------------------------------------------------------------------- answers

function answerColumns(survey: CompiledSurvey, name: string, value: AnswerValue | null): Record<string, unknown> {
  const item = survey.byName.get(name);
  const type = item?.type ?? 'text';
  const cols: Record<string, unknown> = { type, value_text: null, value_number: null, value_date: null, value_choices: null };
  if (value === null) return cols;
  switch (type) {
    case 'select_one':
      cols.value_text = String(value);
      cols.value_choices = JSON.stringify([String(value)]);
      break;
    case 'select_multiple': {
      const keys = Array.isArray(value) ? value : String(value).split(/\s+/).filter(Boolean);
      cols.value_text = keys.join(' ');
      cols.value_choices = JSON.stringify(keys);
      break;
    }
    case 'integer':
    case 'decimal':
      cols.value_number = Number(value);
      break;
    case 'date':
      cols.value_date = String(value);
      break;
    case 'calculate':
      cols.value_text = Array.isArray(value) ? value.join(' ') : String(value);
      if (typeof value === 'number' || (typeof value === 'string' && /^-?\d+(\.\d+)?$/.test(value))) cols.value_number = Number(value);
      break;
    default:
      cols.value_text = Array.isArray(value) ? value.join(' ') : String(value);
  }
  return cols;
}

/** Stores what the engine reported: answers, skips, calculations (a calculation that became empty is removed). */
export async function saveAnswers(trx: Knex, session: SessionRow, survey: CompiledSurvey, events: readonly EngineEvent[], messageId: number | null, at: Date): Promise<number> {
  let saved = 0;
  for (const e of events) {
    if (e.type !== 'answered' && e.type !== 'skipped' && e.type !== 'calculated') continue;
    if (e.type === 'calculated' && e.value === null) {
      await trx('survey_answers').where({ session_id: session.id, question: e.name }).delete();
      continue;
    }
    const value = e.value as AnswerValue | null;
    const cols = answerColumns(survey, e.name, value);
    const row = {
      session_id: session.id,
      run_id: session.runId,
      survey_key: session.surveyKey,
      question: e.name,
      ...cols,
      skipped: e.type === 'skipped',
      message_id: e.type === 'calculated' ? null : messageId,
      answered_at: at,
    };
    const [ins] = await trx('survey_answers')
      .insert(row)
      .onConflict(['session_id', 'question'])
      .merge(['type', 'value_text', 'value_number', 'value_date', 'value_choices', 'skipped', 'message_id', 'answered_at'])
      .returning('id');
    const answerId = toInt(typeof ins === 'object' ? (ins as { id: unknown }).id : ins);
    await trx('survey_answer_choices').where('answer_id', answerId).delete();
    const item = survey.byName.get(e.name);
    if (value !== null && item && (item.type === 'select_one' || item.type === 'select_multiple')) {
      const keys = Array.isArray(value) ? value : [String(value)];
      if (keys.length) {
        await trx('survey_answer_choices').insert(
          keys.map((choice) => ({ answer_id: answerId, session_id: session.id, run_id: session.runId, survey_key: session.surveyKey, question: e.name, choice: choice.slice(0, 200) })),
        );
      }
    }
    if (e.type === 'answered' && messageId !== null && session.keepAnswers) {
      // The person agreed that the text of their answers is kept: retention leaves these messages.
      await trx('inbound_messages').where('id', messageId).update({ keep: true });
    }
    saved++;
  }
  return saved;
}

// ------------------------------------------------------------------------------- delivery

interface DeliverOptions {
  purpose: Purpose;
  priority: number;
  notBefore?: Date | null;
}

async function deliver(trx: Knex, session: SessionRow, rendered: readonly Rendered[], opts: DeliverOptions): Promise<void> {
  for (const r of rendered) {
    await enqueue(trx, {
      contactId: session.contactId,
      purpose: opts.purpose,
      priority: opts.priority,
      content: r.content,
      language: r.language,
      channel: session.medium,
      addressId: session.addressId,
      notBefore: opts.notBefore ?? null,
    });
  }
}

export function render(messages: readonly EngineMessage[], medium: Medium): Rendered[] {
  return renderMessages(messages, { medium, programme: settings.programme });
}

function timers(session: SessionRow, now: Date) {
  return {
    last_activity_at: now,
    expires_at: new Date(now.getTime() + hours(session.expiryHours)),
    next_reminder_at: session.reminderHours && session.maxReminders > 0 ? new Date(now.getTime() + hours(session.reminderHours)) : null,
    reminders_sent: 0,
  };
}

function finishedStatus(state: SessionState): SessionStatus | null {
  return state.status === 'completed' ? 'completed' : state.status === 'ended' ? 'ended' : null;
}

/** Starts a waiting (or new) session: the engine's first step, stored, and its messages queued. */
async function activate(trx: Knex, session: SessionRow, survey: CompiledSurvey, now: Date, opts: { priority: number; notBefore?: Date | null; purpose?: Purpose }): Promise<{ state: SessionState; finished: SessionStatus | null }> {
  const r = step(survey, initialState(survey, now, session.language), { type: 'start', language: session.askLanguage ? null : session.language, askLanguage: session.askLanguage, params: session.params ?? undefined }, { now });
  const finished = finishedStatus(r.state);
  await trx('survey_sessions')
    .where('id', session.id)
    .update({
      status: finished ?? 'active',
      end_reason: r.state.endReason,
      state: JSON.stringify(r.state),
      language: r.state.lang,
      current_question: waitingFor(survey, r.state),
      step: session.step + 1,
      started_at: now,
      finished_at: finished ? now : null,
      ...timers(session, now),
    });
  session.step += 1;
  await saveAnswers(trx, session, survey, r.events, null, now);
  await deliver(trx, session, render(r.messages, session.medium), { purpose: opts.purpose ?? session.purpose, priority: opts.priority, notBefore: opts.notBefore });
  return { state: r.state, finished };
}

// ------------------------------------------------------------------------------ start one

export interface StartSessionInput {
  surveyKey: string;
  contactId: number;
  /** Where to send (default: the contact's WhatsApp address, else SMS). */
  medium?: Medium | null;
  addressId?: number | null;
  /** Kept with the session and handed to the hooks (a complaint id, a distribution id…). Not personal data. */
  context?: Record<string, unknown> | null;
  /** Values for the survey's parameters (settings.parameters), usable in its expressions and labels. */
  params?: Record<string, AnswerValue>;
  /** Part of a survey run. */
  runId?: number | null;
  /** The outbox purpose of what the session sends unprompted (default 'surveys'); its consent is checked. */
  purpose?: Purpose;
  /** Check that the contact consents to `purpose` (default true; a person who asked, e.g. by keyword, need not). */
  requireConsent?: boolean;
  /** Ask the language first (default: when the contact's language is unknown and the survey has several). */
  askLanguage?: boolean;
  /** The caller already holds the person's agreement to keep the raw text of their answers. */
  keepAnswers?: boolean;
  expiryHours?: number;
  reminderHours?: number | null;
  maxReminders?: number;
  /** Outbox priority of the first question (default: surveys). */
  priority?: number;
  /**
   * The outbox purpose of the first messages, when they answer the person (a keyword, a complaint
   * they are making): 'reply' needs no consent at send time. Default: `purpose`.
   */
  firstPurpose?: Purpose;
  /** Pin this stored version (runs); default the catalog's current one. */
  versionId?: number;
  now?: Date;
  /** For hooks, should the survey finish at once (a survey of notes only). */
  services?: RouterServices;
}

export interface StartedSession {
  sessionId: number;
  status: 'active' | 'waiting' | 'completed' | 'ended';
  /** False when the contact already had a session in this run (nothing was sent). */
  created: boolean;
}

/**
 * Starts one contact's session: the first question is queued at once, or, when the contact is
 * in another session, the new one waits for it to finish. Throws 404 (unknown survey or contact),
 * 409 (contact stopped, no consent, no address).
 */
export async function startSession(knex: Knex, input: StartSessionInput): Promise<StartedSession> {
  const now = input.now ?? new Date();
  const versionId = input.versionId ?? (await currentSurvey(knex, input.surveyKey)).versionId;
  const survey = await loadVersion(knex, versionId);
  const contact = await knex('contacts').where('id', input.contactId).first('id', 'status', 'language', 'erased_at');
  if (!contact || contact.erased_at) throw notFound(`There is no contact ${input.contactId}`);
  if (contact.status !== 'active') throw new HttpError(409, 'contact_inactive', `The contact has status ${contact.status}: nothing can be sent to them`);
  const purpose = input.purpose ?? 'surveys';
  const consentPurpose = consentPurposeOf(purpose);
  if ((input.requireConsent ?? true) && consentPurpose && !(await hasConsent(knex, input.contactId, consentPurpose))) {
    throw new HttpError(409, 'no_consent', `The contact has not consented to ${consentPurpose}`);
  }
  if (input.runId) {
    const existing = await knex('survey_sessions').where({ run_id: input.runId, contact_id: input.contactId }).first('id', 'status');
    if (existing) return { sessionId: toInt(existing.id), status: existing.status, created: false };
  }
  const address = await pickAddress(knex, input.contactId, input.medium, input.addressId);
  const languages = survey.def.languages;
  const known = contact.language && (languages.includes(contact.language) || languages.includes(String(contact.language).split('-')[0]));
  const askLanguage = input.askLanguage ?? (!known && languages.length > 1);
  const result = await knex.transaction(async (trx) => {
    const busy = await trx('survey_sessions').where({ contact_id: input.contactId, status: 'active' }).first('id');
    const [ins] = await trx('survey_sessions')
      .insert({
        run_id: input.runId ?? null,
        survey_version_id: versionId,
        survey_key: survey.def.key,
        contact_id: input.contactId,
        address_id: address.addressId,
        medium: address.medium,
        language: initialState(survey, now, contact.language).lang,
        status: busy ? 'waiting' : 'active',
        purpose,
        state: null,
        step: 0,
        ask_language: askLanguage,
        keep_answers: Boolean(input.keepAnswers),
        context: input.context ? JSON.stringify(input.context) : null,
        params: input.params ? JSON.stringify(input.params) : null,
        expiry_hours: input.expiryHours ?? survey.def.settings.expiryHours ?? DEFAULT_EXPIRY_HOURS,
        reminder_hours: input.reminderHours === undefined ? survey.def.settings.reminderHours ?? DEFAULT_REMINDER_HOURS : input.reminderHours,
        max_reminders: input.maxReminders ?? 1,
        reminders_sent: 0,
        created_at: now,
      })
      .returning('id');
    const sessionId = toInt(typeof ins === 'object' ? (ins as { id: unknown }).id : ins);
    if (busy) return { sessionId, status: 'waiting' as const, finished: null };
    const session = readSession(await trx('survey_sessions').where('id', sessionId).first());
    const { finished } = await activate(trx, session, survey, now, { priority: input.priority ?? PRIORITY.survey, purpose: input.firstPurpose });
    return { sessionId, status: (finished ?? 'active') as StartedSession['status'], finished };
  });
  if (result.finished && input.services) await afterFinish(input.services, result.sessionId);
  return { sessionId: result.sessionId, status: result.status, created: true };
}

/** Starts the contact's oldest waiting session whose run is still open. Returns its id, or null. */
export async function startNextWaiting(knex: Knex, contactId: number, now = new Date()): Promise<number | null> {
  for (let tries = 0; tries < 3; tries++) {
    const candidate = await knex('survey_sessions as s')
      .leftJoin('survey_runs as r', 'r.id', 's.run_id')
      .where('s.contact_id', contactId)
      .where('s.status', 'waiting')
      .where((q) => q.whereNull('s.run_id').orWhere('r.status', 'running'))
      .orderBy('s.id')
      .first('s.*');
    if (!candidate) return null;
    const contact = await knex('contacts').where('id', contactId).first('status');
    if (!contact || contact.status !== 'active') return null;
    const session = readSession(candidate);
    const consentPurpose = consentPurposeOf(session.purpose);
    if (consentPurpose && session.runId !== null && !(await hasConsent(knex, contactId, consentPurpose))) {
      await knex('survey_sessions').where({ id: session.id, status: 'waiting' }).update({ status: 'cancelled', end_reason: 'no_consent', finished_at: now });
      continue;
    }
    const survey = await loadVersion(knex, session.versionId);
    const started = await knex.transaction(async (trx) => {
      if (await trx('survey_sessions').where({ contact_id: contactId, status: 'active' }).first('id')) return false;
      const claimed = await trx('survey_sessions').where({ id: session.id, status: 'waiting', step: session.step }).update({ status: 'active' });
      if (!claimed) return false;
      await activate(trx, session, survey, now, { priority: PRIORITY.survey });
      return true;
    });
    return started ? session.id : null;
  }
  return null;
}

// --------------------------------------------------------------------------- finishing

/** The values of a finished session, for hooks. */
export async function finishedSession(knex: Knex, sessionId: number): Promise<FinishedSession | null> {
  const row = await knex('survey_sessions as s').join('survey_versions as v', 'v.id', 's.survey_version_id').where('s.id', sessionId).first('s.*', 'v.version');
  if (!row) return null;
  const s = readSession(row);
  if (!['completed', 'ended', 'expired', 'cancelled'].includes(s.status)) return null;
  const values: Record<string, AnswerValue> = {};
  for (const [k, v] of Object.entries(s.state?.values ?? {})) values[k] = v;
  return {
    sessionId: s.id,
    runId: s.runId,
    surveyKey: s.surveyKey,
    version: String(row.version),
    contactId: s.contactId,
    status: s.status as FinishedSession['status'],
    reason: s.endReason,
    values,
    context: s.context,
    language: s.language,
  };
}

/** After a session finished (committed): its hooks, then the contact's next waiting session. */
export async function afterFinish(services: RouterServices, sessionId: number): Promise<void> {
  const f = await finishedSession(services.db.knex, sessionId);
  if (!f) return;
  await runFinishHooks(f, services);
  await startNextWaiting(services.db.knex, f.contactId);
}

// --------------------------------------------------------------------------- the router

async function keywordStart(ctx: InboundContext): Promise<string | null> {
  const word = normaliseKeyword(ctx.message.text);
  if (!word || word.length > 64 || word.includes(' ')) return null;
  const { knex } = ctx.services.db;
  const run = await knex('survey_runs').where({ status: 'running', keyword: word }).orderBy('id', 'desc').first();
  if (!run) return null;
  const runId = toInt(run.id);
  const existing = await knex('survey_sessions').where({ run_id: runId, contact_id: ctx.contact.id }).first();
  const now = new Date();
  if (existing) {
    const s = readSession(existing);
    if (s.status === 'expired' && s.state) {
      // Resumption: the person comes back after the session expired; continue where they stopped.
      const survey = await loadVersion(knex, s.versionId);
      const state: SessionState = { ...s.state, status: 'active' };
      await knex.transaction(async (trx) => {
        const n = await trx('survey_sessions').where({ id: s.id, step: s.step, status: 'expired' }).update({
          status: 'active', end_reason: null, finished_at: null, state: JSON.stringify(state), step: s.step + 1,
          medium: ctx.address.medium, address_id: ctx.address.id, ...timers(s, now),
        });
        if (!n) return;
        const view = { ...s, medium: ctx.address.medium, addressId: ctx.address.id };
        await deliver(trx, view, render(currentQuestion(survey, state, 'resume', now), ctx.address.medium), { purpose: 'reply', priority: PRIORITY.reply });
      });
      return 'survey-resume';
    }
    return null; // completed (or declined) already: let the other steps answer
  }
  await startSession(knex, {
    surveyKey: String(run.survey_key),
    versionId: toInt(run.survey_version_id),
    runId,
    contactId: ctx.contact.id,
    medium: ctx.address.medium,
    addressId: ctx.address.id,
    context: { source: 'keyword' },
    purpose: 'surveys',
    requireConsent: false, // they asked for it; the opening question records their consent
    askLanguage: toBool(run.ask_language) ? undefined : false,
    expiryHours: toInt(run.expiry_hours),
    reminderHours: run.reminder_hours === null ? null : toInt(run.reminder_hours),
    maxReminders: toInt(run.max_reminders),
    priority: PRIORITY.reply,
    firstPurpose: 'reply', // the answer to their keyword: no consent needed to send it
    services: ctx.services,
  });
  return 'survey-start';
}

/**
 * The router's 'session' stage. Global keywords (STOP…) were handled before; here an answer goes
 * to the contact's active session, or a run's keyword starts one.
 */
export const sessionStep: RouterStep = async (ctx) => {
  if (ctx.contact.status !== 'active') return null;
  configureSurveys(ctx.services.config);
  const { knex } = ctx.services.db;
  for (let attempt = 0; attempt < 5; attempt++) {
    const row = await knex('survey_sessions').where({ contact_id: ctx.contact.id, status: 'active' }).orderBy('id', 'desc').first();
    if (!row) return keywordStart(ctx);
    const session = readSession(row);
    const now = new Date();
    if (session.expiresAt && session.expiresAt.getTime() <= now.getTime()) {
      await expireSessions(ctx.services, now, { contactId: ctx.contact.id });
      return keywordStart(ctx);
    }
    if (!session.state) return null;
    const survey = await loadVersion(knex, session.versionId);
    const r = step(survey, session.state, { type: 'answer', text: ctx.message.text, payload: ctx.message.payload }, { now });
    let messages = r.messages;
    let state = r.state;
    let events = r.events;
    const away = session.lastActivityAt && now.getTime() - session.lastActivityAt.getTime() >= RESUME_AFTER_MS;
    if (!r.accepted && away && r.state.status === 'active') {
      // Back after a pause with something that is not an answer: show where we were; it is not a wrong answer.
      messages = currentQuestion(survey, session.state, 'resume', now);
      state = session.state;
      events = [];
    }
    const finished = finishedStatus(state);
    const consent = events.find((e): e is Extract<EngineEvent, { type: 'consent' }> => e.type === 'consent');
    const keep = session.keepAnswers || Boolean(consent?.granted && survey.def.settings.keepAnswers);
    const medium = ctx.address.medium;
    const rendered = render(messages, medium);
    const done = await knex.transaction(async (trx) => {
      const n = await trx('survey_sessions')
        .where({ id: session.id, step: session.step, status: 'active' })
        .update({
          state: JSON.stringify(state),
          status: finished ?? 'active',
          end_reason: state.endReason,
          language: state.lang,
          // An ended session keeps the question it ended on (drop-off); a completed one has none.
          current_question: finished === 'ended' ? session.currentQuestion : waitingFor(survey, state),
          step: session.step + 1,
          keep_answers: keep,
          medium,
          address_id: ctx.address.id,
          finished_at: finished ? now : null,
          ...timers(session, now),
        });
      if (!n) return false; // another process moved the session meanwhile: read it again
      const view: SessionRow = { ...session, keepAnswers: keep, medium, addressId: ctx.address.id };
      if (consent?.granted) {
        const shown = rendered.find((x) => x.wording)?.wording ?? wordingOf(state.lang);
        await recordConsent(trx, {
          contactId: session.contactId,
          purpose: 'surveys',
          action: 'grant',
          legalBasis: 'consent',
          channel: medium,
          method: ctx.message.payload ? 'button' : 'keyword',
          wording: shown,
          evidence: { type: 'inbound_message', ref: String(ctx.message.id) },
          at: now,
        });
      }
      await saveAnswers(trx, view, survey, events, ctx.message.id, now);
      await deliver(trx, view, rendered, { purpose: 'reply', priority: PRIORITY.reply });
      return true;
    });
    if (!done) continue;
    if (finished) await afterFinish(ctx.services, session.id);
    return 'survey';
  }
  throw new Error('survey session kept changing while an answer was being stored');
};

/** Language names as people write them ("English", "Español", "ingles"), normalised. */
const LANGUAGE_WORDS = new Set([...Object.keys(LANGUAGE_NAMES), ...Object.values(NATIVE_NAMES).map((n) => normaliseKeyword(n))]);

/**
 * A 'global'-stage step, placed before the contacts domain's keywords. It takes only what is
 * unambiguously an answer to a survey question: a tapped WhatsApp button or list row of the
 * contact's active session (its id starts with "sv:"; its title may read "Yes" or "English", which
 * typed would be a keyword), and, while the session waits for its language question, a language
 * name typed ("English", "español") — which also becomes the contact's language, as the global
 * language switch would have made it. Typed STOP, HELP, START still reach the global keywords first.
 */
export const surveyButtonStep: RouterStep = async (ctx) => {
  if (ctx.contact.status !== 'active') return null;
  const payload = ctx.message.payload ?? '';
  const tapped = payload.startsWith('sv:');
  if (!tapped && !LANGUAGE_WORDS.has(normaliseKeyword(ctx.message.text))) return null;
  const { knex } = ctx.services.db;
  const q = knex('survey_sessions').where({ contact_id: ctx.contact.id, status: 'active' });
  if (!tapped) q.where('current_question', LANGUAGE_STEP);
  const active = await q.first('id', 'current_question');
  if (!active) return null;
  const route = await sessionStep(ctx);
  if (active.current_question === LANGUAGE_STEP) {
    const chosen = await knex('survey_sessions').where('id', active.id).first('language', 'current_question');
    if (route && chosen && chosen.current_question !== LANGUAGE_STEP) {
      await setContactLanguage(knex, ctx.contact.id, String(chosen.language));
      ctx.contact.language = String(chosen.language);
    }
  }
  return route;
};

function wordingOf(lang: string): { key: string; version: string; language: string } {
  const w = wording('survey-consent', [lang], { programme: settings.programme, title: '', minutes: 1, one: true, keep: false });
  return { key: w.key, version: w.version, language: w.language };
}

// --------------------------------------------------------------------------- timers

/**
 * Expires active sessions whose time is up (partial answers stay), then starts each such
 * contact's next waiting session. Returns how many expired.
 */
export async function expireSessions(services: RouterServices, now = new Date(), opts: { contactId?: number; limit?: number } = {}): Promise<number> {
  const { knex } = services.db;
  const q = knex('survey_sessions').where('status', 'active').where('expires_at', '<=', now).orderBy('id').limit(opts.limit ?? 1000);
  if (opts.contactId) q.where('contact_id', opts.contactId);
  const rows = await q.select('id', 'contact_id', 'step');
  let n = 0;
  for (const r of rows) {
    const changed = await knex('survey_sessions')
      .where({ id: r.id, status: 'active', step: r.step })
      .update({ status: 'expired', end_reason: 'expired', finished_at: now, next_reminder_at: null, step: toInt(r.step) + 1 });
    if (!changed) continue;
    n++;
    await afterFinish(services, toInt(r.id));
  }
  return n;
}
