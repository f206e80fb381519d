import { SchemaMigration, timestamps } from '../schema-migration.js';

/**
 * Cash transfers: beneficiary lists and their beneficiaries (candidates, enrolled, excluded), the
 * imports that filled them, possible duplicates for staff to resolve, distributions (cash rounds)
 * with one transfer record per beneficiary, and post-distribution monitoring: one row per
 * recipient sampled for a distribution's PDM, holding their survey session and, once they answer,
 * the indicator values (so that the report is a read of one table).
 */
export class Migration20261122020000_cash extends SchemaMigration {
  override async up(): Promise<void> {
    const json = this.dialect === 'postgresql' ? 'jsonb' : 'text';
    this.schema((s) =>
      s
        .createTable('cash_lists', (t) => {
          t.increments('id').primary();
          t.string('name', 200).notNullable();
          t.text('description').nullable();
          t.integer('created_by_id').nullable();
          t.datetime('archived_at', { useTz: true }).nullable();
          timestamps(t);
        })
        .createTable('cash_distributions', (t) => {
          t.increments('id').primary();
          t.integer('list_id').notNullable().references('id').inTable('cash_lists');
          t.string('name', 200).notNullable();
          t.string('date', 10).notNullable(); // YYYY-MM-DD, the day the transfers were made
          t.decimal('amount', 14, 2).notNullable();
          t.string('currency', 3).notNullable();
          t.string('modality', 16).notNullable(); // cash | mobile_money | voucher | card
          t.string('provider', 200).nullable();
          // Post-distribution monitoring: null settings take the CASH_PDM_* defaults.
          t.boolean('pdm_enabled').notNullable().defaultTo(true);
          t.integer('pdm_days').nullable();
          t.string('pdm_sampling', 8).notNullable().defaultTo('sample'); // sample | all
          t.decimal('pdm_confidence', 5, 2).nullable(); // percent, e.g. 95
          t.decimal('pdm_margin', 5, 2).nullable(); // percent, e.g. 5
          t.integer('pdm_reminder_hours').nullable();
          t.smallint('pdm_max_reminders').nullable();
          t.string('pdm_status', 16).notNullable().defaultTo('pending'); // pending | starting | running | off
          t.integer('pdm_population').nullable();
          t.integer('pdm_sample_size').nullable();
          t.datetime('pdm_started_at', { useTz: true }).nullable();
          t.integer('created_by_id').nullable();
          timestamps(t);
          t.index(['pdm_status']);
          t.index(['list_id']);
        })
        .createTable('cash_imports', (t) => {
          t.increments('id').primary();
          t.string('kind', 16).notNullable(); // beneficiaries | transfers
          t.integer('list_id').nullable().references('id').inTable('cash_lists').onDelete('CASCADE');
          t.integer('distribution_id').nullable().references('id').inTable('cash_distributions').onDelete('CASCADE'); // transfers: the distribution
          t.string('file_name', 255).notNullable();
          t.string('format', 8).notNullable(); // csv | xlsx
          t.string('status', 16).notNullable(); // dry_run | committed | failed
          t.text('mapping').nullable(); // JSON {"household_id":"ID hogar",...}
          t.string('legal_basis', 32).nullable();
          t.text('evidence').nullable();
          t.integer('rows_total').notNullable().defaultTo(0);
          t.integer('rows_valid').notNullable().defaultTo(0);
          t.integer('rows_bad').notNullable().defaultTo(0);
          t.integer('rows_duplicate').notNullable().defaultTo(0);
          t.integer('rows_written').notNullable().defaultTo(0);
          t.integer('created_by_id').nullable();
          t.datetime('created_at', { useTz: true }).notNullable();
          t.index(['list_id']);
        })
        .createTable('cash_beneficiaries', (t) => {
          t.increments('id').primary();
          t.integer('list_id').notNullable().references('id').inTable('cash_lists').onDelete('CASCADE');
          t.integer('contact_id').nullable().references('id').inTable('contacts').onDelete('SET NULL');
          t.string('household_id', 64).nullable(); // as the programme writes it
          t.string('household_key', 64).nullable(); // lower case, spaces removed: what duplicates compare
          t.string('name', 200).nullable();
          t.string('phone', 32).nullable(); // E.164
          t.string('admin1', 100).nullable();
          t.string('admin2', 100).nullable();
          t.string('admin3', 100).nullable();
          t.integer('household_size').nullable();
          t.specificType('vulnerability', json).nullable(); // ["disability","single_parent"]
          t.string('gender', 16).nullable(); // female | male | other
          t.string('age_group', 16).nullable(); // 0-17 | 18-24 | 25-59 | 60+
          t.string('status', 16).notNullable(); // candidate | enrolled | excluded
          t.string('excluded_reason', 300).nullable();
          t.string('source', 16).notNullable(); // segment | survey | import | manual
          t.integer('import_id').nullable().references('id').inTable('cash_imports').onDelete('SET NULL');
          t.integer('import_row').nullable();
          t.datetime('status_at', { useTz: true }).notNullable();
          t.datetime('erased_at', { useTz: true }).nullable();
          timestamps(t);
          t.index(['list_id', 'status', 'id']);
          t.index(['phone']);
          t.index(['household_key']);
          t.index(['contact_id']);
        })
        .createTable('cash_duplicates', (t) => {
          // A possible duplicate: `beneficiary_id` (the newer record) looks like `other_id`.
          t.increments('id').primary();
          t.integer('list_id').notNullable().references('id').inTable('cash_lists').onDelete('CASCADE');
          t.integer('beneficiary_id').notNullable().references('id').inTable('cash_beneficiaries').onDelete('CASCADE');
          t.integer('other_id').notNullable().references('id').inTable('cash_beneficiaries').onDelete('CASCADE');
          t.string('match', 16).notNullable(); // phone | household_id | contact
          t.string('scope', 16).notNullable(); // file (same import) | existing (already in a list)
          t.string('status', 16).notNullable().defaultTo('open'); // open | kept_one | kept_both | excluded
          t.integer('kept_id').nullable();
          t.integer('resolved_by_id').nullable();
          t.datetime('resolved_at', { useTz: true }).nullable();
          t.datetime('created_at', { useTz: true }).notNullable();
          t.index(['list_id', 'status']);
          t.index(['beneficiary_id']);
          t.index(['other_id']);
        })
        .createTable('cash_transfers', (t) => {
          t.increments('id').primary();
          t.integer('distribution_id').notNullable().references('id').inTable('cash_distributions').onDelete('CASCADE');
          t.integer('beneficiary_id').notNullable().references('id').inTable('cash_beneficiaries').onDelete('CASCADE');
          t.decimal('amount', 14, 2).notNullable();
          t.string('status', 16).notNullable(); // pending | paid | failed | returned
          t.string('provider_ref', 100).nullable();
          t.string('paid_on', 10).nullable(); // YYYY-MM-DD as the provider reports it
          t.integer('import_id').nullable().references('id').inTable('cash_imports').onDelete('SET NULL');
          timestamps(t);
          t.unique(['distribution_id', 'beneficiary_id']);
          t.index(['distribution_id', 'status']);
          t.index(['beneficiary_id']);
        })
        .createTable('cash_pdm', (t) => {
          t.increments('id').primary();
          t.integer('distribution_id').notNullable().references('id').inTable('cash_distributions').onDelete('CASCADE');
          t.integer('beneficiary_id').notNullable().references('id').inTable('cash_beneficiaries').onDelete('CASCADE');
          t.integer('contact_id').nullable().references('id').inTable('contacts').onDelete('SET NULL');
          // selected → sent → completed | declined | partial (expired or gave up with some answers) | no_answer; skipped (could not be sent)
          t.string('status', 16).notNullable();
          t.string('skip_reason', 32).nullable(); // no_contact | no_consent | inactive | no_address
          t.integer('session_id').nullable();
          t.string('medium', 16).nullable();
          t.integer('address_id').nullable();
          t.datetime('selected_at', { useTz: true }).notNullable();
          t.datetime('sent_at', { useTz: true }).nullable();
          t.datetime('finished_at', { useTz: true }).nullable();
          t.string('language', 16).nullable();
          // Answers (choice keys of surveys/pdm-cash.yaml) and indicators.
          t.string('received', 16).nullable(); // yes | no | not_sure
          t.string('amount_told', 16).nullable(); // same | less | more | dont_know
          t.string('on_time', 16).nullable(); // yes | late | dont_know
          t.specificType('problems', json).nullable(); // ["wait","agent_fee"] or ["none"]
          t.string('asked_to_pay', 16).nullable(); // yes | no
          t.string('pay_report', 16).nullable(); // yes_contact | yes_anonymous | no
          t.string('felt_safe', 16).nullable();
          t.string('respected', 16).nullable();
          t.specificType('spending', json).nullable();
          t.string('needs_met', 16).nullable(); // all | most | half | some | none
          t.integer('household_size').nullable();
          t.smallint('rcsi_less_preferred').nullable();
          t.smallint('rcsi_borrow').nullable();
          t.smallint('rcsi_fewer_meals').nullable();
          t.smallint('rcsi_smaller_portions').nullable();
          t.smallint('rcsi_adults_less').nullable();
          t.smallint('rcsi').nullable(); // 0–56
          t.string('rcsi_band', 8).nullable(); // 0-3 | 4-18 | 19+
          t.string('knows_complaint', 16).nullable();
          t.string('satisfaction', 24).nullable();
          t.string('preferred_modality', 16).nullable();
          t.boolean('commented').notNullable().defaultTo(false);
          t.string('complaint_code', 16).nullable(); // the programme complaint opened for "not received" (never the sensitive one)
          t.unique(['distribution_id', 'beneficiary_id']);
          t.index(['distribution_id', 'status']);
          t.index(['session_id']);
          t.index(['contact_id']);
        }),
    );
  }

  override async down(): Promise<void> {
    this.schema((s) =>
      s
        .dropTableIfExists('cash_pdm')
        .dropTableIfExists('cash_transfers')
        .dropTableIfExists('cash_duplicates')
        .dropTableIfExists('cash_beneficiaries')
        .dropTableIfExists('cash_imports')
        .dropTableIfExists('cash_distributions')
        .dropTableIfExists('cash_lists'),
    );
  }
}
