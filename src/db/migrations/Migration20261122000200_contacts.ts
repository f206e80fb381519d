import { SchemaMigration, timestamps } from '../schema-migration.js';

/**
 * Contacts and their addresses, staff-defined custom fields, the consent ledger (append-only)
 * and its derived current state, opt-in lists, subscriptions, pending confirmations, segments,
 * imports and erasure tombstones.
 */
export class Migration20261122000200_contacts extends SchemaMigration {
  override async up(): Promise<void> {
    const json = this.dialect === 'postgresql' ? 'jsonb' : 'text';
    this.schema((s) =>
      s
        .createTable('contacts', (t) => {
          t.increments('id').primary();
          t.string('name', 200).nullable();
          t.string('language', 16).nullable(); // BCP 47
          t.string('timezone', 64).nullable(); // IANA
          t.string('status', 16).notNullable().defaultTo('active'); // active | stopped | blocked
          t.specificType('fields', json).nullable(); // {"region":"Lima","household_size":4,...}
          t.datetime('last_seen_at', { useTz: true }).nullable(); // last inbound message
          t.datetime('stopped_at', { useTz: true }).nullable();
          t.datetime('erased_at', { useTz: true }).nullable(); // personal data removed; row kept for aggregates
          timestamps(t);
          t.index(['status']);
          t.index(['language']);
          t.index(['last_seen_at']);
        })
        .createTable('contact_addresses', (t) => {
          t.increments('id').primary();
          t.integer('contact_id').notNullable().references('id').inTable('contacts').onDelete('CASCADE');
          t.string('channel', 16).notNullable(); // whatsapp | sms
          t.string('kind', 16).notNullable().defaultTo('phone'); // phone (E.164) | wa_user (Meta user_id without phone)
          t.string('address', 200).notNullable(); // "+51987654321", or a Meta business-scoped user id (up to ~131 chars)
          t.boolean('opted_out').notNullable().defaultTo(false); // provider-level opt-out on this channel
          t.datetime('last_inbound_at', { useTz: true }).nullable(); // opens WhatsApp's 24-hour window
          t.datetime('created_at', { useTz: true }).notNullable();
          t.unique(['channel', 'address']);
          t.index(['contact_id']);
        })
        .createTable('contact_fields', (t) => {
          t.increments('id').primary();
          t.string('key', 64).notNullable().unique(); // used in segments and templates: fields.region
          t.string('label', 200).notNullable();
          t.string('type', 16).notNullable(); // text | number | date | choice
          t.specificType('choices', json).nullable(); // ["Lima","Tumbes",...] for choice
          t.datetime('created_at', { useTz: true }).notNullable();
        })
        .createTable('consents', (t) => {
          // Append-only ledger: rows are never updated or deleted (erasure blanks the contact, not this history).
          t.increments('id').primary();
          t.integer('contact_id').notNullable().references('id').inTable('contacts').onDelete('CASCADE');
          t.string('purpose', 32).notNullable(); // updates | surveys | cash_programme | complaint_followup | data_sharing
          t.string('action', 16).notNullable(); // grant | withdraw
          t.string('legal_basis', 32).notNullable(); // consent | legitimate_interest | vital_interest | public_interest | legal_obligation | contract
          t.string('channel', 16).nullable(); // whatsapp | sms | web | phone | import | console
          t.string('method', 16).notNullable(); // keyword | button | web_form | operator | import | provider
          t.string('wording_key', 64).nullable();
          t.string('wording_version', 32).nullable();
          t.string('wording_language', 16).nullable();
          t.string('evidence_type', 32).nullable(); // inbound_message | import | staff | provider_signal
          t.string('evidence_ref', 200).nullable(); // inbound message id, "import:12 file.csv", staff user id
          t.boolean('proxy').notNullable().defaultTo(false);
          t.integer('staff_user_id').nullable();
          t.datetime('at', { useTz: true }).notNullable();
          t.index(['contact_id', 'purpose']);
        })
        .createTable('consent_state', (t) => {
          // Derived from the ledger in the same transaction as each ledger row, so audiences can be counted fast.
          t.integer('contact_id').notNullable().references('id').inTable('contacts').onDelete('CASCADE');
          t.string('purpose', 32).notNullable();
          t.boolean('granted').notNullable();
          t.integer('consent_id').notNullable(); // the ledger row this state comes from
          t.datetime('at', { useTz: true }).notNullable();
          t.primary(['contact_id', 'purpose']);
          t.index(['purpose', 'granted']);
        })
        .createTable('lists', (t) => {
          t.increments('id').primary();
          t.string('key', 64).notNullable().unique();
          t.string('name', 200).notNullable();
          t.text('description').nullable();
          t.string('purpose', 32).notNullable().defaultTo('updates');
          t.specificType('keywords', json).nullable(); // {"es":["NOTICIAS"],"en":["NEWS"]}
          t.boolean('double_opt_in').notNullable().defaultTo(true);
          t.specificType('welcome', json).nullable(); // {"es":"...","en":"..."}
          t.specificType('prompt', json).nullable(); // optional override of the consent prompt per language
          t.string('frequency', 200).nullable(); // "about once a week", shown in the consent prompt
          t.string('default_language', 16).notNullable();
          t.boolean('is_default').notNullable().defaultTo(false);
          t.datetime('archived_at', { useTz: true }).nullable();
          timestamps(t);
        })
        .createTable('subscriptions', (t) => {
          t.increments('id').primary();
          t.integer('list_id').notNullable().references('id').inTable('lists').onDelete('CASCADE');
          t.integer('contact_id').notNullable().references('id').inTable('contacts').onDelete('CASCADE');
          t.string('status', 16).notNullable(); // active | ended
          t.string('channel', 16).nullable(); // channel they joined on
          t.integer('consent_id').nullable(); // the grant that made it
          t.datetime('joined_at', { useTz: true }).notNullable();
          t.datetime('ended_at', { useTz: true }).nullable();
          t.string('ended_reason', 32).nullable(); // stop | leave | staff | erased
          t.unique(['list_id', 'contact_id']);
          t.index(['contact_id']);
          t.index(['list_id', 'status']);
        })
        .createTable('pending_confirmations', (t) => {
          // A question put to a contact that a YES/NO or button answers (double opt-in, START).
          t.increments('id').primary();
          t.integer('contact_id').notNullable().references('id').inTable('contacts').onDelete('CASCADE');
          t.string('kind', 32).notNullable(); // list_join | restart | ...
          t.integer('list_id').nullable().references('id').inTable('lists').onDelete('CASCADE');
          t.string('channel', 16).nullable();
          t.string('language', 16).notNullable();
          t.string('wording_key', 64).notNullable();
          t.string('wording_version', 32).notNullable();
          t.integer('inbound_message_id').nullable();
          t.datetime('created_at', { useTz: true }).notNullable();
          t.datetime('expires_at', { useTz: true }).notNullable();
          t.index(['contact_id']);
        })
        .createTable('segments', (t) => {
          t.increments('id').primary();
          t.string('key', 64).notNullable().unique();
          t.string('name', 200).notNullable();
          t.text('query').notNullable();
          t.integer('created_by_id').nullable();
          timestamps(t);
        })
        .createTable('imports', (t) => {
          t.increments('id').primary();
          t.integer('list_id').nullable().references('id').inTable('lists').onDelete('SET NULL');
          t.string('file_name', 255).notNullable();
          t.string('status', 16).notNullable(); // dry_run | committed | failed
          t.string('legal_basis', 32).notNullable();
          t.text('evidence').notNullable(); // what the people were told and how, stated by the importer
          t.integer('rows_total').notNullable().defaultTo(0);
          t.integer('rows_imported').notNullable().defaultTo(0);
          t.integer('rows_skipped').notNullable().defaultTo(0);
          t.integer('created_by_id').nullable();
          t.datetime('created_at', { useTz: true }).notNullable();
        })
        .createTable('erasure_tombstones', (t) => {
          // Keyed hash of an erased address: a re-import of the same number needs fresh consent.
          t.string('address_hash', 64).primary();
          t.datetime('erased_at', { useTz: true }).notNullable();
        }),
    );
  }

  override async down(): Promise<void> {
    this.schema((s) =>
      s
        .dropTableIfExists('erasure_tombstones')
        .dropTableIfExists('imports')
        .dropTableIfExists('segments')
        .dropTableIfExists('pending_confirmations')
        .dropTableIfExists('subscriptions')
        .dropTableIfExists('lists')
        .dropTableIfExists('consent_state')
        .dropTableIfExists('consents')
        .dropTableIfExists('contact_fields')
        .dropTableIfExists('contact_addresses')
        .dropTableIfExists('contacts'),
    );
  }
}
