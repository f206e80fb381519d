import { SchemaMigration } from '../schema-migration.js';

/**
 * The staff inbox (src/inbox/): one conversation per contact whose messages no router step handled
 * (route `inbox`) or whose routing failed (route `error`), and the replies operators sent from it.
 * - inbox_conversations: opened (or reopened) by the router when such a message arrives
 *   (src/messaging/inbox.ts `noteUnhandled`); claimed by one operator at a time (`claimed_by` is the
 *   actor, "staff:12" or "token:3"; a claim older than the inbox's timeout may be taken over); topic,
 *   rumour flag, closed. `restricted`: a message came in during a psychosocial red handoff or while a
 *   complaint intake was in progress, so only holders of complaints.sensitive see the conversation.
 * - inbox_replies: which outbox row an operator's reply is (free text, or a key message sent as
 *   such or as its WhatsApp template); the text itself lives only in the outbox, where retention
 *   erases it like any other reply.
 * Messages routed to the inbox before this migration open their contacts' conversations.
 */
export class Migration20261122050000_inbox extends SchemaMigration {
  override async up(): Promise<void> {
    this.schema((s) =>
      s
        .createTable('inbox_conversations', (t) => {
          t.increments('id').primary();
          t.integer('contact_id').notNullable().unique().references('id').inTable('contacts').onDelete('CASCADE');
          t.string('status', 8).notNullable().defaultTo('open'); // open | closed
          t.integer('last_message_id').notNullable(); // newest unhandled inbound message
          t.datetime('last_message_at', { useTz: true }).notNullable();
          t.integer('last_address_id').nullable().references('id').inTable('contact_addresses').onDelete('SET NULL'); // where replies go
          t.datetime('opened_at', { useTz: true }).notNullable();
          t.boolean('has_error').notNullable().defaultTo(false); // a message since opening could not be handled automatically
          t.boolean('restricted').notNullable().defaultTo(false);
          t.string('claimed_by', 40).nullable(); // actor: staff:ID | token:ID
          t.integer('claimed_by_user_id').nullable().references('id').inTable('staff_users').onDelete('SET NULL');
          t.string('claimed_by_label', 254).nullable();
          t.datetime('claimed_at', { useTz: true }).nullable(); // renewed by each reply
          t.string('topic', 40).nullable();
          t.boolean('rumour').notNullable().defaultTo(false);
          t.datetime('closed_at', { useTz: true }).nullable();
          t.string('closed_by_label', 254).nullable();
          t.datetime('updated_at', { useTz: true }).notNullable();
          t.index(['status', 'last_message_at']);
          t.index(['claimed_by']);
        })
        .createTable('inbox_replies', (t) => {
          t.increments('id').primary();
          t.integer('conversation_id').notNullable().references('id').inTable('inbox_conversations').onDelete('CASCADE');
          t.integer('contact_id').notNullable();
          t.integer('outbox_id').nullable(); // the message itself (text, status)
          t.string('kind', 16).notNullable(); // text | key_message
          t.integer('key_message_id').nullable();
          t.integer('key_message_version_id').nullable();
          t.boolean('as_template').notNullable().defaultTo(false);
          t.string('medium', 16).notNullable(); // whatsapp | sms
          t.string('actor', 40).notNullable();
          t.integer('staff_user_id').nullable();
          t.string('actor_label', 254).notNullable();
          t.integer('faq_message_id').nullable(); // the key message drafted from this answer
          t.datetime('created_at', { useTz: true }).notNullable();
          t.index(['conversation_id', 'id']);
        }),
    );
    // Unhandled messages stored before the inbox existed: their conversations open now.
    this.addSql(
      `INSERT INTO inbox_conversations (contact_id, status, last_message_id, last_message_at, opened_at, has_error, restricted, rumour, updated_at)
       SELECT m.contact_id, 'open', max(m.id), max(m.received_at), max(m.received_at), max(CASE WHEN m.route = 'error' THEN 1 ELSE 0 END) = 1, false, false, max(m.received_at)
       FROM inbound_messages m WHERE m.route IN ('inbox', 'error') AND m.contact_id IS NOT NULL GROUP BY m.contact_id`,
    );
    this.addSql(
      `UPDATE inbox_conversations SET last_address_id = (SELECT m.address_id FROM inbound_messages m WHERE m.id = inbox_conversations.last_message_id)`,
    );
  }

  override async down(): Promise<void> {
    this.schema((s) => s.dropTableIfExists('inbox_replies').dropTableIfExists('inbox_conversations'));
  }
}
