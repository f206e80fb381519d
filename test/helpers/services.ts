/** Router services (config, db, silent logger) on a fresh test database, without HTTP. */
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/log.js';
import type { RouterServices } from '../../src/messaging/types.js';
import { openTestDatabase } from './db.js';

export async function testServices(env: Record<string, string> = {}): Promise<RouterServices & { close(): Promise<void> }> {
  const { db, test, close } = await openTestDatabase();
  const config = loadConfig({ LOG_LEVEL: 'silent', NODE_ENV: 'test', DATABASE_URL: test.url, ...env });
  return { config, db, log: createLogger('silent'), close };
}
