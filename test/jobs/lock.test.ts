import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Database } from '../../src/db/orm.js';
import { toDate } from '../../src/db/values.js';
import { describeError, lockKey, pruneJobRuns, runExclusive } from '../../src/jobs/lock.js';
import { jobs } from '../../src/jobs/registry.js';
import { ROOT } from '../../src/paths.js';
import { purgeExpiredSessions } from '../../src/staff/service.js';
import { makeUser } from '../helpers/app.js';
import { openTestDatabase, testDbKind, type TestDatabase } from '../helpers/db.js';

let db: Database;
let test: TestDatabase;
let close: () => Promise<void>;
beforeAll(async () => {
  ({ db, test, close } = await openTestDatabase());
});
afterAll(() => close?.());
beforeEach(async () => {
  await db.knex('job_runs').delete();
});

interface RunRow {
  id: number;
  job: string;
  status: string;
  started_at: unknown;
  finished_at: unknown;
  detail: string | null;
}
const runs = (job: string): Promise<RunRow[]> => db.knex('job_runs').where({ job }).orderBy('id');

describe('runExclusive', () => {
  it('records a run with its detail', async () => {
    const before = Date.now();
    const r = await runExclusive(db, 'test-ok', async () => ({ deleted: 3 }));
    expect(r).toMatchObject({ status: 'ok', detail: { deleted: 3 } });
    const [row] = await runs('test-ok');
    expect(row).toMatchObject({ id: r.id, status: 'ok', detail: '{"deleted":3}' });
    expect(toDate(row.started_at).getTime()).toBeGreaterThanOrEqual(before - 1000);
    expect(toDate(row.finished_at).getTime()).toBeGreaterThanOrEqual(toDate(row.started_at).getTime());
  });

  it('is marked running while the job runs', async () => {
    let seen: RunRow[] = [];
    await runExclusive(db, 'test-running', async () => {
      seen = await runs('test-running');
    });
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ status: 'running', finished_at: null });
  });

  it('records a failing job as failed without throwing, and the job runs again next time', async () => {
    const r = await runExclusive(db, 'test-fail', async () => {
      throw new TypeError('boom');
    });
    expect(r.status).toBe('failed');
    expect(r.error).toBeInstanceOf(TypeError);
    const again = await runExclusive(db, 'test-fail', async () => ({ fine: true }));
    expect(again.status).toBe('ok');
    const rows = await runs('test-fail');
    expect(rows.map((x) => x.status)).toEqual(['failed', 'ok']);
    expect(JSON.parse(rows[0].detail!)).toEqual({ error: 'TypeError', message: 'boom' });
    expect(rows[0].finished_at).not.toBeNull();
  });

  it('keeps personal data out of a failure record', async () => {
    await runExclusive(db, 'test-pii', async () => {
      const err = new Error("insert into contacts (phone, email) values ('+51987654321', 'ana@example.org') - UNIQUE constraint failed");
      throw Object.assign(err, { code: 'SQLITE_CONSTRAINT' });
    });
    const [row] = await runs('test-pii');
    expect(row.status).toBe('failed');
    expect(row.detail).not.toMatch(/987654321|ana@example|example\.org/);
    expect(JSON.parse(row.detail!)).toMatchObject({ error: 'Error', code: 'SQLITE_CONSTRAINT' });
    expect(describeError(new Error('call +51 987 654 321 or mail x.y@z.org')).message).toBe('call # or mail …@…');
  });

  it('skips a run of a job that is already running in this process', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let started!: () => void;
    const isRunning = new Promise<void>((r) => (started = r));
    const first = runExclusive(db, 'test-overlap', async () => {
      started();
      await held;
    });
    await isRunning;
    let ran = false;
    const second = await runExclusive(db, 'test-overlap', async () => {
      ran = true;
    });
    expect(second.status).toBe('skipped');
    expect(ran).toBe(false);
    // another job is not held up
    expect((await runExclusive(db, 'test-other', async () => undefined)).status).toBe('ok');
    release();
    expect((await first).status).toBe('ok');
    expect((await runs('test-overlap')).map((x) => x.status).sort()).toEqual(['ok', 'skipped']);
  });

  it('closes the record of a run left "running" by a process that died', async () => {
    await db.knex('job_runs').insert({ job: 'test-stale', started_at: new Date(Date.now() - 3_600_000), finished_at: null, status: 'running', detail: null });
    await runExclusive(db, 'test-stale', async () => undefined);
    const rows = await runs('test-stale');
    expect(rows.map((x) => x.status)).toEqual(['failed', 'ok']);
    expect(JSON.parse(rows[0].detail!)).toEqual({ error: 'interrupted' });
  });

  it('with minSpacingMs, runs a job once per tick: a run soon after another is skipped', async () => {
    const job = async () => ({ done: 1 });
    expect((await runExclusive(db, 'test-tick', job, { minSpacingMs: 60_000 })).status).toBe('ok');
    const again = await runExclusive(db, 'test-tick', job, { minSpacingMs: 60_000 });
    expect(again).toMatchObject({ status: 'skipped', detail: { reason: 'already ran this tick' } });
    // without spacing (a run by hand, a test) it runs
    expect((await runExclusive(db, 'test-tick', job)).status).toBe('ok');
    // a failed run counts as this tick's run too; it is retried next tick
    await db.knex('job_runs').where({ job: 'test-tick' }).update({ started_at: new Date(Date.now() - 120_000) });
    expect((await runExclusive(db, 'test-tick', job, { minSpacingMs: 60_000 })).status).toBe('ok');
    expect((await runs('test-tick')).map((x) => x.status)).toEqual(['ok', 'skipped', 'ok', 'ok']);
  });

  it('with minSpacingMs, a run cut short by a crash does not count as this tick\'s run', async () => {
    await db.knex('job_runs').insert({ job: 'test-tick-crash', started_at: new Date(Date.now() - 1000), finished_at: null, status: 'running', detail: null });
    expect((await runExclusive(db, 'test-tick-crash', async () => undefined, { minSpacingMs: 60_000 })).status).toBe('ok');
  });

  it('derives a stable 64-bit lock key per job name', () => {
    expect(lockKey('purge-sessions')).toBe(lockKey('purge-sessions'));
    expect(lockKey('purge-sessions')).not.toBe(lockKey('purge-session'));
    const k = BigInt(lockKey('dispatch'));
    expect(k >= -(2n ** 63n) && k < 2n ** 63n).toBe(true);
  });
});

