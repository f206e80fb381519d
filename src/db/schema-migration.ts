/**
 * Base for Ayni's migrations. Each migration describes its change with the Knex schema builder,
 * which writes the right DDL for SQLite and for PostgreSQL from one description, so one set of
 * migrations serves both databases.
 */
import { Migration } from '@mikro-orm/migrations';
import type { Knex } from '@mikro-orm/knex';

export abstract class SchemaMigration extends Migration {
  /** 'sqlite' or 'postgresql'. */
  protected get dialect(): 'sqlite' | 'postgresql' {
    return this.driver.getPlatform().constructor.name.toLowerCase().includes('postgre') ? 'postgresql' : 'sqlite';
  }

  /** Queues the statements a schema-builder chain produces. */
  protected schema(build: (schema: Knex.SchemaBuilder) => Knex.SchemaBuilder): void {
    const knex = this.getKnex();
    const statements = build(knex.schema).toSQL() as unknown as { sql: string; bindings?: readonly unknown[] }[];
    for (const s of statements) {
      if (s && typeof s.sql === 'string') this.addSql(knex.raw(s.sql, (s.bindings ?? []) as unknown as Knex.ValueDict));
    }
  }
}

/** Columns every table with timestamps gets. */
export function timestamps(t: Knex.CreateTableBuilder): void {
  t.datetime('created_at', { useTz: true }).notNullable();
  t.datetime('updated_at', { useTz: true }).notNullable();
}
