/**
 * Dispatch throughput and rate-limit accuracy.
 *
 * Throughput: the dispatcher (claim in batches, send-time consent and channel checks, the last check
 * before each request, WhatsApp adapter over undici, results written in batches) sends a broadcast
 * to a zero-latency fake WhatsApp Cloud API running in its own process, beside a bare loop of
 * undici's Pool.request posting the same request to the same fake (in the shape fastest for it), in
 * alternating rounds so that any drift of the machine touches both alike. CPU per
 * message says what limits the dispatcher: its database work (SQLite, synchronous, in this process)
 * on top of the HTTP client's own.
 *
 * Rate limit: a broadcast at WhatsApp's default 80 messages/s for 30 s (quick: 3 s): the mean rate,
 * and the busiest one-second window wherever it starts, counted when the requests leave the
 * dispatcher (what the limiter controls: the goal) and where they arrive (the fake provider in this
 * process; connection set-up and event-loop delays move arrivals by some milliseconds).
 */
import { buildChannels } from '../../src/channels/index.js';
import type { ChannelAdapter } from '../../src/channels/types.js';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/log.js';
import { Dispatcher } from '../../src/messaging/dispatcher.js';
import { openTestDatabase } from '../helpers/db.js';
import { FAKE_CREDENTIALS, spawnFakeProvider, startFakeProvider } from '../helpers/fake-provider.js';
import { insertOutbox, seedContacts, type SeededContact } from '../messaging/dispatch-fixtures.js';
import { load, newPool } from './lib/http-load.js';
import { row, type Benchmark, type Row } from './types.js';

// The bare loop in its fastest shape here: 64 connections with 4 requests waiting on each (more
// connections cost it more CPU per request). The dispatcher's adapters open up to
// DISPATCH_CONCURRENCY connections, so that a checked message never waits in the pool's queue.
const CONNECTIONS = 64;
const CONCURRENCY = 256;

const benchmark: Benchmark = {
  name: 'dispatch',
  async run({ quick }) {
    return [...(await throughput(quick)), ...(await rateAccuracy(quick))];
  },
};

export default benchmark;

interface Measure {
  count: number;
  seconds: number;
  cpuMicros: number;
  /** Sum over requests of the provider round trip, milliseconds. */
  roundTripMs: number;
  /** Dispatch only: sum over messages of the wait for the last check, milliseconds. */
  checkMs?: number;
}

async function throughput(quick: boolean): Promise<Row[]> {
  const n = quick ? 1_000 : 20_000;
  const rounds = quick ? 1 : 2;
  const fake = await spawnFakeProvider({ latencyMs: 0, record: false });
  const { db, test, close } = await openTestDatabase();
  const config = loadConfig({ ...fake.env(), DATABASE_URL: test.url, LOG_LEVEL: 'silent', NODE_ENV: 'test', WHATSAPP_RATE_PER_SECOND: '100000' });
  const channels = buildChannels(config);
  const pool = newPool(fake.url, CONNECTIONS);
  const log = createLogger('silent');
  try {
    const contacts = await seedContacts(db.knex, { count: n });
    const body = JSON.stringify({ messaging_product: 'whatsapp', recipient_type: 'individual', to: '51900000000', type: 'text', text: { body: 'Vacunación gratuita este sábado en el centro de salud', preview_url: false }, biz_opaque_callback_data: '123456' });
    const bareRun = async (requests: number): Promise<Measure> => {
      const c0 = process.cpuUsage();
      const r = await load(pool, {
        method: 'POST',
        path: `/v23.0/${FAKE_CREDENTIALS.whatsappPhoneNumberId}/messages`,
        headers: { authorization: `Bearer ${FAKE_CREDENTIALS.whatsappToken}`, 'content-type': 'application/json' },
        body,
        requests,
        concurrency: CONCURRENCY,
      });
      const c = process.cpuUsage(c0);
      if (r.errors) throw new Error(`${r.errors} unexpected answers in the bare loop`);
      return { count: requests, seconds: r.seconds, cpuMicros: c.user + c.system, roundTripMs: r.latencies.reduce((a, b) => a + b, 0) };
    };
    const dispatchRun = async (people: SeededContact[], broadcastId: number): Promise<Measure> => {
      await db.knex('outbox').delete();
      await insertOutbox(db.knex, people.map((c) => ({ contactId: c.id, broadcastId, content: { type: 'text' as const, text: 'Vacunación gratuita este sábado en el centro de salud' } })));
      const d = new Dispatcher({ db, config, log, adapters: channels.all });
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const counts = await d.runUntilIdle();
      const seconds = (performance.now() - t0) / 1000;
      const c = process.cpuUsage(c0);
      if (counts.sent !== people.length) throw new Error(`the dispatcher sent ${counts.sent} of ${people.length}`);
      return { count: people.length, seconds, cpuMicros: c.user + c.system, roundTripMs: d.timings.stageSend, checkMs: d.timings.stageCheck };
    };
    // Warm-up: connections, JIT, SQLite page cache.
    await bareRun(quick ? 200 : 3_000);
    await dispatchRun(contacts.slice(0, quick ? 200 : 2_000), 1);
    const bare: Measure[] = [];
    const disp: Measure[] = [];
    for (let i = 0; i < rounds; i++) {
      if (i % 2 === 0) {
        bare.push(await bareRun(n));
        disp.push(await dispatchRun(contacts, 10 + i));
      } else {
        disp.push(await dispatchRun(contacts, 10 + i));
        bare.push(await bareRun(n));
      }
    }
    const rate = (ms: Measure[]) => ms.reduce((s, m) => s + m.count, 0) / ms.reduce((s, m) => s + m.seconds, 0);
    const cpu = (ms: Measure[]) => ms.reduce((s, m) => s + m.cpuMicros, 0) / ms.reduce((s, m) => s + m.count, 0);
    const mean = (ms: Measure[], f: (m: Measure) => number) => ms.reduce((s, m) => s + f(m), 0) / ms.reduce((s, m) => s + m.count, 0);
    const dispatched = rate(disp);
    const loop = rate(bare);
    const kind = db.kind === 'postgresql' ? 'PostgreSQL' : 'SQLite';
    return [
      row(`dispatch throughput (${kind}, zero-latency fake WhatsApp)`, Math.round(dispatched), 'msg/s', { atLeast: 5_000 }),
      row('bare undici Pool.request loop to the same fake', Math.round(loop), 'req/s'),
      row('dispatch throughput ÷ bare loop', Number((dispatched / loop).toFixed(3)), 'ratio', { atLeast: 0.4 }),
      row('dispatch CPU per message (this process, database threads included)', Math.round(cpu(disp)), 'µs'),
      row('bare loop CPU per request', Math.round(cpu(bare)), 'µs'),
      row('dispatch provider round trip per request (mean)', Number(mean(disp, (m) => m.roundTripMs).toFixed(2)), 'ms'),
      row('bare loop round trip per request (mean)', Number(mean(bare, (m) => m.roundTripMs).toFixed(2)), 'ms'),
      row('dispatch wait for the last check per message (mean)', Number(mean(disp, (m) => m.checkMs ?? 0).toFixed(2)), 'ms'),
    ];
  } finally {
    await pool.close();
    await channels.close();
    await close();
    await fake.close();
  }
}

