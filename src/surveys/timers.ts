/**
 * What happens to surveys with time, run every minute by the survey-timers job:
 * scheduled runs start; a session silent for its reminder interval gets its current question
 * again with "Reminder:" (at most `max_reminders` times, never in the run's quiet hours); a
 * session silent past its expiry is closed as expired (partial answers stay) and the contact's
 * next waiting session starts.
 */
import { toInt } from '../db/values.js';
import { enqueue } from '../messaging/outbox.js';
import { PRIORITY, type RouterServices } from '../messaging/types.js';
import { currentQuestion } from './engine.js';
import { configureRuns, launchDueRuns, quietUntil } from './runs.js';
import { configureSurveys, expireSessions, readSession, render } from './sessions.js';
import { loadVersion } from './versions.js';

/** Sends the reminders that are due; returns how many sessions were reminded. */
export async function sendReminders(services: RouterServices, now = new Date(), limit = 1000): Promise<number> {
  const { knex } = services.db;
  configureSurveys(services.config);
  const rows = await knex('survey_sessions as s')
    .leftJoin('survey_runs as r', 'r.id', 's.run_id')
    .join('contacts as c', 'c.id', 's.contact_id')
    .where('s.status', 'active')
    .where('s.next_reminder_at', '<=', now)
    .whereRaw('s.reminders_sent < s.max_reminders')
    .where('c.status', 'active')
    .orderBy('s.next_reminder_at')
    .limit(limit)
    .select('s.*', 'r.quiet_start', 'r.quiet_end');
  let n = 0;
  for (const row of rows) {
    const s = readSession(row);
    if (!s.state) continue;
    const quiet = row.quiet_start && row.quiet_end ? { start: String(row.quiet_start), end: String(row.quiet_end) } : null;
    const until = quietUntil(now, quiet, services.config.DEFAULT_TIMEZONE);
    if (until) {
      await knex('survey_sessions').where({ id: s.id, step: s.step }).update({ next_reminder_at: until });
      continue;
    }
    const survey = await loadVersion(knex, s.versionId);
    const rendered = render(currentQuestion(survey, s.state, 'reminder', now), s.medium);
    const sent = s.remindersSent + 1;
    const ok = await knex.transaction(async (trx) => {
      const changed = await trx('survey_sessions')
        .where({ id: s.id, step: s.step, status: 'active' })
        .update({
          reminders_sent: sent,
          next_reminder_at: sent < s.maxReminders && s.reminderHours ? new Date(now.getTime() + s.reminderHours * 3_600_000) : null,
          step: s.step + 1,
        });
      if (!changed) return false;
      for (const r of rendered) {
        await enqueue(trx, { contactId: s.contactId, purpose: s.purpose, priority: PRIORITY.survey, content: r.content, language: r.language, channel: s.medium, addressId: s.addressId });
      }
      return true;
    });
    if (ok) n++;
  }
  return n;
}

/** Cancels sessions still waiting in closed runs. */
async function cancelOrphans(services: RouterServices, now: Date): Promise<number> {
  const { knex } = services.db;
  return knex('survey_sessions')
    .where('status', 'waiting')
    .whereIn('run_id', knex('survey_runs').where('status', 'closed').select('id'))
    .update({ status: 'cancelled', end_reason: 'run_closed', finished_at: now });
}

export interface TimerResult {
  runsStarted: number;
  reminded: number;
  expired: number;
  cancelled: number;
}

export async function runSurveyTimers(services: RouterServices, now = new Date()): Promise<TimerResult> {
  configureSurveys(services.config);
  configureRuns(services.config.DEFAULT_TIMEZONE);
  const runsStarted = await launchDueRuns(services, now);
  const reminded = await sendReminders(services, now);
  let expired = 0;
  for (;;) {
    const n = await expireSessions(services, now, { limit: 1000 });
    expired += n;
    if (n < 1000) break;
  }
  const cancelled = toInt(await cancelOrphans(services, now));
  return { runsStarted, reminded, expired, cancelled };
}
