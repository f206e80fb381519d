/**
 * Running a scheduled job at most once at a time, and keeping a record of every run.
 *
 * On PostgreSQL several Ayni processes may run the scheduler: each run first takes a session-level
 * advisory lock, keyed by the job's name, on one dedicated connection held for the whole run. If
 * another process holds it, this run is skipped. On SQLite (one process by design) the job runs
 * directly; a guard inside the process still keeps two runs of one job from overlapping.
 *
 * The lock alone keeps runs from overlapping; it does not stop a quick job from running once in each
 * process, one after the other, on the same tick. So the scheduler also passes `minSpacingMs` (half the
 * job's period): holding the lock, a run that finds another run of the job started less than that long
 * ago is skipped too. Together: once per tick, however many processes.
 *
 * Every attempt is a row in `job_runs` (job, started_at, finished_at, status running|ok|failed|skipped,
 * detail). The detail is a small JSON object of counts and identifiers: never personal data.
 */
import { createHash } from 'node:crypto';
import type { Database, Knex } from '../db/orm.js';
import { scrubMessage, type Logger } from '../log.js';

export type JobStatus = 'running' | 'ok' | 'failed' | 'skipped';

/** What a job reports about its run: counts, identifiers, flags. Never names, numbers or message text. */
export type JobDetail = Record<string, string | number | boolean | null>;

export interface JobRunResult {
  /** The job_runs row id. */
  id: number;
  status: Exclude<JobStatus, 'running'>;
  detail: JobDetail | null;
  ms: number;
  /** The error a failed job threw (not rethrown: a failing job never takes the scheduler down). */
  error?: unknown;
}

export interface RunExclusiveOptions {
  log?: Logger;
  /** Called once the run holds the lock and its `running` row exists. */
  onStart?: (runId: number) => void;
  /** Skip (as `skipped`) when a run of this job started less than this many milliseconds ago. */
  minSpacingMs?: number;
}

const MAX_DETAIL = 2000;

/** The advisory-lock key of a job: the first 8 bytes of sha256("ayni:job:" + name), as a signed 64-bit integer. */
export function lockKey(jobName: string): string {
  return createHash('sha256').update(`ayni:job:${jobName}`).digest().readBigInt64BE(0).toString();
}

/** Jobs running in this process (or worker thread), so that one job never overlaps itself here. */
const runningHere = new Set<string>();

/**
 * Runs `fn` as the job `jobName` unless another run of it is in progress (in this process, or on
 * PostgreSQL in any process), recording the run in `job_runs`. Resolves with the outcome; a job that
 * throws is recorded as `failed` and its error returned, not rethrown.
 */
export async function runExclusive(
  db: Database,
  jobName: string,
  fn: () => Promise<JobDetail | void>,
  opts: RunExclusiveOptions = {},
): Promise<JobRunResult> {
  if (runningHere.has(jobName)) return recordSkipped(db, jobName, 'running in this process');
  runningHere.add(jobName);
  try {
    if (db.kind !== 'postgresql') return await runAndRecord(db, jobName, fn, opts);
    return await withAdvisoryLock(db.knex, lockKey(jobName), opts.log, async (locked) =>
      locked ? runAndRecord(db, jobName, fn, opts) : recordSkipped(db, jobName, 'running in another process'),
    );
  } finally {
    runningHere.delete(jobName);
  }
}

/** Raw pg client as handed out by knex's pool; only the flag knex's pool validation reads is touched. */
type PooledConnection = { __knex__disposed?: unknown; end?: (cb?: (err?: Error) => void) => void };

/**
 * Takes `pg_try_advisory_lock(key)` on a connection acquired from the pool and kept for the whole of
 * `body`, so that lock and unlock happen in the same session; the lock goes away with the session if the
 * process dies. `body` is told whether the lock was obtained.
 */
async function withAdvisoryLock<T>(knex: Knex, key: string, log: Logger | undefined, body: (locked: boolean) => Promise<T>): Promise<T> {
  const client = knex.client as { acquireConnection(): Promise<PooledConnection>; releaseConnection(c: PooledConnection): Promise<unknown> };
  const conn = await client.acquireConnection();
  let locked = false;
  try {
    const row = (await knex.select(knex.raw('pg_try_advisory_lock(?::bigint) as ok', [key])).connection(conn).first()) as { ok: boolean } | undefined;
    locked = row?.ok === true;
    return await body(locked);
  } finally {
    if (locked) {
      try {
        await knex.select(knex.raw('pg_advisory_unlock(?::bigint) as ok', [key])).connection(conn).first();
      } catch (err) {
        // Never hand a session that may still hold the lock back to the pool: end it (which releases the lock).
        log?.warn({ error: describeError(err) }, 'advisory unlock failed; closing that database connection');
        conn.__knex__disposed = 'advisory unlock failed';
        conn.end?.(() => undefined);
      }
    }
    await client.releaseConnection(conn);
  }
}

