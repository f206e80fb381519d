/**
 * The scheduler: bree, started by the main process, runs each job of the registry in its own worker
 * thread on the job's interval or cron. A job never overlaps itself: bree does not start a job whose
 * worker is still running, and `runExclusive` (inside the worker) skips it when another process holds
 * its PostgreSQL advisory lock.
 *
 * Which file a worker runs: bree's workers do not inherit tsx's loader on Node 20, so
 *  - built (`npm start`, this module is dist/src/jobs/scheduler.js): the sibling dist/src/jobs/<file>.js;
 *  - from source (`npm run dev`, tests): src/jobs/<file>.ts, loaded in the worker through tsx's API when
 *    tsx is installed; otherwise dist/src/jobs/<file>.js if a build exists; otherwise the job is left out
 *    with a warning (run `npm run build`).
 *
 * Once per tick: each worker is given half its job's period as `minSpacingMs`, so that with several
 * processes a quick job runs in the first one whose timer fires and is skipped by the others.
 *
 * Shutdown (`stop()`): no new runs start; running jobs are told "cancel" (a long job may stop between
 * batches) and are waited for, up to `graceMs`; a job still running then is terminated and its run is
 * recorded as failed.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Bree from 'bree';
import type { Config } from '../config.js';
import type { Database } from '../db/orm.js';
import type { Logger } from '../log.js';
import { ROOT } from '../paths.js';
import { createWorker, tsxApiUrl } from '../util/worker.js';
import { describeError } from './lock.js';
import { jobs as registeredJobs, type JobDefinition } from './registry.js';
import type { JobMessage } from './worker.js';

export interface Scheduler {
  /** Stops taking new work and waits for running jobs to finish (see graceMs). */
  stop(): Promise<void>;
  /** Names of the jobs scheduled in this process. */
  readonly jobs: string[];
}

export interface SchedulerOptions {
  config: Config;
  /** The main process's database; jobs open their own connection in their worker. Used to close the records of runs cut short at shutdown. */
  db: Database;
  log: Logger;
  /** Defaults to the registry (src/jobs/registry.ts). */
  jobs?: JobDefinition[];
  /** How long stop() waits for running jobs before terminating them. Default 25 s (main.ts exits by force at 30 s). */
  graceMs?: number;
}

const HERE = fileURLToPath(import.meta.url);
const FROM_SOURCE = HERE.endsWith('.ts');

/** The file a worker should run for a job, or undefined when there is none runnable (see the module comment). */
export function resolveJobFile(file: string): string | undefined {
  if (isAbsolute(file)) {
    if (!existsSync(file)) return undefined;
    return file.endsWith('.ts') && !tsxApiUrl() ? undefined : file;
  }
  if (!FROM_SOURCE) {
    const built = join(dirname(HERE), `${file}.js`);
    return existsSync(built) ? built : undefined;
  }
  const source = join(dirname(HERE), `${file}.ts`);
  if (existsSync(source) && tsxApiUrl()) return source;
  const built = join(ROOT, 'dist', 'src', 'jobs', `${file}.js`);
  return existsSync(built) ? built : undefined;
}

/** bree's own schedule library (a dependency of bree), to know how far apart a cron job's runs are. */
interface Later {
  parse: { cron(expr: string, hasSeconds?: boolean): unknown };
  schedule(s: unknown): { next(count: number, start?: Date): Date[] | Date | 0 };
}
const later = createRequire(createRequire(import.meta.url).resolve('bree'))('@breejs/later') as Later;

/** Milliseconds between two runs of a job (the shortest gap of its next few runs for a schedule), or undefined. */
export function periodMs(def: Pick<JobDefinition, 'interval' | 'cron'>, parseValue: (v: string | number) => unknown): number | undefined {
  const value = def.cron !== undefined ? later.parse.cron(def.cron) : def.interval !== undefined ? parseValue(def.interval) : undefined;
  if (typeof value === 'number') return value > 0 ? value : undefined;
  if (value === undefined || value === null || typeof value !== 'object') return undefined;
  // Start on a whole minute: later.js may carry the current milliseconds into the first occurrence only.
  const next = later.schedule(value).next(5, new Date(Math.floor(Date.now() / 60_000) * 60_000));
  if (!Array.isArray(next) || next.length < 3) return undefined;
  let gap = Infinity;
  for (let i = 2; i < next.length; i++) gap = Math.min(gap, next[i].getTime() - next[i - 1].getTime());
  return Number.isFinite(gap) && gap > 0 ? gap : undefined;
}

