/**
 * Complaints over WhatsApp and SMS: the router steps.
 *
 *   join stage     QUEJA, RECLAMO, COMPLAINT, FEEDBACK, PLAINTE, RECLAMAÇÃO (alone, or followed by
 *                  what happened) start the intake; STATUS / ESTADO <code> answers where a case stands.
 *   session stage  an intake in progress takes the next message as its answer.
 *
 * The intake runs the shipped survey surveys/complaint-intake.yaml on the surveys domain's pure
 * engine (src/surveys/engine.ts) and renderer, but not as a survey session: a complaint's answers
 * must never become survey results (a category such as "sexual abuse" in a results table would tell
 * every results viewer that a sensitive case exists), and its narrative must never rest in clear.
 * So the engine state lives here, sealed (crypto.ts), in `complaint_intakes`, and every inbound
 * message of the intake — the keyword, the answers, the narrative — has its text erased as soon as
 * it is read (`text` null, `keep` false): the raw text never sits in inbound_messages.
 *
 * STATUS answers only when asked from the contact that filed the case, or — for an anonymous case —
 * from the same address (a keyed hash kept with the case, never the number). Otherwise, and for a
 * code nobody used, the same "no case with this code from this number" reply: a code alone tells
 * nothing about someone else's case.
 */
import { join } from 'node:path';
import { addressHash } from '../contacts/pseudonyms.js';
import type { Knex } from '../db/orm.js';
import { toDate, toInt } from '../db/values.js';
import { enqueue } from '../messaging/outbox.js';
import { wording } from '../messaging/texts.js';
import type { InboundContext, Medium, OutboundContent, RouterStep } from '../messaging/types.js';
import { normaliseKeyword } from '../contacts/keywords.js';
import { SURVEYS } from '../paths.js';
import { loadSurveyFile } from '../surveys/catalog.js';
import { compileSurvey, type CompiledSurvey } from '../surveys/definition.js';
import { initialState, step, type EngineMessage, type SessionState } from '../surveys/engine.js';
import { renderMessages } from '../surveys/render.js';
import { seal, unseal } from './crypto.js';
import { CATEGORIES, OPEN_STATUSES, normaliseCode, slaFromConfig, type Category, type Status } from './model.js';
import { keepPrivate, openComplaint } from './service.js';

export const INTAKE_SURVEY_FILE = join(SURVEYS, 'complaint-intake.yaml');
export const INTAKE_SURVEY_KEY = 'complaint-intake';
/** An intake nobody answers for this long is closed (see sla.ts: what was told is kept, anonymously). */
export const INTAKE_TTL_HOURS = 24;

/** Keywords that start an intake, and the language they are in. */
export const INTAKE_WORDS: Record<string, string> = {
  QUEJA: 'es', QUEJAS: 'es', RECLAMO: 'es', RECLAMOS: 'es', COMPLAINT: 'en', FEEDBACK: 'en', PLAINTE: 'fr', RECLAMACAO: 'pt',
};
/** Keywords that ask where a case stands. */
export const STATUS_WORDS: Record<string, string> = { STATUS: 'en', ESTADO: 'es', STATUT: 'fr', SITUACAO: 'pt' };
/** The intake survey is in es and en; a French or Portuguese keyword gets the closest of them. */
const SURVEY_FALLBACK: Record<string, string> = { fr: 'en', pt: 'es' };

export type ComplaintCommand =
  | { kind: 'intake'; lang: string; rest: string }
  | { kind: 'status'; lang: string; code: string | null; token: string | null };

/** "QUEJA", "queja: me cobraron…", "Reclamação", "STATUS k7qx3m", "estado K7Q-X3M" → a command; anything else null. */
export function parseComplaintCommand(text: string | null | undefined): ComplaintCommand | null {
  const n = normaliseKeyword(text);
  if (!n) return null;
  const words = n.split(' ');
  const first = words[0];
  if (first in INTAKE_WORDS) {
    const rest = String(text).trim().replace(/^\S+[\s:;,.!-]*/u, '').trim();
    return { kind: 'intake', lang: INTAKE_WORDS[first], rest };
  }
  if (first in STATUS_WORDS) {
    if (words.length === 1) return { kind: 'status', lang: STATUS_WORDS[first], code: null, token: null };
    const token = words.slice(1).join('');
    if (words.length > 3 || !/^[A-Z0-9]{4,10}$/.test(token)) return null; // "status of my payment": not a command
    return { kind: 'status', lang: STATUS_WORDS[first], code: normaliseCode(token), token };
  }
  return null;
}

// ----------------------------------------------------------------------------------- the survey

