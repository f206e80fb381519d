import { SchemaMigration } from '../schema-migration.js';

/** Inbound messages (deduplicated on the provider's id) and the outbox (every outbound message). */
export class Migration20261122000300_messaging extends SchemaMigration {
  override async up(): Promise<void> {
    const json = this.dialect === 'postgresql' ? 'jsonb' : 'text';
    const knex = this.getKnex();
    this.schema((s) =>
      s
        .createTable('inbound_messages', (t) => {
          t.increments('id').primary();
          t.string('channel', 16).notNullable(); // whatsapp | sms-twilio | sms-africastalking | simulator ...
          t.string('provider_id', 200).notNullable(); // the provider's message id (dedup key)
          t.integer('contact_id').nullable().references('id').inTable('contacts').onDelete('SET NULL');
          t.integer('address_id').nullable().references('id').inTable('contact_addresses').onDelete('SET NULL');
          t.string('kind', 16).notNullable(); // text | button | list | media | other
          t.text('text').nullable(); // erased on the retention schedule
          t.string('payload', 256).nullable(); // button / list reply id
          t.boolean('keep').notNullable().defaultTo(false); // part of a survey answer or complaint the person agreed to keep
          t.datetime('received_at', { useTz: true }).notNullable();
          t.datetime('handled_at', { useTz: true }).nullable();
          t.string('route', 32).nullable(); // which router step handled it
          t.datetime('text_erased_at', { useTz: true }).nullable();
          t.unique(['channel', 'provider_id']);
          t.index(['contact_id']);
          t.index(['received_at']);
          t.index(['handled_at']);
        })
        .createTable('outbox', (t) => {
          t.increments('id').primary();
          t.integer('contact_id').notNullable().references('id').inTable('contacts').onDelete('CASCADE');
          t.string('purpose', 32).notNullable(); // reply | updates | surveys | cash_programme | complaint_followup
          t.smallint('priority').notNullable(); // 1 reply, 2 survey, 3 broadcast
          t.integer('broadcast_id').nullable();
          t.specificType('content', json).nullable(); // OutboundContent; null for broadcasts (rendered at send time)
          t.string('language', 16).nullable();
          t.string('channel', 24).nullable(); // chosen at send time unless fixed
          t.integer('address_id').nullable();
          t.string('status', 16).notNullable().defaultTo('queued'); // queued | sending | sent | delivered | read | failed | cancelled | skipped
          t.datetime('not_before', { useTz: true }).nullable();
          t.smallint('attempts').notNullable().defaultTo(0);
          t.string('claimed_by', 64).nullable();
          t.datetime('claimed_at', { useTz: true }).nullable();
          t.string('provider_id', 200).nullable();
          t.string('error_code', 32).nullable();
          t.string('error_detail', 300).nullable();
          t.smallint('segments').nullable();
          t.datetime('created_at', { useTz: true }).notNullable();
          t.datetime('status_at', { useTz: true }).nullable();
          // Re-queued from a dead process's claim: it may already have reached the person once.
          t.boolean('possible_duplicate').notNullable().defaultTo(false);
          // The dispatcher's two working sets, kept small however many millions of rows were sent:
          // due rows in claim order, and claimed rows by claim time (renewal and crash recovery).
          t.index(['priority', 'id'], 'outbox_queue_index', { predicate: knex.whereRaw("status = 'queued'") });
          t.index(['claimed_at'], 'outbox_sending_index', { predicate: knex.whereRaw("status = 'sending'") });
          t.index(['provider_id']);
          t.index(['contact_id']);
          t.unique(['broadcast_id', 'contact_id']);
        })
        .createTable('outbox_status_early', (t) => {
          // A provider status that arrived before the dispatcher recorded the provider id it names
          // (the dispatcher writes results in batches). Applied when the id is recorded; kept an hour.
          t.increments('id').primary();
          t.string('channel', 24).notNullable();
          t.string('provider_id', 200).notNullable();
          t.string('status', 16).notNullable();
          t.datetime('at', { useTz: true }).notNullable();
          t.string('error_class', 16).nullable();
          t.string('error_code', 32).nullable();
          t.string('error_detail', 300).nullable();
          t.datetime('received_at', { useTz: true }).notNullable();
          t.index(['provider_id']);
          t.index(['received_at']);
        }),
    );
  }

  override async down(): Promise<void> {
    this.schema((s) => s.dropTableIfExists('outbox_status_early').dropTableIfExists('outbox').dropTableIfExists('inbound_messages'));
  }
}
