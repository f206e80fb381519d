/**
 * The servers the webhook benchmark loads, in a process of their own: the full Ayni app on a fresh
 * test database (a real SQLite file, or PostgreSQL with AYNI_TEST_DB=postgresql) with every channel
 * configured, and a bare Koa handler that answers a POST with "OK". Logs go through pino at level
 * info into /dev/null, as in production.
 *
 * argv[2]: how many outbox rows to prepare as "sent" (provider ids wamid.BENCH.OUT.<i>), so that
 * the status callbacks of the load move real rows.
 *
 * Prints one JSON line: {"app": URL, "bare": URL, "env": {...settings}}. The bare server also
 * answers GET /_counts (what the app stored) and POST /_route (routes everything pending with the
 * real router, timed). Closes everything and removes its database when stdin closes.
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import Koa from 'koa';
import { pino } from 'pino';
import { loadConfig } from '../../../src/config.js';
import { createApp } from '../../../src/http/app.js';
import { createLogger } from '../../../src/log.js';
import { routePending } from '../../../src/messaging/inbound.js';
import { ROUTER_STEPS } from '../../../src/messaging/steps.js';
import { toInt } from '../../../src/db/values.js';
import { openTestDatabase } from '../../helpers/db.js';
import { fakeEnv } from '../../helpers/fake-provider.js';
import { ingestFor } from '../../../src/channels/webhooks.js';

const listen = (app: Koa<any>): Promise<Server> =>
  new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
const urlOf = (s: Server) => `http://127.0.0.1:${(s.address() as AddressInfo).port}`;

const outboxRows = Number(process.argv[2] ?? 0);
const { db, test, close } = await openTestDatabase();
const env = { ...fakeEnv('http://127.0.0.1:9'), PUBLIC_URL: 'https://ayni.example.org' };
const config = loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'info', DATABASE_URL: test.url, ...env });
const log = createLogger('info', pino.destination({ dest: '/dev/null', sync: false }));
const services = { config, db, log };
const { app } = createApp(services);

// Outbox rows that the dispatcher "sent", for the status callbacks to move.
if (outboxRows > 0) {
  const now = new Date();
  const [c] = await db.knex('contacts').insert({ status: 'active', created_at: now, updated_at: now }).returning('id');
  const contactId = toInt(typeof c === 'object' ? c.id : c);
  for (let i = 0; i < outboxRows; i += 500) {
    const rows = [];
    for (let j = i; j < Math.min(outboxRows, i + 500); j++) {
      rows.push({ contact_id: contactId, purpose: 'updates', priority: 3, content: null, channel: 'whatsapp', status: 'sent', provider_id: `wamid.BENCH.OUT.${j}`, attempts: 1, created_at: now });
    }
    await db.knex('outbox').insert(rows);
  }
}

const bare = new Koa();
bare.use(async (ctx) => {
  if (ctx.path === '/_counts') {
    const count = async (q: any) => toInt((await q.count({ n: '*' }).first())?.n);
    ctx.body = {
      inbound: await count(db.knex('inbound_messages')),
      read: await count(db.knex('outbox').where('status', 'read')),
      delivered: await count(db.knex('outbox').where('status', 'delivered')),
      early: await count(db.knex('outbox_status_early')),
      groups: ingestFor(services).groups,
      events: ingestFor(services).events,
    };
    return;
  }
  if (ctx.path === '/_route') {
    const t0 = performance.now();
    let n = 0;
    for (;;) {
      const k = await routePending(services, ROUTER_STEPS, 500);
      if (k === 0) break;
      n += k;
    }
    ctx.body = { routed: n, seconds: (performance.now() - t0) / 1000 };
    return;
  }
  ctx.body = 'OK';
});

const servers = [await listen(app), await listen(bare)];
process.stdout.write(JSON.stringify({ app: urlOf(servers[0]), bare: urlOf(servers[1]), env }) + '\n');

process.stdin.resume();
process.stdin.on('end', async () => {
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
  await close();
  process.exit(0);
});
