/**
 * The Ayni process: configuration → database (migrations applied) → HTTP → scheduler.
 * SIGTERM/SIGINT stop taking new work, let running requests and jobs finish, then close.
 */
import type { Server } from 'node:http';
import { boot } from './boot.js';
import { createApp } from './http/app.js';
import { ensureFirstAdmin } from './staff/service.js';
import { ensureDefaults as ensureContactDefaults } from './contacts/lists.js';
import { startScheduler } from './jobs/scheduler.js';
import { initSurveys } from './surveys/index.js';
import { installBroadcastRenderer } from './broadcasts/render.js';
import { channelsFor } from './channels/index.js';
import { startDispatcher } from './messaging/dispatcher.js';
import { startInboundWorker } from './messaging/inbound-worker.js';

async function main(): Promise<void> {
  const { config, log, db } = await boot();
  const first = await ensureFirstAdmin(db, config.ADMIN_EMAIL, config.ADMIN_PASSWORD);
  await ensureContactDefaults(db, config); // the default list, so that a plain JOIN works on a fresh install
  await initSurveys(config, log); // loads and checks surveys/*.yaml|xlsx; refused files are logged and listed on /surveys
  const { app } = createApp({ config, db, log });
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(config.PORT, config.HOST, () => resolve(s));
  });
  const channels = Object.entries(config.channels).filter(([, on]) => on).map(([name]) => name);
  const lines = [
    '',
    `Ayni is running on ${config.DATABASE_URL.kind === 'sqlite' ? 'SQLite' : 'PostgreSQL'} with channels: ${['simulator', ...channels].join(', ')}`,
    `Open the console: ${config.PUBLIC_URL}/`,
  ];
  if (first) {
    lines.push(
      'First start: an admin was created. Sign in with',
      `  e-mail:   ${first.email}`,
      config.ADMIN_PASSWORD ? '  password: the ADMIN_PASSWORD you set' : `  password: ${first.password}`,
      'This password is shown only now; change it or create your own users under Staff users.',
    );
  }
  process.stdout.write(lines.join('\n') + '\n\n');
  log.info({ port: config.PORT }, 'listening');
  installBroadcastRenderer({ db, config }); // the dispatcher asks it for broadcast content at send time
  const scheduler = await startScheduler({ config, db, log });
  // Sends the outbox: one loop per process (RUN_DISPATCHER=false leaves it to other processes).
  const dispatcher = config.RUN_DISPATCHER ? startDispatcher({ config, db, log, adapters: channelsFor(config).all }) : null;
  const inbound = startInboundWorker({ config, db, log }); // routes what the webhooks stored

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    const forced = setTimeout(() => process.exit(1), 30_000);
    forced.unref();
    const dispatching = dispatcher?.stop(); // requests in flight finish and are recorded; unsent rows are given back
    await Promise.all([new Promise<void>((resolve) => server.close(() => resolve())), scheduler.stop(), inbound.stop()]);
    await dispatching;
    await db.close();
    clearTimeout(forced);
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

main().catch((err) => {
  process.stderr.write(`ayni: start-up failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
