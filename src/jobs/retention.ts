/** Daily: erases old conversation text and the number and name of contacts without consent (contacts domain). */
import { runRetention } from '../contacts/retention.js';
import { runJob } from './worker.js';

await runJob('retention', async ({ db, config }) => runRetention(db, config));
