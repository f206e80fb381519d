/**
 * `ayni complaints …` commands:
 *   ayni complaints key                      print a new COMPLAINTS_ENCRYPTION_KEY (32 random bytes, base64)
 *   ayni complaints sla                      run the complaints job once now (escalations, abandoned intakes…)
 *   ayni complaints import-services FILE     add services to the referral directory from a CSV file
 * No command lists or shows cases: a shell has no role, and sensitive cases are read on the console or
 * the API by focal points, where every read is audited.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { Booted } from '../boot.js';
import type { Actor } from '../staff/audit.js';
import { generateKey } from './crypto.js';
import { importServicesCsv } from './referrals.js';
import { runComplaintsJob } from './sla.js';

const CLI_ACTOR: Actor = { type: 'system', id: null, label: 'cli', role: 'system' };
const out = (s: string) => process.stdout.write(s + '\n');

export function registerComplaintsCli(program: Command, withService: (fn: (b: Booted) => Promise<void>) => Promise<void>): void {
  const c = program.command('complaints').description('complaints, referrals and psychosocial triage');
  c.command('key')
    .description('print a new random COMPLAINTS_ENCRYPTION_KEY; keep it outside the database and never lose it')
    .action(() => {
      out(generateKey());
    });
  c.command('sla')
    .description('run the complaints job once: escalate cases past their service level, close abandoned intakes, blank case-naming outbox rows')
    .action(() =>
      withService(async ({ db, config }) => {
        const r = await runComplaintsJob(db, config);
        out(Object.entries(r).map(([k, v]) => `${k}: ${v}`).join('\n'));
      }),
    );
  c.command('import-services')
    .description('add services to the referral directory from a CSV file (header: organisation,name,description,eligibility,languages,hours,contact,area,kinds); all rows or none')
    .argument('<file>', 'CSV file')
    .action((file: string) =>
      withService(async ({ db }) => {
        const r = await importServicesCsv(db, CLI_ACTOR, readFileSync(file, 'utf8'));
        out(`Added ${r.created} service(s) to the directory.`);
      }),
    );
}