function isJobMessage(m: unknown): m is JobMessage {
  return typeof m === 'object' && m !== null && (m as { type?: unknown }).type === 'ayni:job';
}

export async function startScheduler(opts: SchedulerOptions): Promise<Scheduler> {
  const { config, db, log } = opts;
  if (!config.RUN_SCHEDULER) {
    log.info('scheduler off (RUN_SCHEDULER=false): this process runs no scheduled jobs');
    return { stop: async () => undefined, jobs: [] };
  }
  const graceMs = opts.graceMs ?? 25_000;
  const slog = log.child({ component: 'scheduler' });

  const breeJobs: Bree.JobOptions[] = [];
  const parser = new Bree({ root: false, doRootCheck: false, logger: false });
  for (const def of opts.jobs ?? registeredJobs) {
    const path = resolveJobFile(def.file);
    if (!path) {
      slog.warn({ job: def.name }, FROM_SOURCE ? 'job file not found; run `npm run build` so that it can run' : 'job file not found; the job will not run');
      continue;
    }
    const job: Bree.JobOptions = { name: def.name, path };
    if (def.interval !== undefined) job.interval = def.interval;
    if (def.cron !== undefined) job.cron = def.cron;
    if (def.firstRunAfter !== undefined) job.timeout = def.firstRunAfter;
    const period = periodMs(def, (v) => parser.parseValue(v));
    if (period) job.worker = { workerData: { minSpacingMs: Math.floor(period / 2) } };
    breeJobs.push(job);
  }

  /** job name → id of its job_runs row, while its worker runs. */
  const runIds = new Map<string, number>();

  const bree = new Bree({
    root: false,
    doRootCheck: false,
    jobs: breeJobs,
    timezone: config.DEFAULT_TIMEZONE,
    logger: {
      info: () => undefined, // worker online / exited with code 0: every run, not worth a line
      warn: (m: unknown) => slog.warn({ error: describeError(m) }, 'scheduler warning'),
      error: (m: unknown) => slog.error({ error: describeError(m) }, 'scheduler error'),
    },
    errorHandler: (err, data) => {
      runIds.delete(data.name);
      slog.error({ job: data.name, error: describeError(err) }, 'job worker failed');
    },
    workerMessageHandler: ({ name, message }) => {
      if (!isJobMessage(message)) return;
      if (message.event === 'started') {
        runIds.set(name, message.runId);
        slog.debug({ job: name, runId: message.runId }, 'job started');
      } else {
        runIds.delete(name);
        const line = { job: name, runId: message.runId, status: message.status, ms: message.ms, detail: message.detail };
        if (message.status === 'failed') slog.error(line, 'job finished');
        else slog.info(line, 'job finished');
      }
    },
  });
  bree.createWorker = createWorker;
  await bree.start();
  slog.info({ jobs: breeJobs.map((j) => j.name) }, 'scheduler started');

  let stopping: Promise<void> | undefined;
  const stop = async (): Promise<void> => {
    const waiting = bree.stop(); // clears every timer, posts "cancel" to running workers, resolves when none is left
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      waiting.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), graceMs);
      }),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      const names = [...bree.workers.keys()];
      slog.warn({ jobs: names, graceMs }, 'jobs still running at shutdown: terminating them');
      for (const name of names) {
        const runId = runIds.get(name);
        await bree.workers.get(name)?.terminate();
        if (runId !== undefined) {
          await db
            .knex('job_runs')
            .where({ id: runId, status: 'running' })
            .update({ status: 'failed', finished_at: new Date(), detail: JSON.stringify({ error: 'terminated at shutdown' }) })
            .catch((err: unknown) => slog.warn({ job: name, error: describeError(err) }, 'could not record the terminated run'));
        }
      }
      await waiting;
    }
    slog.info('scheduler stopped');
  };

  return {
    jobs: breeJobs.map((j) => j.name),
    stop: () => (stopping ??= stop()),
  };
}
