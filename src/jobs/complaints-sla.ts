/** Every 5 minutes: complaint escalations past their service level, overdue psychosocial follow-ups, abandoned intakes, blanking of case-naming outbox rows (complaints domain). */
import { runComplaintsJob } from '../complaints/sla.js';
import { runJob } from './worker.js';

await runJob('complaints-sla', async ({ db, config }) => runComplaintsJob(db, config));
