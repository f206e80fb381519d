/**
 * Every minute: starts scheduled survey runs, sends due reminders, expires silent sessions and
 * starts the next waiting ones (surveys domain). The router steps are imported so that every
 * domain's session hooks (surveys/hooks.ts) are registered in this worker too.
 */
import '../messaging/steps.js';
import { runSurveyTimers } from '../surveys/timers.js';
import { runJob } from './worker.js';

await runJob('survey-timers', async ({ db, config, log }) => {
  const r = await runSurveyTimers({ db, config, log });
  return { ...r };
});
