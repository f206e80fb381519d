/**
 * Post-distribution monitoring: who gets the PDM survey (surveys/pdm-cash.yaml), when, and what
 * their answers become.
 *
 * Scheduling (`runPdmScheduler`, the daily cash-pdm job; the clock is a parameter): a distribution
 * whose date plus its PDM days (default CASH_PDM_DAYS, 28) has come, in the programme's time zone,
 * gets its recipients chosen in one transaction — everyone, or a uniformly random sample sized for
 * the confidence level and margin (default CASH_PDM_CONFIDENCE 95 % ± CASH_PDM_MARGIN 5 %; Cochran,
 * p = 0.5, finite population correction) — from the recipients who can be asked: a transfer that
 * is paid or pending, a contact who is active, consents to `cash_programme` and has an address.
 * Then each chosen recipient's session starts (surveys domain, purpose cash_programme, with the
 * survey's reminders); a start cut short is carried on by the next run.
 *
 * Answers (`recordPdmAnswers`, registered in hooks.ts as the survey's finish hook): the answers and
 * the rCSI go into the recipient's `cash_pdm` row; a "not received" with a request opens a
 * programme complaint; "asked to pay" with the person's agreement opens a sensitive complaint
 * (with their contact, or anonymous, as they chose); a free comment goes to the complaints team as
 * anonymous feedback.
 */
import type { Knex } from '../db/orm.js';
import { toInt } from '../db/values.js';
import { HttpError } from '../http/errors.js';
import { enqueue } from '../messaging/outbox.js';
import { wording } from '../messaging/texts.js';
import { PRIORITY, type Medium, type RouterServices } from '../messaging/types.js';
import { openComplaint } from '../complaints/service.js';
import { keepPrivate } from '../complaints/service.js';
import { slaFromConfig } from '../complaints/model.js';
import { configureSurveys, pickAddress, startSession } from '../surveys/sessions.js';
import { onFinish, type FinishedSession } from '../surveys/hooks.js';
import { currentSurvey } from '../surveys/versions.js';
import type { AnswerValue } from '../surveys/engine.js';
import { chunk } from './files.js';
import { PDM_SURVEY } from './model.js';
import { rcsiBand, rcsiScore, RCSI_ITEMS, type RcsiKey } from './rcsi.js';
import { randomSample, sampleSize } from './sampling.js';

/** The day (YYYY-MM-DD) `now` falls on in a time zone. */
export function localDay(now: Date, timeZone: string): string {
  const parts = new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' }).formatToParts(now);
  const get = (t: string) => parts.find((p) => p.type === t)!.value;
  return `${get('year')}-${get('month')}-${get('day')}`;
}

