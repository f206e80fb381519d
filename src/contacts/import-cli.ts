/**
 * `ayni contacts import FILE --list KEY --evidence "…" [--basis consent] [--dry-run] [--skip-bad-rows]
 *  [--map phone=Telefono,name=Nombre,region=Región] [--channels whatsapp,sms] [--format csv|xlsx]`
 *
 * Prints the summary and every bad row (row in the file, column, why) and exits 0 when the dry
 * run found nothing wrong or the import was committed; 2 when there are bad rows (a dry run that
 * found some, or a commit refused because of them) or the request cannot start.
 */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { Command, Option } from 'commander';
import type { Booted } from '../boot.js';
import type { Actor } from '../staff/audit.js';
import { LEGAL_BASES } from './consent.js';
import { MEDIA, parseMappingText, runImport, type ImportReport } from './import.js';

export interface ImportCliOptions {
  list: string;
  evidence: string;
  basis?: (typeof LEGAL_BASES)[number];
  dryRun?: boolean;
  skipBadRows?: boolean;
  map?: string;
  channels?: string;
  format?: 'csv' | 'xlsx';
}

/** The report as lines for a terminal. */
export function formatReport(r: ImportReport): string[] {
  const lines = [
    `${r.status === 'dry_run' ? 'Dry run' : r.status === 'committed' ? 'Imported' : 'Not imported'} (import ${r.importId}): ${r.fileName} into list ${r.list.key}`,
    `  rows ${r.rows.total}: ${r.rows.valid} valid (${r.rows.new} new, ${r.rows.merged} existing contacts), ${r.rows.bad} bad` +
      (r.status === 'committed' ? `; ${r.rows.imported} imported, ${r.rows.skipped} skipped` : ''),
    `  mapping: ${Object.entries(r.mapping).map(([k, v]) => `${k}=${v}`).join(', ')}`,
  ];
  if (r.ignoredColumns.length) lines.push(`  ignored columns: ${r.ignoredColumns.join(', ')}`);
  for (const e of r.errors) lines.push(`  row ${e.row}${e.column ? `, ${e.column}` : ''}: ${e.reason}${e.value !== null ? ` (value "${e.value}")` : ''}`);
  if (r.errorsTruncated) lines.push(`  … and more bad rows: ${r.rows.bad} in all`);
  if (r.status === 'failed') lines.push('Nothing was imported. Correct the rows, or run again with --skip-bad-rows to import the others.');
  return lines;
}

export function registerImportCli(program: Command, withService: (fn: (b: Booted) => Promise<void>) => Promise<void>, actor: Actor): void {
  const contacts = program.commands.find((c) => c.name() === 'contacts') ?? program.command('contacts').description('contacts, imports and exports');
  contacts
    .command('import')
    .description('import contacts into a list from a CSV or XLSX file (all or nothing unless --skip-bad-rows)')
    .argument('<file>', 'a .csv or .xlsx file')
    .requiredOption('--list <key>', 'the list to subscribe the people to')
    .requiredOption('--evidence <text>', 'what the people were told and how they agreed')
    .addOption(new Option('--basis <basis>', 'legal basis for every row without its own legal_basis column').choices([...LEGAL_BASES]))
    .option('--dry-run', 'check every row and report the bad ones; change nothing')
    .option('--skip-bad-rows', 'import the good rows even when some are bad')
    .option('--map <mapping>', 'target=Column pairs, such as phone=Telefono,name=Nombre,region=Región (unmapped columns are guessed from their headers)')
    .option('--channels <list>', `channels to reach each number on: ${MEDIA.join(',')} (default both)`)
    .addOption(new Option('--format <format>', 'csv or xlsx (default: from the file name)').choices(['csv', 'xlsx']))
    .action((file: string, o: ImportCliOptions) =>
      withService(async ({ db, config }) => {
        let bytes: Buffer;
        try {
          bytes = await readFile(file);
        } catch (e) {
          process.stderr.write(`ayni: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}\n`);
          process.exitCode = 2;
          return;
        }
        const media = o.channels ? (o.channels.split(',').map((s) => s.trim()) as (typeof MEDIA)[number][]) : undefined;
        const report = await runImport({ db, config }, actor, {
          list: o.list,
          fileName: basename(file),
          format: o.format,
          content: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength),
          mapping: o.map ? parseMappingText(o.map) : undefined,
          basis: o.basis,
          evidence: o.evidence,
          dryRun: Boolean(o.dryRun),
          skipBadRows: Boolean(o.skipBadRows),
          media,
        });
        const lines = formatReport(report);
        process.stdout.write(lines.slice(0, report.ignoredColumns.length ? 4 : 3).join('\n') + '\n');
        const rest = lines.slice(report.ignoredColumns.length ? 4 : 3);
        if (rest.length) process.stderr.write(rest.join('\n') + '\n');
        if (report.status === 'failed' || (report.status === 'dry_run' && report.rows.bad > 0)) process.exitCode = 2;
      }),
    );
}
