import { SchemaMigration } from '../schema-migration.js';

/**
 * Segments and imports.
 * - Covering indexes for the set-membership conditions of segments and audiences (`c.id in
 *   (select contact_id from … where …)`): the contact ids come from the index alone. They replace
 *   the two-column indexes they extend.
 * - contact_addresses(address): finding a number on any channel (imports merge on it; the inbound
 *   pipeline looks for the same number on the other medium).
 * - imports: how many rows created contacts and how many merged into existing ones, the format and
 *   the column mapping used.
 */
export class Migration20261122010500_segments_imports extends SchemaMigration {
  override async up(): Promise<void> {
    this.schema((s) =>
      s
        .alterTable('subscriptions', (t) => {
          t.dropIndex(['list_id', 'status']);
          t.index(['list_id', 'status', 'contact_id'], 'subscriptions_list_status_contact_index');
        })
        .alterTable('consent_state', (t) => {
          t.dropIndex(['purpose', 'granted']);
          t.index(['purpose', 'granted', 'contact_id'], 'consent_state_purpose_granted_contact_index');
        })
        .alterTable('contact_addresses', (t) => {
          t.index(['channel', 'opted_out', 'contact_id'], 'contact_addresses_channel_opted_out_contact_index');
          t.index(['address'], 'contact_addresses_address_index');
        })
        .alterTable('imports', (t) => {
          t.string('format', 8).nullable(); // csv | xlsx
          t.text('mapping').nullable(); // JSON {"phone":"Telefono","name":"Nombre",...}
          t.integer('rows_new').notNullable().defaultTo(0);
          t.integer('rows_merged').notNullable().defaultTo(0);
          t.integer('rows_bad').notNullable().defaultTo(0);
        }),
    );
  }

  override async down(): Promise<void> {
    this.schema((s) =>
      s
        .alterTable('imports', (t) => {
          t.dropColumn('rows_bad');
          t.dropColumn('rows_merged');
          t.dropColumn('rows_new');
          t.dropColumn('mapping');
          t.dropColumn('format');
        })
        .alterTable('contact_addresses', (t) => {
          t.dropIndex(['address'], 'contact_addresses_address_index');
          t.dropIndex(['channel', 'opted_out', 'contact_id'], 'contact_addresses_channel_opted_out_contact_index');
        })
        .alterTable('consent_state', (t) => {
          t.dropIndex(['purpose', 'granted', 'contact_id'], 'consent_state_purpose_granted_contact_index');
          t.index(['purpose', 'granted']);
        })
        .alterTable('subscriptions', (t) => {
          t.dropIndex(['list_id', 'status', 'contact_id'], 'subscriptions_list_status_contact_index');
          t.index(['list_id', 'status']);
        }),
    );
  }
}
