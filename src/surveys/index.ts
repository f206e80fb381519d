/**
 * The surveys domain's public face, for other domains (cash PDM, complaint intake, the simulator):
 *
 *   await startSession(knex, { surveyKey: 'cash-pdm', contactId, medium, addressId, context: { distributionId }, params: { amount: 300 }, purpose: 'cash_programme' });
 *   onComplete('cash-pdm', async (session, services) => { … session.values … session.context … });
 *
 * and `initSurveys` for start-up: loads and checks every definition in surveys/ and says which
 * files were refused (the console's survey page lists each problem with its place in the file).
 */
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import { SURVEYS } from '../paths.js';
import { catalog, configureCatalog, type Catalog } from './catalog.js';
import { configureRuns } from './runs.js';
import { configureSurveys } from './sessions.js';

export { startSession, startNextWaiting, type StartSessionInput, type StartedSession } from './sessions.js';
export { onComplete, onFinish, type FinishedSession, type SessionHandler } from './hooks.js';
export { catalog, findSurvey, loadSurveyFile } from './catalog.js';
export { createRun, closeRun, launchRun, previewAudience } from './runs.js';
export { surveyResults } from './results.js';

export async function initSurveys(config: Config, log: Logger, dir = SURVEYS): Promise<Catalog> {
  configureCatalog(dir, { defaultLanguage: config.DEFAULT_LANGUAGE });
  configureSurveys(config);
  configureRuns(config.DEFAULT_TIMEZONE);
  const c = await catalog();
  log.info({ surveys: [...c.surveys.keys()], refused: c.refused.length }, 'surveys loaded');
  for (const r of c.refused) {
    log.warn({ file: r.file, problems: r.problems.length, first: `${r.problems[0]?.where}: ${r.problems[0]?.message}` }, 'survey definition refused (see /surveys in the console, or run: ayni surveys validate FILE)');
  }
  return c;
}
