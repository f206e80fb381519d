import { SchemaMigration } from '../schema-migration.js';

/**
 * Reports and the phone simulator (src/reports/, src/simulator/):
 * - simulator_contacts: contacts created by the console's phone simulator (test contacts). Their
 *   messages are real inbound messages, so that the router, surveys and complaint intake run as for
 *   anyone, but reports leave them out.
 * - report_snapshots: weekly situation reports as they were built (figures only, no personal data).
 * - faq_hits: one row per question the FAQ stage answered (broadcasts domain, src/broadcasts/stats.ts),
 *   so that the dashboard can say which topics people asked about.
 * - indexes for the period counts the dashboard runs (outbox and contacts by creation time,
 *   subscriptions by join and end time, survey sessions by finish time).
 */
export class Migration20261122030000_reports extends SchemaMigration {
  override async up(): Promise<void> {
    const json = this.dialect === 'postgresql' ? 'jsonb' : 'text';
    this.schema((s) =>
      s
        .createTable('simulator_contacts', (t) => {
          t.integer('contact_id').primary().references('id').inTable('contacts').onDelete('CASCADE');
          t.integer('created_by_id').nullable(); // staff user who first wrote as this test contact
          t.datetime('created_at', { useTz: true }).notNullable();
        })
        .createTable('report_snapshots', (t) => {
          t.increments('id').primary();
          t.string('kind', 16).notNullable(); // weekly
          t.datetime('period_start', { useTz: true }).notNullable();
          t.datetime('period_end', { useTz: true }).notNullable();
          t.specificType('data', json).notNullable(); // the report's figures
          t.string('created_by_label', 254).nullable(); // staff e-mail, or "weekly-report job"
          t.datetime('created_at', { useTz: true }).notNullable();
          t.unique(['kind', 'period_start']);
        })
        .createTable('faq_hits', (t) => {
          t.increments('id').primary();
          t.integer('entry_id').nullable().references('id').inTable('faq_entries').onDelete('SET NULL');
          t.integer('message_id').notNullable().references('id').inTable('key_messages').onDelete('CASCADE');
          t.integer('contact_id').nullable().references('id').inTable('contacts').onDelete('SET NULL');
          t.datetime('at', { useTz: true }).notNullable();
          t.index(['at']);
        })
        .alterTable('outbox', (t) => {
          t.index(['created_at'], 'outbox_created_at_index');
        })
        .alterTable('contacts', (t) => {
          t.index(['created_at'], 'contacts_created_at_index');
        })
        .alterTable('subscriptions', (t) => {
          t.index(['joined_at'], 'subscriptions_joined_at_index');
          t.index(['ended_at'], 'subscriptions_ended_at_index');
        })
        .alterTable('survey_sessions', (t) => {
          t.index(['finished_at'], 'survey_sessions_finished_at_index');
        }),
    );
  }

  override async down(): Promise<void> {
    this.schema((s) =>
      s
        .alterTable('survey_sessions', (t) => {
          t.dropIndex(['finished_at'], 'survey_sessions_finished_at_index');
        })
        .alterTable('subscriptions', (t) => {
          t.dropIndex(['ended_at'], 'subscriptions_ended_at_index');
          t.dropIndex(['joined_at'], 'subscriptions_joined_at_index');
        })
        .alterTable('contacts', (t) => {
          t.dropIndex(['created_at'], 'contacts_created_at_index');
        })
        .alterTable('outbox', (t) => {
          t.dropIndex(['created_at'], 'outbox_created_at_index');
        })
        .dropTableIfExists('faq_hits')
        .dropTableIfExists('report_snapshots')
        .dropTableIfExists('simulator_contacts'),
    );
  }
}