async function runAndRecord(db: Database, jobName: string, fn: () => Promise<JobDetail | void>, opts: RunExclusiveOptions): Promise<JobRunResult> {
  const started = performance.now();
  const now = new Date();
  if (opts.minSpacingMs && opts.minSpacingMs > 0) {
    // Runs cut short by a crash (still marked running) do not count: the job runs again.
    const recent = await db
      .knex('job_runs')
      .where({ job: jobName })
      .whereIn('status', ['ok', 'failed'])
      .where('started_at', '>', new Date(now.getTime() - opts.minSpacingMs))
      .first('id');
    if (recent) return recordSkipped(db, jobName, 'already ran this tick');
  }
  // Holding the lock (or, on SQLite, being the only process) means no other run of this job is alive:
  // rows still marked running were left by a process that died.
  await db
    .knex('job_runs')
    .where({ job: jobName, status: 'running' })
    .update({ status: 'failed', finished_at: now, detail: JSON.stringify({ error: 'interrupted' }) });
  const id = await insertRun(db, { job: jobName, started_at: now, finished_at: null, status: 'running', detail: null });
  opts.onStart?.(id);
  let status: 'ok' | 'failed' = 'ok';
  let detail: JobDetail | null = null;
  let error: unknown;
  try {
    detail = (await fn()) ?? null;
  } catch (err) {
    status = 'failed';
    error = err;
    detail = describeError(err);
    opts.log?.error({ job: jobName, runId: id, error: detail }, 'job failed');
  }
  await db.knex('job_runs').where({ id }).update({ status, finished_at: new Date(), detail: serialize(detail) });
  return { id, status, detail, ms: Math.round(performance.now() - started), ...(status === 'failed' ? { error } : {}) };
}

async function recordSkipped(db: Database, jobName: string, reason: string): Promise<JobRunResult> {
  const now = new Date();
  const detail = { reason };
  const id = await insertRun(db, { job: jobName, started_at: now, finished_at: now, status: 'skipped', detail: serialize(detail) });
  return { id, status: 'skipped', detail, ms: 0 };
}

async function insertRun(db: Database, row: { job: string; started_at: Date; finished_at: Date | null; status: JobStatus; detail: string | null }): Promise<number> {
  const [inserted] = (await db.knex('job_runs').insert(row).returning('id')) as Array<number | { id: number }>;
  return Number(typeof inserted === 'object' ? inserted.id : inserted);
}

function serialize(detail: JobDetail | null): string | null {
  if (!detail) return null;
  const json = JSON.stringify(detail);
  return json.length <= MAX_DETAIL ? json : JSON.stringify({ truncated: true, keys: Object.keys(detail).slice(0, 20).join(',') });
}

/**
 * A failure summary fit for job_runs and the logs. Driver errors embed the SQL with its bound values
 * (which may be phone numbers or e-mails), so the message is scrubbed: quoted strings, e-mail addresses and
 * runs of digits are masked, and it is cut short.
 */
export function describeError(err: unknown): JobDetail {
  const e = err as { name?: unknown; code?: unknown; message?: unknown } | null;
  const name = typeof e?.name === 'string' ? e.name : typeof err;
  const out: JobDetail = { error: name };
  if (typeof e?.code === 'string' || typeof e?.code === 'number') out.code = e.code;
  if (typeof e?.message === 'string' && e.message) out.message = scrubMessage(e.message);
  return out;
}


/**
 * Keeps job_runs from growing without end: deletes runs that started more than `keepDays` ago, and
 * `skipped` runs (one per process per tick on PostgreSQL) after `keepSkippedDays`. Returns how many went.
 */
export async function pruneJobRuns(db: Database, opts: { keepDays?: number; keepSkippedDays?: number; now?: Date } = {}): Promise<number> {
  const now = (opts.now ?? new Date()).getTime();
  const old = await db.knex('job_runs').where('started_at', '<', new Date(now - (opts.keepDays ?? 30) * 86_400_000)).delete();
  const skipped = await db
    .knex('job_runs')
    .where('status', 'skipped')
    .where('started_at', '<', new Date(now - (opts.keepSkippedDays ?? 2) * 86_400_000))
    .delete();
  return Number(old) + Number(skipped);
}
