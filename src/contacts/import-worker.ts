/**
 * The worker thread that reads and checks the rows of big imports (import-rows.ts) while the
 * importing thread checks the previous batch against the database and writes it: the JavaScript
 * of parsing on one core, the database work on the other. Started and reused by
 * import-worker-client.ts; one file at a time.
 *
 * In: { job } (a WorkerJob: the file and its resolved mapping), then "next" for each batch taken.
 * Out: { batch } for each checked batch, then { end } — or { error, file } when the file cannot be
 * read (file: true: a FileError, whose message names the problem for the importer; otherwise only
 * the error's kind, never a row's content). At most two batches run ahead of the importing thread.
 */
import { parentPort } from 'node:worker_threads';
import { FileError, readSource } from './import-read.js';
import { checkRows } from './import-rows.js';
import type { WorkerJob, WorkerMessage } from './import-worker-client.js';

const port = parentPort!;
const AHEAD = 2;
let credit = 0;
let wake: (() => void) | null = null;
const post = (m: WorkerMessage) => port.postMessage(m);

async function run(job: WorkerJob): Promise<void> {
  credit = AHEAD;
  try {
    const source = await readSource(job.format, job.content);
    for await (const batch of checkRows(source.rows, job.mapped, job.options)) {
      while (credit === 0) await new Promise<void>((r) => (wake = r));
      credit--;
      post({ batch });
    }
    post({ end: true });
  } catch (e) {
    post(e instanceof FileError ? { error: e.message, file: true } : { error: e instanceof Error ? e.name : 'Error', file: false });
  }
}

port.on('message', (m: 'next' | { job: WorkerJob }) => {
  if (m === 'next') {
    credit++;
    wake?.();
    wake = null;
  } else void run(m.job);
});
