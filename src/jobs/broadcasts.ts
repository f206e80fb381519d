/** Every 30 seconds: starts scheduled broadcasts and the occurrences of recurring ones when due; marks finished broadcasts completed (broadcasts domain). */
import { runDueBroadcasts } from '../broadcasts/broadcasts.js';
import { runJob } from './worker.js';

await runJob('broadcasts', async ({ db, config, log }) => {
  const r = await runDueBroadcasts(db, config, log);
  return { started: r.started.length, occurrences: r.occurrences.length, completed: r.completed, failed: r.failed };
});
