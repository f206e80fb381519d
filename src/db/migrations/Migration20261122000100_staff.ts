import { SchemaMigration, timestamps } from '../schema-migration.js';

/** Staff users, console sessions, API tokens, login attempts, the audit log and scheduled-job runs. */
export class Migration20261122000100_staff extends SchemaMigration {
  override async up(): Promise<void> {
    this.schema((s) =>
      s
        .createTable('staff_users', (t) => {
          t.increments('id').primary();
          t.string('email', 254).notNullable().unique();
          t.string('name', 200).notNullable();
          t.string('password_hash', 300).notNullable();
          t.string('role', 32).notNullable();
          t.string('locale', 8).notNullable().defaultTo('en');
          t.boolean('active').notNullable().defaultTo(true);
          t.datetime('last_login_at', { useTz: true }).nullable();
          timestamps(t);
        })
        .createTable('staff_sessions', (t) => {
          t.string('id', 64).primary(); // sha256 of the cookie value; the value itself is never stored
          t.integer('user_id').notNullable().references('id').inTable('staff_users').onDelete('CASCADE');
          t.string('csrf_token', 64).notNullable();
          t.datetime('created_at', { useTz: true }).notNullable();
          t.datetime('expires_at', { useTz: true }).notNullable();
          t.index(['user_id']);
          t.index(['expires_at']);
        })
        .createTable('api_tokens', (t) => {
          t.increments('id').primary();
          t.string('name', 200).notNullable();
          t.string('prefix', 16).notNullable();
          t.string('token_hash', 64).notNullable().unique();
          t.string('role', 32).notNullable();
          t.integer('created_by_id').nullable().references('id').inTable('staff_users').onDelete('SET NULL');
          t.datetime('created_at', { useTz: true }).notNullable();
          t.datetime('last_used_at', { useTz: true }).nullable();
          t.datetime('revoked_at', { useTz: true }).nullable();
        })
        .createTable('login_attempts', (t) => {
          t.increments('id').primary();
          t.string('email_hash', 64).notNullable();
          t.string('ip_hash', 64).notNullable();
          t.boolean('success').notNullable();
          t.datetime('at', { useTz: true }).notNullable();
          t.index(['email_hash', 'at']);
          t.index(['ip_hash', 'at']);
        })
        .createTable('audit_events', (t) => {
          t.increments('id').primary();
          t.datetime('at', { useTz: true }).notNullable();
          t.string('actor_type', 16).notNullable(); // staff | token | system | contact
          t.integer('actor_id').nullable();
          t.string('actor_label', 254).nullable();
          t.string('action', 64).notNullable();
          t.string('entity_type', 64).nullable();
          t.string('entity_id', 64).nullable();
          t.text('detail').nullable(); // JSON, never personal data
          t.string('request_id', 64).nullable();
          t.index(['at']);
          t.index(['entity_type', 'entity_id']);
          t.index(['actor_type', 'actor_id']);
        })
        .createTable('job_runs', (t) => {
          t.increments('id').primary();
          t.string('job', 64).notNullable();
          t.datetime('started_at', { useTz: true }).notNullable();
          t.datetime('finished_at', { useTz: true }).nullable();
          t.string('status', 16).notNullable(); // running | ok | failed | skipped
          t.text('detail').nullable();
          t.index(['job', 'started_at']);
        }),
    );
  }

  override async down(): Promise<void> {
    this.schema((s) =>
      s
        .dropTableIfExists('job_runs')
        .dropTableIfExists('audit_events')
        .dropTableIfExists('login_attempts')
        .dropTableIfExists('api_tokens')
        .dropTableIfExists('staff_sessions')
        .dropTableIfExists('staff_users'),
    );
  }
}
