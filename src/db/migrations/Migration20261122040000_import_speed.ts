import { SchemaMigration } from '../schema-migration.js';

/**
 * Fewer index entries for every new contact and subscription (imports write a hundred thousand at
 * a time):
 * - contact_addresses(address) goes: every lookup of a number names its media
 *   (`channel in ('whatsapp', 'sms')`), which the unique (channel, address) index answers.
 * - contacts(last_seen_at) and subscriptions(ended_at) index only the rows that have a value: a
 *   new contact has not been seen yet and a new subscription has not ended, and every query on
 *   those columns compares them with a time, which leaves the empty ones out anyway.
 */
export class Migration20261122040000_import_speed extends SchemaMigration {
  override async up(): Promise<void> {
    const knex = this.getKnex();
    this.schema((s) =>
      s
        .alterTable('contact_addresses', (t) => t.dropIndex(['address'], 'contact_addresses_address_index'))
        .alterTable('contacts', (t) => {
          t.dropIndex(['last_seen_at']);
          t.index(['last_seen_at'], 'contacts_last_seen_at_index', { predicate: knex.whereNotNull('last_seen_at') });
        })
        .alterTable('subscriptions', (t) => {
          t.dropIndex(['ended_at']);
          t.index(['ended_at'], 'subscriptions_ended_at_index', { predicate: knex.whereNotNull('ended_at') });
        }),
    );
  }

  override async down(): Promise<void> {
    this.schema((s) =>
      s
        .alterTable('subscriptions', (t) => {
          t.dropIndex(['ended_at'], 'subscriptions_ended_at_index');
          t.index(['ended_at']);
        })
        .alterTable('contacts', (t) => {
          t.dropIndex(['last_seen_at'], 'contacts_last_seen_at_index');
          t.index(['last_seen_at']);
        })
        .alterTable('contact_addresses', (t) => t.index(['address'], 'contact_addresses_address_index')),
    );
  }
}
