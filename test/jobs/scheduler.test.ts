import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import type { Database } from '../../src/db/orm.js';
import { toDate } from '../../src/db/values.js';
import { periodMs, startScheduler } from '../../src/jobs/scheduler.js';
import type { JobDefinition } from '../../src/jobs/registry.js';
import { createLogger } from '../../src/log.js';
import { ROOT } from '../../src/paths.js';
import { openTestDatabase, type TestDatabase } from '../helpers/db.js';

let db: Database;
let test: TestDatabase;
let close: () => Promise<void>;
beforeAll(async () => {
  ({ db, test, close } = await openTestDatabase());
  // bree's workers read their configuration from the environment, as in production
  process.env.DATABASE_URL = test.url;
});
afterAll(() => close?.());
beforeEach(async () => {
  await db.knex('job_runs').delete();
});

/** A logger whose lines the test can read. */
function capturedLog() {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { log: createLogger('debug', sink), lines };
}

const config = (env: Record<string, string> = {}) => loadConfig({ LOG_LEVEL: 'silent', NODE_ENV: 'test', DATABASE_URL: test.url, ...env });
const slowJob: JobDefinition = {
  name: 'test-slow',
  file: join(ROOT, 'test', 'jobs', 'fixtures', 'slow-job.ts'),
  interval: '1h',
  firstRunAfter: 0,
  summary: 'sleeps, for the tests',
};

async function waitFor(check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 50));
  }
}
const runningRow = async () => (await db.knex('job_runs').where({ job: 'test-slow', status: 'running' }).first()) !== undefined;

describe('the scheduler', () => {
  it('stop() waits for the running job to finish, and the job is told to cancel', async () => {
    process.env.AYNI_TEST_JOB_MS = '1500';
    const { log, lines } = capturedLog();
    const scheduler = await startScheduler({ config: config(), db, log, jobs: [slowJob] });
    expect(scheduler.jobs).toEqual(['test-slow']);
    await waitFor(runningRow);
    await scheduler.stop();
    const stoppedAt = Date.now();
    const rows = await db.knex('job_runs').where({ job: 'test-slow' });
    expect(rows).toHaveLength(1);
    expect(rows[0].status).toBe('ok');
    expect(JSON.parse(rows[0].detail)).toEqual({ slept: 1500, cancelled: true });
    expect(toDate(rows[0].finished_at).getTime()).toBeLessThanOrEqual(stoppedAt);
    const finished = lines.find((l) => l.msg === 'job finished');
    expect(finished).toMatchObject({ job: 'test-slow', status: 'ok', detail: { slept: 1500, cancelled: true } });
    expect(lines.findIndex((l) => l.msg === 'job finished')).toBeLessThan(lines.findIndex((l) => l.msg === 'scheduler stopped'));
    // nothing new starts after stop()
    await new Promise((r) => setTimeout(r, 300));
    expect(await db.knex('job_runs').where({ job: 'test-slow' })).toHaveLength(1);
  });

  it('terminates a job still running after the grace period and records it as failed', async () => {
    process.env.AYNI_TEST_JOB_MS = '30000';
    const { log, lines } = capturedLog();
    const scheduler = await startScheduler({ config: config(), db, log, jobs: [slowJob], graceMs: 300 });
    await waitFor(runningRow);
    const t0 = Date.now();
    await scheduler.stop();
    expect(Date.now() - t0).toBeLessThan(10_000);
    const [row] = await db.knex('job_runs').where({ job: 'test-slow' });
    expect(row.status).toBe('failed');
    expect(JSON.parse(row.detail)).toEqual({ error: 'terminated at shutdown' });
    expect(lines.some((l) => l.msg === 'jobs still running at shutdown: terminating them')).toBe(true);
  });

  it('skips a run when another process already ran the job this tick', async () => {
    await db.knex('job_runs').insert({ job: 'test-slow', started_at: new Date(Date.now() - 60_000), finished_at: new Date(), status: 'ok', detail: null });
    const { log, lines } = capturedLog();
    const scheduler = await startScheduler({ config: config(), db, log, jobs: [slowJob] });
    await waitFor(async () => lines.some((l) => l.msg === 'job finished'));
    await scheduler.stop();
    const rows = await db.knex('job_runs').where({ job: 'test-slow' }).orderBy('id');
    expect(rows.map((r: { status: string }) => r.status)).toEqual(['ok', 'skipped']);
    expect(JSON.parse(rows[1].detail)).toEqual({ reason: 'already ran this tick' });
  });

  it('knows how far apart a job\'s runs are', () => {
    const parse = (v: string | number) => (typeof v === 'number' ? v : v === '1h' ? 3_600_000 : NaN);
    expect(periodMs({ interval: '1h' }, parse)).toBe(3_600_000);
    expect(periodMs({ cron: '30 3 * * *' }, parse)).toBe(86_400_000);
    expect(periodMs({ cron: '*/5 * * * *' }, parse)).toBe(300_000);
    expect(periodMs({}, parse)).toBeUndefined();
  });

  it('runs nothing when RUN_SCHEDULER is false', async () => {
    const { log, lines } = capturedLog();
    const scheduler = await startScheduler({ config: config({ RUN_SCHEDULER: 'false' }), db, log, jobs: [slowJob] });
    expect(scheduler.jobs).toEqual([]);
    await new Promise((r) => setTimeout(r, 1000));
    await scheduler.stop();
    expect(await db.knex('job_runs').where({ job: 'test-slow' })).toHaveLength(0);
    expect(lines.some((l) => String(l.msg).startsWith('scheduler off'))).toBe(true);
  });

  it('leaves out, with a warning, a job whose file is missing', async () => {
    const { log, lines } = capturedLog();
    const scheduler = await startScheduler({ config: config(), db, log, jobs: [{ ...slowJob, name: 'test-missing', file: 'no-such-job' }] });
    expect(scheduler.jobs).toEqual([]);
    await scheduler.stop();
    expect(lines.find((l) => l.job === 'test-missing')?.level).toBe('warn');
  });

  it('schedules the registry', async () => {
    const { log } = capturedLog();
    const scheduler = await startScheduler({ config: config(), db, log });
    expect(scheduler.jobs).toContain('purge-sessions');
    await scheduler.stop();
  });
});
