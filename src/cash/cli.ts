/**
 * `ayni cash …` commands:
 *   ayni cash import FILE --list ID --evidence "…" [--dry-run] [--skip-bad-rows] [--enrol] [--basis B] [--map household_id=ID,phone=Celular]
 *   ayni cash transfers FILE --distribution ID [--dry-run] [--skip-bad-rows] [--key household_id|phone] [--map …]
 *   ayni cash pdm [--at 2026-12-01T14:00:00Z]      start the PDM of distributions that are due (the daily job, once)
 *   ayni cash sample-size N [--confidence 95] [--margin 5]
 * Imports print the summary and every bad row (row, column, why); they exit 2 when rows are bad
 * (a dry run that found some, or a commit refused because of them). Nothing here prints names or numbers.
 */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import type { Booted } from '../boot.js';
import { createLogger } from '../log.js';
import { LEGAL_BASES } from '../contacts/consent.js';
import type { Actor } from '../staff/audit.js';
import { importTransfers } from './distributions.js';
import { parseMappingText, type RowError } from './files.js';
import { importBeneficiaries } from './import.js';
import { runPdmScheduler } from './pdm.js';
import { sampleSize } from './sampling.js';

const CLI_ACTOR: Actor = { type: 'system', id: null, label: 'cli', role: 'system' };
const out = (s: string) => process.stdout.write(s + '\n');
const err = (s: string) => process.stderr.write(s + '\n');

const positiveInt = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive whole number');
  return n;
};
const percent = (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0 || n >= 100) throw new InvalidArgumentError('must be a percentage between 0 and 100');
  return n;
};

