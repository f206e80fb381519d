/**
 * The SQLite connection's prepared-statement cache (src/db/orm.ts `cacheStatements`): a statement
 * run again is the one prepared before, the cache stays within its size, long statements are not
 * kept, and a cached statement still answers after the schema changed under it.
 */
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { cacheStatements } from '../../src/db/orm.js';

interface Statement {
  run(...params: unknown[]): unknown;
  get(...params: unknown[]): unknown;
}
interface Connection {
  exec(sql: string): unknown;
  prepare(sql: string): Statement;
}
// The driver MikroORM's better-sqlite package runs on (it ships no type declarations).
const Database = createRequire(import.meta.url)('better-sqlite3') as new (file: string) => Connection;

function connection() {
  const db = new Database(':memory:');
  let prepared = 0;
  const prepare = db.prepare.bind(db);
  db.prepare = (sql: string) => {
    prepared++;
    return prepare(sql);
  };
  cacheStatements(db, 3, 100);
  return { db, prepared: () => prepared };
}

describe('statement cache', () => {
  it('prepares a statement once and reuses it with other bindings', () => {
    const { db, prepared } = connection();
    db.exec('create table t (id integer primary key, v text)');
    for (let i = 0; i < 5; i++) db.prepare('insert into t (v) values (?)').run(`v${i}`);
    expect(db.prepare('select count(*) as n from t').get()).toEqual({ n: 5 });
    expect(db.prepare('select v from t where id = ?').get(4)).toEqual({ v: 'v3' });
    expect(db.prepare('select v from t where id = ?').get(2)).toEqual({ v: 'v1' });
    expect(prepared()).toBe(3);
  });

  it('keeps at most its size, dropping the least recently used, and never keeps long statements', () => {
    const { db, prepared } = connection();
    const q = (n: number) => db.prepare(`select ${n} as n`).get();
    q(1), q(2), q(3), q(1), q(4); // 2 is the least recently used when 4 comes in
    expect(prepared()).toBe(4);
    q(1), q(3), q(4);
    expect(prepared()).toBe(4);
    q(2);
    expect(prepared()).toBe(5);
    const long = `select 1 as n where 1 in (${Array.from({ length: 60 }, (_, i) => i).join(', ')})`;
    db.prepare(long).get();
    db.prepare(long).get();
    expect(prepared()).toBe(7);
  });

  it('a cached statement still answers after the schema changed', () => {
    const { db } = connection();
    db.exec('create table t (id integer primary key, v text)');
    db.prepare('insert into t (v) values (?)').run('a');
    const select = 'select * from t where id = ?';
    expect(db.prepare(select).get(1)).toEqual({ id: 1, v: 'a' });
    db.exec("alter table t add column w text default 'x'");
    expect(db.prepare(select).get(1)).toEqual({ id: 1, v: 'a', w: 'x' });
  });
});
