/**
 * Daily: starts the post-distribution monitoring of every distribution that is due (cash domain).
 * The router steps are imported so that every domain's session hooks are registered in this worker
 * too (a session that finishes at once runs them).
 */
import '../messaging/steps.js';
import { runPdmScheduler } from '../cash/pdm.js';
import { configureSurveys } from '../surveys/sessions.js';
import { runJob } from './worker.js';

await runJob('cash-pdm', async ({ db, config, log }) => {
  configureSurveys(config);
  const r = await runPdmScheduler({ db, config, log });
  return { started: r.started.length, sent: r.sent, skipped: r.skipped };
});
