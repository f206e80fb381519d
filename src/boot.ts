/** Shared start-up steps for the server and the CLI: configuration, logger, database. */
import { ConfigError, loadConfig, type Config } from './config.js';
import { createLogger, type Logger } from './log.js';
import { openDatabase, type Database } from './db/orm.js';
import { configurePseudonyms } from './contacts/pseudonyms.js';
import { configureComplaints } from './complaints/setup.js';

/** Loads the configuration or exits with code 2, printing one line per problem (no stack trace). */
export function configOrExit(env: Record<string, string | undefined> = process.env): Config {
  try {
    const config = loadConfig(env);
    configurePseudonyms(config); // the keyed hash of erased addresses, for this whole process
    configureComplaints(config); // the key sealing sensitive complaints, and the service levels
    return config;
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write('ayni: the configuration is not valid:\n');
      for (const p of e.problems) process.stderr.write(`  ${p}\n`);
      process.exit(2);
    }
    throw e;
  }
}

export interface Booted {
  config: Config;
  log: Logger;
  db: Database;
}

export async function boot(opts: { migrate?: boolean; logLevel?: string } = {}): Promise<Booted> {
  const config = configOrExit();
  const log = createLogger(opts.logLevel ?? config.LOG_LEVEL);
  const db = await openDatabase(config.DATABASE_URL, { poolSize: config.DATABASE_POOL_SIZE, migrate: opts.migrate });
  return { config, log, db };
}
