import { SchemaMigration, timestamps } from '../schema-migration.js';

/**
 * Complaints and feedback (src/complaints/): tickets with their history, conversational intakes in
 * progress, the referral directory and referral records, psychosocial triage, the public form's
 * rate-limit trail, and the outbox rows whose content is blanked once sent.
 *
 * Public identifiers: a complaint is known outside the database by its random `code`; referrals and
 * triage records by a random string `id`. Numeric ids never leave the server, so that gaps in a
 * sequence cannot betray the existence of a case someone is not allowed to see.
 */
export class Migration20261122000800_complaints extends SchemaMigration {
  override async up(): Promise<void> {
    this.schema((s) =>
      s
        .createTable('complaints', (t) => {
          t.increments('id').primary();
          t.string('code', 12).notNullable().unique(); // 6 characters of ACDEFGHJKLMNPQRTUVWXY3479
          t.string('source', 16).notNullable(); // whatsapp | sms | web | phone | in_person | staff | pdm
          t.string('source_ref', 100).nullable(); // e.g. "pdm:session:12" (no personal data)
          t.string('category', 32).notNullable();
          t.boolean('sensitive').notNullable().defaultTo(false);
          t.boolean('suggested_sensitive').notNullable().defaultTo(false); // keywords hinted at it; a person decides
          t.string('priority', 8).notNullable(); // high | medium | low
          t.string('status', 16).notNullable().defaultTo('new');
          t.integer('assignee_id').nullable().references('id').inTable('staff_users').onDelete('SET NULL');
          t.integer('contact_id').nullable().references('id').inTable('contacts').onDelete('SET NULL'); // null: anonymous (or erased)
          t.integer('address_id').nullable().references('id').inTable('contact_addresses').onDelete('SET NULL');
          t.string('requester_hash', 64).nullable(); // keyed hash of the address that filed it (STATUS), never the address
          t.boolean('anonymous').notNullable().defaultTo(false);
          t.boolean('wants_answer').notNullable().defaultTo(false);
          t.string('reply_medium', 16).nullable(); // whatsapp | sms
          t.string('language', 16).nullable();
          t.text('narrative').nullable(); // sealed (AES-256-GCM) when sensitive
          t.text('resolution').nullable(); // sealed when sensitive
          t.integer('created_by_id').nullable(); // staff user who entered it (hotline)
          t.datetime('received_at', { useTz: true }).notNullable();
          t.datetime('due_at', { useTz: true }).notNullable(); // from priority and the SLA settings
          t.datetime('acknowledged_at', { useTz: true }).nullable();
          t.datetime('resolved_at', { useTz: true }).nullable();
          t.datetime('closed_at', { useTz: true }).nullable();
          t.datetime('escalated_at', { useTz: true }).nullable();
          t.datetime('ack_sent_at', { useTz: true }).nullable();
          t.datetime('followup_sent_at', { useTz: true }).nullable();
          t.datetime('narrative_erased_at', { useTz: true }).nullable();
          timestamps(t);
          t.index(['sensitive', 'received_at']);
          t.index(['status', 'due_at']);
          t.index(['contact_id']);
          t.index(['assignee_id']);
          t.index(['requester_hash']);
        })
        .createTable('complaint_events', (t) => {
          // The case's history: created, status, assigned, priority, note, escalated, referred, followup…
          t.increments('id').primary();
          t.integer('complaint_id').notNullable().references('id').inTable('complaints').onDelete('CASCADE');
          t.datetime('at', { useTz: true }).notNullable();
          t.string('type', 32).notNullable();
          t.string('actor_type', 16).notNullable(); // staff | token | system | contact
          t.integer('actor_id').nullable();
          t.string('actor_label', 254).nullable();
          t.string('from_value', 64).nullable();
          t.string('to_value', 64).nullable();
          t.text('note').nullable(); // sealed when the case is sensitive
          t.index(['complaint_id', 'at']);
        })
        .createTable('complaint_intakes', (t) => {
          // A conversational intake in progress (the intake survey run by src/complaints/intake.ts).
          // The engine state holds the narrative, so it is always sealed.
          t.increments('id').primary();
          t.integer('contact_id').notNullable().references('id').inTable('contacts').onDelete('CASCADE');
          t.integer('address_id').nullable().references('id').inTable('contact_addresses').onDelete('SET NULL');
          t.string('medium', 16).notNullable();
          t.string('survey_version', 32).notNullable();
          t.text('state').notNullable(); // sealed JSON
          t.datetime('started_at', { useTz: true }).notNullable();
          t.datetime('updated_at', { useTz: true }).notNullable();
          t.datetime('expires_at', { useTz: true }).notNullable();
          t.index(['contact_id']);
          t.index(['expires_at']);
        })
        .createTable('referral_services', (t) => {
          t.increments('id').primary();
          t.string('organisation', 200).notNullable();
          t.string('name', 200).notNullable(); // the service
          t.text('description').nullable();
          t.text('eligibility').nullable();
          t.string('languages', 100).nullable(); // "es, en, qu"
          t.string('hours', 200).nullable();
          t.string('contact', 300).nullable(); // phone, address, e-mail of the service (not of a person)
          t.string('area', 200).nullable();
          t.string('kinds', 200).nullable(); // what it helps with: "health, mental_health, gbv, legal, shelter…"
          t.boolean('active').notNullable().defaultTo(true);
          timestamps(t);
          t.index(['active', 'organisation']);
        })
        .createTable('pss_triage', (t) => {
          t.string('id', 16).primary(); // random
          t.integer('contact_id').nullable().references('id').inTable('contacts').onDelete('SET NULL');
          t.string('level', 8).notNullable(); // green | yellow | red
          t.string('suggested_level', 8).nullable(); // what keywords suggested, if anything
          t.text('note').nullable(); // always sealed (mental-health data)
          t.integer('set_by_id').nullable();
          t.string('set_by_label', 254).nullable();
          t.datetime('at', { useTz: true }).notNullable();
          t.boolean('handoff_open').notNullable().defaultTo(false); // red: a human has the conversation
          t.datetime('handoff_closed_at', { useTz: true }).nullable();
          t.datetime('followup_due_at', { useTz: true }).nullable(); // yellow
          t.datetime('followup_done_at', { useTz: true }).nullable();
          t.datetime('followup_overdue_at', { useTz: true }).nullable(); // noticed by the job
          t.string('message_status', 16).nullable(); // sent | no_numbers | no_address | none
          t.index(['contact_id', 'at']);
          t.index(['handoff_open']);
          t.index(['followup_due_at']);
        })
        .createTable('referrals', (t) => {
          t.string('id', 16).primary(); // random
          t.integer('service_id').notNullable().references('id').inTable('referral_services').onDelete('RESTRICT');
          t.integer('complaint_id').nullable().references('id').inTable('complaints').onDelete('CASCADE');
          t.string('triage_id', 16).nullable().references('id').inTable('pss_triage').onDelete('CASCADE');
          t.integer('contact_id').nullable().references('id').inTable('contacts').onDelete('SET NULL');
          t.boolean('restricted').notNullable(); // of a sensitive case or a triage: focal points only
          t.boolean('consent').notNullable(); // the person agreed to be referred
          t.string('consent_method', 16).notNullable(); // operator | keyword | web_form | in_person
          t.datetime('consent_at', { useTz: true }).notNullable();
          t.datetime('referred_at', { useTz: true }).notNullable();
          t.integer('referred_by_id').nullable();
          t.datetime('due_at', { useTz: true }).nullable(); // follow-up
          t.string('outcome', 16).notNullable().defaultTo('pending'); // pending | accepted | completed | declined | unreachable
          t.text('note').nullable(); // sealed when restricted
          t.datetime('outcome_at', { useTz: true }).nullable();
          timestamps(t);
          t.index(['restricted', 'referred_at']);
          t.index(['complaint_id']);
          t.index(['triage_id']);
        })
        .createTable('complaint_form_hits', (t) => {
          // Public web form submissions per client (keyed hash of the IP address), for rate limiting.
          t.increments('id').primary();
          t.string('client_hash', 64).notNullable();
          t.datetime('at', { useTz: true }).notNullable();
          t.index(['client_hash', 'at']);
        })
        .createTable('private_outbox', (t) => {
          // Outbox rows whose content would reveal a sensitive case or a triage (acknowledgements,
          // STATUS answers, follow-ups, emergency numbers): blanked as soon as they are final.
          t.integer('outbox_id').primary().references('id').inTable('outbox').onDelete('CASCADE');
          t.datetime('created_at', { useTz: true }).notNullable();
        }),
    );
  }

  override async down(): Promise<void> {
    this.schema((s) =>
      s
        .dropTableIfExists('private_outbox')
        .dropTableIfExists('complaint_form_hits')
        .dropTableIfExists('referrals')
        .dropTableIfExists('pss_triage')
        .dropTableIfExists('referral_services')
        .dropTableIfExists('complaint_intakes')
        .dropTableIfExists('complaint_events')
        .dropTableIfExists('complaints'),
    );
  }
}
