/**
 * The top of every job file. bree starts each job file in a worker thread; `runJob` opens the worker's
 * own database connection, runs the job under `runExclusive` (advisory lock on PostgreSQL, a row in
 * job_runs), reports the outcome to the scheduler, closes the connection and lets the thread end.
 *
 * A job file is one call:  await runJob('purge-sessions', ({ db }) => purgeExpiredSessions(db) …)
 * It can also be run by hand, once, outside the scheduler:  node dist/src/jobs/purge-sessions.js
 */
import { parentPort, workerData } from 'node:worker_threads';
import { pino } from 'pino';
import { configOrExit } from '../boot.js';
import type { Config } from '../config.js';
import { openDatabase, type Database } from '../db/orm.js';
import { createLogger, type Logger } from '../log.js';
import { describeError, runExclusive, type JobDetail, type JobRunResult } from './lock.js';

export interface JobContext {
  config: Config;
  db: Database;
  log: Logger;
  /** Aborted when the scheduler shuts down: a long job may stop between batches (it is not forced to). */
  signal: AbortSignal;
}

/** Messages a job worker posts to the scheduler. */
export type JobMessage =
  | { type: 'ayni:job'; event: 'started'; job: string; runId: number }
  | { type: 'ayni:job'; event: 'finished'; job: string; runId: number; status: JobRunResult['status']; ms: number; detail: JobDetail | null };

/** The database connections a job worker opens: one for the advisory lock, the rest for the job. */
const WORKER_POOL_SIZE = 4;

export async function runJob(name: string, fn: (ctx: JobContext) => Promise<JobDetail | void>): Promise<void> {
  const config = configOrExit();
  // Synchronous writes: nothing is lost when the thread ends.
  const log = createLogger(config.LOG_LEVEL, pino.destination({ dest: 1, sync: true })).child({ job: name });
  const controller = new AbortController();
  if (parentPort) {
    parentPort.on('message', (m) => {
      if (m === 'cancel') controller.abort();
    });
    parentPort.unref(); // listening for "cancel" must not keep the thread alive
  }
  const post = (m: JobMessage) => parentPort?.postMessage(m);
  let exitCode = 0;
  let db: Database | undefined;
  try {
    db = await openDatabase(config.DATABASE_URL, { poolSize: Math.min(config.DATABASE_POOL_SIZE, WORKER_POOL_SIZE), migrate: false });
    const opened = db;
    // Set by the scheduler (half the job's period): with several processes, one run per tick.
    const minSpacingMs = Number((workerData as { minSpacingMs?: unknown } | null)?.minSpacingMs) || undefined;
    const result = await runExclusive(opened, name, () => fn({ config, db: opened, log, signal: controller.signal }), {
      log,
      minSpacingMs,
      onStart: (runId) => post({ type: 'ayni:job', event: 'started', job: name, runId }),
    });
    post({ type: 'ayni:job', event: 'finished', job: name, runId: result.id, status: result.status, ms: result.ms, detail: result.detail });
    if (!parentPort) {
      // Run by hand: say what happened, and fail the command if the job failed.
      log.info({ runId: result.id, status: result.status, ms: result.ms, detail: result.detail }, 'job run');
      if (result.status === 'failed') exitCode = 1;
    }
  } catch (err) {
    // Could not reach the database or record the run: the scheduler logs the non-zero exit.
    log.error({ error: describeError(err) }, 'job could not run');
    exitCode = 1;
  } finally {
    await db?.close().catch(() => undefined);
  }
  process.exitCode = exitCode;
  // The thread ends by itself once the connections are closed; should a stray handle keep it alive,
  // end it anyway so that the scheduler's shutdown never waits on it.
  setTimeout(() => process.exit(exitCode), 2000).unref();
}
