/** Daily: deletes job_runs records older than 30 days, and skipped runs older than 2 days (jobs domain). */
import { pruneJobRuns } from './lock.js';
import { runJob } from './worker.js';

await runJob('prune-job-runs', async ({ db }) => ({ deleted: await pruneJobRuns(db) }));
