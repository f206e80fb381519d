/** Mondays at 06:00: builds last week's situation report and stores it (reports domain); it is listed on /reports/weekly. */
import { runWeeklyReportJob } from '../reports/snapshots.js';
import { SYSTEM } from '../staff/audit.js';
import { runJob } from './worker.js';

await runJob('weekly-report', async ({ db, config }) => runWeeklyReportJob(db, config, SYSTEM));