async function rateAccuracy(quick: boolean): Promise<Row[]> {
  const rate = 80;
  const seconds = quick ? 3 : 30;
  const n = rate * seconds;
  const fake = await startFakeProvider({ latencyMs: 0, record: true });
  const { db, test, close } = await openTestDatabase();
  const config = loadConfig({ ...fake.env(), DATABASE_URL: test.url, LOG_LEVEL: 'silent', NODE_ENV: 'test', WHATSAPP_RATE_PER_SECOND: String(rate) });
  const channels = buildChannels(config);
  try {
    const contacts = await seedContacts(db.knex, { count: n, firstNumber: 5_000_000 });
    await insertOutbox(db.knex, contacts.map((c) => ({ contactId: c.id, broadcastId: 1, content: { type: 'text' as const, text: 'Aviso' } })));
    // The WhatsApp adapter, noting when each request leaves.
    const wa = channels.whatsapp!;
    const left: number[] = [];
    const timed: ChannelAdapter = { name: wa.name, medium: wa.medium, ratePerSecond: wa.ratePerSecond, parseWebhook: (r) => wa.parseWebhook(r), send: (r) => (left.push(performance.now()), wa.send(r)) };
    const counts = await new Dispatcher({ db, config, log: createLogger('silent'), adapters: [timed] }).runUntilIdle();
    if (counts.sent !== n) throw new Error(`sent ${counts.sent} of ${n}`);
    const arrived = fake.requests.map((r) => r.at);
    const sent = measureRate(left);
    const got = measureRate(arrived);
    const within = (v: number) => Math.abs(v - rate) / rate <= 0.01;
    return [
      { name: `rate limit ${rate}/s over ${seconds} s: mean rate`, value: Number(sent.mean.toFixed(2)), unit: 'msg/s', goal: `${rate} ± 1%`, holds: within(sent.mean) },
      row(`rate limit ${rate}/s over ${seconds} s: busiest one-second window as sent`, sent.busiest, 'msg', { atMost: rate }),
      row(`rate limit ${rate}/s over ${seconds} s: busiest one-second window at the provider`, got.busiest, 'msg'),
    ];
  } finally {
    await channels.close();
    await close();
    await fake.close();
  }
}

/** Mean rate over the whole run, and the most events in any window [t, t + 1 s). */
function measureRate(times: number[]): { mean: number; busiest: number } {
  const t = [...times].sort((a, b) => a - b);
  const mean = (t.length - 1) / ((t[t.length - 1] - t[0]) / 1000);
  let busiest = 0;
  for (let i = 0, j = 0; i < t.length; i++) {
    while (t[i] - t[j] >= 1000) j++;
    busiest = Math.max(busiest, i - j + 1);
  }
  return { mean, busiest };
}
