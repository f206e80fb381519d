/**
 * The data layer: MikroORM over SQLite (default, a file under ./data/) or PostgreSQL.
 *
 * Domains define their tables as EntitySchemas and their schema changes as migrations in
 * src/db/migrations/. Hot paths (fan-out, dispatch, counts) use the Knex query builder that
 * MikroORM exposes, always with bound parameters: no SQL text is ever built from values.
 */
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { MikroORM, type Options } from '@mikro-orm/core';
import type { EntityManager, Knex } from '@mikro-orm/knex';
import { BetterSqliteDriver } from '@mikro-orm/better-sqlite';
import { PostgreSqlDriver } from '@mikro-orm/postgresql';
import { Migrator } from '@mikro-orm/migrations';
import type { DatabaseSetting } from '../config.js';
import { entities } from './entities.js';
import { migrationsList } from './migrations/index.js';

export type Orm = MikroORM;
export type { EntityManager, Knex };

export interface Database {
  orm: Orm;
  kind: DatabaseSetting['kind'];
  /** A fresh, request-scoped entity manager. */
  em(): EntityManager;
  /** The Knex instance for set-based queries (bound parameters only). */
  knex: Knex;
  close(): Promise<void>;
}

/** Per-connection SQLite settings: WAL for concurrent readers, enforced foreign keys, erased bytes zeroed. */
const SQLITE_PRAGMAS = [
  'PRAGMA journal_mode = WAL',
  'PRAGMA foreign_keys = ON',
  'PRAGMA secure_delete = ON',
  'PRAGMA synchronous = NORMAL',
  'PRAGMA busy_timeout = 10000',
];

interface BetterSqlite3Connection {
  exec(sql: string): unknown;
  prepare(sql: string): unknown;
}

/**
 * Keeps the connection's most recently used prepared statements, so that a statement run again
 * (the same SQL text, other bindings: nearly every query of a running service) is not parsed and
 * planned again. Knex prepares every query afresh, and on SQLite preparing costs about as much as
 * running a simple query. Statements are run to completion when used (knex's `all`/`run`), so one
 * can be reused at once; SQLite prepares a cached statement again by itself after a schema change.
 * Long statements (big IN lists, one-off bulk work) are not kept.
 */
export function cacheStatements(conn: BetterSqlite3Connection, size = 500, maxSqlLength = 4000): void {
  const prepare = conn.prepare.bind(conn);
  const cache = new Map<string, unknown>();
  conn.prepare = (sql: string) => {
    if (sql.length > maxSqlLength) return prepare(sql);
    let statement = cache.get(sql);
    if (statement !== undefined) {
      cache.delete(sql);
    } else {
      statement = prepare(sql);
      if (cache.size >= size) cache.delete(cache.keys().next().value!);
    }
    cache.set(sql, statement);
    return statement;
  };
}

export function ormOptions(setting: DatabaseSetting, opts: { poolSize?: number; debug?: boolean } = {}): Options {
  const common: Options = {
    entities,
    discovery: { disableDynamicFileAccess: true, requireEntitiesArray: true },
    extensions: [Migrator],
    migrations: {
      migrationsList,
      tableName: 'ayni_migrations',
      transactional: true,
      allOrNothing: true,
      snapshot: false,
      silent: true,
    },
    debug: opts.debug ?? false,
    allowGlobalContext: false,
    forceUtcTimezone: true,
    ensureDatabase: false,
    // Knex would otherwise put bound values (numbers, message text) into error messages, which reach logs.
    driverOptions: { compileSqlOnError: false },
  };
  if (setting.kind === 'sqlite') {
    const file = setting.file === ':memory:' ? ':memory:' : resolve(setting.file);
    if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
    return {
      ...common,
      driver: BetterSqliteDriver,
      dbName: file,
      pool: {
        min: 1,
        max: 1,
        afterCreate: (conn: BetterSqlite3Connection, done: (err: Error | null, conn: unknown) => void) => {
          try {
            conn.exec(SQLITE_PRAGMAS.join(';'));
            cacheStatements(conn);
            done(null, conn);
          } catch (err) {
            done(err as Error, conn);
          }
        },
      },
    };
  }
  return {
    ...common,
    driver: PostgreSqlDriver,
    clientUrl: setting.url,
    pool: { min: 0, max: opts.poolSize ?? 10 },
  };
}

export async function openDatabase(setting: DatabaseSetting, opts: { poolSize?: number; migrate?: boolean } = {}): Promise<Database> {
  const orm = await MikroORM.init(ormOptions(setting, opts));
  const db: Database = {
    orm,
    kind: setting.kind,
    em: () => orm.em.fork() as EntityManager,
    knex: (orm.em as EntityManager).getKnex(),
    close: () => orm.close(true),
  };
  if (opts.migrate !== false) await migrate(db);
  return db;
}

/** Applies every pending migration; returns the names applied. */
export async function migrate(db: Database): Promise<string[]> {
  const applied = await db.orm.getMigrator().up();
  return applied.map((m) => m.name);
}

export async function pendingMigrations(db: Database): Promise<string[]> {
  return (await db.orm.getMigrator().getPendingMigrations()).map((m) => m.name);
}

/** True when the database answers a trivial query. */
export async function ping(db: Database): Promise<boolean> {
  try {
    await db.knex.raw('select 1');
    return true;
  } catch {
    return false;
  }
}
