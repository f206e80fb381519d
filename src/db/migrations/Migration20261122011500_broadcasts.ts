import { SchemaMigration } from '../schema-migration.js';

/**
 * Broadcasts domain: the key-message bank (messages, their versions with per-language variants and
 * review trail), FAQ entries that answer keywords with a key message, and broadcasts.
 * - key_message_versions: a version is a draft, submitted for review, approved (by a staff user other
 *   than its author) or superseded by a later draft of the same message; an approved version never
 *   changes, so a broadcast can record exactly what it sent.
 * - broadcasts: the audience (lists and/or a saved segment), the exclusions, the channel policy, quiet
 *   hours, the footer, the schedule (now, at a time, daily, weekly) and the recipients frozen at fan-out.
 * - contacts(timezone): quiet hours group the audience by timezone; this index lets the fan-out list the
 *   time zones in use by a few index seeks instead of a scan.
 */
export class Migration20261122011500_broadcasts extends SchemaMigration {
  override async up(): Promise<void> {
    const json = this.dialect === 'postgresql' ? 'jsonb' : 'text';
    this.schema((s) =>
      s
        .createTable('key_messages', (t) => {
          t.increments('id').primary();
          t.string('key', 64).notNullable().unique();
          t.string('title', 200).notNullable();
          t.string('topic', 32).notNullable(); // health | cash | documents | protection | ...
          t.text('rumour').nullable(); // the rumour this message answers, when it is one
          t.integer('created_by_id').nullable();
          t.datetime('archived_at', { useTz: true }).nullable();
          t.datetime('created_at', { useTz: true }).notNullable();
          t.datetime('updated_at', { useTz: true }).notNullable();
          t.index(['topic']);
        })
        .createTable('key_message_versions', (t) => {
          t.increments('id').primary();
          t.integer('message_id').notNullable().references('id').inTable('key_messages').onDelete('CASCADE');
          t.integer('version').notNullable();
          t.string('status', 16).notNullable(); // draft | submitted | approved | superseded
          t.specificType('variants', json).notNullable(); // {"es":{"text":"…","template":{"name","language","params":[…]}}}
          t.specificType('media', json).nullable(); // {"kind":"image|document|audio","url"|"id","filename"}
          t.integer('author_id').nullable(); // staff user
          t.string('author_label', 254).nullable();
          t.specificType('contributors', json).nullable(); // [staff user ids] who wrote or edited it: none of them may approve it
          t.datetime('submitted_at', { useTz: true }).nullable();
          t.integer('reviewed_by_id').nullable();
          t.string('reviewed_by_label', 254).nullable();
          t.datetime('reviewed_at', { useTz: true }).nullable();
          t.text('review_note').nullable();
          t.datetime('created_at', { useTz: true }).notNullable();
          t.datetime('updated_at', { useTz: true }).notNullable();
          t.unique(['message_id', 'version']);
          t.index(['message_id', 'status']);
        })
        .createTable('faq_entries', (t) => {
          t.increments('id').primary();
          t.integer('message_id').notNullable().references('id').inTable('key_messages').onDelete('CASCADE');
          t.specificType('keywords', json).notNullable(); // {"es":["VACUNA","VACUNAS"],"en":["VACCINE"]}
          t.boolean('active').notNullable().defaultTo(true);
          t.integer('created_by_id').nullable();
          t.datetime('created_at', { useTz: true }).notNullable();
          t.datetime('updated_at', { useTz: true }).notNullable();
          t.index(['message_id']);
        })
        .createTable('broadcasts', (t) => {
          t.increments('id').primary();
          t.string('name', 200).notNullable();
          t.integer('message_id').notNullable().references('id').inTable('key_messages');
          t.integer('message_version_id').notNullable().references('id').inTable('key_message_versions');
          t.specificType('lists', json).nullable(); // [list ids]
          t.integer('segment_id').nullable().references('id').inTable('segments').onDelete('SET NULL');
          t.text('audience_query').nullable(); // the segment's query as it was when the recipients were frozen
          t.string('channel_policy', 24).notNullable(); // whatsapp_then_sms | sms_only | whatsapp_only
          t.integer('exclude_recent_hours').nullable(); // leave out contacts another broadcast messaged this recently
          t.string('quiet_start', 5).nullable(); // "20:00" in each contact's time zone; null: no quiet hours
          t.string('quiet_end', 5).nullable(); // "08:00"
          t.specificType('footer', json).nullable(); // {"es":"Nunca te pediremos dinero.","en":"…"}
          t.string('status', 16).notNullable(); // draft | scheduled | recurring | sending | paused | completed | cancelled
          t.datetime('send_at', { useTz: true }).nullable();
          t.string('recurrence', 16).notNullable().defaultTo('none'); // none | daily | weekly
          t.datetime('next_run_at', { useTz: true }).nullable(); // recurring: the next occurrence
          t.integer('parent_id').nullable().references('id').inTable('broadcasts').onDelete('SET NULL'); // occurrence of a recurring broadcast
          t.integer('recipients').nullable(); // rows the fan-out inserted
          t.specificType('preview', json).nullable(); // the last preview's summary (counts, cost, estimate)
          t.integer('created_by_id').nullable();
          t.string('created_by_label', 254).nullable();
          t.datetime('created_at', { useTz: true }).notNullable();
          t.datetime('updated_at', { useTz: true }).notNullable();
          t.datetime('started_at', { useTz: true }).nullable();
          t.datetime('finished_at', { useTz: true }).nullable();
          t.datetime('paused_at', { useTz: true }).nullable();
          t.datetime('cancelled_at', { useTz: true }).nullable();
          t.index(['status']);
          t.index(['parent_id']);
        })
        .alterTable('contacts', (t) => {
          t.index(['timezone'], 'contacts_timezone_index');
        }),
    );
  }

  override async down(): Promise<void> {
    this.schema((s) =>
      s
        .alterTable('contacts', (t) => {
          t.dropIndex(['timezone'], 'contacts_timezone_index');
        })
        .dropTableIfExists('broadcasts')
        .dropTableIfExists('faq_entries')
        .dropTableIfExists('key_message_versions')
        .dropTableIfExists('key_messages'),
    );
  }
}
