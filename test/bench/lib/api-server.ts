/**
 * The servers the HTTP benchmarks load, in a process of their own so that the load generator does not
 * share their event loop: the full Ayni app on a fresh test database (SQLite, or PostgreSQL with
 * AYNI_TEST_DB=postgresql and TEST_DATABASE_URL), and a bare Koa handler answering a JSON body of the
 * same size. Logs go through pino at level info, as in production, into /dev/null.
 *
 * Prints one JSON line: {"app": URL, "bare": URL, "token": bearer secret of a viewer API token}.
 * Closes everything and removes its database when stdin closes.
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import Koa from 'koa';
import { pino } from 'pino';
import { loadConfig } from '../../../src/config.js';
import { createApp } from '../../../src/http/app.js';
import { createLogger } from '../../../src/log.js';
import { SYSTEM } from '../../../src/staff/audit.js';
import { createToken } from '../../../src/staff/service.js';
import { openTestDatabase } from '../../helpers/db.js';

const listen = (app: Koa<any>): Promise<Server> =>
  new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
const urlOf = (s: Server) => `http://127.0.0.1:${(s.address() as AddressInfo).port}`;

const { db, test, close } = await openTestDatabase();
// NODE_ENV=test like the test suite: production only makes secrets (PSEUDONYM_KEY, COMPLAINTS_ENCRYPTION_KEY…)
// mandatory; nothing on the request path depends on it. Should that change, measure production here.
const config = loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'info', DATABASE_URL: test.url });
const log = createLogger('info', pino.destination({ dest: '/dev/null', sync: false }));
const { app } = createApp({ config, db, log });
const { secret } = await createToken(db, SYSTEM, { name: 'bench', role: 'viewer' });

const bare = new Koa();
bare.use((ctx) => {
  ctx.body = { type: 'token', id: 1, label: 'token:bench', role: 'viewer', permissions: ['contacts.read', 'reports.read'] };
});

const servers = [await listen(app), await listen(bare)];
process.stdout.write(JSON.stringify({ app: urlOf(servers[0]), bare: urlOf(servers[1]), token: secret }) + '\n');

process.stdin.resume();
process.stdin.on('end', async () => {
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
  await close();
  process.exit(0);
});
