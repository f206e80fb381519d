/** Hourly: removes expired console sessions and login attempts older than 30 days (staff domain). */
import { purgeExpiredSessions } from '../staff/service.js';
import { runJob } from './worker.js';

await runJob('purge-sessions', async ({ db }) => ({ deleted: await purgeExpiredSessions(db) }));
