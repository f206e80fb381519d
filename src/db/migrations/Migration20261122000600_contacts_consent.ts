import { SchemaMigration } from '../schema-migration.js';

/**
 * Contacts domain, second step: what the opt-in story needs beyond the first schema.
 * - pending_confirmations: how a question was answered (yes | no | superseded | cancelled) and by which message,
 *   so the row is kept as a trail instead of being deleted;
 * - lists.frequencies: "how often" per language for the consent prompt (lists.frequency stays the
 *   default language's text, for display);
 * - instance_secrets: a generated pseudonym key for development installs without PSEUDONYM_KEY.
 */
export class Migration20261122000600_contacts_consent extends SchemaMigration {
  override async up(): Promise<void> {
    const json = this.dialect === 'postgresql' ? 'jsonb' : 'text';
    this.schema((s) =>
      s
        .alterTable('pending_confirmations', (t) => {
          t.datetime('answered_at', { useTz: true }).nullable();
          t.string('answer', 16).nullable();
          t.integer('answer_message_id').nullable();
        })
        .alterTable('lists', (t) => {
          t.specificType('frequencies', json).nullable(); // {"es":"una vez por semana","en":"about once a week"}
        })
        .createTable('instance_secrets', (t) => {
          t.string('name', 64).primary();
          t.string('value', 200).notNullable();
          t.datetime('created_at', { useTz: true }).notNullable();
        }),
    );
  }

  override async down(): Promise<void> {
    this.schema((s) =>
      s
        .dropTableIfExists('instance_secrets')
        .alterTable('lists', (t) => {
          t.dropColumn('frequencies');
        })
        .alterTable('pending_confirmations', (t) => {
          t.dropColumn('answer_message_id');
          t.dropColumn('answer');
          t.dropColumn('answered_at');
        }),
    );
  }
}