let compiled: Promise<CompiledSurvey> | undefined;
/** The intake survey, loaded once (a broken file fails loudly, with the problems and their lines). */
export function intakeSurvey(): Promise<CompiledSurvey> {
  if (!compiled) {
    compiled = loadSurveyFile(INTAKE_SURVEY_FILE).then((def) => compileSurvey(def));
    compiled.catch(() => (compiled = undefined));
  }
  return compiled;
}

/** What is sealed in complaint_intakes.state. */
interface IntakeMeta {
  state: SessionState;
  /** The message that answered "do you want an answer?" with yes: the consent's evidence. */
  consentMessageId: number | null;
  consentMethod: 'keyword' | 'button' | null;
}

const intakeContext = (contactId: number) => `intake:${contactId}`;
export const requesterKey = (medium: string, address: string) => `complaint|${medium}|${address}`;

function languagesFor(ctx: InboundContext, lang?: string | null): string[] {
  return [lang, ctx.contact.language, ctx.services.config.DEFAULT_LANGUAGE].filter((l): l is string => Boolean(l));
}

async function reply(trx: Knex, ctx: InboundContext, content: OutboundContent, language: string, opts: { private?: boolean } = {}): Promise<number> {
  const id = await enqueue(trx, { contactId: ctx.contact.id, purpose: 'reply', content, language, channel: ctx.address.medium, addressId: ctx.address.id });
  if (opts.private) await keepPrivate(trx, id);
  return id;
}

/** Erases the text of the message being handled: it belongs to a complaint, which keeps what it needs. */
async function eraseMessage(trx: Knex, ctx: InboundContext): Promise<void> {
  await trx('inbound_messages').where('id', ctx.message.id).update({ text: null, payload: null, keep: false, text_erased_at: new Date() });
}

/**
 * Button and list-row ids of the intake say "cx:" where the engine says "sv:", so that a tap on them
 * is never taken for an answer to a survey session the person may have open at the same time (the
 * surveys domain claims "sv:" taps before any other step), and the other way round.
 */
const INTAKE_PAYLOAD = 'cx:';
function ownPayloads(content: OutboundContent): OutboundContent {
  const mark = (id: string) => (id.startsWith('sv:') ? INTAKE_PAYLOAD + id.slice(3) : id);
  if (content.type === 'buttons') return { ...content, buttons: content.buttons.map((b) => ({ ...b, id: mark(b.id) })) };
  if (content.type === 'list') return { ...content, rows: content.rows.map((r) => ({ ...r, id: mark(r.id) })) };
  return content;
}
/** The engine's own form of a tap on an intake button; any other payload (a survey's) is not an answer here. */
function enginePayload(payload: string | null): string | null {
  return payload && payload.startsWith(INTAKE_PAYLOAD) ? 'sv:' + payload.slice(INTAKE_PAYLOAD.length) : null;
}

async function sendEngineMessages(trx: Knex, ctx: InboundContext, messages: readonly EngineMessage[]): Promise<void> {
  const shown = messages.filter((m) => !(m.kind === 'end' && m.reason === 'completed')); // the acknowledgement replaces "thanks"
  for (const r of renderMessages(shown, { medium: ctx.address.medium, programme: ctx.services.config.PROGRAMME_NAME })) {
    await reply(trx, ctx, ownPayloads(r.content), r.language);
  }
}

function surveyLanguage(survey: CompiledSurvey, ctx: InboundContext, keywordLang: string): string {
  const langs = survey.def.languages;
  for (const l of [keywordLang, ctx.contact.language, SURVEY_FALLBACK[keywordLang], ctx.services.config.DEFAULT_LANGUAGE]) {
    if (l && langs.includes(l)) return l;
    if (l && langs.includes(l.split('-')[0])) return l.split('-')[0];
  }
  return survey.def.defaultLanguage;
}

async function startIntake(ctx: InboundContext, cmd: Extract<ComplaintCommand, { kind: 'intake' }>): Promise<string> {
  const survey = await intakeSurvey();
  const now = ctx.message.receivedAt;
  const lang = surveyLanguage(survey, ctx, cmd.lang);
  const prefilled = cmd.rest.length >= 3 ? cmd.rest.slice(0, 2000) : '';
  const r = step(survey, initialState(survey, now, lang), { type: 'start', language: lang, askLanguage: false, params: { prefilled } }, { now });
  const meta: IntakeMeta = { state: r.state, consentMessageId: null, consentMethod: null };
  await ctx.services.db.knex.transaction(async (trx) => {
    await eraseMessage(trx, ctx);
    await trx('complaint_intakes').where('contact_id', ctx.contact.id).delete(); // a keyword starts afresh
    await trx('complaint_intakes').insert({
      contact_id: ctx.contact.id,
      address_id: ctx.address.id,
      medium: ctx.address.medium,
      survey_version: survey.version,
      state: seal(JSON.stringify(meta), intakeContext(ctx.contact.id)),
      started_at: now,
      updated_at: now,
      expires_at: new Date(now.getTime() + INTAKE_TTL_HOURS * 3_600_000),
    });
    await sendEngineMessages(trx, ctx, r.messages);
  });
  return 'complaint';
}

