/**
 * A fresh, migrated database for one test file: a temporary SQLite file, or (in the postgresql
 * project) a new database created on the server at TEST_DATABASE_URL and dropped afterwards.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { openDatabase, type Database } from '../../src/db/orm.js';
import type { DatabaseSetting } from '../../src/config.js';

export const testDbKind = (process.env.AYNI_TEST_DB === 'postgresql' ? 'postgresql' : 'sqlite') as 'sqlite' | 'postgresql';

export interface TestDatabase {
  setting: DatabaseSetting;
  /** The DATABASE_URL a child process would use to reach the same database. */
  url: string;
  drop(): Promise<void>;
}

export async function createTestDatabase(): Promise<TestDatabase> {
  if (testDbKind === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'ayni-test-'));
    const file = join(dir, 'ayni.sqlite');
    return { setting: { kind: 'sqlite', file }, url: `sqlite:${file}`, drop: async () => rmSync(dir, { recursive: true, force: true }) };
  }
  const admin = process.env.TEST_DATABASE_URL;
  if (!admin) throw new Error('TEST_DATABASE_URL is not set');
  const name = `ayni_t_${randomBytes(6).toString('hex')}`;
  const client = new pg.Client({ connectionString: admin });
  await client.connect();
  await client.query(`CREATE DATABASE ${name}`); // name is generated above from hex digits only
  await client.end();
  const u = new URL(admin);
  u.pathname = `/${name}`;
  const url = u.toString();
  return {
    setting: { kind: 'postgresql', url, dbName: name },
    url,
    drop: async () => {
      const c = new pg.Client({ connectionString: admin });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

/** A migrated database, and a function that closes and removes it. */
export async function openTestDatabase(): Promise<{ db: Database; test: TestDatabase; close(): Promise<void> }> {
  const test = await createTestDatabase();
  const db = await openDatabase(test.setting, { poolSize: 5 });
  return {
    db,
    test,
    close: async () => {
      await db.close();
      await test.drop();
    },
  };
}
