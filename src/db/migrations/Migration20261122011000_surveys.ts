import { SchemaMigration } from '../schema-migration.js';

/**
 * Surveys: the definition snapshot of every version that ran (runs and sessions pin one), survey
 * runs (a survey sent to an audience), sessions (one contact going through one run, with the
 * engine's state) and answers (one row per session × question, typed), with the chosen options
 * of choice questions one per row so that tallies are plain GROUP BYs on both databases.
 */
export class Migration20261122011000_surveys extends SchemaMigration {
  override async up(): Promise<void> {
    const json = this.dialect === 'postgresql' ? 'jsonb' : 'text';
    this.schema((s) =>
      s
        .createTable('survey_versions', (t) => {
          t.increments('id').primary();
          t.string('survey_key', 64).notNullable();
          t.string('version', 32).notNullable(); // content hash of the definition
          t.string('title', 300).notNullable();
          t.string('format', 16).notNullable(); // yaml | xlsform
          t.string('file_name', 255).nullable();
          t.specificType('definition', json).notNullable(); // the SurveyDefinition snapshot
          t.datetime('created_at', { useTz: true }).notNullable();
          t.unique(['survey_key', 'version']);
        })
        .createTable('survey_runs', (t) => {
          t.increments('id').primary();
          t.string('survey_key', 64).notNullable();
          t.integer('survey_version_id').notNullable().references('id').inTable('survey_versions');
          t.string('name', 200).notNullable();
          t.string('status', 16).notNullable(); // scheduled | running | closed
          t.specificType('audience', json).notNullable(); // {"lists":[..]} | {"segment":..} | {"query":..} | {"contactIds":[..]}
          t.string('medium', 16).notNullable().defaultTo('auto'); // auto | whatsapp | sms
          t.string('keyword', 64).nullable(); // a contact who texts it starts a session
          t.boolean('ask_language').notNullable().defaultTo(true);
          t.datetime('scheduled_at', { useTz: true }).nullable();
          t.string('quiet_start', 5).nullable(); // "21:00", in DEFAULT_TIMEZONE
          t.string('quiet_end', 5).nullable(); // "08:00"
          t.integer('expiry_hours').notNullable();
          t.integer('reminder_hours').nullable();
          t.smallint('max_reminders').notNullable().defaultTo(1);
          t.integer('targeted').notNullable().defaultTo(0); // sessions created when it started
          t.integer('created_by_id').nullable();
          t.datetime('started_at', { useTz: true }).nullable();
          t.datetime('closed_at', { useTz: true }).nullable();
          t.datetime('created_at', { useTz: true }).notNullable();
          t.datetime('updated_at', { useTz: true }).notNullable();
          t.index(['survey_key']);
          t.index(['status', 'scheduled_at']);
          t.index(['keyword']);
        })
        .createTable('survey_sessions', (t) => {
          t.increments('id').primary();
          t.integer('run_id').nullable().references('id').inTable('survey_runs').onDelete('CASCADE');
          t.integer('survey_version_id').notNullable().references('id').inTable('survey_versions');
          t.string('survey_key', 64).notNullable();
          t.integer('contact_id').notNullable().references('id').inTable('contacts').onDelete('CASCADE');
          t.integer('address_id').nullable().references('id').inTable('contact_addresses').onDelete('SET NULL');
          t.string('medium', 16).notNullable(); // whatsapp | sms
          t.string('language', 16).notNullable();
          t.string('status', 16).notNullable(); // waiting | active | completed | ended | expired | cancelled
          t.string('end_reason', 32).nullable(); // declined | attempts | expired | stopped | staff
          t.string('purpose', 32).notNullable().defaultTo('surveys'); // outbox purpose of what the session sends unprompted
          t.specificType('state', json).nullable(); // the engine's SessionState (null while waiting)
          t.string('current_question', 64).nullable(); // what it waits for (drop-off)
          t.integer('step').notNullable().defaultTo(0); // optimistic lock: each change bumps it
          t.boolean('ask_language').notNullable().defaultTo(false);
          t.boolean('keep_answers').notNullable().defaultTo(false);
          t.specificType('context', json).nullable(); // what started it: {"source":"keyword"} or the caller's own
          t.specificType('params', json).nullable(); // values for the survey's parameters
          t.integer('expiry_hours').notNullable();
          t.integer('reminder_hours').nullable();
          t.smallint('max_reminders').notNullable().defaultTo(1);
          t.smallint('reminders_sent').notNullable().defaultTo(0);
          t.datetime('last_activity_at', { useTz: true }).nullable();
          t.datetime('next_reminder_at', { useTz: true }).nullable();
          t.datetime('expires_at', { useTz: true }).nullable();
          t.datetime('started_at', { useTz: true }).nullable();
          t.datetime('finished_at', { useTz: true }).nullable();
          t.datetime('created_at', { useTz: true }).notNullable();
          t.unique(['run_id', 'contact_id']);
          t.index(['contact_id', 'status']);
          t.index(['run_id', 'status']);
          t.index(['survey_key', 'status']);
          t.index(['status', 'expires_at']);
          t.index(['status', 'next_reminder_at']);
        })
        .createTable('survey_answers', (t) => {
          t.increments('id').primary();
          t.integer('session_id').notNullable().references('id').inTable('survey_sessions').onDelete('CASCADE');
          t.integer('run_id').nullable();
          t.string('survey_key', 64).notNullable();
          t.string('question', 64).notNullable();
          t.string('type', 16).notNullable(); // select_one | select_multiple | integer | decimal | text | date | calculate | start | end | today
          t.text('value_text').nullable(); // text answers, calculations that are not numbers
          t.double('value_number').nullable(); // integer, decimal, numeric calculations
          t.string('value_date', 10).nullable(); // YYYY-MM-DD
          t.specificType('value_choices', json).nullable(); // ["health","work"] (select_one: one key)
          t.boolean('skipped').notNullable().defaultTo(false); // answered SKIP (or gave up after invalid answers)
          t.integer('message_id').nullable(); // the inbound message that carried it
          t.datetime('answered_at', { useTz: true }).notNullable();
          t.unique(['session_id', 'question']);
          t.index(['survey_key', 'question']);
          t.index(['run_id', 'question']);
        })
        .createTable('survey_answer_choices', (t) => {
          t.integer('answer_id').notNullable().references('id').inTable('survey_answers').onDelete('CASCADE');
          t.integer('session_id').notNullable();
          t.integer('run_id').nullable();
          t.string('survey_key', 64).notNullable();
          t.string('question', 64).notNullable();
          t.string('choice', 200).notNullable();
          t.primary(['answer_id', 'choice']);
          t.index(['survey_key', 'question', 'choice']);
          t.index(['run_id', 'question', 'choice']);
        }),
    );
  }

  override async down(): Promise<void> {
    this.schema((s) =>
      s.dropTableIfExists('survey_answer_choices').dropTableIfExists('survey_answers').dropTableIfExists('survey_sessions').dropTableIfExists('survey_runs').dropTableIfExists('survey_versions'),
    );
  }
}