/** The intake step (session stage): an intake in progress takes the message as its answer. */
export const complaintsIntakeStep: RouterStep = async (ctx) => {
  if (ctx.contact.status === 'blocked') return null;
  const { knex } = ctx.services.db;
  const row = await knex('complaint_intakes').where('contact_id', ctx.contact.id).where('expires_at', '>', ctx.message.receivedAt).orderBy('id', 'desc').first();
  if (!row) return null;
  // A tap on another domain's button (a survey's "sv:…") is not for the intake.
  if (ctx.message.payload && !ctx.message.payload.startsWith(INTAKE_PAYLOAD) && ctx.message.payload.startsWith('sv:')) return null;
  const survey = await intakeSurvey();
  const meta = JSON.parse(unseal(String(row.state), intakeContext(ctx.contact.id))) as IntakeMeta;
  const now = ctx.message.receivedAt;
  const r = step(survey, meta.state, { type: 'answer', text: ctx.message.text, payload: enginePayload(ctx.message.payload) }, { now });
  for (const e of r.events) {
    if (e.type === 'answered' && e.name === 'wants_answer' && e.value === 'yes') {
      meta.consentMessageId = ctx.message.id;
      meta.consentMethod = ctx.message.payload ? 'button' : 'keyword';
    }
  }
  meta.state = r.state;
  await knex.transaction(async (trx) => {
    await eraseMessage(trx, ctx);
    if (r.state.status === 'active') {
      await trx('complaint_intakes').where('id', row.id).update({
        state: seal(JSON.stringify(meta), intakeContext(ctx.contact.id)),
        updated_at: now,
        expires_at: new Date(now.getTime() + INTAKE_TTL_HOURS * 3_600_000),
      });
      await sendEngineMessages(trx, ctx, r.messages);
      return;
    }
    await trx('complaint_intakes').where('id', row.id).delete();
    const told = narrativeOf(r.state);
    if (r.state.status === 'completed' || (told && isCategory(r.state.values.category))) {
      // Completed, or given up after what happened was told: the case is kept (anonymously unless they agreed otherwise).
      await fileFromIntake(trx, ctx, survey, meta, toDate(row.started_at));
    } else {
      await sendEngineMessages(trx, ctx, r.messages);
    }
  });
  return 'complaint';
};

const isCategory = (v: unknown): v is Category => typeof v === 'string' && (CATEGORIES as readonly string[]).includes(v);

function narrativeOf(state: SessionState): string {
  const v = state.values;
  return String(v.narrative ?? '').trim() || String(v.prefilled ?? '').trim();
}

/** Opens the complaint an intake collected and acknowledges it with its code. */
async function fileFromIntake(trx: Knex, ctx: InboundContext, survey: CompiledSurvey, meta: IntakeMeta, startedAt: Date): Promise<string> {
  const state = meta.state;
  const v = state.values;
  const keep = v.keep_contact === 'yes' && state.status === 'completed';
  const wants = keep && v.wants_answer === 'yes';
  const medium = ctx.address.medium;
  const opened = await openComplaint(trx, {
    source: medium,
    category: v.category as Category,
    narrative: narrativeOf(state),
    contactId: keep ? ctx.contact.id : null,
    addressId: keep ? ctx.address.id : null,
    requesterHash: await addressHash(trx, requesterKey(medium, ctx.address.address)),
    wantsAnswer: wants,
    replyMedium: wants ? ((v.reply_channel as Medium | undefined) ?? medium) : null,
    language: state.lang,
    receivedAt: startedAt,
    sla: slaFromConfig(ctx.services.config),
    consent: wants
      ? {
          followup: true,
          legalBasis: 'consent',
          channel: medium,
          method: meta.consentMethod ?? 'keyword',
          wording: { key: `survey:${INTAKE_SURVEY_KEY}:wants_answer`, version: survey.version, language: state.lang },
          evidence: { type: 'inbound_message', ref: String(meta.consentMessageId ?? ctx.message.id) },
          at: ctx.message.receivedAt,
        }
      : undefined,
  });
  const w = wording('complaint-ack', [state.lang, ...languagesFor(ctx)], { programme: ctx.services.config.PROGRAMME_NAME, code: opened.code, anonymous: opened.anonymous, answer: wants });
  await reply(trx, ctx, { type: 'text', text: w.text }, w.language, { private: true });
  await trx('complaints').where('id', opened.id).update({ ack_sent_at: new Date() });
  return opened.code;
}

// ------------------------------------------------------------------------------------ keywords