describe('the purge-sessions job', () => {
  it('deletes expired sessions and old login attempts, and records the count', async () => {
    const user = await makeUser(db, 'viewer', 'purge@example.org');
    const now = Date.now();
    await db.knex('staff_sessions').insert([
      { id: 'a'.repeat(64), user_id: user.id, csrf_token: 'x'.repeat(64), created_at: new Date(now - 2 * 86_400_000), expires_at: new Date(now - 86_400_000) },
      { id: 'b'.repeat(64), user_id: user.id, csrf_token: 'y'.repeat(64), created_at: new Date(now), expires_at: new Date(now + 86_400_000) },
    ]);
    await db.knex('login_attempts').insert([
      { email_hash: 'e'.repeat(64), ip_hash: 'i'.repeat(64), success: false, at: new Date(now - 31 * 86_400_000) },
      { email_hash: 'e'.repeat(64), ip_hash: 'i'.repeat(64), success: true, at: new Date(now) },
    ]);
    // what src/jobs/purge-sessions.ts runs in its worker
    const r = await runExclusive(db, 'purge-sessions', async () => ({ deleted: await purgeExpiredSessions(db) }));
    expect(r).toMatchObject({ status: 'ok', detail: { deleted: 2 } });
    expect((await db.knex('staff_sessions').select('id')).map((s: { id: string }) => s.id)).toEqual(['b'.repeat(64)]);
    expect(await db.knex('login_attempts').select('id')).toHaveLength(1);
  });
});