async function bytesOf(file: string): Promise<Uint8Array | null> {
  try {
    const b = await readFile(file);
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  } catch (e) {
    err(`ayni: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    process.exitCode = 2;
    return null;
  }
}

const errorLines = (errors: RowError[], truncated: boolean, bad: number) => [
  ...errors.map((e) => `  row ${e.row}${e.column ? `, ${e.column}` : ''}: ${e.reason}`),
  ...(truncated ? [`  … and more: ${bad} bad rows in all`] : []),
];

export function registerCashCli(program: Command, withService: (fn: (b: Booted) => Promise<void>) => Promise<void>): void {
  const cash = program.command('cash').description('cash transfers: beneficiary imports, provider reports, post-distribution monitoring');

  cash
    .command('import')
    .description('import beneficiaries into a list from a CSV or XLSX file (all or nothing unless --skip-bad-rows)')
    .argument('<file>', 'a .csv or .xlsx file')
    .requiredOption('--list <id>', 'the beneficiary list', positiveInt)
    .requiredOption('--evidence <text>', 'what the households were told and how they agreed to be contacted')
    .addOption(new Option('--basis <basis>', 'legal basis of the cash_programme consent recorded for the numbers').choices([...LEGAL_BASES]))
    .option('--dry-run', 'check every row and report bad rows and possible duplicates; change nothing')
    .option('--skip-bad-rows', 'import the good rows even when some are bad')
    .option('--enrol', 'enrol the rows without a possible duplicate (default: candidates)')
    .option('--map <mapping>', 'target=Column pairs, such as household_id=ID hogar,phone=Celular (others are guessed from the headers)')
    .action((file: string, o: { list: number; evidence: string; basis?: (typeof LEGAL_BASES)[number]; dryRun?: boolean; skipBadRows?: boolean; enrol?: boolean; map?: string }) =>
      withService(async ({ db, config }) => {
        const content = await bytesOf(file);
        if (!content) return;
        const r = await importBeneficiaries({ db, config }, CLI_ACTOR, {
          listId: o.list, fileName: basename(file), content, evidence: o.evidence, basis: o.basis, dryRun: Boolean(o.dryRun), skipBadRows: Boolean(o.skipBadRows),
          enrol: Boolean(o.enrol), mapping: o.map ? parseMappingText(o.map) : undefined,
        });
        out(`${r.status === 'dry_run' ? 'Dry run' : r.status === 'committed' ? 'Imported' : 'Not imported'} (import ${r.importId}): ${r.fileName} into list ${r.listId}`);
        out(`  rows ${r.rows.total}: ${r.rows.valid} valid, ${r.rows.bad} bad, ${r.rows.duplicate} possible duplicates` + (r.status === 'committed' ? `; ${r.rows.written} written (${r.rows.enrolled} enrolled)` : ''));
        out(`  mapping: ${Object.entries(r.mapping).map(([k, v]) => `${k}=${v}`).join(', ')}`);
        const lines = errorLines(r.errors, r.errorsTruncated, r.rows.bad);
        for (const d of r.duplicates) lines.push(`  row ${d.row}: same ${d.match === 'household_id' ? 'household id' : d.match} as ${d.otherRow ? `row ${d.otherRow}` : `beneficiary #${d.other!.beneficiaryId} in list "${d.other!.listName}"`}`);
        if (lines.length) err(lines.join('\n'));
        if (r.status === 'failed') err('Nothing was imported. Correct the rows, or run again with --skip-bad-rows to import the others.');
        if (r.status === 'failed' || (r.status === 'dry_run' && r.rows.bad > 0)) process.exitCode = 2;
      }),
    );

  cash
    .command('transfers')
    .description("update a distribution's transfer records from the provider's payment report (CSV or XLSX)")
    .argument('<file>', 'a .csv or .xlsx file')
    .requiredOption('--distribution <id>', 'the distribution', positiveInt)
    .addOption(new Option('--key <column>', 'what finds each beneficiary (default: household_id when the file has it, else phone)').choices(['household_id', 'phone']))
    .option('--dry-run', 'check every row; change nothing')
    .option('--skip-bad-rows', 'update from the good rows even when some are bad')
    .option('--map <mapping>', 'target=Column pairs, such as household_id=ID,status=Estado,amount=Monto,reference=Operacion')
    .action((file: string, o: { distribution: number; key?: 'household_id' | 'phone'; dryRun?: boolean; skipBadRows?: boolean; map?: string }) =>
      withService(async ({ db, config }) => {
        const content = await bytesOf(file);
        if (!content) return;
        const r = await importTransfers({ db, config }, CLI_ACTOR, {
          distributionId: o.distribution, fileName: basename(file), content, key: o.key, dryRun: Boolean(o.dryRun), skipBadRows: Boolean(o.skipBadRows),
          mapping: o.map ? parseMappingText(o.map) : undefined,
        });
        out(`${r.status === 'dry_run' ? 'Dry run' : r.status === 'committed' ? 'Updated' : 'Not updated'} (import ${r.importId}): ${r.fileName} into distribution ${r.distributionId}, by ${r.key}`);
        out(`  rows ${r.rows.total}: ${r.rows.valid} valid, ${r.rows.bad} bad; ${Object.entries(r.statuses).map(([k, v]) => `${k} ${v}`).join(', ')}; ${r.notInFile} transfers not in the file` + (r.status === 'committed' ? `; ${r.rows.updated} updated` : ''));
        const lines = errorLines(r.errors, r.errorsTruncated, r.rows.bad);
        if (lines.length) err(lines.join('\n'));
        if (r.status === 'failed' || (r.status === 'dry_run' && r.rows.bad > 0)) process.exitCode = 2;
      }),
    );

  cash
    .command('pdm')
    .description('start the post-distribution monitoring of every distribution that is due (what the daily cash-pdm job does)')
    .option('--at <time>', 'act as if it were this time (ISO 8601), e.g. to catch up a missed day')
    .action((o: { at?: string }) =>
      withService(async ({ db, config }) => {
        const now = o.at ? new Date(o.at) : new Date();
        if (Number.isNaN(now.getTime())) throw new InvalidArgumentError('--at must be a date and time such as 2026-12-01T14:00:00Z');
        const r = await runPdmScheduler({ db, config, log: createLogger('warn') }, { now });
        out(r.started.length ? `Started the monitoring of distribution(s) ${r.started.join(', ')}.` : 'No distribution is due.');
        out(`Surveys sent: ${r.sent}; could not be sent: ${r.skipped}.`);
      }),
    );

  cash
    .command('sample-size')
    .description('PDM sample size for a number of recipients (Cochran, p = 0.5, finite population correction)')
    .argument('<population>', 'recipients who could be asked', (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('must be a whole number');
      return n;
    })
    .option('--confidence <percent>', 'confidence level', percent, 95)
    .option('--margin <percent>', 'margin of error', percent, 5)
    .action((population: number, o: { confidence: number; margin: number }) => {
      const r = sampleSize({ population, confidence: o.confidence, margin: o.margin });
      out(`${r.n} of ${population} recipients (${o.confidence}% ± ${o.margin}%; n0 = ${r.n0.toFixed(1)}, z = ${r.z.toFixed(4)})`);
    });
}