/** The keyword step (join stage): starts an intake, or answers STATUS. */
export const complaintsKeywordStep: RouterStep = async (ctx) => {
  if (ctx.contact.status === 'blocked') return null;
  const cmd = parseComplaintCommand(ctx.message.text);
  if (!cmd) return null;
  if (cmd.kind === 'intake') {
    // Inside an intake, only the keyword alone restarts it: "Queja de …" there is someone telling what happened.
    if (cmd.rest) {
      const open = await ctx.services.db.knex('complaint_intakes').where('contact_id', ctx.contact.id).where('expires_at', '>', ctx.message.receivedAt).first('id');
      if (open) return null;
    }
    return startIntake(ctx, cmd);
  }
  return answerStatus(ctx, cmd);
};

const STATUS_FLAGS: Record<Status, string> = {
  new: 'isNew', acknowledged: 'isAcknowledged', in_progress: 'isInProgress', referred: 'isReferred', resolved: 'isResolved', closed: 'isClosed',
};

async function answerStatus(ctx: InboundContext, cmd: Extract<ComplaintCommand, { kind: 'status' }>): Promise<string> {
  const { knex } = ctx.services.db;
  const { config } = ctx.services;
  const hash = await addressHash(knex, requesterKey(ctx.address.medium, ctx.address.address));
  const mine = (q: Knex.QueryBuilder) => q.where((w) => w.where('contact_id', ctx.contact.id).orWhere('requester_hash', hash));
  const langs = languagesFor(ctx, ctx.contact.language ?? cmd.lang);
  let w;
  if (cmd.token) {
    const row = cmd.code ? await mine(knex('complaints').where('code', cmd.code)).first('code', 'status', 'received_at', 'language') : undefined;
    if (row) {
      const lang = [row.language as string | null, ...langs];
      const received = toDate(row.received_at);
      const date = (l: string) => received.toLocaleDateString(l, { day: 'numeric', month: 'short', year: 'numeric', timeZone: config.DEFAULT_TIMEZONE });
      const probe = wording('complaint-status', lang, {});
      w = wording('complaint-status', lang, { programme: config.PROGRAMME_NAME, code: row.code, received: date(probe.language), [STATUS_FLAGS[row.status as Status]]: true });
    } else {
      w = wording('complaint-status-unknown', langs, { programme: config.PROGRAMME_NAME, code: cmd.code ?? cmd.token });
    }
  } else {
    const open = await mine(knex('complaints').whereIn('status', OPEN_STATUSES as string[])).orderBy('received_at', 'desc').limit(5).pluck('code');
    w = wording('complaint-status-help', langs, { programme: config.PROGRAMME_NAME, codes: open.join(', '), hasCodes: open.length > 0, example: open[0] ?? 'K7QX3M' });
  }
  await knex.transaction(async (trx) => {
    await eraseMessage(trx, ctx);
    await reply(trx, ctx, { type: 'text', text: w.text }, w.language, { private: true });
  });
  return 'complaint-status';
}

/** How many intakes are open (for the console). */
export async function openIntakes(knex: Knex, now = new Date()): Promise<number> {
  const [r] = await knex('complaint_intakes').where('expires_at', '>', now).count({ n: '*' });
  return toInt(r.n);
}

/** Closes intakes nobody answered in time; one that had been told what happened becomes an anonymous case (no acknowledgement: they left). */
export async function expireIntakes(knex: Knex, config: InboundContext['services']['config'], now = new Date()): Promise<{ expired: number; filed: number }> {
  const rows = await knex('complaint_intakes as i').leftJoin('contact_addresses as a', 'a.id', 'i.address_id').where('i.expires_at', '<=', now).select('i.*', 'a.address').limit(500);
  let filed = 0;
  for (const row of rows) {
    await knex.transaction(async (trx) => {
      const deleted = await trx('complaint_intakes').where('id', row.id).delete();
      if (!deleted) return;
      let meta: IntakeMeta;
      try {
        meta = JSON.parse(unseal(String(row.state), intakeContext(toInt(row.contact_id)))) as IntakeMeta;
      } catch {
        return; // sealed with another key: nothing can be recovered
      }
      const told = narrativeOf(meta.state);
      if (!told || !isCategory(meta.state.values.category)) return;
      await openComplaint(trx, {
        source: row.medium === 'whatsapp' ? 'whatsapp' : 'sms',
        sourceRef: 'intake:expired',
        category: meta.state.values.category,
        narrative: told,
        contactId: null,
        requesterHash: row.address ? await addressHash(trx, requesterKey(String(row.medium), String(row.address))) : null,
        language: meta.state.lang,
        receivedAt: toDate(row.started_at),
        sla: slaFromConfig(config),
      });
      filed++;
    });
  }
  return { expired: rows.length, filed };
}