export function addDays(day: string, n: number): string {
  const d = new Date(`${day}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}

export interface PdmPlan {
  /** Recipients who could be asked (N). */
  population: number;
  /** How many will be asked. */
  sampleSize: number;
  sampling: 'sample' | 'all';
  confidence: number;
  margin: number;
  days: number;
  /** The day the monitoring starts. */
  dueOn: string;
}

interface DistRow {
  id: number;
  list_id: number;
  date: string;
  amount: number;
  currency: string;
  pdm_days: number | null;
  pdm_sampling: 'sample' | 'all';
  pdm_confidence: number | null;
  pdm_margin: number | null;
  pdm_reminder_hours: number | null;
  pdm_max_reminders: number | null;
  pdm_status: string;
}

function readDist(r: Record<string, unknown>): DistRow {
  const n = (v: unknown) => (v === null || v === undefined ? null : Number(v));
  return {
    id: toInt(r.id),
    list_id: toInt(r.list_id),
    date: String(r.date),
    amount: Number(r.amount),
    currency: String(r.currency),
    pdm_days: n(r.pdm_days),
    pdm_sampling: r.pdm_sampling as 'sample' | 'all',
    pdm_confidence: n(r.pdm_confidence),
    pdm_margin: n(r.pdm_margin),
    pdm_reminder_hours: n(r.pdm_reminder_hours),
    pdm_max_reminders: n(r.pdm_max_reminders),
    pdm_status: String(r.pdm_status),
  };
}

type Settings = Pick<RouterServices['config'], 'CASH_PDM_DAYS' | 'CASH_PDM_CONFIDENCE' | 'CASH_PDM_MARGIN'>;

/**
 * The recipients of a distribution who can be asked: transfer paid or pending, beneficiary not
 * excluded, contact active and not erased, `cash_programme` consent granted, an address that has
 * not opted out. `cash_transfers as t`, no columns chosen.
 */
function reachable(knex: Knex, distributionId: number): Knex.QueryBuilder {
  return knex('cash_transfers as t')
    .join('cash_beneficiaries as b', 'b.id', 't.beneficiary_id')
    .join('contacts as c', 'c.id', 'b.contact_id')
    .where('t.distribution_id', distributionId)
    .whereIn('t.status', ['paid', 'pending'])
    .whereNot('b.status', 'excluded')
    .where('c.status', 'active')
    .whereNull('c.erased_at')
    .whereExists(function (this: Knex.QueryBuilder) {
      this.select(knex.raw('1')).from('consent_state as cs').whereRaw('cs.contact_id = c.id').where('cs.purpose', 'cash_programme').where('cs.granted', true);
    })
    .whereExists(function (this: Knex.QueryBuilder) {
      this.select(knex.raw('1')).from('contact_addresses as a').whereRaw('a.contact_id = c.id').where('a.opted_out', false);
    });
}

/** What a distribution's monitoring would be, now: the population, the sample and the day it starts. */
export async function pdmPlan(knex: Knex, config: Settings, distributionId: number): Promise<PdmPlan> {
  const row = await knex('cash_distributions').where('id', distributionId).first();
  if (!row) throw new HttpError(404, 'not_found', `There is no distribution ${distributionId}`);
  const d = readDist(row);
  const [{ n }] = await reachable(knex, d.id).select(knex.raw('count(distinct b.contact_id) as n'));
  return planFor(d, toInt(n), config);
}

function planFor(d: DistRow, population: number, config: Settings): PdmPlan {
  const confidence = d.pdm_confidence ?? config.CASH_PDM_CONFIDENCE;
  const margin = d.pdm_margin ?? config.CASH_PDM_MARGIN;
  const days = d.pdm_days ?? config.CASH_PDM_DAYS;
  const size = d.pdm_sampling === 'all' ? population : sampleSize({ population, confidence, margin }).n;
  return { population, sampleSize: size, sampling: d.pdm_sampling, confidence, margin, days, dueOn: addDays(d.date, days) };
}

/** Chooses the recipients of a due distribution (one transaction): rows of cash_pdm, status selected. */
async function selectRecipients(services: RouterServices, d: DistRow, now: Date): Promise<PdmPlan | null> {
  const { knex } = services.db;
  return knex.transaction(async (trx) => {
    const claimed = await trx('cash_distributions').where({ id: d.id, pdm_status: 'pending', pdm_enabled: true }).update({ pdm_status: 'starting', pdm_started_at: now, updated_at: now });
    if (!claimed) return null;
    // One row per contact: a person in two households of the list is asked once.
    const rows = await reachable(trx, d.id).orderBy('b.id').select('b.id as beneficiary_id', 'b.contact_id');
    const perContact = new Map<number, number>();
    for (const r of rows) if (!perContact.has(toInt(r.contact_id))) perContact.set(toInt(r.contact_id), toInt(r.beneficiary_id));
    const population = [...perContact.entries()];
    const plan = planFor(d, population.length, services.config);
    const chosen = plan.sampling === 'all' ? population : randomSample(population, plan.sampleSize);
    for (const part of chunk(chosen.sort((a, b) => a[1] - b[1]), 300)) {
      await trx('cash_pdm').insert(part.map(([contactId, beneficiaryId]) => ({ distribution_id: d.id, beneficiary_id: beneficiaryId, contact_id: contactId, status: 'selected', selected_at: now })));
    }
    await trx('cash_distributions').where('id', d.id).update({ pdm_population: plan.population, pdm_sample_size: chosen.length });
    return { ...plan, sampleSize: chosen.length };
  });
}

const formatAmount = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(2));

const SKIP_REASONS: Record<string, string> = { contact_inactive: 'inactive', no_consent: 'no_consent', no_address: 'no_address', not_found: 'no_contact' };

/** Starts the sessions of a distribution's selected recipients. Returns how many were sent and skipped. */
async function startSessions(services: RouterServices, d: DistRow, now: Date): Promise<{ sent: number; skipped: number }> {
  const { knex } = services.db;
  // The survey must be in the catalog: when it is not (refused file), fail and retry tomorrow, skipping nobody.
  // Every recipient of a distribution gets the same version, so that their answers compare.
  const { versionId } = await currentSurvey(knex, PDM_SURVEY);
  let sent = 0;
  let skipped = 0;
  for (;;) {
    const batch = await knex('cash_pdm').where({ distribution_id: d.id, status: 'selected' }).orderBy('id').limit(200).select('id', 'beneficiary_id', 'contact_id');
    if (!batch.length) break;
    for (const r of batch) {
      const id = toInt(r.id);
      try {
        if (r.contact_id === null) throw new HttpError(404, 'not_found', 'no contact');
        const contactId = toInt(r.contact_id);
        const address = await pickAddress(knex, contactId);
        const s = await startSession(knex, {
          surveyKey: PDM_SURVEY,
          versionId,
          contactId,
          addressId: address.addressId,
          medium: address.medium,
          context: { source: 'cash-pdm', distributionId: d.id, beneficiaryId: toInt(r.beneficiary_id), pdmId: id },
          params: { amount: formatAmount(d.amount), currency: d.currency },
          purpose: 'cash_programme',
          requireConsent: true,
          reminderHours: d.pdm_reminder_hours ?? undefined,
          maxReminders: d.pdm_max_reminders ?? 2,
          now,
          services,
        });
        await knex('cash_pdm').where({ id, status: 'selected' }).update({ status: 'sent', session_id: s.sessionId, medium: address.medium, address_id: address.addressId, sent_at: now });
        sent++;
      } catch (e) {
        if (!(e instanceof HttpError) || e.status >= 500) throw e;
        await knex('cash_pdm').where({ id, status: 'selected' }).update({ status: 'skipped', skip_reason: SKIP_REASONS[e.code] ?? e.code.slice(0, 32), finished_at: now });
        skipped++;
      }
    }
  }
  await knex('cash_distributions').where({ id: d.id, pdm_status: 'starting' }).update({ pdm_status: 'running', updated_at: now });
  return { sent, skipped };
}

export interface SchedulerResult {
  /** Distributions whose monitoring started in this run. */
  started: number[];
  sent: number;
  skipped: number;
}

/**
 * The daily job: starts the monitoring of every distribution that is due on `now` (programme time
 * zone) and carries on any start that was cut short. Safe to run twice: a distribution is claimed
 * once, and a recipient gets one session.
 */
export async function runPdmScheduler(services: RouterServices, opts: { now?: Date } = {}): Promise<SchedulerResult> {
  const now = opts.now ?? new Date();
  const { knex } = services.db;
  configureSurveys(services.config);
  const today = localDay(now, services.config.DEFAULT_TIMEZONE);
  const result: SchedulerResult = { started: [], sent: 0, skipped: 0 };
  const pending = (await knex('cash_distributions').where({ pdm_status: 'pending', pdm_enabled: true }).orderBy('id')).map(readDist);
  for (const d of pending) {
    if (addDays(d.date, d.pdm_days ?? services.config.CASH_PDM_DAYS) > today) continue;
    const plan = await selectRecipients(services, d, now);
    if (plan) {
      result.started.push(d.id);
      services.log.info({ distribution: d.id, population: plan.population, sample: plan.sampleSize, sampling: plan.sampling }, 'cash PDM started');
    }
  }
  const starting = (await knex('cash_distributions').where('pdm_status', 'starting').orderBy('id')).map(readDist);
  for (const d of starting) {
    const r = await startSessions(services, d, now);
    result.sent += r.sent;
    result.skipped += r.skipped;
  }
  return result;
}

/** Starts one distribution's monitoring now, whatever its date (staff: "start PDM now"). */
export async function startPdmNow(services: RouterServices, distributionId: number, now = new Date()): Promise<SchedulerResult> {
  const row = await services.db.knex('cash_distributions').where('id', distributionId).first();
  if (!row) throw new HttpError(404, 'not_found', `There is no distribution ${distributionId}`);
  const d = readDist(row);
  configureSurveys(services.config);
  if (d.pdm_status !== 'pending') throw new HttpError(409, 'conflict', d.pdm_status === 'off' ? 'Monitoring is turned off for this distribution' : 'The monitoring of this distribution has started already');
  const plan = await selectRecipients(services, d, now);
  const result: SchedulerResult = { started: plan ? [d.id] : [], sent: 0, skipped: 0 };
  const r = await startSessions(services, d, now);
  return { ...result, sent: r.sent, skipped: r.skipped };
}

// ------------------------------------------------------------------------------------ answers

const str = (v: AnswerValue | undefined): string | null => (typeof v === 'string' && v !== '' ? v : typeof v === 'number' ? String(v) : null);
const int = (v: AnswerValue | undefined): number | null => {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : NaN;
  return Number.isInteger(n) ? n : null;
};
const list = (v: AnswerValue | undefined): string[] | null => (Array.isArray(v) ? v : typeof v === 'string' && v ? v.split(/\s+/) : null);

const ANSWER_KEYS = ['received', 'not_received_complaint', 'amount_told', 'on_time', 'problems', 'asked_to_pay', 'pay_report', 'felt_safe', 'respected', 'spending', 'needs_met', 'household_size', ...RCSI_ITEMS.map((i) => i.key), 'knows_complaint', 'satisfaction', 'preferred_modality', 'comment'];

/** The columns of cash_pdm for a session's answers. */
export function answerColumns(values: Record<string, AnswerValue>): Record<string, unknown> {
  const days: Partial<Record<RcsiKey, number | null>> = {};
  for (const i of RCSI_ITEMS) days[i.key] = int(values[i.key]);
  const score = rcsiScore(days);
  const problems = list(values.problems);
  const spending = list(values.spending);
  return {
    received: str(values.received),
    amount_told: str(values.amount_told),
    on_time: str(values.on_time),
    problems: problems ? JSON.stringify(problems) : null,
    asked_to_pay: str(values.asked_to_pay),
    pay_report: str(values.pay_report),
    felt_safe: str(values.felt_safe),
    respected: str(values.respected),
    spending: spending ? JSON.stringify(spending) : null,
    needs_met: str(values.needs_met),
    household_size: int(values.household_size),
    ...days,
    rcsi: score,
    rcsi_band: score === null ? null : rcsiBand(score),
    knows_complaint: str(values.knows_complaint),
    satisfaction: str(values.satisfaction),
    preferred_modality: str(values.preferred_modality),
    commented: Boolean(str(values.comment)),
  };
}

function finalStatus(s: FinishedSession): 'completed' | 'declined' | 'partial' | 'no_answer' {
  if (s.status === 'completed') return 'completed';
  if (s.status === 'ended' && s.reason === 'declined') return 'declined';
  return ANSWER_KEYS.some((k) => s.values[k] !== undefined && s.values[k] !== '') ? 'partial' : 'no_answer';
}

/** The inbound message that carried an answer (evidence for a consent given in it). */
async function answerMessage(knex: Knex, sessionId: number, question: string): Promise<number | null> {
  const row = await knex('survey_answers').where({ session_id: sessionId, question }).first('message_id');
  return row?.message_id ? toInt(row.message_id) : null;
}

/**
 * The survey's finish hook: stores the answers and indicators once per session, then opens the
 * cases the answers call for. Each case is its own transaction, so that one failing (logged
 * without personal data) does not lose the answers or the others.
 */
export async function recordPdmAnswers(s: FinishedSession, services: RouterServices): Promise<void> {
  const { knex } = services.db;
  const pdmId = typeof s.context?.pdmId === 'number' ? s.context.pdmId : null;
  const row = pdmId ? await knex('cash_pdm').where('id', pdmId).first() : await knex('cash_pdm').where('session_id', s.sessionId).first();
  if (!row || toInt(row.session_id) !== s.sessionId) return;
  const now = new Date();
  const status = finalStatus(s);
  const stored = await knex('cash_pdm')
    .where({ id: row.id })
    .whereNull('finished_at')
    .update({ status, finished_at: now, language: s.language, ...(status === 'no_answer' || status === 'declined' ? {} : answerColumns(s.values)) });
  if (!stored) return;
  const dist = await knex('cash_distributions').where('id', row.distribution_id).first('id', 'name', 'date', 'amount', 'currency');
  const medium = (row.medium as Medium | null) ?? null;
  const addressId = row.address_id === null || row.address_id === undefined ? null : toInt(row.address_id);
  const sla = slaFromConfig(services.config);
  const what = `${formatAmount(Number(dist.amount))} ${dist.currency}`;
  const ref = `pdm:session:${s.sessionId}`;
  const v = s.values;
  const consentFor = async (question: string) => {
    const msg = await answerMessage(knex, s.sessionId, question);
    return {
      followup: true,
      legalBasis: 'consent' as const,
      channel: medium,
      method: 'keyword' as const,
      wording: { key: `survey:${PDM_SURVEY}:${question}`, version: s.version, language: s.language },
      evidence: msg ? { type: 'inbound_message' as const, ref: String(msg) } : { type: 'inbound_message' as const, ref: `survey_session:${s.sessionId}` },
      at: now,
    };
  };
  const ack = async (trx: Knex, code: string, anonymous: boolean, answer: boolean, sensitive: boolean) => {
    const w = wording('complaint-ack', [s.language], { programme: services.config.PROGRAMME_NAME, code, anonymous, answer });
    const outboxId = await enqueue(trx, { contactId: s.contactId, purpose: 'reply', priority: PRIORITY.reply, content: { type: 'text', text: w.text }, language: w.language, channel: medium, addressId });
    if (sensitive) await keepPrivate(trx, outboxId);
  };
  const attempt = async (label: string, fn: (trx: Knex) => Promise<void>) => {
    try {
      await knex.transaction(fn);
    } catch (err) {
      // Name and code only: a database error's message can carry the values it was given.
      services.log.error({ pdm: toInt(row.id), case: label, error: (err as Error).name, code: (err as { code?: unknown }).code ?? null }, 'cash PDM: a case could not be opened');
    }
  };

  // Not received (or not sure), and they asked us to look into it: a programme complaint, answered.
  if ((v.received === 'no' || v.received === 'not_sure') && v.not_received_complaint === 'yes') {
    const consent = await consentFor('not_received_complaint'); // read before the transaction: SQLite has one connection
    await attempt('not_received', async (trx) => {
      const opened = await openComplaint(trx, {
        source: 'pdm',
        category: 'programme',
        narrative:
          v.received === 'no'
            ? `Post-distribution monitoring: the person says they did not receive the transfer of ${what} (distribution "${dist.name}", ${dist.date}) and asks us to look into it.`
            : `Post-distribution monitoring: the person is not sure they received the transfer of ${what} (distribution "${dist.name}", ${dist.date}) and asks us to look into it.`,
        contactId: s.contactId,
        addressId,
        wantsAnswer: true,
        replyMedium: medium,
        language: s.language,
        sourceRef: ref,
        sla,
        consent,
      });
      await trx('cash_pdm').where('id', row.id).update({ complaint_code: opened.code });
      await ack(trx, opened.code, false, true, false);
    });
  }

  // Asked to pay or do a favour, and they agreed to tell the protection team: a sensitive case.
  if (v.asked_to_pay === 'yes' && (v.pay_report === 'yes_contact' || v.pay_report === 'yes_anonymous')) {
    const known = v.pay_report === 'yes_contact';
    const consent = known ? await consentFor('pay_report') : undefined;
    await attempt('asked_to_pay', async (trx) => {
      const opened = await openComplaint(trx, {
        source: 'pdm',
        category: 'fraud',
        sensitive: true,
        narrative: `Post-distribution monitoring of distribution "${dist.name}" (${dist.date}, ${what}): the person says someone asked them to pay something or do a favour to receive this assistance. ${known ? 'They agreed to be contacted about it.' : 'They asked to stay anonymous.'}`,
        contactId: known ? s.contactId : null,
        addressId: known ? addressId : null,
        wantsAnswer: known,
        replyMedium: known ? medium : null,
        language: s.language,
        sourceRef: ref,
        sla,
        consent,
      });
      await ack(trx, opened.code, !known, known, true);
    });
  }

  // A free comment: feedback for the complaints team (anonymous: they were not asked about follow-up).
  const comment = typeof v.comment === 'string' ? v.comment.trim() : '';
  if (comment) {
    await attempt('comment', async (trx) => {
      await openComplaint(trx, { source: 'pdm', category: 'suggestion', narrative: comment.slice(0, 10_000), contactId: null, language: s.language, sourceRef: ref, sla });
    });
  }
}

/** How many recipients of a distribution are at each PDM status. */
export async function pdmProgress(knex: Knex, distributionId: number): Promise<Record<string, number>> {
  const rows = await knex('cash_pdm').where('distribution_id', distributionId).groupBy('status').select('status', knex.raw('count(*) as n'));
  const out: Record<string, number> = {};
  for (const r of rows) out[String(r.status)] = toInt(r.n);
  return out;
}

// Registered once per process, wherever this module is loaded (see hooks.ts).
onFinish(PDM_SURVEY, recordPdmAnswers);
