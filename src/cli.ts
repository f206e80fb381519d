/**
 * The `ayni` command: administration from a shell. Each domain adds its commands here.
 *   ayni migrate
 *   ayni users create --email E --name N --role R [--password P]
 *   ayni users list
 *   ayni tokens create --name N --role R
 *   ayni tokens list
 *   ayni tokens revoke ID
 *   ayni contacts import FILE --list KEY --evidence TEXT [--basis B] [--dry-run] [--skip-bad-rows] [--map phone=Col,…] [--channels whatsapp,sms]
 *   ayni surveys validate FILE… | preview FILE [--lang es] [--channel sms|whatsapp] | list | schema
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { ZodError } from 'zod';
import { boot, type Booted } from './boot.js';
import { migrate } from './db/orm.js';
import { HttpError, zodDetails } from './http/errors.js';
import { ROLES } from './staff/roles.js';
import { createToken, createUser, listTokens, listUsers, revokeToken } from './staff/service.js';
import type { Actor } from './staff/audit.js';
import { registerSurveyCommands } from './surveys/cli.js';
import { registerComplaintsCli } from './complaints/cli.js';
import { registerImportCli } from './contacts/import-cli.js';
import { registerBroadcastsCli } from './broadcasts/cli.js';
import { registerCashCli } from './cash/cli.js';

const CLI_ACTOR: Actor = { type: 'system', id: null, label: 'cli', role: 'system' };
const out = (s: string) => process.stdout.write(s + '\n');

/** Runs fn with a booted service (migrations applied unless told otherwise), then closes the database. */
async function withService(fn: (b: Booted) => Promise<void>, opts: { migrate?: boolean } = {}): Promise<void> {
  const b = await boot({ migrate: opts.migrate, logLevel: 'warn' });
  try {
    await fn(b);
  } finally {
    await b.db.close();
  }
}

const positiveInt = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive whole number');
  return n;
};

export function buildCli(): Command {
  const program = new Command('ayni').description('Ayni: two-way messaging for humanitarian programmes').showHelpAfterError();

  program
    .command('migrate')
    .description('apply pending database migrations')
    .action(() =>
      withService(async ({ db }) => {
        const applied = await migrate(db);
        out(applied.length ? `Applied ${applied.length} migration(s):\n  ${applied.join('\n  ')}` : 'The database is up to date.');
      }, { migrate: false }),
    );

  const users = program.command('users').description('staff users');
  users
    .command('create')
    .description('create a staff user; without --password one is generated and printed once')
    .requiredOption('--email <email>', 'e-mail, used to sign in')
    .requiredOption('--name <name>', 'display name')
    .addOption(new Option('--role <role>', 'role').choices([...ROLES]).makeOptionMandatory())
    .option('--password <password>', 'at least 12 characters')
    .addOption(new Option('--locale <locale>', 'console language').choices(['en', 'es']).default('en'))
    .action((o: { email: string; name: string; role: (typeof ROLES)[number]; password?: string; locale: 'en' | 'es' }) =>
      withService(async ({ db }) => {
        const { user, password } = await createUser(db, CLI_ACTOR, o);
        out(`Created ${user.role} ${user.email} (id ${user.id}).`);
        if (!o.password) out(`Password (shown once): ${password}`);
      }),
    );
  users
    .command('list')
    .description('list staff users')
    .action(() =>
      withService(async ({ db }) => {
        for (const u of await listUsers(db)) out(`${String(u.id).padStart(4)}  ${u.role.padEnd(12)} ${u.active ? 'active  ' : 'inactive'}  ${u.email}`);
      }),
    );

  const tokens = program.command('tokens').description('API tokens for /api/v1');
  tokens
    .command('create')
    .description('create an API token; the secret is printed once')
    .requiredOption('--name <name>', 'what the token is for')
    .addOption(new Option('--role <role>', 'role the token acts with').choices([...ROLES]).makeOptionMandatory())
    .action((o: { name: string; role: (typeof ROLES)[number] }) =>
      withService(async ({ db }) => {
        const { token, secret } = await createToken(db, CLI_ACTOR, o);
        out(`Created token ${token.id} (${token.role}). Secret, shown once:\n${secret}`);
      }),
    );
  tokens
    .command('list')
    .description('list API tokens')
    .action(() =>
      withService(async ({ db }) => {
        for (const t of await listTokens(db)) out(`${String(t.id).padStart(4)}  ${t.role.padEnd(12)} ${t.revokedAt ? 'revoked' : 'active '}  ${t.prefix}  ${t.name}`);
      }),
    );
  tokens
    .command('revoke')
    .description('revoke an API token by id')
    .argument('<id>', 'token id', positiveInt)
    .action((id: number) =>
      withService(async ({ db }) => {
        await revokeToken(db, CLI_ACTOR, id);
        out(`Revoked token ${id}.`);
      }),
    );

  registerComplaintsCli(program, withService);

  registerBroadcastsCli(program, withService); // ayni broadcasts list|create|preview|send|pause|resume|cancel|stats|run-due

  registerImportCli(program, withService, CLI_ACTOR); // ayni contacts import

  registerSurveyCommands(program); // ayni surveys validate|preview|list|schema

  registerCashCli(program, withService); // ayni cash import|transfers|pdm|sample-size

  return program;
}

export async function runCli(argv: string[]): Promise<void> {
  try {
    await buildCli().parseAsync(argv);
  } catch (e) {
    if (e instanceof ZodError) {
      for (const [field, msg] of Object.entries(zodDetails(e))) process.stderr.write(`ayni: ${field}: ${msg}\n`);
      process.exit(2);
    }
    if (e instanceof HttpError) {
      process.stderr.write(`ayni: ${e.message}${e.details ? ' (' + Object.entries(e.details).map(([k, v]) => `${k}: ${String(v)}`).join('; ') + ')' : ''}\n`);
      process.exit(e.status === 404 ? 3 : 2);
    }
    throw e;
  }
}
