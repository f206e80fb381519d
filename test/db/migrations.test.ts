import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, pendingMigrations, migrate, type Database } from '../../src/db/orm.js';
import { migrationsList } from '../../src/db/migrations/index.js';
import { createTestDatabase, testDbKind, type TestDatabase } from '../helpers/db.js';

describe(`migrations on an empty ${testDbKind} database`, () => {
  let test: TestDatabase;
  let db: Database;
  beforeAll(async () => {
    test = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.close();
    await test.drop();
  });

  it('`ayni migrate` applies every migration, then has nothing left to do', () => {
    const env = { PATH: process.env.PATH, DATABASE_URL: test.url, AYNI_FROM_SOURCE: '1' };
    const first = spawnSync(process.execPath, ['bin/ayni.js', 'migrate'], { env, encoding: 'utf8', timeout: 60_000 });
    expect(first.stderr).toBe('');
    expect(first.status).toBe(0);
    expect(first.stdout).toContain(`Applied ${migrationsList.length} migration(s)`);
    const second = spawnSync(process.execPath, ['bin/ayni.js', 'migrate'], { env, encoding: 'utf8', timeout: 60_000 });
    expect(second.status).toBe(0);
    expect(second.stdout).toContain('up to date');
  });

  it('leaves the tables every domain expects, and start-up finds nothing pending', async () => {
    db = await openDatabase(test.setting, { migrate: false });
    expect(await pendingMigrations(db)).toEqual([]);
    expect(await migrate(db)).toEqual([]);
    for (const table of ['staff_users', 'api_tokens', 'audit_events', 'contacts', 'consents', 'lists', 'inbound_messages', 'outbox']) {
      expect(await db.knex.schema.hasTable(table)).toBe(true);
    }
  });

  it.skipIf(testDbKind !== 'sqlite')('turns on WAL, foreign keys and secure_delete for SQLite', async () => {
    const one = async (pragma: string) => Object.values((await db.knex.raw(`PRAGMA ${pragma}`))[0])[0];
    expect(await one('journal_mode')).toBe('wal');
    expect(await one('foreign_keys')).toBe(1);
    expect(await one('secure_delete')).toBe(1);
  });
});