describe('the prune-job-runs job', () => {
  it('deletes runs older than 30 days and skipped runs older than 2 days', async () => {
    const day = 86_400_000;
    const at = (daysAgo: number) => new Date(Date.now() - daysAgo * day);
    await db.knex('job_runs').insert([
      { job: 'test-prune', started_at: at(31), finished_at: at(31), status: 'ok', detail: null },
      { job: 'test-prune', started_at: at(29), finished_at: at(29), status: 'ok', detail: null },
      { job: 'test-prune', started_at: at(3), finished_at: at(3), status: 'skipped', detail: null },
      { job: 'test-prune', started_at: at(1), finished_at: at(1), status: 'skipped', detail: null },
    ]);
    // what src/jobs/prune-job-runs.ts runs in its worker
    const r = await runExclusive(db, 'prune-job-runs', async () => ({ deleted: await pruneJobRuns(db) }));
    expect(r).toMatchObject({ status: 'ok', detail: { deleted: 2 } });
    const left = await runs('test-prune');
    expect(left.map((x) => x.status)).toEqual(['ok', 'skipped']);
    expect(toDate(left[0].started_at).getTime()).toBeLessThan(Date.now() - 28 * day);
  });
});

describe('the job registry', () => {
  it('names each job once, gives it a schedule and a job file in src/jobs/', () => {
    const names = jobs.map((j) => j.name);
    expect(new Set(names).size).toBe(names.length);
    for (const j of jobs) {
      expect(j.interval !== undefined || j.cron !== undefined, j.name).toBe(true);
      expect(existsSync(join(ROOT, 'src', 'jobs', `${j.file}.ts`)), j.file).toBe(true);
    }
  });
});

/** Runs test/jobs/fixtures/hold-lock.ts as a separate process on the test database. */
function holdLock(job: string): { child: ChildProcessWithoutNullStreams; lines: AsyncIterator<string>; exited: Promise<number | null> } {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test', 'jobs', 'fixtures', 'hold-lock.ts'), job], {
    cwd: ROOT,
    env: { ...process.env, DATABASE_URL: test.url },
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += String(d)));
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code, signal) => {
      if (code !== 0 && !signal) process.stderr.write(`hold-lock exited with ${code}: ${stderr}\n`);
      resolve(code);
    }),
  );
  return { child, lines: createInterface({ input: child.stdout })[Symbol.asyncIterator](), exited };
}

describe.skipIf(testDbKind !== 'postgresql')('on PostgreSQL with several processes', () => {
  it('a second process does not run a job that the first is running, and runs it once the first is done', async () => {
    const other = holdLock('test-shared');
    try {
      expect((await other.lines.next()).value).toBe('locked');

      let ran = 0;
      const job = async () => {
        ran += 1;
        return { ran };
      };
      const skipped = await runExclusive(db, 'test-shared', job);
      expect(skipped).toMatchObject({ status: 'skipped', detail: { reason: 'running in another process' } });
      expect(ran).toBe(0);
      // the lock is per job: another job runs meanwhile
      expect((await runExclusive(db, 'test-not-shared', job)).status).toBe('ok');
      expect(ran).toBe(1);

      other.child.stdin.write('release\n');
      expect((await other.lines.next()).value).toBe('finished ok');
      expect(await other.exited).toBe(0);

      const after = await runExclusive(db, 'test-shared', job);
      expect(after.status).toBe('ok');
      expect(ran).toBe(2);
      const rows = await runs('test-shared');
      expect(rows.map((x) => x.status)).toEqual(['ok', 'skipped', 'ok']); // the other process's run, ours skipped, ours
      expect(JSON.parse(rows[0].detail!)).toEqual({ held: true });
    } finally {
      other.child.kill();
    }
  });

  it('the lock goes away with a process that dies while holding it', async () => {
    const other = holdLock('test-crash');
    expect((await other.lines.next()).value).toBe('locked');
    expect((await runExclusive(db, 'test-crash', async () => undefined)).status).toBe('skipped');
    other.child.kill('SIGKILL');
    await other.exited;
    // PostgreSQL notices the closed session at once; its run row stays "running" until the next run closes it
    let r = await runExclusive(db, 'test-crash', async () => undefined);
    for (let i = 0; r.status === 'skipped' && i < 50; i++) {
      await new Promise((res) => setTimeout(res, 100));
      r = await runExclusive(db, 'test-crash', async () => undefined);
    }
    expect(r.status).toBe('ok');
    const rows = await runs('test-crash');
    expect(rows[0]).toMatchObject({ status: 'failed', detail: '{"error":"interrupted"}' });
    expect(rows.at(-1)!.status).toBe('ok');
  });
});
